"""``factory verify qemu IMAGE``: boot a baked image against an emulated cloud and check its userdata."""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def register(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Add ``factory verify qemu IMAGE``."""
    from factory.qemu.verify import DEFAULT_TIMEOUT_S, PROVIDERS

    verify = subparsers.add_parser(
        "verify",
        help="boot a baked image against an emulated cloud and check it took its userdata",
    )
    verify_sub = verify.add_subparsers(dest="verify_target", metavar="TARGET")
    qemu = verify_sub.add_parser(
        "qemu",
        help="verify IMAGE under QEMU",
        description="Boot IMAGE (BIOS, first virtio disk, throwaway overlay) with the provider's metadata "
        "emulator reachable at its real address (or a cidata CD-ROM for cdrom) and DMI set like that "
        "cloud; wait for the ready line and check provider, userdata, hostname and a write_files entry. "
        "Exit 0 only if all passed; on failure the serial log is kept and its path printed.",
    )
    qemu.add_argument("image", type=Path, metavar="IMAGE")
    qemu.add_argument("--provider", choices=sorted(PROVIDERS), default="aws", help="default: aws")
    qemu.add_argument(
        "--userdata", type=Path, metavar="FILE", help="k3OS config to serve (must set hostname)"
    )
    qemu.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT_S, metavar="S", help="default: %(default)s"
    )
    qemu.add_argument("--keep-log", type=Path, metavar="PATH", help="write the serial log here and keep it")
    qemu.add_argument("--accel", choices=("auto", "kvm", "tcg"), default="auto")
    qemu.add_argument("--console", action="store_true", help="stream every serial console line to stderr")
    qemu.add_argument(
        "--stop-emulator", action="store_true", help=argparse.SUPPRESS
    )  # failure-path test: the userdata cannot arrive
    qemu.set_defaults(func=run)
    verify.set_defaults(func=lambda _args: _usage(verify))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return EXIT_USAGE


def _fail(message: str, code: int) -> int:
    print(f"factory verify qemu: {message}", file=sys.stderr)
    return code


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def run(args: argparse.Namespace) -> int:
    """Run ``factory verify qemu``; 0 verified, 1 not verified (log kept), 2 usage error, 130 interrupted."""
    from factory.journal import state_dir
    from factory.qemu.accel import detect_accel
    from factory.qemu.serial import stderr_emitter
    from factory.qemu.verify import verify_image
    from image_base.base_disk import cache_dir_from_env, probe_kernel

    if not args.image.is_file():
        return _fail(f"{args.image}: no such file", EXIT_USAGE)
    userdata = None
    if args.userdata is not None:
        try:
            userdata = args.userdata.read_bytes()
        except OSError as exc:
            return _fail(f"--userdata {args.userdata}: {exc.strerror}", EXIT_USAGE)
        from factory.qemu.verify import expectation_from_userdata

        try:
            expectation_from_userdata(userdata)
        except ValueError as exc:
            return _fail(f"--userdata {args.userdata}: {exc}", EXIT_USAGE)
    if args.timeout <= 0:
        return _fail("--timeout must be > 0", EXIT_USAGE)
    kernel = probe_kernel(cache_dir_from_env())
    choice = detect_accel(args.accel, cache_dir=state_dir(), probe_kernel=kernel)
    print(
        f"factory verify qemu: {args.image} as {args.provider}, accel {choice.accel} ({choice.reason})",
        file=sys.stderr,
    )
    previous = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        report = verify_image(
            args.image,
            provider=args.provider,
            userdata=userdata,
            accel=choice.accel,
            timeout_s=args.timeout,
            keep_log=args.keep_log,
            emit=stderr_emitter(),
            stop_emulator_first=args.stop_emulator,
            verbose=args.console,
        )
    except KeyboardInterrupt:
        return _fail("interrupted (VM stopped)", 130)
    finally:
        signal.signal(signal.SIGTERM, previous)
    checks = " ".join(f"{name}={'ok' if ok else 'FAIL'}" for name, ok in report.checks.items())
    if report.ok:
        print(
            f"factory verify qemu: OK in {report.seconds:.0f}s: {checks}; {report.ready_line}",
            file=sys.stderr,
        )
        return EXIT_OK
    summary = f"FAILED after {report.seconds:.0f}s: {report.message}; {checks}"
    return _fail(f"{summary}; serial log kept: {report.serial_log}", EXIT_FAILED)
