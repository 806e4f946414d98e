"""The datasources plugin manager (built in a function, never at import time)."""

from __future__ import annotations

# Built-in providers, each a plugin module implementing datasources.hookspecs.
DEFAULT_PLUGINS: tuple[str, ...] = (
    "datasources.providers.aws",
    "datasources.providers.gcp",
    "datasources.providers.openstack",
    "datasources.providers.packet",
    "datasources.providers.scaleway",
    "datasources.providers.vultr",
    "datasources.providers.hetzner",
    "datasources.providers.digitalocean",
    "datasources.providers.cdrom",
)
ENTRY_POINT_GROUP = "k3os_factory.datasources"
