"""``factory bake CLOUD [options]``: validate everything, then run the cloud's steps in a :class:`Pipeline`.

Order: parse (common + cloud flags) -> load and validate the k3OS config (exit 2 naming the bad key)
-> backend.validate (exit 2) -> ``--dry-run`` prints the plan and stops -> preflight (whoami) -> pipeline
-> manifest (+ ``--json`` summary on stdout). Nothing is created before the preflight succeeded.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from factory.clouds.base import RESULT_KEY, BakeRequest, BakeResult, CloudBackend
from factory.cmdutil import backend_or_error, cloud_parser, fail, register_cloud_command
from factory.manifest import append_build, build_record, json_summary, load_manifest
from factory.pipeline import (
    BAKE_ID_TAG,
    EXIT_FAILED,
    EXIT_OK,
    BakeFailed,
    Pipeline,
    Redactor,
    Timeouts,
    UsageError,
    format_duration,
    new_bake_id,
)

POLL_ENV = "FACTORY_POLL_SECONDS"
HEARTBEAT_ENV = "FACTORY_HEARTBEAT_SECONDS"
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
_TAG_KEY = re.compile(r"^[^=\s][^=]*$")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``factory bake``."""
    register_cloud_command(subparsers, "bake", "bake the ISO into an image in CLOUD", run)


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every ``factory bake CLOUD`` accepts (DESIGN.md, Contract: factory)."""
    src = parser.add_mutually_exclusive_group()
    src.add_argument("--iso-url", metavar="URL", help="k3OS ISO the builder downloads")
    src.add_argument("--iso", metavar="PATH", help="local k3OS ISO (clouds that can use a local file)")
    parser.add_argument("--iso-sha256", metavar="HEX", help="sha256 of the ISO (required with --iso-url)")
    parser.add_argument("--insecure-skip-checksum", action="store_true", help="do not check the ISO")
    parser.add_argument("--config", metavar="FILE", help="k3OS config baked into /k3os/system/config.yaml")
    parser.add_argument("--name", metavar="NAME", help="image name (default k3os-CLOUD-<UTC time>)")
    parser.add_argument("--tag", metavar="KEY=VALUE", action="append", default=[], help="repeatable")
    parser.add_argument("--timeout", metavar="MINUTES", type=float, default=60.0, help="overall (default 60)")
    parser.add_argument(
        "--phase-timeout",
        metavar="PHASE=MINUTES",
        action="append",
        default=[],
        help="deadline of one wait phase (e.g. wait-stopped=40); repeatable",
    )
    parser.add_argument(
        "--poll-interval",
        metavar="SECONDS",
        type=float,
        default=None,
        help=f"seconds between status polls (env {POLL_ENV}, default 15)",
    )
    parser.add_argument("--manifest", metavar="FILE", default="factory-manifest.json")
    parser.add_argument("--json", action="store_true", help="print one JSON summary object on stdout")
    parser.add_argument("--dry-run", action="store_true", help="print the plan, create nothing")


def _tags(pairs: list[str]) -> dict[str, str]:
    tags: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not _TAG_KEY.match(key):
            raise UsageError(f"--tag {pair!r}: expected KEY=VALUE")
        if key.startswith("k3os-factory:"):
            raise UsageError(f"--tag {key}: the k3os-factory: prefix is reserved")
        tags[key] = value
    return tags


def _poll_interval(args: argparse.Namespace) -> float:
    value: Any = args.poll_interval
    if value is None:
        env = os.environ.get(POLL_ENV)
        try:
            value = float(env) if env else 15.0
        except ValueError:
            raise UsageError(f"{POLL_ENV}={env!r}: not a number of seconds") from None
    if value <= 0:
        raise UsageError("--poll-interval must be > 0")
    return float(value)


def _phase_overrides(pairs: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for pair in pairs:
        phase, _, minutes = pair.partition("=")
        try:
            out[phase] = float(minutes) * 60
        except ValueError:
            raise UsageError(f"--phase-timeout {pair!r}: expected PHASE=MINUTES") from None
    return out


def load_bake_config(path: str | None, default_sources: tuple[str, ...]) -> tuple[str, list[str]]:
    """Validate the k3OS config and default its data sources; return (yaml text, secret values)."""
    if path is None:
        return yaml.safe_dump({"k3os": {"data_sources": list(default_sources)}}, sort_keys=False), []
    from image_base.config import ConfigError, dump_yaml, load_config_file, secret_values

    if not Path(path).is_file():
        raise UsageError(f"--config {path}: no such file")
    try:
        cfg = load_config_file(path)
    except ConfigError as exc:
        raise UsageError(f"--config {path}: {exc}") from None
    secrets = [s for s in secret_values(cfg) if s]
    data = yaml.safe_load(dump_yaml(cfg, mask_secrets=False)) or {}
    k3os = data.setdefault("k3os", {}) if isinstance(data, dict) else None
    if isinstance(k3os, dict) and not k3os.get("data_sources"):
        k3os["data_sources"] = list(default_sources)
    return yaml.safe_dump(data, sort_keys=False), secrets


def build_request(args: argparse.Namespace, backend: CloudBackend) -> BakeRequest:
    """Check the common options and the config; UsageError (exit 2) for any problem."""
    if args.iso_sha256 and not _SHA256.match(args.iso_sha256):
        raise UsageError("--iso-sha256: expected 64 hex digits")
    if args.iso_url and not args.iso_sha256 and not args.insecure_skip_checksum:
        raise UsageError("--iso-url needs --iso-sha256 (or --insecure-skip-checksum)")
    if args.iso and not Path(args.iso).is_file():
        raise UsageError(f"--iso {args.iso}: no such file")
    if args.timeout <= 0:
        raise UsageError("--timeout must be > 0 minutes")
    config_yaml, secrets = load_bake_config(args.config, backend.default_data_sources)
    name = args.name or f"k3os-{backend.name}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
    return BakeRequest(
        name=name,
        iso_url=args.iso_url,
        iso_path=args.iso,
        iso_sha256=args.iso_sha256.lower() if args.iso_sha256 else None,
        insecure_skip_checksum=args.insecure_skip_checksum,
        config_yaml=config_yaml,
        secrets=secrets,
        tags=_tags(args.tag),
        timeout_s=args.timeout * 60,
        poll_interval_s=_poll_interval(args),
        bake_id=new_bake_id(),
    )


def _print_plan(
    backend: CloudBackend, args: argparse.Namespace, request: BakeRequest, steps: list[Any]
) -> None:
    out = sys.stdout
    print(f"factory bake {backend.name} --dry-run: nothing will be created", file=out)
    print(f"bake id: {request.bake_id}", file=out)
    print(f"image name: {request.name}", file=out)
    tags = {BAKE_ID_TAG: request.bake_id, **request.tags}
    print("tags: " + ", ".join(f"{k}={v}" for k, v in tags.items()), file=out)
    print(
        f"overall timeout: {format_duration(request.timeout_s)}; poll every {request.poll_interval_s:g}s",
        file=out,
    )
    print("steps:", file=out)
    for i, step in enumerate(steps, 1):
        print(f"  {i}. {step.name}: {step.plan}", file=out)
    resources = backend.plan_resources(args, request)
    if resources:
        print("resources:", file=out)
        for res in resources:
            print(f"  - {res}", file=out)


def run(ns: argparse.Namespace) -> int:
    """Entry of ``factory bake CLOUD``."""
    backend = backend_or_error("bake", ns.cloud)
    if isinstance(backend, int):
        return backend
    parser = cloud_parser("bake", backend, f"Bake the k3OS ISO into a {backend.name} image.")
    add_common_arguments(parser)
    backend.add_arguments(parser)
    args = parser.parse_args(ns.options)
    command = f"bake {backend.name}"
    redactor = Redactor()
    try:
        request = build_request(args, backend)
        redactor = Redactor(request.secrets)
        backend.validate(args, request)
        load_manifest(Path(args.manifest))
        steps = backend.bake_steps(args, request)
        if args.dry_run:
            _print_plan(backend, args, request, steps)
            return EXIT_OK
        identity = backend.preflight(args)
    except UsageError as exc:
        return fail(command, redactor(str(exc)))
    except Exception as exc:
        return fail(command, redactor(f"preflight failed: {exc}"), EXIT_FAILED)
    heartbeat = float(os.environ.get(HEARTBEAT_ENV) or 60)
    timeouts = Timeouts(request.timeout_s, dict(backend.phase_timeouts), _phase_overrides(args.phase_timeout))
    ctx = backend.new_context(
        request,
        bake_id=request.bake_id,
        redactor=redactor,
        timeouts=timeouts,
        poll_interval=request.poll_interval_s,
        heartbeat_s=heartbeat,
    )
    ctx.log("preflight", identity)
    started = time.monotonic()
    try:
        Pipeline(ctx, steps).run()
    except BakeFailed as exc:
        return fail(command, f"bake {ctx.bake_id} failed: {exc}", exc.exit_code)
    result: BakeResult = ctx.state[RESULT_KEY]
    duration = time.monotonic() - started
    record = build_record(
        name=request.name,
        builder_type=backend.builder_type,
        bake_id=ctx.bake_id,
        result=result,
        redactor=redactor,
    )
    append_build(Path(args.manifest), record)
    ctx.log("done", f"{result.artifact_id} in {format_duration(duration)}; manifest {args.manifest}")
    if args.json:
        print(
            redactor(
                json_summary(
                    cloud=backend.name,
                    name=request.name,
                    bake_id=ctx.bake_id,
                    result=result,
                    duration_s=duration,
                )
            )
        )
    else:
        for art in result.artifacts:
            print(f"{art.region}\t{art.image_id}" if art.region else art.image_id)
    return EXIT_OK
