"""Load config files and merge every source in k3OS's order.

Order (later wins for scalars): ``/k3os/system/config.yaml``, the kernel cmdline,
``/var/lib/rancher/k3os/config.yaml``, ``/run/config`` (``local_hostname``, ``ssh/authorized_keys``,
then ``userdata``), then ``/var/lib/rancher/k3os/config.d/*`` sorted by name.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import logging
from pathlib import Path
from typing import Any

import yaml

from image_base.config.cmdline import parse_cmdline
from image_base.config.errors import ConfigError
from image_base.config.model import K3osConfig, WriteFile
from image_base.config.parse import parse

log = logging.getLogger(__name__)

SYSTEM_CONFIG = "k3os/system/config.yaml"
LOCAL_CONFIG = "var/lib/rancher/k3os/config.yaml"
LOCAL_CONFIG_DIR = "var/lib/rancher/k3os/config.d"
RUN_CONFIG = "run/config"
USERDATA_SCRIPT = "/run/k3os/userdata"

#: Lists where a later source replaces the earlier value (they only make sense as a whole).
REPLACED_LISTS = frozenset({"k3s_args", "data_sources"})
#: Lists that append without duplicates; every other list (write_files, *_cmd) simply appends.
DEDUPED_LISTS = frozenset({"ssh_authorized_keys", "modules", "taints", "dns_nameservers", "ntp_servers"})

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def parse_config_text(text: str, source: str) -> K3osConfig:
    """Parse YAML text into a K3osConfig; raise ConfigError naming ``source`` on any problem."""
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ConfigError(f"{source}: invalid YAML{where}: {problem}") from None
    if data is not None and not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a map of config keys at the top level")
    return parse(data, source)


def load_config_file(path: str | Path) -> K3osConfig:
    """Read and validate one YAML config file; raise ConfigError (missing, unreadable, invalid)."""
    try:
        text = Path(path).read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    return parse_config_text(text, str(path))


def _merge_value(name: str, old: Any, new: Any) -> Any:
    if dataclasses.is_dataclass(old) and not isinstance(old, type):
        return merge(old, new)
    if isinstance(old, dict):
        return {**old, **new}
    if isinstance(old, list):
        if not new:
            return old
        if name in REPLACED_LISTS:
            return list(new)
        if name in DEDUPED_LISTS:
            return old + [item for i, item in enumerate(new) if item not in old and item not in new[:i]]
        if name == "wifi":
            names = {w.name for w in new}
            return [w for w in old if w.name not in names] + list(new)
        return old + list(new)
    return old if new is None else new


def merge(base: Any, over: Any) -> Any:
    """Return ``base`` updated by ``over`` (same dataclass type): see the module docstring and docs."""
    values = {
        f.name: _merge_value(f.name, getattr(base, f.name), getattr(over, f.name))
        for f in dataclasses.fields(base)
    }
    return type(base)(**values)


def _read_optional(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None


def _optional_file(path: Path) -> K3osConfig | None:
    if _read_optional(path) is None:
        return None
    return load_config_file(path)


def read_run_config(run_config: Path) -> K3osConfig:
    """Hostname and ssh keys that ``datasources fetch`` wrote to ``/run/config``."""
    cfg = K3osConfig()
    hostname = _read_optional(run_config / "local_hostname")
    if hostname is not None and hostname.strip():
        text = hostname.decode("utf-8", "replace").strip()
        try:
            cfg.hostname = parse({"hostname": text}, str(run_config / "local_hostname")).hostname
        except ConfigError as exc:
            log.warning("ignoring metadata hostname: %s", exc)
    keys = _read_optional(run_config / "ssh" / "authorized_keys")
    if keys is not None:
        lines = keys.decode("utf-8", "replace").splitlines()
        cfg.ssh_authorized_keys = [line.strip() for line in lines if line.strip()]
    return cfg


def read_userdata(path: Path) -> K3osConfig | None:
    """``/run/config/userdata``: a script (``#!`` or NUL) to run at runtime, else YAML config."""
    data = _read_optional(path)
    if data is None or not data.strip():
        return None
    if b"\0" in data or data.startswith(b"#!"):
        content, encoding = base64.b64encode(data).decode("ascii"), "b64"
        if b"\0" not in data:
            with contextlib.suppress(UnicodeDecodeError):
                content, encoding = data.decode("utf-8"), ""
        script = WriteFile(USERDATA_SCRIPT, content, encoding, "root", "0700")
        return K3osConfig(write_files=[script], run_cmd=[USERDATA_SCRIPT])
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: neither a script nor UTF-8 YAML") from None
    return parse_config_text(text, str(path))


def config_sources(root: Path = Path("/"), cmdline: str | None = None) -> list[tuple[str, K3osConfig]]:
    """Every config source present under ``root``, in merge order, as (name, config) pairs."""
    sources: list[tuple[str, K3osConfig | None]] = [
        (str(root / SYSTEM_CONFIG), _optional_file(root / SYSTEM_CONFIG))
    ]
    if cmdline is None:
        raw = _read_optional(root / "proc" / "cmdline")
        cmdline = raw.decode("utf-8", "replace") if raw is not None else ""
    sources.append(("kernel cmdline", parse(parse_cmdline(cmdline), "kernel cmdline")))
    sources.append((str(root / LOCAL_CONFIG), _optional_file(root / LOCAL_CONFIG)))
    sources.append((str(root / RUN_CONFIG), read_run_config(root / RUN_CONFIG)))
    sources.append((str(root / RUN_CONFIG / "userdata"), read_userdata(root / RUN_CONFIG / "userdata")))
    config_dir = root / LOCAL_CONFIG_DIR
    if config_dir.is_dir():
        for entry in sorted(config_dir.iterdir(), key=lambda p: p.name):
            if entry.is_file():
                sources.append((str(entry), load_config_file(entry)))
    return [(name, cfg) for name, cfg in sources if cfg is not None]


def load_merged(root: Path = Path("/"), cmdline: str | None = None) -> K3osConfig:
    """Merge every source under ``root`` in k3OS order; ``cmdline`` replaces ``root/proc/cmdline``."""
    result = K3osConfig()
    for _name, cfg in config_sources(Path(root), cmdline):
        result = merge(result, cfg)
    return result
