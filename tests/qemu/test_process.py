"""A real QEMU (paused with -S, no disk) is stopped on every exit path and never outlives the factory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from factory.qemu.argv import VmSpec, qemu_argv
from factory.qemu.process import QemuError, QemuProcess

pytestmark = pytest.mark.skipif(
    subprocess.run(["which", "qemu-system-x86_64"], capture_output=True).returncode != 0,
    reason="qemu-system-x86_64 not installed",
)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose (not yet reaped by its parent).
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def _wait_gone(pid: int, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


def _paused_argv(tmp_path: Path) -> list[str]:
    return qemu_argv(
        VmSpec(serial_log=tmp_path / "serial.log", accel="tcg", memory_mb=64, cpus=1, paused=True)
    )


def test_stop_terminates_a_paused_qemu(tmp_path: Path) -> None:
    proc = QemuProcess(_paused_argv(tmp_path), tmp_path / "qemu.log").start()
    pid = proc.pid
    time.sleep(0.3)
    assert proc.poll() is None and _alive(pid)
    proc.stop()
    assert _wait_gone(pid)
    assert proc.stop() is not None  # idempotent


def test_context_manager_stops_qemu_when_the_block_raises(tmp_path: Path) -> None:
    pid = 0
    with pytest.raises(RuntimeError), QemuProcess(_paused_argv(tmp_path), tmp_path / "qemu.log") as proc:
        pid = proc.pid
        raise RuntimeError("step failed")
    assert pid and _wait_gone(pid)


def test_stop_kills_a_qemu_that_ignores_sigterm(tmp_path: Path) -> None:
    # A wrapper that ignores SIGTERM stands for a QEMU stuck in I/O: stop() must escalate to SIGKILL.
    script = tmp_path / "stubborn"
    script.write_text("#!/bin/sh\ntrap '' TERM\nexec \"$@\"\n")
    script.chmod(0o755)
    proc = QemuProcess([str(script), *_paused_argv(tmp_path)], tmp_path / "qemu.log").start()
    time.sleep(0.3)
    started = time.monotonic()
    proc.stop(grace=1.0)
    assert _wait_gone(proc.pid)
    assert time.monotonic() - started < 5


def test_qemu_dies_with_a_killed_factory_process(tmp_path: Path) -> None:
    code = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from factory.qemu.process import QemuProcess
        proc = QemuProcess({_paused_argv(tmp_path)!r}, Path({str(tmp_path / "qemu.log")!r})).start()
        print(proc.pid, flush=True)
        time.sleep(60)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    qemu_pid = int(parent.stdout.readline())
    assert _alive(qemu_pid)
    parent.send_signal(signal.SIGKILL)  # no finally, no atexit: only PDEATHSIG can clean up
    parent.wait()
    assert _wait_gone(qemu_pid), "QEMU outlived the killed factory process (orphan)"


def test_missing_binary_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(QemuError, match="not found"):
        QemuProcess(["/nonexistent/qemu-system-x86_64"], tmp_path / "qemu.log").start()
