"""``factory iso build``: build (or reuse from the cache) the k3OS-style ISO.

The ISO path goes to stdout (``--json``: one object); progress, size and time go to stderr.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")


def register(subparsers: Any) -> None:
    """Add ``iso build`` to the ``factory`` parser."""
    iso = subparsers.add_parser("iso", help="build the k3OS-style ISO", description=__doc__)
    iso_sub = iso.add_subparsers(dest="iso_command", metavar="ACTION")
    build = iso_sub.add_parser(
        "build",
        help="build or reuse the ISO",
        description="Build the k3OS-style ISO from Debian packages (cached by a hash of its inputs).",
    )
    build.add_argument("--output", type=Path, help="where to write the ISO (default: dist/k3os.iso)")
    build.add_argument("--config", type=Path, help="k3OS config baked in as /k3os/system/config.yaml")
    build.add_argument("--k3s", type=Path, metavar="PATH", help="k3s binary to include")
    build.add_argument("--k3s-url", metavar="URL", help="download the k3s binary from URL")
    build.add_argument("--k3s-sha256", metavar="HEX", help="expected sha256 of --k3s-url (required with it)")
    build.add_argument(
        "--cache-dir", type=Path, help="cache directory (default: $FACTORY_CACHE_DIR or .cache/k3os-factory)"
    )
    build.add_argument("--force", action="store_true", help="rebuild the rootfs and the ISO even if cached")
    build.add_argument("--json", action="store_true", help="print one JSON object instead of the path")
    build.set_defaults(func=run_build)
    iso.set_defaults(func=lambda _args: _usage(iso, "choose an action: build"))


def _usage(parser: argparse.ArgumentParser, message: str) -> int:
    print(f"factory iso: {message}", file=sys.stderr)
    return EXIT_USAGE


def _check_k3s_args(args: argparse.Namespace) -> str | None:
    if args.k3s is not None and args.k3s_url is not None:
        return "give either --k3s or --k3s-url, not both"
    if args.k3s_url is not None and not args.k3s_sha256:
        return "--k3s-url needs --k3s-sha256"
    if args.k3s_sha256 is not None and args.k3s_url is None:
        return "--k3s-sha256 only goes with --k3s-url"
    if args.k3s_sha256 is not None and not _SHA256.match(args.k3s_sha256):
        return "--k3s-sha256 must be 64 hex digits"
    return None


def run_build(args: argparse.Namespace) -> int:
    """Run ``factory iso build`` with parsed ``args``; return the exit code."""
    from image_base.os import build, inputs

    problem = _check_k3s_args(args)
    if problem:
        print(f"factory iso build: {problem}", file=sys.stderr)
        return EXIT_USAGE
    options = build.BuildOptions(
        output=args.output or inputs.default_output(),
        cache_dir=args.cache_dir or inputs.default_cache_dir(),
        config=args.config,
        k3s=args.k3s,
        k3s_url=args.k3s_url,
        k3s_sha256=args.k3s_sha256,
        force=args.force,
    )

    def log(message: str) -> None:
        print(f"factory iso: {message}", file=sys.stderr, flush=True)

    try:
        result = build.build_iso(options, log)
    except build.InputError as exc:
        print(f"factory iso build: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except build.BuildError as exc:
        print(f"factory iso build: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("factory iso build: interrupted", file=sys.stderr)
        return 130
    steps = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in result.timings.items())
    origin = "from cache" if result.cached else f"built ({steps})"
    log(f"{result.path}: {result.size / 1048576:.1f} MiB in {result.seconds:.1f}s, {origin}")
    if args.json:
        print(
            json.dumps(
                {
                    "path": str(result.path),
                    "size": result.size,
                    "seconds": round(result.seconds, 2),
                    "cached": result.cached,
                    "key": result.key,
                    "timings": {k: round(v, 2) for k, v in result.timings.items()},
                }
            )
        )
    else:
        print(result.path)
    return EXIT_OK
