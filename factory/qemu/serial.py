"""Follow a guest's serial console log: stream progress lines, match patterns, enforce a deadline.

QEMU writes the console to a file (``-serial file:PATH``); :class:`SerialWatcher` reads what was
appended since the last call and splits it into lines. :func:`watch` runs the loop that ends on a
matching line, a failure line, QEMU's exit or the deadline, whichever comes first.
"""

from __future__ import annotations

import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TextIO

#: Serial lines worth showing as progress (the builder, the k3OS init, cloud-init's own milestones).
PROGRESS_MARKERS = (
    "k3os-factory",
    "k3os-init",
    "k3os-boot",
    "k3os:",
    "Cloud-init v.",
    "Kernel panic",
    "reboot: Power down",
    "reboot: Restarting",
)

#: Progress lines that only repeat another one (cloud-init copies the builder's output to its log).
_REPEATED = re.compile(r"cloud-init\[\d+\]: k3os-")
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
POLL_SECONDS = 0.2


class _Process(Protocol):
    def poll(self) -> int | None: ...


class SerialWatcher:
    """Incremental reader of a serial log file. ``emit`` receives the progress lines (those holding
    one of ``markers``, or every line with ``verbose``)."""

    def __init__(
        self,
        log: Path,
        *,
        emit: Callable[[str], None] | None = None,
        markers: Sequence[str] = PROGRESS_MARKERS,
        verbose: bool = False,
    ) -> None:
        self.log = log
        self.emit = emit
        self.markers = tuple(markers)
        self.verbose = verbose
        self.lines: list[str] = []
        self._offset = 0
        self._partial = b""

    def poll(self) -> list[str]:
        """Read what the guest wrote since the last call; return the new complete lines."""
        try:
            with open(self.log, "rb") as fh:
                fh.seek(self._offset)
                chunk = fh.read()
        except FileNotFoundError:
            return []
        self._offset += len(chunk)
        data = self._partial + chunk
        *complete, self._partial = data.split(b"\n")
        new = [_clean(raw) for raw in complete]
        new = [line for line in new if line]
        self.lines.extend(new)
        if self.emit is not None:
            for line in new:
                if self.verbose or (
                    any(marker in line for marker in self.markers) and not _REPEATED.search(line)
                ):
                    self.emit(line)
        return new

    def flush_partial(self) -> list[str]:
        """Treat a trailing line without newline as complete (after the VM exited)."""
        self.poll()
        if not self._partial:
            return []
        line = _clean(self._partial)
        self._partial = b""
        if line:
            self.lines.append(line)
            return [line]
        return []

    def tail(self, count: int = 30) -> list[str]:
        """The last ``count`` lines seen."""
        return self.lines[-count:]


def _clean(raw: bytes) -> str:
    text = raw.decode("utf-8", errors="replace").replace("\r", "")
    return _ANSI.sub("", text).strip()


@dataclass(frozen=True)
class WatchResult:
    """How :func:`watch` ended: ``matched`` (a wanted line), ``failed`` (a failure line), ``exited``
    (QEMU exited first) or ``timeout``."""

    outcome: str
    line: str = ""
    match: re.Match[str] | None = None
    exit_code: int | None = None
    elapsed: float = 0.0


def watch(
    process: _Process,
    watcher: SerialWatcher,
    *,
    deadline: float,
    wanted: Sequence[re.Pattern[str]] = (),
    failures: Sequence[re.Pattern[str]] = (),
    clock: float | None = None,
) -> WatchResult:
    """Follow ``watcher`` until a line matches ``wanted`` or ``failures``, the process exits, or
    ``time.monotonic()`` passes ``deadline``. With no ``wanted`` patterns, the normal end is the
    process exit."""
    start = time.monotonic() if clock is None else clock
    while True:
        code = process.poll()
        lines = watcher.poll() if code is None else [*watcher.poll(), *watcher.flush_partial()]
        for line in lines:
            for pattern in failures:
                found = pattern.search(line)
                if found:
                    return WatchResult("failed", line, found, None, time.monotonic() - start)
            for pattern in wanted:
                found = pattern.search(line)
                if found:
                    return WatchResult("matched", line, found, None, time.monotonic() - start)
        if code is not None:
            return WatchResult("exited", exit_code=code, elapsed=time.monotonic() - start)
        if time.monotonic() >= deadline:
            return WatchResult("timeout", elapsed=time.monotonic() - start)
        time.sleep(POLL_SECONDS)


def stderr_emitter(prefix: str = "  | ", stream: TextIO | None = None) -> Callable[[str], None]:
    """An ``emit`` callback printing ``prefix + line`` on stderr (or ``stream``)."""

    def emit(line: str) -> None:
        print(f"{prefix}{line}", file=stream or sys.stderr, flush=True)

    return emit
