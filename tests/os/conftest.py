"""Fixtures of the OS tests: the real ISO (built once per session through the cache) and a QEMU boot."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from image_base.os import build
from tests.qemu.vm_inputs import shared_iso

READY_PREFIX = b"k3os-factory: ready "


@pytest.fixture(scope="session")
def built_iso() -> build.BuildResult:
    """The ISO from the current sources, shared with the other VM tests (one build per session)."""
    return shared_iso()


@dataclass
class Boot:
    """The outcome of booting a VM until a line appears (or QEMU exits, or the deadline passes)."""

    console: bytes
    seconds: float
    exited: bool

    def ready_line(self) -> str | None:
        """The ready line from the console, if it was printed."""
        for line in self.console.splitlines():
            if line.startswith(READY_PREFIX):
                return line.decode(errors="replace").strip()
        return None


def boot_qemu(log: Path, qemu_args: list[str], until: bytes, deadline: float = 180.0) -> Boot:
    """Boot QEMU (TCG) with the serial console in ``log`` until ``until`` shows up there or QEMU exits."""
    command = [
        "qemu-system-x86_64",
        "-accel", "tcg,thread=multi",
        "-cpu", "max",
        "-m", "1024",
        "-smp", "2",
        "-nographic",
        "-monitor", "none",
        "-no-reboot",
        "-serial", f"file:{log}",
        "-netdev", "user,id=n0",
        "-device", "virtio-net-pci,netdev=n0",
        *qemu_args,
    ]  # fmt: skip
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while time.monotonic() - started < deadline:
            if log.exists() and until in log.read_bytes():
                break
            if process.poll() is not None:
                break
            time.sleep(0.2)
        seconds = time.monotonic() - started
        exited = process.poll() is not None
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
    return Boot(log.read_bytes() if log.exists() else b"", seconds, exited)


@pytest.fixture
def qemu_log(tmp_path: Path) -> Iterator[Path]:
    """A serial-console log path, printed (tail) when the test fails."""
    log = tmp_path / "console.log"
    yield log
