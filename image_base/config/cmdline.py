"""Kernel command line -> nested config data, the way k3OS reads ``/proc/cmdline``.

``k3os.token=T`` sets ``k3os.token``; dotted keys nest; a repeated key builds a list
(``k3os.dns_nameserver=1.1.1.1 k3os.dns_nameserver=8.8.8.8``); ``key[sub]=value`` sets one entry of a
map (``k3os.sysctl[kernel.printk]="4 4 1 7"``); double quotes keep spaces; a bare key means ``true``.
Only ``k3os.*`` and the top-level config keys (``hostname``, ``ssh_authorized_keys``, ``*_cmd``) are
read; every other kernel argument (``console=``, ``root=``, ``quiet``...) is ignored.
"""

from __future__ import annotations

from typing import Any

from image_base.config.parse import TOP_ALIASES, normalize_key

#: Top-level keys taken from the cmdline besides ``k3os.*`` (k3OS maps every argument onto its
#: schema; ``write_files`` is left out because it cannot be expressed as key=value).
CMDLINE_TOP_KEYS = frozenset({"hostname", "ssh_authorized_keys", "init_cmd", "boot_cmd", "run_cmd"})


def split_cmdline(text: str) -> list[str]:
    """Split like the kernel: whitespace separates, double quotes group and are removed."""
    tokens: list[str] = []
    current: list[str] = []
    in_token = quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
            in_token = True
        elif char.isspace() and not quoted:
            if in_token:
                tokens.append("".join(current))
            current, in_token = [], False
        else:
            current.append(char)
            in_token = True
    if in_token:
        tokens.append("".join(current))
    return tokens


def _key_path(key: str) -> list[str] | None:
    """``k3os.sysctl[kernel.printk]`` -> ``["k3os", "sysctl", "kernel.printk"]``; None if not ours."""
    sub = None
    if key.endswith("]") and "[" in key:
        key, _, rest = key.partition("[")
        sub = rest[:-1]
    parts = key.split(".")
    if any(not part for part in parts):
        return None
    if parts[0] == "k3os":
        if len(parts) < 2:
            return None
    else:
        top = normalize_key(parts[0])
        if TOP_ALIASES.get(top, top) not in CMDLINE_TOP_KEYS or len(parts) != 1:
            return None
    return parts + ([sub] if sub is not None else [])


def parse_cmdline(text: str) -> dict[str, Any]:
    """Parse a kernel command line into nested config data (to be validated by ``parse``)."""
    data: dict[str, Any] = {}
    for token in split_cmdline(text):
        key, sep, raw = token.partition("=")
        path = _key_path(key)
        if path is None:
            continue
        value: object = raw if sep else True
        node = data
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        leaf = path[-1]
        existing = node.get(leaf)
        if existing is None or isinstance(existing, dict):
            node[leaf] = value
        elif isinstance(existing, list):
            existing.append(value)
        else:
            node[leaf] = [existing, value]
    return data
