"""OpenStack provider: the native Nova metadata service (never the EC2-compatible tree for detection).

``GET /openstack`` lists the metadata versions the cloud serves; the newest one we know is used
for ``openstack/<version>/meta_data.json`` and ``user_data`` (404 = no userdata). The EC2-style
``latest/meta-data/{local,public}-ipv4`` leaves are read as a best effort for the addresses,
which ``meta_data.json`` does not carry.
"""

from __future__ import annotations

from datasources import hookimpl
from datasources.model import Dmi, FetchContext, Metadata, NotDetected, ProviderError, ProviderInfo
from datasources.providers import _metadata_service as svc

NAME = "openstack"
BASE_URL = "http://169.254.169.254"
VERSIONS_PATH = "/openstack"
# Newest first; the first one the cloud lists is used, else "latest".
KNOWN_VERSIONS = (
    "2018-08-27",
    "2017-02-22",
    "2016-10-06",
    "2016-06-30",
    "2016-05-01",
    "2015-10-15",
    "2013-10-17",
    "2013-04-04",
    "2012-08-10",
)
DMI_PRODUCTS = frozenset({"OpenStack Nova", "OpenStack Compute"})
DMI_ASSET_TAGS = DMI_PRODUCTS | {"OpenTelekomCloud", "SAP CCloud VM", "HUAWEICLOUD", "Samsung Cloud Platform"}


@hookimpl
def datasources_providers() -> list[ProviderInfo]:
    """Announce the openstack provider."""
    return [ProviderInfo(NAME, NAME, 30, description="OpenStack Nova metadata service (native tree)")]


@hookimpl
def datasources_base_url(provider: str) -> str | None:
    """``http://169.254.169.254`` for openstack."""
    return BASE_URL if provider == NAME else None


def dmi_names_openstack(dmi: Dmi) -> bool:
    """True when DMI product name or chassis asset tag names an OpenStack cloud."""
    return dmi.product_name.strip() in DMI_PRODUCTS or dmi.chassis_asset_tag.strip() in DMI_ASSET_TAGS


@hookimpl
def datasources_dmi_claims(dmi: Dmi) -> list[str] | None:
    """Claim openstack when DMI names OpenStack."""
    return [NAME] if dmi_names_openstack(dmi) else None


def choose_version(listing: bytes) -> str:
    """The newest known version present in the ``/openstack`` listing, else ``latest``."""
    offered = {line.strip().rstrip("/") for line in listing.decode("utf-8", "replace").splitlines()}
    for version in KNOWN_VERSIONS:
        if version in offered:
            return version
    return "latest"


@hookimpl
def datasources_fetch(provider: str, ctx: FetchContext) -> Metadata | None:
    """Read the native OpenStack metadata and userdata."""
    if provider != NAME:
        return None
    service = svc.MetadataService(ctx, claimed=dmi_names_openstack(ctx.dmi))
    version = choose_version(service.probe(VERSIONS_PATH, "OpenStack"))
    meta_path = f"/openstack/{version}/meta_data.json"
    meta = svc.parse_json_object(svc.require_ok(service.get(meta_path), meta_path), "meta_data.json")
    userdata_path = f"/openstack/{version}/user_data"
    userdata = svc.body_unless_missing(service.get(userdata_path), userdata_path)
    hostname = svc.text(meta.get("hostname"))
    public_ipv4, local_ipv4 = ec2_addresses(service, ctx)
    return Metadata(
        provider=NAME,
        instance_id=svc.text(meta.get("uuid")),
        hostname=hostname,
        local_hostname=hostname or svc.text(meta.get("name")),
        zone=svc.text(meta.get("availability_zone")),
        public_ipv4=public_ipv4,
        local_ipv4=local_ipv4,
        ssh_keys=public_keys(meta),
        userdata=userdata,
    )


def public_keys(meta: dict[str, object]) -> list[str]:
    """Keys from the ``public_keys`` dict (name -> key), else from the ``keys`` list."""
    keys = svc.key_lines(svc.mapping(meta.get("public_keys")).values())
    if not keys:
        keys = svc.key_lines(svc.mapping(item).get("data") for item in svc.sequence(meta.get("keys")))
    return keys


def ec2_addresses(service: svc.MetadataService, ctx: FetchContext) -> tuple[str | None, str | None]:
    """(public, local) IPv4 from the EC2-compatible leaves; failures only logged."""
    found: list[str | None] = []
    for leaf in ("public-ipv4", "local-ipv4"):
        path = f"/latest/meta-data/{leaf}"
        try:
            resp = service.get(path)
        except (NotDetected, ProviderError) as exc:
            ctx.log(f"{exc}; continuing without {leaf}")
            found.append(None)
            continue
        found.append(svc.ipv4(resp.text()) if resp.ok else None)
    return found[0], found[1]
