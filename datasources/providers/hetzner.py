"""Hetzner Cloud provider: only the native ``/hetzner/v1/metadata`` (YAML) and ``/hetzner/v1/userdata``.

Hetzner removed its EC2-compatible routes on 2026-08-01, so nothing under ``/latest/`` is used.
An empty 200 or a 204 from ``/hetzner/v1/userdata`` means no userdata. PyYAML is imported only
when this provider runs.
"""

from __future__ import annotations

from datasources import hookimpl
from datasources.model import Dmi, FetchContext, Metadata, ProviderInfo
from datasources.providers import _metadata_service as svc
from datasources.providers._documents import parse_yaml_mapping

NAME = "hetzner"
BASE_URL = "http://169.254.169.254"
METADATA_PATH = "/hetzner/v1/metadata"
USERDATA_PATH = "/hetzner/v1/userdata"


@hookimpl
def datasources_providers() -> list[ProviderInfo]:
    """Announce the hetzner provider."""
    return [ProviderInfo(NAME, NAME, 40, description="Hetzner Cloud native metadata (/hetzner/v1)")]


@hookimpl
def datasources_base_url(provider: str) -> str | None:
    """``http://169.254.169.254`` for hetzner."""
    return BASE_URL if provider == NAME else None


def dmi_names_hetzner(dmi: Dmi) -> bool:
    """True when DMI ``sys_vendor`` is Hetzner."""
    return dmi.sys_vendor.strip() == "Hetzner"


@hookimpl
def datasources_dmi_claims(dmi: Dmi) -> list[str] | None:
    """Claim hetzner when DMI says so."""
    return [NAME] if dmi_names_hetzner(dmi) else None


@hookimpl
def datasources_fetch(provider: str, ctx: FetchContext) -> Metadata | None:
    """Read the metadata YAML and the userdata."""
    if provider != NAME:
        return None
    service = svc.MetadataService(ctx, claimed=dmi_names_hetzner(ctx.dmi))
    doc = parse_yaml_mapping(service.probe(METADATA_PATH, "Hetzner"), "metadata")
    userdata = svc.body_unless_missing(service.get(USERDATA_PATH), USERDATA_PATH)
    instance_id = svc.text(doc.get("instance-id"))
    serial = ctx.dmi.product_serial.strip()
    if dmi_names_hetzner(ctx.dmi) and serial and instance_id and serial != instance_id:
        ctx.log(f"DMI serial {serial[:40]!r} differs from instance-id {instance_id!r}")
    hostname = svc.text(doc.get("hostname"))
    return Metadata(
        provider=NAME,
        instance_id=instance_id,
        hostname=hostname,
        local_hostname=hostname,
        region=svc.text(doc.get("region")),
        zone=svc.text(doc.get("availability-zone")),
        public_ipv4=svc.ipv4(doc.get("public-ipv4")),
        local_ipv4=svc.ipv4(doc.get("local-ipv4")) or private_network_ip(doc.get("private-networks")),
        ssh_keys=svc.key_lines(svc.sequence(doc.get("public-keys"))),
        userdata=userdata,
    )


def private_network_ip(networks: object) -> str | None:
    """The first ``private-networks[].ip``."""
    for network in svc.sequence(networks):
        address = svc.ipv4(svc.mapping(network).get("ip"))
        if address:
            return address
    return None
