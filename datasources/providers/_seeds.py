"""Turn the files of a NoCloud (``cidata``) or config-drive (``config-2``) volume into Metadata.

Pure functions over bytes already read from the volume; no I/O. Garbage raises ProviderError.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from datasources.model import Metadata, ProviderError
from datasources.providers._documents import parse_json_object, parse_yaml_mapping

MAX_KEY_NESTING = 4


def _userdata(raw: bytes | None) -> bytes | None:
    """An empty userdata file means "no userdata", as an absent one does."""
    return raw if raw else None


def _scalar(doc: Mapping[Any, Any], *names: str, source: str) -> str | None:
    """The first of ``names`` present in ``doc`` as a string (numbers converted); None if absent."""
    for name in names:
        value = doc.get(name)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ProviderError(f"{source}: {name} must be a string, not {type(value).__name__}")
        text = str(value).strip()
        if text:
            return text
    return None


def ssh_keys_from(value: object, source: str, depth: int = 0) -> list[str]:
    """Key lines from a string (one key a line), a list, or a mapping of name -> key(s).

    Blank lines and ``#`` comments are dropped; nested lists/mappings are flattened.
    """
    if depth > MAX_KEY_NESTING:
        raise ProviderError(f"{source}: public keys nested too deeply")
    if value is None:
        return []
    if isinstance(value, str):
        lines = (line.strip() for line in value.splitlines())
        return [line for line in lines if line and not line.startswith("#")]
    if isinstance(value, list):
        return [key for item in value for key in ssh_keys_from(item, source, depth + 1)]
    if isinstance(value, dict):
        return [key for item in value.values() for key in ssh_keys_from(item, source, depth + 1)]
    raise ProviderError(f"{source}: public keys must be strings, lists or mappings")


def _unique(keys: list[str]) -> list[str]:
    return list(dict.fromkeys(keys))


def nocloud_metadata(provider: str, meta_data: bytes | None, userdata: bytes | None) -> Metadata:
    """Metadata from NoCloud ``meta-data`` (YAML) and ``user-data`` (raw bytes).

    Reads ``instance-id``, ``local-hostname``, ``hostname``, ``public-keys`` (string, list or
    mapping), and where given ``availability-zone``, ``region``, ``local-ipv4``, ``public-ipv4``.

    :raises ProviderError: meta-data is not YAML, not a mapping, or has a field of the wrong type.
    """
    doc = parse_yaml_mapping(meta_data or b"", "meta-data", empty_is_mapping=True)
    source = "meta-data"
    local_hostname = _scalar(doc, "local-hostname", "local_hostname", source=source)
    hostname = _scalar(doc, "hostname", source=source)
    keys = ssh_keys_from(doc.get("public-keys", doc.get("public_keys")), source)
    return Metadata(
        provider=provider,
        instance_id=_scalar(doc, "instance-id", "instance_id", source=source),
        hostname=hostname or local_hostname,
        local_hostname=local_hostname or hostname,
        region=_scalar(doc, "region", source=source),
        zone=_scalar(doc, "availability-zone", "availability_zone", source=source),
        public_ipv4=_scalar(doc, "public-ipv4", source=source),
        local_ipv4=_scalar(doc, "local-ipv4", source=source),
        ssh_keys=_unique(keys),
        userdata=_userdata(userdata),
    )


def config_drive_metadata(provider: str, meta_json: bytes, userdata: bytes | None) -> Metadata:
    """Metadata from a config drive's ``openstack/latest/meta_data.json`` and ``user_data``.

    Reads ``uuid``, ``hostname`` (else ``name``), ``availability_zone`` and ``public_keys``
    (mapping of name -> key), falling back to ``keys`` (list of ``{"type": "ssh", "data": ...}``).

    :raises ProviderError: meta_data.json is not a JSON object or has a field of the wrong type.
    """
    source = "meta_data.json"
    doc = parse_json_object(meta_json, source)
    keys = ssh_keys_from(doc.get("public_keys"), source)
    if not keys and isinstance(doc.get("keys"), list):
        data = [k.get("data") for k in doc["keys"] if isinstance(k, dict) and k.get("type", "ssh") == "ssh"]
        keys = ssh_keys_from(data, source)
    hostname = _scalar(doc, "hostname", "name", source=source)
    return Metadata(
        provider=provider,
        instance_id=_scalar(doc, "uuid", source=source),
        hostname=hostname,
        local_hostname=hostname,
        zone=_scalar(doc, "availability_zone", source=source),
        ssh_keys=_unique(keys),
        userdata=_userdata(userdata),
    )
