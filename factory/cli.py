"""The ``factory`` console script: a thin dispatcher over the modules in :data:`COMMAND_MODULES`.

Each command module exposes ``register(subparsers) -> None``, which adds its sub-command and sets
``func`` (``Callable[[argparse.Namespace], int]``) as the parser default. Command modules import
cloud SDKs only inside the functions that need them, so ``factory --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import cast

from factory.pipeline import EXIT_USAGE

COMMAND_MODULES: tuple[str, ...] = (
    "factory.commands.bake",
    "factory.commands.gc",
    "factory.commands.images",
    "factory.commands.whoami",
    "factory.commands.iso",
    "factory.commands.base",
    "factory.commands.verify",
    "factory.commands.packer",
)


def build_parser() -> argparse.ArgumentParser:
    """The full ``factory`` argument parser, with every command module that can be imported."""
    parser = argparse.ArgumentParser(
        prog="factory",
        description=(
            "Bake a k3OS-style ISO into cloud images (aws, gcp, openstack, hetzner, qemu), clean up "
            "leftovers, and verify that baked images boot and take their userdata."
        ),
        epilog="Exit codes: 0 ok, 1 failed (after cleanup), 2 usage or config error, "
        "130/143 interrupted (after cleanup).",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``factory`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    return cast(Callable[[argparse.Namespace], int], func)(args)


if __name__ == "__main__":
    raise SystemExit(main())
