"""``factory bake CLOUD [options]``: validate everything, then run the cloud's steps in a :class:`Pipeline`.

Order: parse (common + cloud flags) -> options and the k3OS config (exit 2 naming the bad key, see
:mod:`factory.bake_options`) -> backend.validate (exit 2) -> ``--dry-run`` prints the plan and stops ->
preflight (whoami and the cloud's own checks; exit 2 for the user's mistakes, 1 if the cloud cannot be
reached) -> pipeline -> manifest (+ ``--json`` summary on stdout). Nothing is created before the
preflight succeeded. stdout carries only data: the artifacts, the ``--json`` object or the dry-run plan.
"""

from __future__ import annotations

import argparse
import json
import signal
import time
from pathlib import Path
from types import FrameType
from typing import Any

from factory.bake_options import (
    DEFAULT_HEARTBEAT_S,
    HEARTBEAT_ENV,
    POLL_ENV,
    add_common_arguments,
    build_request,
    env_seconds,
    load_bake_config,
    phase_overrides,
)
from factory.clouds.base import RESULT_KEY, BakeRequest, BakeResult, CloudBackend
from factory.cmdutil import backend_or_error, cloud_parser, fail, quiet_exits, register_cloud_command
from factory.manifest import append_build, build_record, json_summary, load_manifest
from factory.pipeline import (
    BAKE_ID_TAG,
    EXIT_FAILED,
    EXIT_OK,
    BakeFailed,
    BakeInterrupted,
    Pipeline,
    Redactor,
    Step,
    Timeouts,
    UsageError,
    format_duration,
)

__all__ = ["POLL_ENV", "HEARTBEAT_ENV", "add_common_arguments", "load_bake_config", "register", "run"]


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``factory bake``."""
    register_cloud_command(subparsers, "bake", "bake the ISO into an image in CLOUD", run)


def plan_object(
    backend: CloudBackend, args: argparse.Namespace, request: BakeRequest, steps: list[Step]
) -> dict[str, Any]:
    """What ``--dry-run`` says will happen, as data (printed as text, or as JSON with ``--json``)."""
    return {
        "cloud": backend.name,
        "dry_run": True,
        "name": request.name,
        "bake_id": request.bake_id,
        "tags": {BAKE_ID_TAG: request.bake_id, **request.tags},
        "timeout_s": request.timeout_s,
        "poll_interval_s": request.poll_interval_s,
        "steps": [{"name": s.name, "plan": s.plan} for s in steps],
        "resources": backend.plan_resources(args, request),
    }


def _print_plan(plan: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(plan))
        return
    print(f"factory bake {plan['cloud']} --dry-run: nothing will be created")
    print(f"bake id: {plan['bake_id']}")
    print(f"image name: {plan['name']}")
    print("tags: " + ", ".join(f"{k}={v}" for k, v in plan["tags"].items()))
    print(f"overall timeout: {format_duration(plan['timeout_s'])}; poll every {plan['poll_interval_s']:g}s")
    print("steps:")
    for i, step in enumerate(plan["steps"], 1):
        print(f"  {i}. {step['name']}: {step['plan']}")
    if plan["resources"]:
        print("resources:")
        for res in plan["resources"]:
            print(f"  - {res}")


def _terminate_as_interrupt(signum: int, frame: FrameType | None) -> None:
    raise BakeInterrupted(signum)


@quiet_exits("bake")
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
    previous = signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    try:
        request = build_request(args, backend)
        redactor = Redactor(request.secrets)
        backend.validate(args, request)
        load_manifest(Path(args.manifest))
        steps = backend.bake_steps(args, request)
        if args.dry_run:
            _print_plan(plan_object(backend, args, request, steps), args.json)
            return EXIT_OK
        identity = backend.preflight(args)
    except UsageError as exc:
        return fail(command, redactor(str(exc)))
    except BakeInterrupted as exc:
        return fail(command, "interrupted before anything was created", exc.exit_code)
    except Exception as exc:
        usage = backend.user_error(exc)
        if usage is not None:
            return fail(command, redactor(str(usage)))
        return fail(command, redactor(f"preflight failed (nothing was created): {exc}"), EXIT_FAILED)
    finally:
        signal.signal(signal.SIGTERM, previous)
    return _bake(backend, args, request, steps, identity, redactor)


def _bake(
    backend: CloudBackend,
    args: argparse.Namespace,
    request: BakeRequest,
    steps: list[Step],
    identity: str,
    redactor: Redactor,
) -> int:
    """Run the pipeline, write the manifest, print the result; return the exit code."""
    command = f"bake {backend.name}"
    timeouts = Timeouts(
        request.timeout_s,
        dict(backend.phase_timeouts),
        phase_overrides(args.phase_timeout, list(backend.phase_timeouts)),
    )
    ctx = backend.new_context(
        request,
        bake_id=request.bake_id,
        redactor=redactor,
        timeouts=timeouts,
        poll_interval=request.poll_interval_s,
        heartbeat_s=env_seconds(HEARTBEAT_ENV, DEFAULT_HEARTBEAT_S),
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
    try:
        append_build(Path(args.manifest), record)
    except (OSError, UsageError) as exc:
        return fail(
            command,
            redactor(
                f"bake {ctx.bake_id} produced {result.artifact_id} but the manifest was not written: {exc}"
            ),
            EXIT_FAILED,
        )
    ctx.log("done", f"{result.artifact_id} in {format_duration(duration)}; manifest {args.manifest}")
    if args.json:
        summary = json_summary(
            cloud=backend.name, name=request.name, bake_id=ctx.bake_id, result=result, duration_s=duration
        )
        print(summary)
    else:
        for art in result.artifacts:
            print(f"{art.region}\t{art.image_id}" if art.region else art.image_id)
    return EXIT_OK
