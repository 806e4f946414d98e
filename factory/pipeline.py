"""The bake pipeline every cloud backend runs: ordered steps, cleanups, deadlines, progress, signals.

Model (see ``docs/pipeline.md``):

- A bake is a list of :class:`Step` run in order by :class:`Pipeline`. Steps share one
  :class:`BakeContext` (``ctx.state`` carries values from one step to the next).
- A step that creates a resource calls :meth:`BakeContext.created` *the moment the cloud returned its id*,
  before any wait: that writes the id to the :class:`~factory.journal.Journal` (fsynced) and registers
  the resource's cleanup. On failure, SIGINT or SIGTERM, cleanups run in reverse order of registration.
  A cleanup survives a second Ctrl-C (the signal is acknowledged, cleanup goes on). A product of the bake
  (the image) registers a cleanup too and is :meth:`BakeContext.keep`-ed when the bake succeeds.
- Every wait goes through :meth:`BakeContext.wait`: one deadline per phase, printed when the phase
  starts, a poll interval, a heartbeat line while waiting, and transient errors (throttling) retried.
- All output goes through :class:`ProgressLog` (stderr) which passes every line through the
  :class:`Redactor` built from the config's secrets.

Errors: :class:`UsageError` (exit 2, nothing created), :class:`StepFailed` raised by a step (exit 1
after cleanup; the message names resources that could not be removed), :class:`BakeInterrupted`
(exit 130 for SIGINT, 143 for SIGTERM, after cleanup).
"""

from __future__ import annotations

import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, TextIO, TypeVar

from factory.journal import Journal, Resource

T = TypeVar("T")

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
BAKE_ID_TAG = "k3os-factory:bake-id"
STATE_TAG = "k3os-factory:state"
CREATED_TAG = "k3os-factory:created"
STATE_COMPLETE = "complete"
STATE_PENDING = "pending"


class UsageError(Exception):
    """The user asked for something impossible or malformed; exit 2 with this one-line message."""


class StepFailed(Exception):
    """A step could not do its job; the pipeline cleans up and exits 1 with this message."""


class WaitTimeout(StepFailed):
    """A phase exceeded its deadline."""


class BakeInterrupted(BaseException):
    """SIGINT or SIGTERM arrived; carries the signal number. Exit code is ``128 + signum``."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """130 for SIGINT, 143 for SIGTERM."""
        return 128 + self.signum


class BakeFailed(Exception):
    """Raised by :meth:`Pipeline.run` after cleanup; ``exit_code`` is 1, 130 or 143."""

    def __init__(self, message: str, exit_code: int, leftovers: list[Resource]) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.leftovers = leftovers


def new_bake_id() -> str:
    """A fresh bake id (uuid4 string)."""
    return str(uuid.uuid4())


def format_duration(seconds: float) -> str:
    """``2400`` -> ``40m0s``; ``3725`` -> ``1h2m5s``; ``0.2`` -> ``0.2s``."""
    if seconds < 10 and seconds != int(seconds):
        return f"{seconds:.1f}s"
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


class Redactor:
    """Replaces every secret value in a text with ``***``. Built from ``secret_values(cfg)``."""

    def __init__(self, secrets: Sequence[str] = ()) -> None:
        """Remember the non-empty secrets, longest first so overlapping values are fully masked."""
        self.secrets = sorted({s for s in secrets if s}, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        """``text`` with every secret masked."""
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


class ProgressLog:
    """Progress lines on stderr: ``[bake 3f2a +1m5s] step: message``, redacted, thread-safe."""

    def __init__(self, bake_id: str, redactor: Redactor, stream: TextIO | None = None) -> None:
        """Lines carry the first 4 hex digits of ``bake_id`` and the time since creation."""
        self.short_id = bake_id[:4]
        self.redact = redactor
        self.stream = stream
        self.started = time.monotonic()
        self._lock = threading.Lock()

    def __call__(self, step: str, message: str) -> None:
        """Print one line for ``step``."""
        elapsed = format_duration(time.monotonic() - self.started)
        line = self.redact(f"[bake {self.short_id} +{elapsed}] {step}: {message}")
        stream = self.stream or sys.stderr
        with self._lock:
            print(line, file=stream, flush=True)


@dataclass
class Timeouts:
    """Overall deadline plus per-phase limits (seconds). A phase never outlives the overall deadline."""

    overall_s: float = 3600.0
    phase_defaults: dict[str, float] = field(default_factory=dict)
    overrides: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)

    def for_phase(self, phase: str) -> float:
        """Seconds allowed for ``phase`` from now."""
        remaining = max(0.0, self.overall_s - (time.monotonic() - self.started))
        wanted = self.overrides.get(phase, self.phase_defaults.get(phase, remaining))
        return min(wanted, remaining)


@dataclass(frozen=True)
class Step:
    """One pipeline step: ``run(ctx)`` does the work; ``plan`` says in words what it will do (dry-run)."""

    name: str
    run: Callable[[BakeContext], None]
    plan: str = ""


@dataclass
class _Cleanup:
    step: str
    resource: Resource
    undo: Callable[[], None]
    active: bool = True


def _never_transient(exc: BaseException) -> bool:
    return False


class BakeContext:
    """State shared by the steps of one bake: ids, tags, logging, journal, cleanups and waits."""

    def __init__(
        self,
        *,
        cloud: str,
        name: str,
        bake_id: str | None = None,
        redactor: Redactor | None = None,
        timeouts: Timeouts | None = None,
        poll_interval: float = 15.0,
        heartbeat_s: float = 60.0,
        journal: Journal | None = None,
        is_transient: Callable[[BaseException], bool] = _never_transient,
        stream: TextIO | None = None,
    ) -> None:
        """Create the context; the journal is opened here unless one is given."""
        self.cloud = cloud
        self.name = name
        self.bake_id = bake_id or new_bake_id()
        self.redact = redactor or Redactor()
        self.log = ProgressLog(self.bake_id, self.redact, stream)
        self.timeouts = timeouts or Timeouts()
        self.poll_interval = poll_interval
        self.heartbeat_s = heartbeat_s
        self.journal = journal or Journal(self.bake_id, cloud, name)
        self.is_transient = is_transient
        self.state: dict[str, Any] = {}
        self.cancelled = threading.Event()
        self.cleaning = False
        self.step = "start"
        self._cleanups: list[_Cleanup] = []
        self._lock = threading.Lock()

    def created(self, resource: Resource, undo: Callable[[], None]) -> Resource:
        """Journal ``resource`` (fsynced) and register ``undo`` as its cleanup. Call before any wait."""
        self.journal.created(resource)
        with self._lock:
            self._cleanups.append(_Cleanup(self.step, resource, undo))
        self.log(self.step, f"created {resource}")
        return resource

    def keep(self, resource: Resource) -> None:
        """Mark ``resource`` as a product: its cleanup is released, gc will leave it alone."""
        with self._lock:
            for item in self._cleanups:
                if item.resource == resource:
                    item.active = False
        self.journal.kept(resource)

    def discard(self, resource: Resource) -> None:
        """The step removed ``resource`` itself (e.g. terminated the builder): drop its cleanup."""
        with self._lock:
            for item in self._cleanups:
                if item.resource == resource:
                    item.active = False
        self.journal.removed(resource)

    def check_cancelled(self) -> None:
        """Raise :class:`BakeInterrupted` in a worker thread once the bake was interrupted."""
        if self.cancelled.is_set() and not self.cleaning:
            raise BakeInterrupted(signal.SIGINT)

    def wait(
        self,
        phase: str,
        what: str,
        check: Callable[[], T | None],
        *,
        timeout_s: float | None = None,
        poll_s: float | None = None,
        on_timeout: Callable[[], str] | None = None,
    ) -> T:
        """Poll ``check()`` until it returns non-None; deadline per ``phase``, printed up front.

        ``check`` may raise :class:`StepFailed` to stop waiting (e.g. the instance was terminated);
        exceptions for which ``is_transient`` is true (throttling) are logged and polled again.
        On timeout, ``on_timeout()`` may add details (console output, StateReason) to the error.
        """
        limit = self.timeouts.for_phase(phase) if timeout_s is None else timeout_s
        poll = self.poll_interval if poll_s is None else poll_s
        self.log(
            phase, f"waiting up to {format_duration(limit)} for {what} (poll every {format_duration(poll)})"
        )
        start = time.monotonic()
        deadline = start + limit
        next_heartbeat = start + self.heartbeat_s
        while True:
            self.check_cancelled()
            try:
                result = check()
            except StepFailed:
                raise
            except Exception as exc:
                if not self.is_transient(exc):
                    raise
                self.log(phase, f"transient error, will retry: {exc}")
                result = None
            if result is not None:
                self.log(phase, f"done after {format_duration(time.monotonic() - start)}: {what}")
                return result
            now = time.monotonic()
            if now >= deadline:
                detail = on_timeout() if on_timeout else ""
                raise WaitTimeout(
                    f"{phase}: gave up after {format_duration(limit)} waiting for {what}"
                    + (f"; {detail}" if detail else "")
                )
            if now >= next_heartbeat:
                left = format_duration(deadline - now)
                self.log(
                    phase, f"still waiting for {what} ({format_duration(now - start)} so far, {left} left)"
                )
                next_heartbeat = now + self.heartbeat_s
            self.cancelled.wait(min(poll, max(0.0, deadline - now)))

    def run_cleanups(self) -> list[Resource]:
        """Run every active cleanup in reverse order; return the resources that could not be removed."""
        self.cleaning = True
        with self._lock:
            pending = [c for c in reversed(self._cleanups) if c.active]
        leftovers: list[Resource] = []
        for item in pending:
            self.log("cleanup", f"removing {item.resource}")
            try:
                item.undo()
            except Exception as exc:
                self.log("cleanup", f"could not remove {item.resource}: {exc}")
                leftovers.append(item.resource)
                continue
            item.active = False
            self.journal.removed(item.resource)
        return leftovers


class Pipeline:
    """Runs steps in order, handling SIGINT/SIGTERM and cleanup. Use :meth:`run`."""

    def __init__(self, ctx: BakeContext, steps: Sequence[Step]) -> None:
        """Bind the steps to their context."""
        self.ctx = ctx
        self.steps = list(steps)

    def _interrupt(self, signum: int, frame: FrameType | None) -> None:
        self.ctx.cancelled.set()
        raise BakeInterrupted(signum)

    def _during_cleanup(self, signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        self.ctx.log("cleanup", f"{name} received again: finishing cleanup first, please wait")

    def _install(self, handler: Callable[[int, FrameType | None], None]) -> dict[int, Any]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        return {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}

    def run(self) -> None:
        """Run all steps. On success cleanups of temporary resources are done by the steps themselves
        and products are kept; on failure or signal, cleanups run and :class:`BakeFailed` is raised."""
        ctx = self.ctx
        previous = self._install(self._interrupt)
        error: BaseException | None = None
        try:
            for step in self.steps:
                ctx.step = step.name
                ctx.log(step.name, "start")
                step.run(ctx)
            ctx.step = "done"
        except (Exception, BakeInterrupted, KeyboardInterrupt) as exc:
            error = exc
        finally:
            if error is None:
                for sig, old in previous.items():
                    signal.signal(sig, old)
        if error is None:
            leftovers = ctx.journal.outstanding()
            ctx.journal.end("ok", leftovers)
            return
        ctx.cancelled.set()
        self._install(self._during_cleanup)
        try:
            if isinstance(error, BakeInterrupted | KeyboardInterrupt):
                signum = error.signum if isinstance(error, BakeInterrupted) else int(signal.SIGINT)
                code = 128 + signum
                reason = f"interrupted by {signal.Signals(signum).name} during {ctx.step}"
            else:
                code = EXIT_FAILED
                detail = " ".join(str(error).split()) or type(error).__name__
                reason = f"{ctx.step} failed: {detail[:600]}"
            ctx.log(ctx.step, f"{reason}; cleaning up")
            leftovers = ctx.run_cleanups()
            ctx.journal.end("interrupted" if code != EXIT_FAILED else "failed", leftovers)
            if leftovers:
                names = ", ".join(str(r) for r in leftovers)
                reason += f"; could not remove: {names} (run `factory gc {ctx.cloud}`)"
            else:
                ctx.log("cleanup", "all temporary resources removed")
        finally:
            for sig, old in previous.items():
                signal.signal(sig, old)
        raise BakeFailed(ctx.redact(reason), code, leftovers) from error
