"""``factory gc CLOUD [--older-than DURATION] [--dry-run]``: remove leftovers of failed or killed bakes
(everything tagged ``k3os-factory:bake-id`` that is not a finished image)."""

from __future__ import annotations

import argparse
import sys

from factory.cmdutil import (
    backend_or_error,
    cloud_parser,
    fail,
    parse_duration,
    quiet_exits,
    register_cloud_command,
)
from factory.pipeline import EXIT_FAILED, EXIT_OK, UsageError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``factory gc``."""
    register_cloud_command(subparsers, "gc", "remove leftovers of failed or interrupted bakes", run)


@quiet_exits("gc")
def run(ns: argparse.Namespace) -> int:
    """Entry of ``factory gc CLOUD``."""
    backend = backend_or_error("gc", ns.cloud)
    if isinstance(backend, int):
        return backend
    parser = cloud_parser(
        "gc", backend, "Remove resources tagged with a bake id that are not finished images."
    )
    backend.add_common_arguments(parser)
    parser.add_argument(
        "--older-than",
        metavar="DURATION",
        default="0s",
        help="only resources at least this old (30m, 6h, 2d; default 0s = all; "
        "bakes still running on this host are always skipped)",
    )
    parser.add_argument("--dry-run", action="store_true", help="print what would be removed, remove nothing")
    args = parser.parse_args(ns.options)
    command = f"gc {backend.name}"
    try:
        older_than = parse_duration(args.older_than)
        items = backend.gc_find(args, older_than)
    except UsageError as exc:
        return fail(command, str(exc))
    except Exception as exc:
        usage = backend.user_error(exc)
        if usage is not None:
            return fail(command, str(usage))
        return fail(command, f"listing leftovers failed: {exc}", EXIT_FAILED)
    if not items:
        print(f"factory {command}: nothing to remove (older than {args.older_than})", file=sys.stderr)
    if args.dry_run:
        if items:
            print(f"factory {command} --dry-run: would remove {len(items)} resource(s), removing nothing:")
        for item in items:
            age = "unknown age" if item.age_s == float("inf") else f"{int(item.age_s)}s old"
            print(f"would remove  {item.kind} {item.id} ({item.region}) bake {item.bake_id}, {age}")
        return EXIT_OK
    try:
        # also with no items: lets the backend forget the journals of bakes with nothing left
        failed = backend.gc_remove(args, items, sys.stdout)
    except Exception as exc:
        return fail(command, f"removal failed: {exc}", EXIT_FAILED)
    if failed:
        names = ", ".join(f"{i.kind} {i.id}" for i in failed)
        return fail(command, f"could not remove: {names}", EXIT_FAILED)
    return EXIT_OK
