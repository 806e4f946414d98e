"""GCP provider: the Google Compute Engine metadata server.

One request, ``GET /computeMetadata/v1/?recursive=true&alt=json`` with ``Metadata-Flavor: Google``,
gives the whole instance and project tree. The answer must carry ``Metadata-Flavor: Google`` too;
a server that does not send it is not GCE.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from datasources import hookimpl
from datasources.model import Dmi, FetchContext, Metadata, NotDetected, ProviderError, ProviderInfo
from datasources.providers import _metadata_service as svc

NAME = "gcp"
BASE_URL = "http://metadata.google.internal"
TREE_PATH = "/computeMetadata/v1/?recursive=true&alt=json"
FLAVOR_HEADER = "Metadata-Flavor"
FLAVOR = "Google"


@hookimpl
def datasources_providers() -> list[ProviderInfo]:
    """Announce the gcp provider."""
    return [ProviderInfo(NAME, NAME, 20, description="Google Compute Engine metadata server")]


@hookimpl
def datasources_base_url(provider: str) -> str | None:
    """``http://metadata.google.internal`` for gcp."""
    return BASE_URL if provider == NAME else None


def dmi_names_gcp(dmi: Dmi) -> bool:
    """True when the DMI strings say Google Compute Engine."""
    product = dmi.product_name.strip()
    return product in ("Google Compute Engine", "Google") or dmi.product_serial.strip().startswith(
        "GoogleCloud-"
    )


@hookimpl
def datasources_dmi_claims(dmi: Dmi) -> list[str] | None:
    """Claim gcp when DMI names Google Compute Engine."""
    return [NAME] if dmi_names_gcp(dmi) else None


@hookimpl
def datasources_fetch(provider: str, ctx: FetchContext) -> Metadata | None:
    """Read the whole metadata tree in one request and derive the node's metadata from it."""
    if provider != NAME:
        return None
    service = svc.MetadataService(ctx, claimed=dmi_names_gcp(ctx.dmi), headers={FLAVOR_HEADER: FLAVOR})
    resp = service.get(TREE_PATH)
    if resp.status >= 500 or resp.status == 429:
        raise svc.status_error(resp, TREE_PATH)
    if resp.headers.get(FLAVOR_HEADER.lower(), "").strip() != FLAVOR:
        raise NotDetected(f"GET {TREE_PATH}: HTTP {resp.status} without the {FLAVOR_HEADER}: {FLAVOR} header")
    doc = svc.parse_json_object(svc.require_ok(resp, TREE_PATH), "metadata tree")
    return metadata_from_tree(doc, ctx.log)


def metadata_from_tree(doc: dict[str, Any], log: Callable[[str], None]) -> Metadata:
    """Build :class:`Metadata` from the recursive JSON tree (``instance`` and ``project``)."""
    instance = svc.mapping(doc.get("instance"))
    project = svc.mapping(doc.get("project"))
    attributes = svc.mapping(instance.get("attributes"))
    hostname = svc.text(instance.get("hostname"))
    zone = zone_name(svc.text(instance.get("zone")))
    public_ipv4, local_ipv4 = interface_addresses(instance.get("networkInterfaces"))
    return Metadata(
        provider=NAME,
        instance_id=svc.text(instance.get("id")),
        hostname=hostname,
        local_hostname=hostname.split(".", 1)[0] if hostname else None,
        region=zone.rsplit("-", 1)[0] if zone and "-" in zone else None,
        zone=zone,
        public_ipv4=public_ipv4,
        local_ipv4=local_ipv4,
        ssh_keys=ssh_keys(attributes, svc.mapping(project.get("attributes"))),
        userdata=decode_userdata(attributes, log),
    )


def zone_name(zone_path: str | None) -> str | None:
    """``projects/N/zones/europe-west1-b`` -> ``europe-west1-b``."""
    if not zone_path:
        return None
    return zone_path.rstrip("/").rsplit("/", 1)[-1] or None


def interface_addresses(interfaces: object) -> tuple[str | None, str | None]:
    """(public, private) IPv4 of the first interface that has them."""
    public: str | None = None
    private: str | None = None
    for nic in svc.sequence(interfaces):
        nic = svc.mapping(nic)
        private = private or svc.ipv4(nic.get("ip"))
        for access in svc.sequence(nic.get("accessConfigs")):
            public = public or svc.ipv4(svc.mapping(access).get("externalIp"))
    return public, private


def ssh_keys(instance_attributes: dict[str, Any], project_attributes: dict[str, Any]) -> list[str]:
    """Instance ``ssh-keys``/``sshKeys`` plus project keys unless ``block-project-ssh-keys`` is true.

    Lines are ``user:key``; the user is dropped, expired ``google-ssh`` keys are skipped.
    """
    sources = [instance_attributes.get("ssh-keys"), instance_attributes.get("sshKeys")]
    blocked = str(instance_attributes.get("block-project-ssh-keys", "")).strip().lower() == "true"
    if not blocked:
        sources += [project_attributes.get("ssh-keys"), project_attributes.get("sshKeys")]
    keys: list[str] = []
    for line in svc.key_lines(sources):
        key = key_of_line(line)
        if key and key not in keys:
            keys.append(key)
    return keys


def key_of_line(line: str) -> str | None:
    """The key of one ``user:key`` line, or None when it is empty or has expired."""
    user, sep, rest = line.partition(":")
    key = rest.strip() if sep and user and not any(c.isspace() for c in user) else line.strip()
    if not key or google_ssh_expired(key):
        return None
    return key


def google_ssh_expired(key: str) -> bool:
    """True when ``key`` ends in ``google-ssh {"expireOn": ...}`` with a time in the past."""
    marker = " google-ssh "
    if marker not in key:
        return False
    import datetime
    import json

    try:
        info = json.loads(key.split(marker, 1)[1])
        expire = datetime.datetime.fromisoformat(str(info["expireOn"]))
        if expire.tzinfo is None:
            expire = expire.replace(tzinfo=datetime.UTC)
        return expire < datetime.datetime.now(datetime.UTC)
    except (ValueError, KeyError, TypeError, RecursionError):
        return False


def decode_userdata(attributes: dict[str, Any], log: Callable[[str], None]) -> bytes | None:
    """The ``user-data`` attribute, base64-decoded only when ``user-data-encoding`` says base64."""
    raw = attributes.get("user-data")
    if not isinstance(raw, str) or not raw:
        return None
    encoding = (svc.text(attributes.get("user-data-encoding")) or "").lower()
    if encoding == "base64":
        import base64
        import binascii

        try:
            return base64.b64decode("".join(raw.split()), validate=True) or None
        except (binascii.Error, ValueError):
            raise ProviderError("user-data is marked base64 but is not valid base64") from None
    if encoding:
        log(f"ignoring unknown user-data-encoding {encoding[:40]!r}; using user-data as is")
    return svc.utf8(raw)
