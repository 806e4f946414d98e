"""Validate plain data (from YAML or the kernel cmdline) into a :class:`K3osConfig`.

Errors name the source and the key path, e.g. ``config.yaml: k3os.labels.region: expected a string,
got list``. Unknown keys get a "did you mean" hint. Singular and plural names are accepted where
k3OS accepts them, and camelCase or dashed spellings of a key are read as its snake_case name.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Callable
from typing import Any

from image_base.config.encoding import ENCODINGS, decode_content
from image_base.config.errors import ConfigError
from image_base.config.model import Command, Install, K3osConfig, K3osSection, Wifi, WriteFile

TOP_KEYS = ("ssh_authorized_keys", "write_files", "hostname", "init_cmd", "boot_cmd", "run_cmd", "k3os")
TOP_ALIASES = {"ssh_authorized_key": "ssh_authorized_keys", "write_file": "write_files"}
K3OS_ALIASES = {
    "sysctls": "sysctl",
    "label": "labels",
    "taint": "taints",
    "data_source": "data_sources",
    "module": "modules",
    "ntp_server": "ntp_servers",
    "dns_nameserver": "dns_nameservers",
    "k3s_arg": "k3s_args",
}
INSTALL_ALIASES = {"poweroff": "power_off", "efi": "force_efi"}
WIFI_ALIASES = {"ssid": "name"}

_HOSTNAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*\.?$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_SYSCTL_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_./-]*$")
_WORD = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:=/+-]*$")
_OWNER = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?$")


def type_name(value: object) -> str:
    """The YAML-ish name of a value's type, used in error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    for kind, name in ((int, "integer"), (float, "number"), (str, "string"), (bytes, "binary")):
        if isinstance(value, kind):
            return name
    if isinstance(value, list | tuple):
        return "list"
    if isinstance(value, dict):
        return "map"
    return type(value).__name__


def normalize_key(key: str) -> str:
    """``sshAuthorizedKeys`` and ``ssh-authorized-keys`` both become ``ssh_authorized_keys``."""
    key = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key)
    return key.replace("-", "_").lower()


class _Ctx:
    """The source name, for error messages."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, path: str, message: str) -> ConfigError:
        where = f"{path}: " if path else ""
        return ConfigError(f"{self.source}: {where}{message}")

    def expected(self, path: str, what: str, value: object) -> ConfigError:
        return self.fail(path, f"expected {what}, got {type_name(value)}")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _string(ctx: _Ctx, path: str, value: object, *, allow_bool: bool = False) -> str:
    if isinstance(value, bool):
        if allow_bool:
            return "true" if value else "false"
        raise ctx.expected(path, "a string", value)
    if isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return str(value)
    raise ctx.expected(path, "a string", value)


def _optional_string(ctx: _Ctx, path: str, value: object) -> str | None:
    return None if value is None else _string(ctx, path, value)


def _bool(ctx: _Ctx, path: str, value: object) -> bool | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise ctx.fail(path, f"expected true or false, got {type_name(value)} {value!r}")


def _list(ctx: _Ctx, path: str, value: object, what: str) -> list[object]:
    """k3OS turns a single value into a one-item list; null means empty."""
    if value is None:
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return [value]
    raise ctx.expected(path, f"a list of {what}", value)


def _strings(
    ctx: _Ctx, path: str, value: object, check: Callable[[str], str | None] | None = None
) -> list[str]:
    result = []
    for index, item in enumerate(_list(ctx, path, value, "strings")):
        text = _string(ctx, f"{path}[{index}]", item)
        problem = check(text) if check else None
        if problem:
            raise ctx.fail(f"{path}[{index}]", problem)
        result.append(text)
    return result


def _string_map(
    ctx: _Ctx, path: str, value: object, key_pattern: re.Pattern[str] | None = None
) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ctx.expected(path, "a map of strings", value)
    result = {}
    for key, item in value.items():
        sub = _join(path, str(key))
        if key_pattern is not None and not key_pattern.match(str(key)):
            raise ctx.fail(sub, f"invalid name {str(key)!r}")
        text = _string(ctx, sub, item, allow_bool=True)
        if "\n" in text:
            raise ctx.fail(sub, "value must not contain a newline")
        result[str(key)] = text
    return result


def _commands(ctx: _Ctx, path: str, value: object) -> list[Command]:
    items = [value] if isinstance(value, str) else _list(ctx, path, value, "commands")
    result: list[Command] = []
    for index, item in enumerate(items):
        sub = f"{path}[{index}]"
        if isinstance(item, list):
            argv = [_string(ctx, f"{sub}[{i}]", arg) for i, arg in enumerate(item)]
            if not argv:
                raise ctx.fail(sub, "expected a non-empty command")
            result.append(argv)
        else:
            result.append(_string(ctx, sub, item))
    return result


def _map_keys(
    ctx: _Ctx, path: str, value: object, known: tuple[str, ...], aliases: dict[str, str]
) -> dict[str, object]:
    """Canonical key -> value; unknown keys fail with a hint; alias + canonical both given are combined."""
    if not isinstance(value, dict):
        raise ctx.expected(path, "a map", value)
    result: dict[str, object] = {}
    for raw_key, item in value.items():
        if not isinstance(raw_key, str):
            raise ctx.fail(_join(path, str(raw_key)), "expected a string key")
        key = normalize_key(raw_key)
        key = aliases.get(key, key)
        if key not in known:
            choices = list(known) + list(aliases)
            close = difflib.get_close_matches(key, choices, n=1, cutoff=0.6)
            hint = f" (did you mean {aliases.get(close[0], close[0])!r}?)" if close else ""
            raise ctx.fail(_join(path, raw_key), f"unknown key{hint}")
        if key in result and item is not None and result[key] is not None:
            result[key] = _combine(ctx, _join(path, key), result[key], item)
        elif item is not None or key not in result:
            result[key] = item
    return result


def _combine(ctx: _Ctx, path: str, first: object, second: object) -> object:
    if isinstance(first, dict) and isinstance(second, dict):
        return {**first, **second}
    if isinstance(first, list | str) and isinstance(second, list | str):
        return (first if isinstance(first, list) else [first]) + (
            second if isinstance(second, list) else [second]
        )
    raise ctx.fail(path, "given twice (singular and plural spelling)")


def _check_path(text: str) -> str | None:
    if not text.startswith("/"):
        return "expected an absolute path"
    if "\0" in text or ".." in text.split("/"):
        return "path must not contain '..' or NUL"
    return None


def _permissions(ctx: _Ctx, path: str, value: object) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        mode = value  # YAML 1.1 reads an unquoted 0644 as octal already
    elif isinstance(value, str):
        try:
            mode = int(value.strip(), 8)
        except ValueError:
            raise ctx.fail(path, f"expected an octal mode like '0644', got {value!r}") from None
    else:
        raise ctx.expected(path, "an octal mode like '0644'", value)
    if not 0 <= mode <= 0o7777:
        raise ctx.fail(path, f"mode {oct(mode)} out of range")
    return f"{mode:04o}"


def _write_files(ctx: _Ctx, path: str, value: object) -> list[WriteFile]:
    result = []
    known = ("path", "content", "encoding", "owner", "permissions")
    for index, item in enumerate(_list(ctx, path, value, "files")):
        sub = f"{path}[{index}]"
        fields = _map_keys(ctx, sub, item, known, {})
        if fields.get("path") is None:
            raise ctx.fail(f"{sub}.path", "required")
        file_path = _string(ctx, f"{sub}.path", fields["path"])
        if problem := _check_path(file_path):
            raise ctx.fail(f"{sub}.path", problem)
        content = fields.get("content")
        if content is None:
            content = ""
        if not isinstance(content, str | bytes):
            raise ctx.expected(f"{sub}.content", "a string or !!binary", content)
        encoding = _optional_string(ctx, f"{sub}.encoding", fields.get("encoding")) or ""
        if encoding.strip().lower() not in ENCODINGS:
            allowed = ", ".join(repr(e) for e in ENCODINGS if e)
            raise ctx.fail(f"{sub}.encoding", f"unknown encoding {encoding!r} (expected one of {allowed})")
        try:
            decode_content(content, encoding)
        except ValueError as exc:
            raise ctx.fail(f"{sub}.content", str(exc)) from None
        owner = _optional_string(ctx, f"{sub}.owner", fields.get("owner")) or ""
        if owner and not _OWNER.match(owner):
            raise ctx.fail(f"{sub}.owner", f"expected user or user:group, got {owner!r}")
        perms = _permissions(ctx, f"{sub}.permissions", fields.get("permissions"))
        result.append(WriteFile(file_path, content, encoding.strip().lower(), owner, perms))
    return result


def _wifi(ctx: _Ctx, path: str, value: object) -> list[Wifi]:
    result = []
    for index, item in enumerate(_list(ctx, path, value, "networks")):
        sub = f"{path}[{index}]"
        fields = _map_keys(ctx, sub, item, ("name", "passphrase"), WIFI_ALIASES)
        name = _optional_string(ctx, f"{sub}.name", fields.get("name"))
        if not name:
            raise ctx.fail(f"{sub}.name", "required")
        passphrase = _optional_string(ctx, f"{sub}.passphrase", fields.get("passphrase"))
        if passphrase is not None and not (
            8 <= len(passphrase) <= 63 or re.fullmatch(r"[0-9a-fA-F]{64}", passphrase)
        ):
            raise ctx.fail(f"{sub}.passphrase", "expected 8 to 63 characters (WPA) or 64 hex digits")
        if passphrase is not None and ("\n" in passphrase or '"' in passphrase):
            raise ctx.fail(f"{sub}.passphrase", "must not contain a newline or '\"'")
        result.append(Wifi(name, passphrase))
    return result


def _word(text: str) -> str | None:
    return None if _WORD.match(text) else f"invalid value {text!r}"


def _ip(text: str) -> str | None:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return f"expected an IP address, got {text!r}"
    return None


def _one_line(text: str) -> str | None:
    return "must not contain a newline" if "\n" in text or not text.strip() else None


def _install(ctx: _Ctx, path: str, value: object) -> Install:
    install = Install()
    if value is None:
        return install
    known = tuple(Install.__dataclass_fields__)
    for key, item in _map_keys(ctx, path, value, known, INSTALL_ALIASES).items():
        sub = _join(path, key)
        is_bool = key in ("force_efi", "silent", "power_off", "no_format", "debug")
        setattr(install, key, _bool(ctx, sub, item) if is_bool else _optional_string(ctx, sub, item))
    return install


def _k3os(ctx: _Ctx, path: str, value: object) -> K3osSection:
    section = K3osSection()
    if value is None:
        return section
    known = tuple(K3osSection.__dataclass_fields__)
    parsers: dict[str, Callable[[str, object], Any]] = {
        "data_sources": lambda p, v: _strings(ctx, p, v, _word),
        "modules": lambda p, v: _strings(ctx, p, v, _word),
        "sysctl": lambda p, v: _string_map(ctx, p, v, _SYSCTL_NAME),
        "ntp_servers": lambda p, v: _strings(ctx, p, v, _word),
        "dns_nameservers": lambda p, v: _strings(ctx, p, v, _ip),
        "wifi": lambda p, v: _wifi(ctx, p, v),
        "labels": lambda p, v: _string_map(ctx, p, v),
        "k3s_args": lambda p, v: _strings(ctx, p, v),
        "environment": lambda p, v: _string_map(ctx, p, v, _ENV_NAME),
        "taints": lambda p, v: _strings(ctx, p, v, _one_line),
        "install": lambda p, v: _install(ctx, p, v),
    }
    for key, item in _map_keys(ctx, path, value, known, K3OS_ALIASES).items():
        sub = _join(path, key)
        parser = parsers.get(key)
        setattr(section, key, parser(sub, item) if parser else _optional_string(ctx, sub, item))
    return section


def parse(data: object, source: str) -> K3osConfig:
    """Validate ``data`` (a YAML document or parsed cmdline) into a K3osConfig; raise ConfigError.

    ``source`` names where the data came from and starts every error message.
    """
    ctx = _Ctx(source)
    cfg = K3osConfig()
    if data is None:
        return cfg
    fields = _map_keys(ctx, "", data, TOP_KEYS, TOP_ALIASES)
    for key, value in fields.items():
        if key == "ssh_authorized_keys":
            cfg.ssh_authorized_keys = _strings(ctx, key, value, _one_line)
        elif key == "write_files":
            cfg.write_files = _write_files(ctx, key, value)
        elif key == "hostname":
            cfg.hostname = _optional_string(ctx, key, value)
            if cfg.hostname is not None and not _HOSTNAME.match(cfg.hostname):
                raise ctx.fail(key, f"expected a hostname (letters, digits, '-', '.'), got {cfg.hostname!r}")
        elif key in ("init_cmd", "boot_cmd", "run_cmd"):
            setattr(cfg, key, _commands(ctx, key, value))
        else:
            cfg.k3os = _k3os(ctx, key, value)
    return cfg
