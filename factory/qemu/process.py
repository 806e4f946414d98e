"""Run one QEMU process with cleanup on every exit path.

The child runs in its own session (so a terminal's Ctrl-C reaches only the factory, which then cleans
up in order) and gets ``PR_SET_PDEATHSIG`` = SIGKILL, so even if the factory itself is killed with
SIGKILL no QEMU process is left behind. :meth:`QemuProcess.stop` terminates, waits, then kills.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

PR_SET_PDEATHSIG = 1
TERMINATE_GRACE_SECONDS = 5.0


class QemuError(RuntimeError):
    """QEMU could not be started or failed."""


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


class QemuProcess:
    """A running QEMU. Use as a context manager: leaving the block always stops the process.

    ``stderr`` of QEMU goes to ``stderr_log`` (QEMU prints errors such as ``KVM internal error``
    there); the guest's serial console goes wherever the argv says (usually a file).
    """

    def __init__(self, argv: Sequence[str], stderr_log: Path) -> None:
        self.argv = list(argv)
        self.stderr_log = stderr_log
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        """The QEMU process id (after :meth:`start`)."""
        if self._proc is None:
            raise QemuError("QEMU was not started")
        return self._proc.pid

    def start(self) -> QemuProcess:
        """Start QEMU. Raises :class:`QemuError` when the binary is missing."""
        self.stderr_log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.stderr_log, "wb") as err:
            try:
                self._proc = subprocess.Popen(
                    self.argv,
                    stdin=subprocess.DEVNULL,
                    stdout=err,
                    stderr=err,
                    start_new_session=True,
                    preexec_fn=_die_with_parent,  # noqa: PLW1509 - needed for PDEATHSIG
                )
            except FileNotFoundError as exc:
                raise QemuError(f"{self.argv[0]} not found (install qemu-system-x86)") from exc
        return self

    def poll(self) -> int | None:
        """The exit code, or None while QEMU runs."""
        if self._proc is None:
            return None
        return self._proc.poll()

    def wait(self, timeout: float) -> int | None:
        """Wait up to ``timeout`` seconds; the exit code, or None if still running."""
        if self._proc is None:
            return None
        try:
            return self._proc.wait(timeout=max(0.0, timeout))
        except subprocess.TimeoutExpired:
            return None

    def stderr_text(self) -> str:
        """What QEMU printed on stdout/stderr so far."""
        try:
            return self.stderr_log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, grace: float = TERMINATE_GRACE_SECONDS) -> int | None:
        """Terminate QEMU (SIGTERM), wait up to ``grace`` seconds, then SIGKILL. Idempotent."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            return None if proc is None else proc.returncode
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return proc.returncode
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        return proc.wait()

    def __enter__(self) -> QemuProcess:
        if self._proc is None:
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
