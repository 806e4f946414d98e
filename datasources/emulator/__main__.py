"""``python -m datasources.emulator PROVIDER --port N --userdata FILE ...``: serve one emulator.

Loads ``datasources.emulator.<PROVIDER>`` and its ``EMULATOR`` class, prints
``listening on http://127.0.0.1:PORT`` on stdout, then serves until interrupted or terminated.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys
from collections.abc import Sequence
from types import FrameType

from datasources.emulator.base import Emulator, EmulatorConfig, add_common_arguments


def _fail(message: str) -> int:
    sys.stderr.write(f"datasources.emulator: error: {message}\n")
    return 2


def load_emulator_class(provider: str) -> type[Emulator]:
    """The ``EMULATOR`` class of ``datasources.emulator.<provider>``.

    :raises LookupError: no such emulator module, or it has no ``EMULATOR``.
    """
    if not provider.isidentifier() or provider in ("base",):
        raise LookupError(f"no emulator named {provider!r}")
    name = f"datasources.emulator.{provider}"
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name == name:
            raise LookupError(f"no emulator named {provider!r}") from None
        raise
    cls = getattr(module, "EMULATOR", None)
    if not (isinstance(cls, type) and issubclass(cls, Emulator)):
        raise LookupError(f"{name} has no EMULATOR class")
    return cls


def build_config(args: argparse.Namespace) -> EmulatorConfig:
    """An :class:`EmulatorConfig` from the parsed flags.

    :raises ValueError: a malformed ``--option``.
    :raises OSError: the userdata file cannot be read.
    """
    config = EmulatorConfig(hostname=args.hostname, ssh_keys=list(args.ssh_keys), fail=args.fail)
    config.slow_seconds = args.slow_seconds
    if args.userdata:
        with open(args.userdata, "rb") as f:
            config.userdata = f.read()
    if args.instance_id:
        config.instance_id = args.instance_id
    for option in args.option:
        key, sep, value = option.partition("=")
        if not sep or not key:
            raise ValueError(f"--option wants KEY=VALUE, not {option!r}")
        config.options[key.strip()] = value.strip()
    return config


def _terminate(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    """Run one emulator in the foreground; return the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m datasources.emulator", description="Serve a metadata-service emulator on loopback."
    )
    parser.add_argument("provider", metavar="PROVIDER", help="aws, gcp, openstack, ...")
    add_common_arguments(parser)
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    args = parser.parse_args(argv)
    try:
        cls = load_emulator_class(args.provider)
        config = build_config(args)
        emulator = cls(config, host=args.host, port=args.port)
    except (LookupError, ValueError, OSError) as exc:
        return _fail(str(exc))
    emulator.verbose = args.verbose
    signal.signal(signal.SIGTERM, _terminate)
    sys.stdout.write(f"listening on {emulator.url}\n")
    sys.stdout.flush()
    try:
        emulator.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        emulator.stopping.set()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
