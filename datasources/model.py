"""Data shared by the probe engine and every provider."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal

Outcome = Literal["userdata", "detected", "absent", "error"]


class NotDetected(Exception):
    """The provider's cloud is not here ("not this cloud"): refused, 404 on a native path, no device."""


class ProviderError(Exception):
    """The provider's cloud is here, but fetching from it failed ("this cloud, but it failed")."""


@dataclass(frozen=True)
class ProviderInfo:
    """What a plugin tells the engine about one provider it implements.

    ``cloud`` names the cloud the provider talks to, for the DMI fast path: when DMI
    positively names one cloud, providers whose ``cloud`` is a different, non-None value are
    skipped without network access. ``None`` (e.g. cdrom) means "local, never skipped".
    ``order`` places the provider in the default order (lower first).
    """

    name: str
    cloud: str | None
    order: int
    aliases: tuple[str, ...] = ()
    description: str = ""


@dataclass
class Metadata:
    """What one provider found. ``userdata`` is the raw bytes after decoding (None: none given)."""

    provider: str
    instance_id: str | None = None
    hostname: str | None = None
    local_hostname: str | None = None
    region: str | None = None
    zone: str | None = None
    public_ipv4: str | None = None
    local_ipv4: str | None = None
    ssh_keys: list[str] = field(default_factory=list)
    userdata: bytes | None = None

    def normalised(self) -> dict[str, object]:
        """The ``metadata.json`` document of DESIGN.md."""
        return {
            "provider": self.provider,
            "instance_id": self.instance_id,
            "hostname": self.hostname,
            "region": self.region,
            "zone": self.zone,
            "public_ipv4": self.public_ipv4,
            "local_ipv4": self.local_ipv4,
            "ssh_keys": list(self.ssh_keys),
            "has_userdata": self.userdata is not None,
        }


@dataclass(frozen=True)
class Dmi:
    """The DMI strings of ``/sys/class/dmi/id`` (empty string when unreadable)."""

    sys_vendor: str = ""
    product_name: str = ""
    product_serial: str = ""
    product_uuid: str = ""
    chassis_asset_tag: str = ""
    board_vendor: str = ""


@dataclass
class FetchContext:
    """Everything a provider's fetch may use.

    ``base_url`` is the provider's base URL (already replaced by ``DATASOURCES_<NAME>_URL``
    when set; no trailing slash). ``deadline`` is a ``time.monotonic()`` value no request may
    outlive. ``env`` is the process environment (so tests can pass their own). ``log`` writes
    one line to the log (stderr).
    """

    provider: str
    base_url: str
    deadline: float
    dmi: Dmi
    env: Mapping[str, str]
    log: Callable[[str], None]
