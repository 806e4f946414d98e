"""DigitalOcean provider: one ``GET /metadata/v1.json`` on 169.254.169.254 (metadata and userdata)."""

from __future__ import annotations

from typing import Any

from datasources import hookimpl
from datasources.model import Dmi, FetchContext, Metadata, ProviderError, ProviderInfo
from datasources.providers import _metadata_service as svc

NAME = "digitalocean"
BASE_URL = "http://169.254.169.254"
DOCUMENT_PATH = "/metadata/v1.json"


@hookimpl
def datasources_providers() -> list[ProviderInfo]:
    """Announce the digitalocean provider."""
    return [ProviderInfo(NAME, NAME, 70, description="DigitalOcean droplet metadata (/metadata/v1.json)")]


@hookimpl
def datasources_base_url(provider: str) -> str | None:
    """``http://169.254.169.254`` for digitalocean."""
    return BASE_URL if provider == NAME else None


def dmi_names_digitalocean(dmi: Dmi) -> bool:
    """True when DMI ``sys_vendor`` is DigitalOcean."""
    return dmi.sys_vendor.strip() == "DigitalOcean"


@hookimpl
def datasources_dmi_claims(dmi: Dmi) -> list[str] | None:
    """Claim digitalocean when DMI says so."""
    return [NAME] if dmi_names_digitalocean(dmi) else None


@hookimpl
def datasources_fetch(provider: str, ctx: FetchContext) -> Metadata | None:
    """Read ``/metadata/v1.json``."""
    if provider != NAME:
        return None
    service = svc.MetadataService(ctx, claimed=dmi_names_digitalocean(ctx.dmi))
    return metadata_from_document(service.fetch_json(DOCUMENT_PATH, "DigitalOcean", "v1.json"))


def metadata_from_document(doc: dict[str, Any]) -> Metadata:
    """Build :class:`Metadata` from ``/metadata/v1.json``."""
    hostname = svc.text(doc.get("hostname"))
    interfaces = svc.mapping(doc.get("interfaces"))
    userdata = doc.get("user_data")
    if userdata is not None and not isinstance(userdata, str):
        raise ProviderError(f"v1.json: user_data is a {type(userdata).__name__}, expected a string")
    return Metadata(
        provider=NAME,
        instance_id=svc.text(doc.get("droplet_id")),
        hostname=hostname,
        local_hostname=hostname,
        region=svc.text(doc.get("region")),
        public_ipv4=first_ipv4(interfaces.get("public")),
        local_ipv4=first_ipv4(interfaces.get("private")),
        ssh_keys=svc.key_lines(svc.sequence(doc.get("public_keys"))),
        userdata=svc.userdata_from_text(userdata),
    )


def first_ipv4(interfaces: object) -> str | None:
    """The first ``[].ipv4.ip_address``."""
    for nic in svc.sequence(interfaces):
        address = svc.ipv4(svc.mapping(svc.mapping(nic).get("ipv4")).get("ip_address"))
        if address:
            return address
    return None
