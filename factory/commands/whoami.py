"""``factory whoami CLOUD``: which identity the cloud sees (the same check every bake runs first)."""

from __future__ import annotations

import argparse
import json

from factory.cmdutil import backend_or_error, cloud_parser, fail, quiet_exits, register_cloud_command
from factory.pipeline import EXIT_FAILED, EXIT_OK, UsageError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``factory whoami``."""
    register_cloud_command(subparsers, "whoami", "show the cloud identity the credentials resolve to", run)


@quiet_exits("whoami")
def run(ns: argparse.Namespace) -> int:
    """Entry of ``factory whoami CLOUD``."""
    backend = backend_or_error("whoami", ns.cloud)
    if isinstance(backend, int):
        return backend
    parser = cloud_parser("whoami", backend, "Show the identity the cloud sees.")
    backend.add_common_arguments(parser)
    parser.add_argument("--json", action="store_true", help="one JSON object on stdout")
    args = parser.parse_args(ns.options)
    try:
        who = backend.whoami(args)
    except UsageError as exc:
        return fail(f"whoami {backend.name}", str(exc))
    except Exception as exc:
        usage = backend.user_error(exc)
        if usage is not None:
            return fail(f"whoami {backend.name}", str(usage))
        return fail(f"whoami {backend.name}", str(exc), EXIT_FAILED)
    if args.json:
        print(json.dumps(who))
    else:
        for key, value in who.items():
            print(f"{key}: {value}")
    return EXIT_OK
