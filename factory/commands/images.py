"""``factory images CLOUD list [--json]`` and ``factory images CLOUD prune --keep N --name-prefix P``."""

from __future__ import annotations

import argparse
import json
import sys

from factory.cmdutil import backend_or_error, cloud_parser, fail, quiet_exits, register_cloud_command
from factory.pipeline import EXIT_FAILED, EXIT_OK, UsageError


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``factory images``."""
    register_cloud_command(subparsers, "images", "list or prune the images this factory produced", run)


@quiet_exits("images")
def run(ns: argparse.Namespace) -> int:
    """Entry of ``factory images CLOUD {list,prune}``."""
    backend = backend_or_error("images", ns.cloud)
    if isinstance(backend, int):
        return backend
    parser = cloud_parser("images", backend, "List or prune finished images.")
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    lister = sub.add_parser("list", help="list finished images, newest first")
    backend.add_common_arguments(lister)
    lister.add_argument("--json", action="store_true", help="one JSON array on stdout")
    pruner = sub.add_parser("prune", help="delete all but the newest N images whose name starts with P")
    backend.add_common_arguments(pruner)
    pruner.add_argument("--keep", type=int, required=True, metavar="N")
    pruner.add_argument("--name-prefix", required=True, metavar="P")
    pruner.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(ns.options)
    command = f"images {backend.name} {args.action}"
    try:
        if args.action == "prune" and args.keep < 0:
            raise UsageError("--keep must be >= 0")
        images = backend.images_list(args)
    except UsageError as exc:
        return fail(command, str(exc))
    except Exception as exc:
        usage = backend.user_error(exc)
        if usage is not None:
            return fail(command, str(usage))
        return fail(command, f"listing images failed: {exc}", EXIT_FAILED)
    if args.action == "list":
        if args.json:
            print(json.dumps(images))
        else:
            for img in images:
                print(f"{img['region']}\t{img['image_id']}\t{img['created']}\t{img['name']}")
        return EXIT_OK
    matching = [i for i in images if str(i["name"]).startswith(args.name_prefix)]
    doomed = matching[args.keep :]
    verb = "would delete" if args.dry_run else "deleting"
    print(f"factory {command}: {len(matching)} match, keeping {len(matching) - len(doomed)}", file=sys.stderr)
    failed = []
    for img in doomed:
        print(f"{verb} {img['region']} {img['image_id']} {img['name']} ({img['created']})")
        if args.dry_run:
            continue
        try:
            backend.images_delete(args, img)
        except Exception as exc:
            print(f"FAILED {img['image_id']}: {exc}", file=sys.stderr)
            failed.append(str(img["image_id"]))
    if failed:
        return fail(command, f"could not delete: {', '.join(failed)}", EXIT_FAILED)
    return EXIT_OK
