"""The ``datasources`` console script: ``fetch`` the node's userdata, ``list`` the providers.

Data goes to stdout (``--json``, ``list``), log lines to stderr. Exit codes: 0 a provider was
detected, 1 none was, 2 usage error.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from datasources.output import DEFAULT_OUTPUT

if TYPE_CHECKING:
    from datasources.plugins import ProviderTable

EXIT_DETECTED = 0
EXIT_NONE = 1
EXIT_USAGE = 2
DEFAULT_TIMEOUT = 10.0
MAX_TIMEOUT = 86400.0  # datasources.engine.MAX_TIMEOUT (not imported: the engine pulls in pluggy)
ROOT_ENV = "DATASOURCES_ROOT"

DESCRIPTION = """\
Find this node's userdata and metadata and write them into /run/config.

commands:
  fetch [PROVIDER ...]  probe the providers in order; the first that returns userdata wins,
                        else the metadata of the first one detected is written
  list                  print the registered providers (built-in and third-party) in default order

Exit codes: 0 a provider was detected, 1 none was, 2 usage error.
Environment: DATASOURCES_<PROVIDER>_URL replaces a provider's base URL, DATASOURCES_DMI_DIR
replaces /sys/class/dmi/id, DATASOURCES_CDROM_DEVICES lists block devices or image files,
DATASOURCES_ROOT is the root whose k3OS config gives the default order, DATASOURCES_TRACE=1
logs every plugin hook call with its duration."""

FETCH_DESCRIPTION = """\
Probe the providers in the given order and write the winner's files.

Providers: aws gcp openstack hetzner scaleway vultr digitalocean packet (alias equinixmetal)
cdrom, plus third-party ones (`datasources list`). None given: k3os.data_sources of the k3OS
config, else the default order. The first provider that returns userdata wins; if none does,
the metadata of the first one detected is written. All are probed at once; the result is
exactly what the order gives.

Files in --output, each written atomically; files an earlier run left that this run lacks are
removed: provider, userdata (0600), local_hostname, hostname, ssh/authorized_keys (dir 0700,
file 0600), instance_id, metadata.json.

Exit codes: 0 a provider was detected, 1 none was (or --output cannot be written), 2 usage error."""

FETCH_EPILOG = """\
examples:
  datasources fetch                      # order from k3os.data_sources, else the default order
  datasources fetch aws cdrom --timeout 5
  datasources fetch gcp --output /tmp/cfg --json"""


# A process older than this is not a fresh ``datasources`` run: do not trust the start time.
_MAX_START_AGE = 30.0


def process_started() -> float:
    """When this process started, as a ``time.monotonic()`` value (now when unknown).

    ``--timeout`` bounds the whole run, interpreter start-up included, so the deadline counts
    from here. Linux gives the start in clock ticks since boot (``/proc/self/stat`` field 22),
    the same clock as ``CLOCK_BOOTTIME``; rounding makes the process look at most one tick
    older, which only makes the deadline earlier.
    """
    now = time.monotonic()
    try:
        with open("/proc/self/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        ticks = int(fields[19])
        age = time.clock_gettime(time.CLOCK_BOOTTIME) - ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, AttributeError):
        return now
    return now - age if 0.0 <= age < _MAX_START_AGE else now


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Help text as written; the width from ``COLUMNS`` (argparse would import shutil for it
    on every ``add_argument``, which is start-up time on the boot path)."""

    def __init__(
        self, prog: str, indent_increment: int = 2, max_help_position: int = 24, width: int | None = None
    ):
        if width is None:
            columns = os.environ.get("COLUMNS", "")
            width = (int(columns) if columns.isdigit() else 80) - 2
        super().__init__(prog, indent_increment, max_help_position, width)


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line usage error and exit code 2."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> None:  # type: ignore[override]
        """Print ``prog: error: message`` on one line and exit 2 (no usage block)."""
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(EXIT_USAGE)


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0 or value != value:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds: {text!r}")
    if value > MAX_TIMEOUT:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_TIMEOUT:g} seconds: {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``datasources``."""
    parser = _Parser(prog="datasources", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    fetch = sub.add_parser(
        "fetch",
        help="find the userdata and write the output files",
        description=FETCH_DESCRIPTION,
        epilog=FETCH_EPILOG,
    )
    fetch.add_argument("providers", nargs="*", metavar="PROVIDER", help="providers in order of preference")
    fetch.add_argument(
        "--output",
        default=DEFAULT_OUTPUT,
        metavar="DIR",
        help="directory for the files (default: %(default)s)",
    )
    fetch.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="deadline for the whole run, start to exit; no request outlives it (default: %(default)g)",
    )
    fetch.add_argument(
        "--json",
        action="store_true",
        help="print {provider, userdata, files, attempts} as one JSON object on stdout",
    )
    sub.add_parser("list", help="print the registered providers in default order")
    return parser


def configured_order(env: Mapping[str, str]) -> list[str]:
    """``k3os.data_sources`` of the merged k3OS config under ``DATASOURCES_ROOT`` (default /)."""
    try:
        from pathlib import Path

        from image_base.config import load_merged  # type: ignore[attr-defined, unused-ignore]
    except ImportError:
        return []
    try:
        config = load_merged(Path(env.get(ROOT_ENV) or "/"))
    except Exception as exc:  # a broken config must not stop the node from finding its userdata
        sys.stderr.write(f"datasources: cannot read the k3OS config ({exc}); using the default order\n")
        return []
    return _data_sources_of(config)


def _data_sources_of(config: object) -> list[str]:
    k3os = config.get("k3os") if isinstance(config, Mapping) else getattr(config, "k3os", None)
    if k3os is None:
        return []
    sources = k3os.get("data_sources") if isinstance(k3os, Mapping) else getattr(k3os, "data_sources", None)
    if isinstance(sources, str):
        sources = sources.split()
    if not isinstance(sources, list | tuple):
        return []
    return [str(s) for s in sources if str(s).strip()]


def _known_only(names: list[str], table: ProviderTable) -> list[str]:
    """The names of ``k3os.data_sources`` that some plugin provides; the others are logged.

    A name the node does not know (a typo, a provider from a newer release) must not keep it
    from its userdata: unlike a name on the command line it is skipped, not a usage error.
    """
    known = [n for n in names if table.resolve(n) is not None]
    for name in names:
        if name not in known:
            sys.stderr.write(f"datasources: k3os.data_sources names unknown provider {name!r}: skipped\n")
    if not known:
        sys.stderr.write("datasources: no known provider in k3os.data_sources; using the default order\n")
    return known


def _cmd_list() -> int:
    from datasources.plugins import get_plugin_manager, plugin_of, provider_table

    pm = get_plugin_manager(load_entrypoints=True)
    lines = []
    for info in provider_table(pm).providers:
        extra = f" (alias: {', '.join(info.aliases)})" if info.aliases else ""
        origin = plugin_of(pm, info.name) or "?"
        cloud = info.cloud or "-"
        lines.append(f"{info.name}\tcloud={cloud}\torder={info.order}\tplugin={origin}{extra}\n")
    _print("".join(lines))
    return EXIT_DETECTED


def _print(text: str) -> None:
    """Write ``text`` to stdout; a closed stdout or pipe costs one log line, not a traceback.

    At boot stdout may be closed; the files are what matters, so the exit code stays that of
    the command.
    """
    try:
        if sys.stdout is None:
            raise BrokenPipeError("stdout is closed")
        sys.stdout.write(text)
        sys.stdout.flush()
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"datasources: cannot write to stdout ({exc})\n")
        try:  # keep the interpreter's final flush from failing again
            devnull = os.open(os.devnull, os.O_WRONLY)
            if sys.stdout is not None:
                os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass


def _cmd_fetch(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    from datasources import engine
    from datasources.output import write_output
    from datasources.plugins import get_plugin_manager, needs_entrypoints, provider_table

    names: list[str] = list(args.providers) or configured_order(env)
    pm = get_plugin_manager(load_entrypoints=needs_entrypoints(names), env=env)
    if names and not args.providers:
        names = _known_only(names, provider_table(pm))
    if not names:
        names = provider_table(pm).names()
    try:
        result = engine.fetch(names, args.timeout, env, pm=pm, started=args.started)
    except engine.UsageError as exc:
        sys.stderr.write(f"datasources: error: {exc}\n")
        return EXIT_USAGE
    try:
        files = write_output(args.output, result.metadata)
    except OSError as exc:
        where = exc.filename or args.output
        sys.stderr.write(f"datasources: error: cannot write {where}: {exc.strerror or exc}\n")
        return EXIT_NONE
    if result.metadata is None:
        sys.stderr.write("datasources: no provider detected\n")
    else:
        has = "with" if result.has_userdata else "without"
        sys.stderr.write(f"datasources: using {result.provider} ({has} userdata)\n")
    if args.json:
        import json

        doc = {
            "provider": result.provider,
            "userdata": result.has_userdata,
            "files": files,
            "attempts": [a.as_dict() for a in result.attempts],
        }
        _print(json.dumps(doc) + "\n")
    return EXIT_DETECTED if result.metadata is not None else EXIT_NONE


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``datasources``; return the exit code."""
    started = process_started() if argv is None else time.monotonic()
    args = build_parser().parse_args(argv)
    args.started = started
    try:
        if args.command == "list":
            return _cmd_list()
        return _cmd_fetch(args, os.environ)
    except KeyboardInterrupt:
        sys.stderr.write("datasources: interrupted\n")
        return 130
