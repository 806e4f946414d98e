"""Helpers shared by the cloud backends' end-to-end tests (``tests/{gcp,openstack,hetzner}``; ``tests/aws``
uses the command line, environment, runs and signals): the ``factory`` console script, its command line
and environment, running it to completion, signalling it at a marker, and running independent runs
concurrently.

Each cloud's ``conftest.py`` keeps only what is its own: the fake API fixture and the credentials that
point the real SDK at it (see :func:`factory_env`)."""

from __future__ import annotations

import functools
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import pytest

T = TypeVar("T")
F = TypeVar("F")

FACTORY = shutil.which("factory", path=str(Path(sys.executable).parent)) or "factory"
ISO_URL = "https://example.invalid/k3os.iso"
ISO_SHA = "a" * 64
SECRETS = ("Pa55-w0rd-XYZZY", "K10-t0ken-PLUGH", "w1f1-PASSPHRASE-frotz")
#: ``FACTORY_POLL_SECONDS`` of the test runs: the fakes count polls, not seconds, so short is honest
POLL_SECONDS = "0.05"
#: bound of one console-script run (a hang fails the test instead of the whole session)
RUN_TIMEOUT = 60.0


def secret_config_text() -> str:
    """A valid k3OS config with a password, a token and a wifi passphrase (the :data:`SECRETS`)."""
    return (
        "hostname: baked\n"
        "k3os:\n"
        f"  password: {SECRETS[0]}\n"
        f"  token: {SECRETS[1]}\n"
        "  wifi:\n"
        f"    - name: home\n      passphrase: {SECRETS[2]}\n"
    )


@pytest.fixture
def secret_config(tmp_path: Path) -> Path:
    """The :func:`secret_config_text` config as a file of the test's own (import it into a conftest to
    use it as a fixture, as ``tests/aws`` does)."""
    path = tmp_path / "config.yaml"
    path.write_text(secret_config_text())
    return path


def bake_args(cloud: str, tmp_path: Path, *extra: str) -> list[str]:
    """A ``factory bake CLOUD`` command line with the ISO options and a manifest in ``tmp_path``."""
    return [
        FACTORY, "bake", cloud,
        "--iso-url", ISO_URL,
        "--iso-sha256", ISO_SHA,
        "--manifest", str(tmp_path / "manifest.json"),
        *extra,
    ]  # fmt: skip


def factory_env(
    directory: Path, strip: tuple[str, ...], drop: tuple[str, ...] = (), **cloud: str
) -> dict[str, str]:
    """Environment for a ``factory`` subprocess: this process's, without the variables starting with
    ``strip`` (the cloud's own, and ``FACTORY_``) or named in ``drop``, plus ``cloud`` (credentials,
    endpoint), a state directory and ``HOME`` in ``directory``, and the short test poll interval."""
    env = {k: v for k, v in os.environ.items() if not k.startswith((*strip, "FACTORY_")) and k not in drop}
    env.update(
        FACTORY_STATE_DIR=str(directory / "state"),
        FACTORY_POLL_SECONDS=POLL_SECONDS,
        HOME=str(directory),
    )
    env.update(cloud)
    return env


def run_factory(
    args: list[str], env: dict[str, str], timeout: float = RUN_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run the console script to completion, output captured as text."""
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)


def run_together(*commands: tuple[list[str], dict[str, str]]) -> list[subprocess.CompletedProcess[str]]:
    """Run independent console-script commands (``(args, env)`` each, e.g. read-only ones against one
    fake) at the same time; their completed processes, in order."""
    jobs = {str(n): functools.partial(run_factory, args, env) for n, (args, env) in enumerate(commands)}
    return list(run_concurrently(jobs).values())


def interrupt_when(
    args: list[str],
    env: dict[str, str],
    marker: str,
    sig: signal.Signals,
    timeout: float = RUN_TIMEOUT,
    settle: float = 0.0,
) -> tuple[int, str, str]:
    """Start the console script, send ``sig`` ``settle`` seconds after ``marker`` shows on stderr (to
    land a few polls into a wait), return (exit code, stdout, stderr). Fails if the marker never shows."""
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None and proc.stdout is not None
    err_lines: list[str] = []
    sent = False
    deadline = time.monotonic() + timeout
    for line in proc.stderr:
        err_lines.append(line)
        if not sent and marker in line:
            if settle:
                time.sleep(settle)
            proc.send_signal(sig)
            sent = True
        if time.monotonic() > deadline:
            proc.kill()
            break
    out = proc.stdout.read()
    rc = proc.wait(timeout=timeout)
    assert sent, "marker never printed:\n" + "".join(err_lines)
    return rc, out, "".join(err_lines)


def kill_when(args: list[str], env: dict[str, str], marker: str, timeout: float = RUN_TIMEOUT) -> None:
    """Start the console script and SIGKILL it once ``marker`` shows on stderr (leftovers for gc)."""
    proc = subprocess.Popen(args, env=env, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    seen = False
    for line in proc.stderr:
        if marker in line:
            seen = True
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout)
    assert seen, f"marker {marker!r} never printed"


def run_concurrently(jobs: Mapping[str, Callable[[], T]], workers: int = 8) -> dict[str, T]:
    """Call every job, ``workers`` at a time (each typically runs one console script against its own
    fake, so they cannot interfere); map name -> result, in the jobs' order. A job's exception is
    raised here."""
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(jobs)))) as pool:
        futures = {name: pool.submit(job) for name, job in jobs.items()}
        return {name: future.result() for name, future in futures.items()}


def _nothing(fake: object) -> None:
    return None


def _same(env: dict[str, str]) -> dict[str, str]:
    return env


@dataclass(frozen=True)
class Run(Generic[F]):
    """One console-script run for :func:`run_each`: ``args(tmp)``; ``prepare(fake)`` before it starts
    and ``env(env)`` to adjust its environment; with ``interrupt`` = (marker, signal, settle) it is
    signalled as :func:`interrupt_when` does."""

    args: Callable[[Path], list[str]]
    prepare: Callable[[F], object] = _nothing
    env: Callable[[dict[str, str]], dict[str, str]] = _same
    interrupt: tuple[str, signal.Signals, float] | None = None


@dataclass
class Outcome(Generic[F]):
    """A finished run: its own fake, the completed process, its temp directory and what the run's
    ``prepare`` returned (e.g. a watcher thread's findings)."""

    fake: F
    proc: subprocess.CompletedProcess[str]
    tmp: Path
    prepared: Any = None


class Stoppable(Protocol):
    """A fake that serves until stopped."""

    def stop(self) -> None:
        """Stop serving."""


def stop_fakes(outcomes: Mapping[str, Outcome[Any]]) -> None:
    """Stop the fake of every outcome and remove its directory (a module fixture's teardown after
    :func:`run_each`)."""
    for outcome in outcomes.values():
        fake: Stoppable = outcome.fake
        fake.stop()
        shutil.rmtree(outcome.tmp, ignore_errors=True)


def run_each(
    runs: Mapping[str, Run[F]],
    new_fake: Callable[[], F],
    make_env: Callable[[F, Path], dict[str, str]],
    workers: int = 8,
) -> dict[str, Outcome[F]]:
    """Run each of ``runs`` against a fake of its own (``new_fake()``, environment ``make_env(fake,
    tmp)``), ``workers`` at a time; the runs are independent, so a module's single-run tests can share
    the wall time. Each run gets a directory of its own outside pytest's numbered base directory
    (which a concurrent pytest session may prune while a module's tests still read the outcomes);
    :func:`stop_fakes` stops the fakes and removes the directories."""

    def one(name: str) -> Outcome[F]:
        fake = new_fake()
        safe = re.sub(r"[^\w.-]+", "-", name)[:40]
        tmp = Path(tempfile.mkdtemp(prefix=f"k3os-run-{safe}-"))
        run = runs[name]
        prepared = run.prepare(fake)
        args, env = run.args(tmp), run.env(make_env(fake, tmp))
        if run.interrupt is None:
            return Outcome(fake, run_factory(args, env), tmp, prepared)
        marker, sig, settle = run.interrupt
        rc, out, err = interrupt_when(args, env, marker, sig, settle=settle)
        return Outcome(fake, subprocess.CompletedProcess(args, rc, out, err), tmp, prepared)

    return run_concurrently({name: functools.partial(one, name) for name in runs}, workers)


def runs_fixture(
    runs: Mapping[str, Run[F]],
    new_fake: Callable[[], F],
    make_env: Callable[[F, Path], dict[str, str]],
    name: str = "runs",
    workers: int = 8,
) -> Any:
    """A module-scoped fixture called ``name``: the outcomes of :func:`run_each` over ``runs``, the
    fakes stopped afterwards. Assign it in the test module (``runs = runs_fixture(RUNS, ...)``)."""

    @pytest.fixture(scope="module", name=name)
    def outcomes() -> Iterator[dict[str, Outcome[F]]]:
        results = run_each(runs, new_fake, make_env, workers)
        yield results
        stop_fakes(results)

    return outcomes
