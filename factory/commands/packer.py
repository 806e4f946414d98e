"""``factory packer render|build CLOUD``: run the same bake through the Packer templates in ``packer/``.

``render`` writes the builder userdata and ``CLOUD.auto.pkrvars.hcl`` and prints their paths;
``build`` renders, then runs ``packer build -var-file=FILE packer/CLOUD`` (an argv list, no shell).
Exit codes: 0 ok; 1 packer failed (Packer cleans up its own resources); 2 usage error, unknown cloud,
bad ``--var`` or no ``packer`` on PATH; 130/143 interrupted (after Packer's cleanup).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from types import FrameType
from typing import Any

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_SIGINT = 130
EXIT_SIGTERM = 143
PACKER_MISSING = "packer is not installed (apt-get install packer / https://developer.hashicorp.com/packer)"


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``factory packer render`` and ``factory packer build``."""
    from factory.packer import TEMPLATES

    packer = subparsers.add_parser("packer", help="the same bake through Packer templates (packer/CLOUD)")
    sub = packer.add_subparsers(dest="packer_command", metavar="ACTION")
    clouds = ", ".join(TEMPLATES)
    render = sub.add_parser(
        "render",
        help="write the builder userdata and CLOUD.auto.pkrvars.hcl",
        description="Render the builder userdata (the same as `factory bake` would boot) and a "
        "var file for packer/CLOUD; print their paths.",
    )
    build = sub.add_parser(
        "build",
        help="render, then run packer build",
        description="Render as `factory packer render` does, then run "
        "`packer build -var-file=FILE packer/CLOUD`.",
    )
    for parser in (render, build):
        parser.add_argument("cloud", metavar="CLOUD", help=f"one of: {clouds}")
        _add_render_arguments(parser)
    build.add_argument("--force", action="store_true", help="packer build -force (replace old artifacts)")
    build.add_argument(
        "--on-error",
        choices=("cleanup", "abort", "run-cleanup-provisioner"),
        default="cleanup",
        help="packer build -on-error (default: cleanup)",
    )
    render.set_defaults(func=run_render)
    build.set_defaults(func=run_build)
    packer.set_defaults(func=lambda _args: _usage(packer))


def _add_render_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--var",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="template variable (lists: a,b or JSON; maps: k=v,k2=v2 or JSON); repeatable",
    )
    parser.add_argument("--config", metavar="FILE", help="k3OS config baked into /k3os/system/config.yaml")
    parser.add_argument("--iso-url", metavar="URL", help="k3OS ISO the builder downloads")
    parser.add_argument(
        "--iso", metavar="PATH", help="qemu: local ISO served to the guest (default dist/k3os.iso)"
    )
    parser.add_argument("--iso-sha256", metavar="HEX", help="sha256 of the ISO (required with --iso-url)")
    parser.add_argument("--insecure-skip-checksum", action="store_true", help="do not check the ISO")
    parser.add_argument("--output-dir", metavar="DIR", type=Path, help="default: dist/packer/CLOUD")
    parser.add_argument("--cache-dir", metavar="DIR", type=Path, help="qemu: where the cached base disk is")


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_USAGE


def _fail(action: str, message: str, code: int = EXIT_USAGE) -> int:
    print(f"factory packer {action}: {' '.join(message.split())}", file=sys.stderr)
    return code


def _render(args: argparse.Namespace) -> Any:
    from factory.packer import RenderOptions, parse_var_pairs, render

    return render(
        RenderOptions(
            cloud=args.cloud,
            variables=parse_var_pairs(args.var),
            config=args.config,
            iso_url=args.iso_url,
            iso_path=args.iso,
            iso_sha256=args.iso_sha256,
            insecure_skip_checksum=args.insecure_skip_checksum,
            output_dir=args.output_dir,
            cache_dir=args.cache_dir,
        )
    )


def run_render(args: argparse.Namespace) -> int:
    """``factory packer render CLOUD``: print the userdata file and the var file, one per line."""
    from factory.pipeline import UsageError

    try:
        result = _render(args)
    except UsageError as exc:
        return _fail("render", str(exc))
    print(f"userdata: {result.userdata_file}")
    for extra in result.extra_files:
        print(f"{extra.name}: {extra}")
    print(f"var-file: {result.var_file}")
    print(f"template: {result.template_dir}")
    return EXIT_OK


def packer_build_argv(
    packer: str, var_file: Path, template: Path, *, force: bool, on_error: str
) -> list[str]:
    """The ``packer build`` command line (an argv list: no shell ever sees the paths)."""
    argv = [packer, "build", f"-var-file={var_file}", f"-on-error={on_error}"]
    if force:
        argv.append("-force")
    return [*argv, str(template)]


def run_build(args: argparse.Namespace) -> int:
    """``factory packer build CLOUD``: render, then run Packer and return its outcome."""
    from factory.pipeline import UsageError

    packer = shutil.which("packer")
    if packer is None:
        return _fail("build", PACKER_MISSING)
    try:
        result = _render(args)
    except UsageError as exc:
        return _fail("build", str(exc))
    argv = packer_build_argv(
        packer, result.var_file.resolve(), result.template_dir, force=args.force, on_error=args.on_error
    )
    print(f"factory packer build: {' '.join(argv)}", file=sys.stderr, flush=True)
    return _run_packer(argv, packer_env(dict(os.environ)))


def packer_env(env: dict[str, str]) -> dict[str, str]:
    """Packer's environment: its download cache (lock files even for local inputs) goes under the
    factory's cache instead of ``./packer_cache`` in the working directory, unless the user set one."""
    from image_base.base_disk import DEFAULT_CACHE_DIR

    cache = Path(env.get("FACTORY_CACHE_DIR") or DEFAULT_CACHE_DIR)
    env.setdefault("PACKER_CACHE_DIR", str((cache / "packer").resolve()))
    return env


def _run_packer(argv: list[str], env: dict[str, str]) -> int:
    """Run Packer; on SIGINT/SIGTERM pass the signal on once, let Packer clean up, report the signal.

    Packer runs in its own process group, so a terminal's Ctrl-C reaches it only through us (once:
    a second interrupt would make Packer skip its cleanup).
    """
    proc = subprocess.Popen(argv, env=env, process_group=0)
    received: list[int] = []

    def forward(signum: int, frame: FrameType | None) -> None:
        received.append(signum)
        if len(received) == 1 and proc.poll() is None:
            proc.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        code = proc.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if received:
        return EXIT_SIGTERM if received[-1] == signal.SIGTERM else EXIT_SIGINT
    if code != 0:
        return _fail("build", f"packer build exited with {code}", EXIT_FAILED)
    return EXIT_OK
