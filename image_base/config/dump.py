"""The merged config back to plain data / YAML, with secrets masked."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import yaml

from image_base.config.model import K3osConfig

MASK = "********"
#: ``k3os.environment`` names whose values are treated as secrets too (e.g. K3S_TOKEN, AWS_SECRET...).
SECRET_ENV_NAME = re.compile(r"TOKEN|SECRET|PASSW|PASSPHRASE|PRIVATE|CREDENTIAL|API_?KEY", re.IGNORECASE)


def secret_values(cfg: K3osConfig) -> list[str]:
    """Every secret value in ``cfg`` (password, token, wifi passphrases, secret-looking env vars)."""
    k3os = cfg.k3os
    values = [k3os.password, k3os.token, *(w.passphrase for w in k3os.wifi)]
    values += [v for k, v in k3os.environment.items() if SECRET_ENV_NAME.search(k)]
    return [v for v in values if v]


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        result = {}
        for f in dataclasses.fields(value):
            item = _plain(getattr(value, f.name))
            if item is None or item == [] or item == {} or item == "":
                continue
            result[f.name] = item
        return result
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def to_dict(
    cfg: K3osConfig, mask_secrets: bool = True, keys: tuple[str, ...] | None = None
) -> dict[str, Any]:
    """Plain data for ``cfg``; unset keys left out; ``keys`` (dotted paths) limits the output."""
    data: dict[str, Any] = _plain(cfg)
    k3os = data.get("k3os", {})
    if mask_secrets:
        for name in ("password", "token"):
            if name in k3os:
                k3os[name] = MASK
        for wifi in k3os.get("wifi", []):
            if "passphrase" in wifi:
                wifi["passphrase"] = MASK
        env = k3os.get("environment", {})
        for name in env:
            if SECRET_ENV_NAME.search(name):
                env[name] = MASK
    if keys is not None:
        top = {k: v for k, v in data.items() if k in keys}
        section = {k: v for k, v in k3os.items() if f"k3os.{k}" in keys}
        if section:
            top["k3os"] = section
        data = top
    return data


class _Dumper(yaml.SafeDumper):
    """Block-style YAML; multi-line strings as literal blocks."""


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _str_representer)


def dump_yaml(cfg: K3osConfig, mask_secrets: bool = True, keys: tuple[str, ...] | None = None) -> str:
    """``cfg`` as YAML text (secrets replaced by ``********`` unless ``mask_secrets`` is False)."""
    data = to_dict(cfg, mask_secrets, keys)
    if not data:
        return "{}\n"
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, default_flow_style=False, allow_unicode=True)
