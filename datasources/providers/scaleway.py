"""Scaleway provider: ``GET /conf?format=json`` and ``GET /user_data/cloud-init`` on 169.254.42.42.

Scaleway serves userdata only to requests from a source port below 1024, so that unprivileged
processes on the instance cannot read it. The provider binds a random port in 1..1023 (another
one when a port is busy); when the process may not bind such ports it reports a clear error.
"""

from __future__ import annotations

import errno
import os
from typing import Any

from datasources import hookimpl, http
from datasources.model import Dmi, FetchContext, Metadata, ProviderError, ProviderInfo
from datasources.providers import _metadata_service as svc

NAME = "scaleway"
BASE_URL = "http://169.254.42.42"
CONF_PATH = "/conf?format=json"
USERDATA_PATH = "/user_data/cloud-init"
PORT_ATTEMPTS = 16
NOT_PERMITTED = (
    "Scaleway serves userdata only to source ports below 1024: run as root or with CAP_NET_BIND_SERVICE"
)
_BUSY = (errno.EADDRINUSE, errno.EADDRNOTAVAIL)
_DENIED = (errno.EACCES, errno.EPERM)


@hookimpl
def datasources_providers() -> list[ProviderInfo]:
    """Announce the scaleway provider."""
    return [ProviderInfo(NAME, NAME, 50, description="Scaleway instance metadata (privileged-port userdata)")]


@hookimpl
def datasources_base_url(provider: str) -> str | None:
    """``http://169.254.42.42`` for scaleway."""
    return BASE_URL if provider == NAME else None


def dmi_names_scaleway(dmi: Dmi) -> bool:
    """True when DMI ``sys_vendor`` is Scaleway."""
    return dmi.sys_vendor.strip() == "Scaleway"


@hookimpl
def datasources_dmi_claims(dmi: Dmi) -> list[str] | None:
    """Claim scaleway when DMI says so."""
    return [NAME] if dmi_names_scaleway(dmi) else None


@hookimpl
def datasources_fetch(provider: str, ctx: FetchContext) -> Metadata | None:
    """Read ``/conf?format=json``, then the userdata from a privileged source port."""
    if provider != NAME:
        return None
    service = svc.MetadataService(ctx, claimed=dmi_names_scaleway(ctx.dmi))
    conf = service.fetch_json(CONF_PATH, "Scaleway", "conf")
    userdata = fetch_userdata(service)
    return metadata_from_conf(conf, userdata)


def metadata_from_conf(conf: dict[str, Any], userdata: bytes | None) -> Metadata:
    """Build :class:`Metadata` from the ``/conf?format=json`` document."""
    zone = svc.text(svc.mapping(conf.get("location")).get("zone_id")) or svc.text(conf.get("zone"))
    hostname = svc.text(conf.get("hostname"))
    return Metadata(
        provider=NAME,
        instance_id=svc.text(conf.get("id")),
        hostname=hostname,
        local_hostname=hostname,
        region=zone.rsplit("-", 1)[0] if zone and "-" in zone else None,
        zone=zone,
        public_ipv4=svc.ipv4(svc.mapping(conf.get("public_ip")).get("address")),
        local_ipv4=svc.ipv4(conf.get("private_ip")),
        ssh_keys=ssh_keys(conf),
        userdata=userdata,
    )


def ssh_keys(conf: dict[str, Any]) -> list[str]:
    """``ssh_public_keys[].key`` plus ``AUTHORIZED_KEY=type_base64_comment`` tags."""
    keys = [svc.mapping(item).get("key") for item in svc.sequence(conf.get("ssh_public_keys"))]
    for tag in svc.sequence(conf.get("tags")):
        if isinstance(tag, str) and tag.startswith("AUTHORIZED_KEY="):
            keys.append(tag.split("=", 1)[1].replace("_", " "))
    return svc.key_lines(keys)


def random_privileged_port() -> int:
    """A random port in 1..1023."""
    return int.from_bytes(os.urandom(2), "big") % 1023 + 1


def fetch_userdata(service: svc.MetadataService) -> bytes | None:
    """GET the userdata from a source port below 1024, trying other ports when one is busy.

    :raises ProviderError: ports below 1024 may not be bound, or the fetch failed.
    """
    url = service.ctx.base_url + USERDATA_PATH
    for _ in range(PORT_ATTEMPTS):
        port = random_privileged_port()
        try:
            resp = http.request("GET", url, deadline=service.ctx.deadline, source_port=port)
        except http.BodyTooLarge as exc:
            raise ProviderError(f"GET {USERDATA_PATH}: {exc}") from None
        except http.TransportError as exc:
            cause = exc.__cause__
            if isinstance(cause, PermissionError) or (isinstance(cause, OSError) and cause.errno in _DENIED):
                raise ProviderError(NOT_PERMITTED) from None
            if isinstance(cause, OSError) and cause.errno in _BUSY:
                continue
            raise service.transport_failure(USERDATA_PATH, exc) from None
        if resp.status == 403:
            raise ProviderError(
                f"GET {USERDATA_PATH} from port {port}: HTTP 403: {resp.text()[:200].strip()}"
            )
        return svc.body_unless_missing(resp, USERDATA_PATH)
    raise ProviderError(f"GET {USERDATA_PATH}: no free source port below 1024 after {PORT_ATTEMPTS} tries")
