"""The ``k3os`` console script: ``k3os config --dump | --validate FILE | --apply --phase P``.

Exit codes: 0 ok; 1 apply finished with failures; 2 usage or config error (one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
import time
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from image_base.config.apply import apply, default_runner
from image_base.config.dump import dump_yaml
from image_base.config.errors import ApplyError, ConfigError
from image_base.config.load import load_config_file, load_merged
from image_base.config.phases import PHASES
from image_base.config.runner import RecordingRunner
from image_base.config.steps import KeyFetcher

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
#: Where ``github:USER`` keys come from; ``K3OS_GITHUB_KEYS_URL`` overrides it (mirrors, tests).
GITHUB_KEYS_URL = "https://github.com/{user}.keys"
GITHUB_TIMEOUT_SECONDS = 10.0

EPILOG = """\
examples:
  k3os config --validate config.yaml
  k3os config --dump --root /mnt/node --cmdline 'k3os.token=T hostname=node-1'
  k3os config --apply --phase boot --root /tmp/fakeroot --json

Sources are merged in k3OS order: /k3os/system/config.yaml, the kernel cmdline,
/var/lib/rancher/k3os/config.yaml, /run/config (local_hostname, ssh/authorized_keys,
userdata), /var/lib/rancher/k3os/config.d/* (all under --root). With --root other than /,
nothing on the host is touched and commands are only recorded unless --run-commands.
exit codes: 0 ok, 1 apply had failures, 2 usage or config error."""


class _OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line on stderr and exit code 2."""

    def error(self, message: str) -> NoReturn:
        sys.stderr.write(f"{self.prog}: error: {message} (see --help)\n")
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    """The ``k3os`` argument parser."""
    parser = _OneLineParser(prog="k3os", description="k3OS node configuration tools.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_OneLineParser)
    config = sub.add_parser(
        "config",
        help="merge, validate, dump and apply the k3OS config",
        description="Merge, validate, dump and apply the k3OS configuration.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    action = config.add_mutually_exclusive_group(required=True)
    action.add_argument("--dump", action="store_true", help="print the merged config as YAML, secrets masked")
    action.add_argument("--validate", metavar="FILE", help="check one config file; exit 0 if valid, 2 if not")
    action.add_argument("--apply", action="store_true", help="apply the keys of --phase to --root")
    config.add_argument("--phase", choices=list(PHASES), help="initrd, boot or runtime (required by --apply)")
    config.add_argument("--root", type=Path, default=Path("/"), help="root directory of the node (default /)")
    config.add_argument(
        "--cmdline", metavar="TEXT", help="kernel cmdline to use instead of ROOT/proc/cmdline"
    )
    config.add_argument(
        "--run-commands", action="store_true", help="with --root other than /, really run *_cmd commands"
    )
    config.add_argument("--json", action="store_true", help="--apply: print one JSON object on stdout")
    return parser


def github_key_fetcher() -> KeyFetcher:
    """Fetch ``https://github.com/USER.keys`` with a deadline (only used on the live node at runtime)."""

    def fetch(user: str) -> list[str]:
        from datasources.http import request

        deadline = time.monotonic() + GITHUB_TIMEOUT_SECONDS
        template = os.environ.get("K3OS_GITHUB_KEYS_URL", GITHUB_KEYS_URL)
        url = template.format(user=urllib.parse.quote(user, safe=""))
        response = request("GET", url, deadline=deadline, max_bytes=1024 * 1024)
        if response.status != 200:
            raise OSError(f"HTTP {response.status}")
        return response.body.decode("utf-8", "replace").splitlines()

    return fetch


def _apply(args: argparse.Namespace) -> int:
    cfg = load_merged(args.root, args.cmdline)
    runner = default_runner(args.root, args.run_commands)
    live = str(args.root.resolve()) == "/"
    fetcher = github_key_fetcher() if live and args.phase == "runtime" else None
    failures: list[str] = []
    try:
        actions = apply(cfg, args.phase, args.root, runner, fetcher)
    except ApplyError as exc:
        actions, failures = exc.actions, exc.failures
    recorded = runner.commands if isinstance(runner, RecordingRunner) else None
    if args.json:
        report = {"phase": args.phase, "root": str(args.root), "actions": actions, "failures": failures}
        report["recorded_commands"] = recorded
        print(json.dumps(report, indent=2))
    else:
        for line in actions:
            print(line)
        for argv in recorded or []:
            print(f"recorded (not run): {shlex.join(argv)}")
    for line in failures:
        sys.stderr.write(f"k3os: failed: {line}\n")
    return EXIT_FAILED if failures else EXIT_OK


def config_command(args: argparse.Namespace) -> int:
    """Run ``k3os config`` with parsed arguments; ConfigError becomes exit 2."""
    try:
        if args.validate:
            load_config_file(args.validate)
            sys.stderr.write(f"{args.validate}: ok\n")
            return EXIT_OK
        if args.dump:
            cfg = load_merged(args.root, args.cmdline)
            keys = PHASES[args.phase].keys if args.phase else None
            sys.stdout.write(dump_yaml(cfg, mask_secrets=True, keys=keys))
            return EXIT_OK
        return _apply(args)
    except ConfigError as exc:
        sys.stderr.write(f"k3os: {exc}\n")
        return EXIT_USAGE


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``k3os`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command != "config":
        parser.error("a command is required: config")
    if args.apply and not args.phase:
        parser.error("--apply needs --phase initrd|boot|runtime")
    if args.validate and (args.phase or args.run_commands or args.json):
        parser.error("--validate takes only FILE")
    logging.basicConfig(level=logging.WARNING, format="k3os: %(levelname)s: %(message)s", stream=sys.stderr)
    return config_command(args)


if __name__ == "__main__":
    raise SystemExit(main())
