"""Packet / Equinix Metal provider (alias ``equinixmetal``).

``GET /metadata`` (JSON) and ``GET /userdata`` on ``https://metadata.platformequinix.com``, both
with ``Accept: */*`` (the service answers 406 to narrower Accept headers). Equinix Metal has no
DMI signal, so this provider never claims a machine from DMI and relies on the engine's deadline:
off Equinix the public hostname may never answer, which is "not detected", never a hung boot.
``#!ipxe`` userdata is meant for iPXE, not for the node: it is ignored (logged).
"""

from __future__ import annotations

from typing import Any

from datasources import hookimpl
from datasources.model import Dmi, FetchContext, Metadata, NotDetected, ProviderError, ProviderInfo
from datasources.providers import _metadata_service as svc

NAME = "packet"
ALIASES = ("equinixmetal",)
BASE_URL = "https://metadata.platformequinix.com"
METADATA_PATH = "/metadata"
USERDATA_PATH = "/userdata"
ACCEPT_ANY = {"Accept": "*/*"}


@hookimpl
def datasources_providers() -> list[ProviderInfo]:
    """Announce the packet provider (alias equinixmetal)."""
    return [ProviderInfo(NAME, NAME, 80, aliases=ALIASES, description="Equinix Metal (Packet) metadata")]


@hookimpl
def datasources_base_url(provider: str) -> str | None:
    """``https://metadata.platformequinix.com`` for packet."""
    return BASE_URL if provider == NAME or provider in ALIASES else None


@hookimpl
def datasources_dmi_claims(dmi: Dmi) -> list[str] | None:
    """Never: Equinix Metal machines show their hardware vendor's DMI."""
    return None


@hookimpl
def datasources_fetch(provider: str, ctx: FetchContext) -> Metadata | None:
    """Read ``/metadata`` and ``/userdata``."""
    if provider != NAME and provider not in ALIASES:
        return None
    service = svc.MetadataService(ctx, claimed=False, headers=ACCEPT_ANY)
    resp = service.get(METADATA_PATH)
    if resp.status == 406:
        raise ProviderError(f"GET {METADATA_PATH}: HTTP 406 Not Acceptable despite Accept: */*")
    if 400 <= resp.status < 500 and resp.status != 429:
        raise NotDetected(f"GET {METADATA_PATH}: HTTP {resp.status}{service_error(resp.body)}")
    doc = svc.parse_json_object(service.first_answer(resp, METADATA_PATH, "Equinix Metal"), "metadata")
    if "error" in doc:
        raise ProviderError(f"metadata service reported an error: {str(doc['error'])[:200]}")
    userdata = svc.body_unless_missing(service.get(USERDATA_PATH), USERDATA_PATH)
    if userdata is not None and userdata.lstrip().startswith(b"#!ipxe"):
        ctx.log("ignoring #!ipxe userdata (it is an iPXE script, not node configuration)")
        userdata = None
    hostname = svc.text(doc.get("hostname"))
    public_ipv4, local_ipv4 = addresses(doc.get("network"))
    return Metadata(
        provider=NAME,
        instance_id=svc.text(doc.get("id")),
        hostname=hostname,
        local_hostname=hostname,
        region=metro_code(doc.get("metro")),
        zone=svc.text(doc.get("facility")),
        public_ipv4=public_ipv4,
        local_ipv4=local_ipv4,
        ssh_keys=svc.key_lines(svc.sequence(doc.get("ssh_keys"))),
        userdata=userdata,
    )


def service_error(body: bytes) -> str:
    """``": <error>"`` when ``body`` is JSON with an ``error`` field, else ``""``."""
    try:
        doc = svc.parse_json_object(body, "error")
    except ProviderError:
        return ""
    return f": {str(doc.get('error', ''))[:200]}" if "error" in doc else ""


def metro_code(metro: object) -> str | None:
    """The metro code, whether given as a string or as ``{"code": ...}``."""
    if isinstance(metro, dict):
        return svc.text(metro.get("code"))
    return svc.text(metro)


def addresses(network: object) -> tuple[str | None, str | None]:
    """(public, private) IPv4 from ``network.addresses``, management addresses first."""
    public: str | None = None
    private: str | None = None
    entries: list[dict[str, Any]] = [
        svc.mapping(a) for a in svc.sequence(svc.mapping(network).get("addresses"))
    ]
    entries.sort(key=lambda a: not a.get("management"))
    for entry in entries:
        if entry.get("address_family") not in (4, "4") or entry.get("enabled") is False:
            continue
        address = svc.ipv4(entry.get("address"))
        if entry.get("public") is True:
            public = public or address
        else:
            private = private or address
    return public, private
