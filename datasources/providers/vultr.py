"""Vultr provider: one ``GET /v1.json`` on 169.254.169.254 carries metadata and userdata.

``user-data`` is ``""`` or ``[]`` when the instance has none. Unlike linuxkit (which never read
Vultr userdata) the userdata is returned.
"""

from __future__ import annotations

from typing import Any

from datasources import hookimpl
from datasources.model import Dmi, FetchContext, Metadata, ProviderError, ProviderInfo
from datasources.providers import _metadata_service as svc

NAME = "vultr"
BASE_URL = "http://169.254.169.254"
DOCUMENT_PATH = "/v1.json"


@hookimpl
def datasources_providers() -> list[ProviderInfo]:
    """Announce the vultr provider."""
    return [ProviderInfo(NAME, NAME, 60, description="Vultr metadata (/v1.json)")]


@hookimpl
def datasources_base_url(provider: str) -> str | None:
    """``http://169.254.169.254`` for vultr."""
    return BASE_URL if provider == NAME else None


def dmi_names_vultr(dmi: Dmi) -> bool:
    """True when DMI ``sys_vendor`` is Vultr."""
    return dmi.sys_vendor.strip() == "Vultr"


@hookimpl
def datasources_dmi_claims(dmi: Dmi) -> list[str] | None:
    """Claim vultr when DMI says so."""
    return [NAME] if dmi_names_vultr(dmi) else None


@hookimpl
def datasources_fetch(provider: str, ctx: FetchContext) -> Metadata | None:
    """Read ``/v1.json``."""
    if provider != NAME:
        return None
    service = svc.MetadataService(ctx, claimed=dmi_names_vultr(ctx.dmi))
    return metadata_from_document(service.fetch_json(DOCUMENT_PATH, "Vultr", "v1.json"))


def metadata_from_document(doc: dict[str, Any]) -> Metadata:
    """Build :class:`Metadata` from ``/v1.json``."""
    hostname = svc.text(doc.get("hostname"))
    region = svc.text(svc.mapping(doc.get("region")).get("regioncode"))
    public_ipv4, local_ipv4 = addresses(doc.get("interfaces"))
    return Metadata(
        provider=NAME,
        instance_id=svc.text(doc.get("instance-v2-id"))
        or svc.text(doc.get("instance-id"))
        or svc.text(doc.get("instanceid")),
        hostname=hostname,
        local_hostname=svc.text(doc.get("local-hostname")) or hostname,
        region=region.lower() if region else None,
        public_ipv4=public_ipv4,
        local_ipv4=local_ipv4,
        ssh_keys=svc.key_lines(svc.sequence(doc.get("public-keys"))),
        userdata=userdata(doc.get("user-data")),
    )


def userdata(value: object) -> bytes | None:
    """``user-data``: a string, or ``""``/``[]``/absent for none."""
    if value is None or value == [] or value == "":
        return None
    if isinstance(value, str):
        return svc.utf8(value)
    raise ProviderError(f"v1.json: user-data is a {type(value).__name__}, expected a string")


def addresses(interfaces: object) -> tuple[str | None, str | None]:
    """(public, private) IPv4 from ``interfaces[].ipv4.address`` by ``network-type``."""
    public: str | None = None
    private: str | None = None
    for nic in svc.sequence(interfaces):
        nic = svc.mapping(nic)
        address = svc.ipv4(svc.mapping(nic.get("ipv4")).get("address"))
        if nic.get("network-type") == "private":
            private = private or address
        else:
            public = public or address
    return public, private
