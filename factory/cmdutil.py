"""Helpers shared by the ``factory bake/gc/images/whoami`` commands: per-cloud sub-parsers, errors,
durations. A command is ``factory COMMAND CLOUD [cloud options]``: the cloud's backend module is imported
only once the cloud is named, then a second parser with the backend's flags parses the rest."""

from __future__ import annotations

import argparse
import functools
import os
import re
import sys
from collections.abc import Callable
from typing import NoReturn

from factory.clouds.base import CloudBackend, available_clouds, load_backend
from factory.pipeline import EXIT_USAGE, UsageError

EXIT_SIGINT = 130
_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """``30m`` / ``6h`` / ``2d`` / ``0s`` (or a bare ``0``) -> seconds. UsageError for anything else."""
    cleaned = text.strip()
    if cleaned == "0":
        return 0.0
    match = _DURATION.match(cleaned)
    if not match:
        raise UsageError(
            f"bad duration {text!r}: use a number with a unit s, m, h, d or w (e.g. 30m, 6h, 2d)"
        )
    return float(match.group(1)) * _UNITS[match.group(2)]


def fail(command: str, message: str, code: int = EXIT_USAGE) -> int:
    """Print ``factory COMMAND: message`` on stderr (one line) and return ``code``."""
    one_line = " ".join(message.split())
    print(f"factory {command}: {one_line}", file=sys.stderr)
    return code


def quiet_exits(command: str) -> Callable[[Callable[[argparse.Namespace], int]], Callable[..., int]]:
    """Decorate a command's ``run``: Ctrl-C exits 130 with one line, a closed stdout pipe
    (``factory images aws list | head -1``) exits quietly, never with a traceback."""

    def wrap(run: Callable[[argparse.Namespace], int]) -> Callable[..., int]:
        @functools.wraps(run)
        def guarded(ns: argparse.Namespace) -> int:
            try:
                code = run(ns)
                sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit flush
                return code
            except KeyboardInterrupt:
                return fail(f"{command} {getattr(ns, 'cloud', '')}".strip(), "interrupted", EXIT_SIGINT)
            except BrokenPipeError:
                # stdout's reader went away: point stdout at /dev/null so the exit flush cannot fail
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
                return 0

        return guarded

    return wrap


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line (``factory bake aws: error: ...``), exit 2."""

    def error(self, message: str) -> NoReturn:
        """Print one line naming the command and ``--help``, then exit 2."""
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def register_cloud_command(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    command: str,
    help_text: str,
    run: Callable[[argparse.Namespace], int],
) -> argparse.ArgumentParser:
    """Add ``factory COMMAND CLOUD ...``: the rest of the line is parsed later by :func:`cloud_parser`."""
    parser = subparsers.add_parser(
        command,
        help=help_text,
        description=f"{help_text}. Run `factory {command} CLOUD --help` for the cloud's options.",
    )
    parser.add_argument("cloud", metavar="CLOUD", help=f"one of: {', '.join(available_clouds())}")
    parser.add_argument("options", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    parser.set_defaults(func=run)
    return parser


def backend_or_error(command: str, cloud: str) -> CloudBackend | int:
    """The backend for ``cloud``, or the exit code after a one-line error."""
    try:
        return load_backend(cloud)
    except UsageError as exc:
        return fail(command, str(exc))


def cloud_parser(command: str, backend: CloudBackend, description: str) -> argparse.ArgumentParser:
    """A parser for ``factory COMMAND CLOUD`` options (the caller adds the command's flags).

    Its usage errors are one line; sub-parsers made from it (``images aws list``) inherit that."""
    return OneLineParser(prog=f"factory {command} {backend.name}", description=description)
