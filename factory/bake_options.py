"""The cloud-independent options of ``factory bake CLOUD`` (DESIGN.md, Contract: factory): the parser
flags, and their validation into a :class:`~factory.clouds.base.BakeRequest`.

Everything here runs before any cloud call; every problem is a one-line :class:`UsageError` (exit 2).
Environment knobs: ``FACTORY_POLL_SECONDS`` (when ``--poll-interval`` is not given) and
``FACTORY_HEARTBEAT_SECONDS`` (seconds between "still waiting" lines); a bad value is an error, never
silently ignored.
"""

from __future__ import annotations

import argparse
import math
import os
import re
import time
from pathlib import Path
from typing import Any

import yaml

from factory.clouds.base import BakeRequest, CloudBackend
from factory.pipeline import Redactor, UsageError, new_bake_id

POLL_ENV = "FACTORY_POLL_SECONDS"
HEARTBEAT_ENV = "FACTORY_HEARTBEAT_SECONDS"
DEFAULT_POLL_S = 15.0
DEFAULT_HEARTBEAT_S = 60.0
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
_TAG_KEY = re.compile(r"^[^=\s][^=]*$")
#: config keys whose values are secrets even when the config is invalid (for redacting its errors)
_SECRET_ENV_NAME = re.compile(r"TOKEN|SECRET|PASSW|PASSPHRASE|PRIVATE|CREDENTIAL|API_?KEY", re.IGNORECASE)


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
        help=f"seconds between status polls (env {POLL_ENV}, default {DEFAULT_POLL_S:g})",
    )
    parser.add_argument("--manifest", metavar="FILE", default="factory-manifest.json")
    parser.add_argument("--json", action="store_true", help="print one JSON summary object on stdout")
    parser.add_argument("--dry-run", action="store_true", help="print the plan, create nothing")


def parse_tags(pairs: list[str]) -> dict[str, str]:
    """``["k=v", ...]`` -> dict; UsageError for a malformed pair or the reserved prefix."""
    tags: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not _TAG_KEY.match(key):
            raise UsageError(f"--tag {pair!r}: expected KEY=VALUE")
        if key.startswith("k3os-factory:"):
            raise UsageError(f"--tag {key}: the k3os-factory: prefix is reserved")
        tags[key] = value
    return tags


def _positive_seconds(value: float, what: str) -> float:
    if not math.isfinite(value) or value <= 0:
        raise UsageError(f"{what} must be a number > 0")
    return value


def poll_interval(args: argparse.Namespace) -> float:
    """``--poll-interval``, else ``$FACTORY_POLL_SECONDS``, else 15 s."""
    if args.poll_interval is not None:
        return _positive_seconds(float(args.poll_interval), "--poll-interval")
    return env_seconds(POLL_ENV, DEFAULT_POLL_S)


def env_seconds(name: str, default: float) -> float:
    """A positive number of seconds from the environment variable ``name`` (``default`` if unset)."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise UsageError(f"{name}={raw!r}: not a number of seconds") from None
    return _positive_seconds(value, f"{name}={raw!r}:")


def phase_overrides(pairs: list[str], known: list[str]) -> dict[str, float]:
    """``["wait-stopped=40"]`` -> ``{"wait-stopped": 2400.0}``; a phase the backend does not have
    is an error (an override that silently does nothing is worse than none)."""
    out: dict[str, float] = {}
    for pair in pairs:
        phase, sep, minutes = pair.partition("=")
        try:
            value = float(minutes) if sep else math.nan
        except ValueError:
            value = math.nan
        if not phase or not math.isfinite(value) or value <= 0:
            raise UsageError(f"--phase-timeout {pair!r}: expected PHASE=MINUTES with MINUTES > 0")
        if known and phase not in known:
            raise UsageError(f"--phase-timeout {phase}: unknown phase (this cloud has: {', '.join(known)})")
        out[phase] = value * 60
    return out


def check_manifest_path(path: Path) -> None:
    """UsageError unless a manifest can be written at ``path`` (its directory may be created later)."""
    if path.is_dir():
        raise UsageError(f"--manifest {path}: is a directory")
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise UsageError(f"--manifest {path}: {parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UsageError(f"--manifest {path}: {parent} is not writable")


def raw_secrets(path: str) -> list[str]:
    """Secret-looking values of a config file read as plain YAML, even if the config is invalid, so
    its error messages can be redacted (the model's own list exists only once it validated)."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return []
    k3os = data.get("k3os") if isinstance(data, dict) else None
    if not isinstance(k3os, dict):
        return []
    found: list[Any] = [k3os.get("password"), k3os.get("token")]
    wifi = k3os.get("wifi")
    if isinstance(wifi, list):
        found += [w.get("passphrase") for w in wifi if isinstance(w, dict)]
    env = k3os.get("environment")
    if isinstance(env, dict):
        found += [v for k, v in env.items() if _SECRET_ENV_NAME.search(str(k))]
    return [str(v) for v in found if isinstance(v, str | int | float) and str(v)]


def load_bake_config(path: str | None, default_sources: tuple[str, ...]) -> tuple[str, list[str]]:
    """Validate the k3OS config and default its data sources; return (yaml text, secret values).

    A config error is a UsageError whose message names the bad key and carries no secret."""
    if path is None:
        return yaml.safe_dump({"k3os": {"data_sources": list(default_sources)}}, sort_keys=False), []
    from image_base.config import ConfigError, dump_yaml, load_config_file, secret_values

    if not Path(path).is_file():
        raise UsageError(f"--config {path}: no such file")
    try:
        cfg = load_config_file(path)
    except ConfigError as exc:
        redact = Redactor(raw_secrets(path))
        raise UsageError(redact(f"--config {path}: {exc}")) from None
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
    if not math.isfinite(args.timeout) or args.timeout <= 0:
        raise UsageError("--timeout must be a number of minutes > 0")
    phase_overrides(args.phase_timeout, list(backend.phase_timeouts))
    env_seconds(HEARTBEAT_ENV, DEFAULT_HEARTBEAT_S)
    check_manifest_path(Path(args.manifest))
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
        tags=parse_tags(args.tag),
        timeout_s=args.timeout * 60,
        poll_interval_s=poll_interval(args),
        bake_id=new_bake_id(),
    )
