"""Helpers shared by the ``factory bake/gc/images/whoami`` commands: per-cloud sub-parsers, errors,
durations. A command is ``factory COMMAND CLOUD [cloud options]``: the cloud's backend module is imported
only once the cloud is named, then a second parser with the backend's flags parses the rest."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable

from factory.clouds.base import CloudBackend, available_clouds, load_backend
from factory.pipeline import EXIT_USAGE, UsageError

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> float:
    """``30m`` / ``6h`` / ``2d`` / ``0s`` -> seconds. UsageError for anything else."""
    match = _DURATION.match(text.strip())
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
    """A parser for ``factory COMMAND CLOUD`` options (the caller adds the command's flags)."""
    return argparse.ArgumentParser(prog=f"factory {command} {backend.name}", description=description)
