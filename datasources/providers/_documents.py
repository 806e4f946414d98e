"""Parse the documents providers read (JSON objects, YAML mappings) without ever raising anything
but :class:`ProviderError`. Shared by the metadata-service providers and the cdrom seeds.

``json`` and ``yaml`` are imported inside the functions: each run pays only for what it parses.
"""

from __future__ import annotations

from typing import Any

from datasources.model import ProviderError


def parse_json_object(body: bytes, what: str) -> dict[str, Any]:
    """Parse a JSON object; ``what`` names the document in the error.

    :raises ProviderError: not JSON, nested too deeply, or not an object.
    """
    import json

    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise ProviderError(f"{what}: not valid JSON ({str(exc)[:80]})") from None
    if not isinstance(doc, dict):
        raise ProviderError(f"{what}: expected a JSON object, got {type(doc).__name__}")
    return doc


def parse_yaml_mapping(body: bytes, what: str, *, empty_is_mapping: bool = False) -> dict[Any, Any]:
    """Parse a YAML mapping with a safe loader (libyaml's when there: fast, no deep Python
    recursion); ``what`` names the document in the error.

    :param empty_is_mapping: an empty (or all-comment) document is ``{}`` instead of an error.
    :raises ProviderError: not YAML, nested too deeply, or not a mapping.
    """
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    try:
        doc = yaml.load(body, Loader=loader)  # noqa: S506 - a safe loader either way
    except (yaml.YAMLError, ValueError, RecursionError) as exc:
        first_line = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise ProviderError(f"{what}: not valid YAML ({first_line[:80]})") from None
    if doc is None and empty_is_mapping:
        return {}
    if not isinstance(doc, dict):
        raise ProviderError(f"{what}: expected a YAML mapping, got {type(doc).__name__}")
    return doc
