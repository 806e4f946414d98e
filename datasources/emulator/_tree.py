"""Helpers for emulators that serve a tree of metadata as paths (directory listings and leaves)."""

from __future__ import annotations

from collections.abc import Mapping

from datasources.emulator.base import Reply

MISSING = object()
TEXT = {"Content-Type": "text/plain; charset=utf-8"}
JSON = {"Content-Type": "application/json"}


def lookup(tree: object, path: str) -> object:
    """The node at ``path`` (``a/b/0/c``, slashes at the ends ignored) or :data:`MISSING`."""
    node = tree
    for part in [p for p in path.split("/") if p]:
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return MISSING
    return node


def is_directory(node: object) -> bool:
    """Dicts and lists are directories; everything else is a leaf."""
    return isinstance(node, Mapping | list)


def listing(node: object) -> bytes:
    """A newline-separated directory listing; sub-directories end in ``/``."""
    if isinstance(node, Mapping):
        names = [f"{k}/" if is_directory(v) else str(k) for k, v in node.items()]
    elif isinstance(node, list):
        names = [f"{i}/" if is_directory(v) else str(i) for i, v in enumerate(node)]
    else:
        names = []
    return "".join(f"{name}\n" for name in names).encode()


def leaf(node: object) -> bytes:
    """A leaf as text: bytes as is, lists of strings one a line, anything else ``str()``."""
    if isinstance(node, bytes):
        return node
    return str(node).encode()


def text_reply(body: bytes, status: int = 200, headers: Mapping[str, str] | None = None) -> Reply:
    """A text/plain reply."""
    return Reply(status, body, {**TEXT, **(headers or {})})


def not_found(headers: Mapping[str, str] | None = None) -> Reply:
    """A plain 404."""
    return text_reply(b"Not Found\n", 404, headers)


def serve_path(tree: object, path: str, headers: Mapping[str, str] | None = None) -> Reply:
    """Serve a directory listing or leaf of ``tree`` at ``path``, 404 when missing."""
    node = lookup(tree, path)
    if node is MISSING or node is None:
        return not_found(headers)
    if is_directory(node):
        return text_reply(listing(node), headers=headers)
    return text_reply(leaf(node), headers=headers)


def option_flag(options: Mapping[str, str], key: str, default: bool = False) -> bool:
    """An emulator ``--option KEY=VALUE`` read as a boolean (1/true/yes/on)."""
    value = options.get(key)
    if value is None:
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")
