"""The serial watcher streams progress lines, matches patterns and honours deadlines and exits."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

from factory.qemu.serial import SerialWatcher, watch


def test_incremental_lines_partial_lines_and_progress_filter(tmp_path: Path) -> None:
    log = tmp_path / "serial.log"
    shown: list[str] = []
    watcher = SerialWatcher(log, emit=shown.append)
    assert watcher.poll() == []  # no file yet
    log.write_bytes(b"[  1.0] noise\r\nk3os-factory-builder: begin\nk3os-init: mo")
    assert watcher.poll() == ["[  1.0] noise", "k3os-factory-builder: begin"]
    with open(log, "ab") as fh:
        fh.write(
            b"de=disk\n\x1b[0;32m  OK  \x1b[0m] done\n[ 9.1] cloud-init[384]: k3os-factory-builder: begin\n"
        )
    assert watcher.poll() == [
        "k3os-init: mode=disk",
        "OK  ] done",
        "[ 9.1] cloud-init[384]: k3os-factory-builder: begin",
    ]
    assert shown == ["k3os-factory-builder: begin", "k3os-init: mode=disk"]  # the cloud-init echo is a repeat


def test_watch_matches_then_failure_then_exit_then_timeout(tmp_path: Path) -> None:
    log = tmp_path / "serial.log"
    log.write_text("a\nk3os-factory: ready provider=aws userdata=yes hostname=n1\n")
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        ready = re.compile(r"ready provider=(\S+)")
        res = watch(sleeper, SerialWatcher(log), deadline=time.monotonic() + 5, wanted=[ready])
        assert res.outcome == "matched" and res.match is not None and res.match.group(1) == "aws"
        log.write_text("k3os-factory-builder: FAILED at step 'download'\n")
        res = watch(
            sleeper,
            SerialWatcher(log),
            deadline=time.monotonic() + 5,
            wanted=[ready],
            failures=[re.compile("FAILED")],
        )
        assert res.outcome == "failed"
        started = time.monotonic()
        res = watch(sleeper, SerialWatcher(log), deadline=time.monotonic() + 0.5, wanted=[ready])
        assert res.outcome == "timeout" and 0.4 < time.monotonic() - started < 3
    finally:
        sleeper.kill()
        sleeper.wait()
    log.write_text("last line without newline")
    watcher = SerialWatcher(log)
    res = watch(sleeper, watcher, deadline=time.monotonic() + 5)
    assert res.outcome == "exited" and res.exit_code == -9
    assert watcher.lines == ["last line without newline"]
