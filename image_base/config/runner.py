"""Command runners for ``apply``: one that really runs commands, one that only records them."""

from __future__ import annotations

import logging
import os
import subprocess
from collections.abc import Mapping, Sequence
from typing import Protocol

log = logging.getLogger(__name__)


class Runner(Protocol):
    """Runs one command given as an argument list; returns its exit status (127: could not start)."""

    def run(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> int:
        """Run ``argv`` with ``env`` added to the current environment."""
        ...


class SubprocessRunner:
    """Runs commands for real (no shell unless the argv itself is ``/bin/sh -c ...``)."""

    def __init__(self, timeout: float | None = None) -> None:
        self.timeout = timeout

    def run(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> int:
        """Run ``argv``; output goes to our stdout/stderr (the boot console)."""
        full_env = {**os.environ, **(env or {})}
        try:
            return subprocess.run(list(argv), env=full_env, check=False, timeout=self.timeout).returncode
        except (OSError, subprocess.SubprocessError) as exc:
            log.error("cannot run %s: %s", argv[0], exc)
            return 127


class RecordingRunner:
    """Runs nothing; ``commands`` keeps every argv in call order (fake roots, tests, dry runs)."""

    def __init__(self) -> None:
        self.commands: list[list[str]] = []

    def run(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> int:
        """Record ``argv`` and report success."""
        self.commands.append(list(argv))
        return 0
