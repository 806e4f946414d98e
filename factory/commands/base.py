"""``factory base build``: build (or reuse from the cache) the local Debian base disk."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``factory base build``."""
    base = subparsers.add_parser("base", help="the local base disk for `factory bake qemu`")
    base_sub = base.add_subparsers(dest="base_command", metavar="ACTION")
    build = base_sub.add_parser(
        "build",
        help="build a Debian bookworm cloud-style qcow2 (cached by input hash)",
        description="Build a Debian bookworm cloud-style qcow2 from Debian packages (kernel, GRUB, "
        "cloud-init with NoCloud, DHCP). Reuses the cached disk when the inputs did not change.",
    )
    build.add_argument("--output", type=Path, default=Path("dist/base.qcow2"), help="default: %(default)s")
    build.add_argument(
        "--cache-dir", type=Path, default=None, help="default: $FACTORY_CACHE_DIR or .cache/k3os-factory"
    )
    build.add_argument("--force", action="store_true", help="rebuild even when the cache has the disk")
    build.add_argument(
        "--size", type=int, default=4096, metavar="MIB", help="virtual size (default %(default)s)"
    )
    build.set_defaults(func=run_build)
    base.set_defaults(func=lambda _args: _usage(base))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def run_build(args: argparse.Namespace) -> int:
    """Run ``factory base build``; 0 built or reused, 1 failed, 2 usage error."""
    from image_base.base_disk import BaseDiskError, build_base_disk, cache_dir_from_env

    if args.size < 1024:
        print("factory base build: --size must be at least 1024 MiB", file=sys.stderr)
        return 2
    cache_dir = args.cache_dir or cache_dir_from_env()
    try:
        result = build_base_disk(
            cache_dir=cache_dir, output=args.output, force=args.force, size_mib=args.size
        )
    except BaseDiskError as exc:
        print(f"factory base build: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("factory base build: interrupted", file=sys.stderr)
        return 130
    state = "reused" if result.reused else "built"
    size_mib = result.path.stat().st_size / 2**20
    print(
        f"factory base build: {state} {result.path} ({size_mib:.0f} MiB, key {result.key}) "
        f"in {result.seconds:.1f}s",
        file=sys.stderr,
    )
    print(result.path)
    return 0
