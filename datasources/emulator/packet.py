"""Emulator of the Equinix Metal (Packet) metadata service.

``GET /metadata`` (JSON) and ``GET /userdata`` (raw; 404 when none). Like the real service it
answers **406 Not Acceptable** when the request's ``Accept`` header admits neither the JSON nor
the text answer (``*/*`` always does; no Accept header at all is taken as ``*/*``).

Options: ``error=MESSAGE`` makes ``/metadata`` answer ``{"error": MESSAGE}`` with status
``error_status`` (default 200). The emulator speaks plain HTTP; point ``DATASOURCES_PACKET_URL`` at it.
"""

from __future__ import annotations

import json

from datasources.emulator import _tree
from datasources.emulator.base import Emulator, Reply, Request


def accepts(accept_header: str | None, content_type: str) -> bool:
    """Whether an Accept header admits ``content_type`` (``type/subtype``)."""
    if accept_header is None or not accept_header.strip():
        return True
    major = content_type.split("/", 1)[0]
    for item in accept_header.split(","):
        media = item.split(";", 1)[0].strip().lower()
        if media in ("*/*", f"{major}/*", content_type):
            return True
    return False


class PacketEmulator(Emulator):
    """The Equinix Metal metadata service."""

    provider = "packet"

    def metadata(self) -> dict[str, object]:
        """The ``/metadata`` document."""
        cfg = self.config
        return {
            "id": cfg.instance_id,
            "hostname": cfg.hostname,
            "iqn": f"iqn.2026-01.net.packet:device.{cfg.instance_id[:8]}",
            "plan": "c3.small.x86",
            "class": "c3.small.x86",
            "facility": cfg.zone,
            "metro": cfg.region,
            "tags": [],
            "ssh_keys": list(cfg.ssh_keys),
            "operating_system": {"slug": "custom_ipxe", "distro": "custom", "version": ""},
            "network": {
                "bonding": {"mode": 4},
                "interfaces": [{"name": "eth0", "mac": "0c:c4:7a:00:00:01", "bond": "bond0"}],
                "addresses": [
                    {
                        "id": "a1",
                        "address_family": 4,
                        "netmask": "255.255.255.254",
                        "public": True,
                        "management": True,
                        "enabled": True,
                        "cidr": 31,
                        "address": cfg.public_ipv4,
                        "gateway": cfg.public_ipv4,
                    },
                    {
                        "id": "a2",
                        "address_family": 4,
                        "netmask": "255.255.255.254",
                        "public": False,
                        "management": True,
                        "enabled": True,
                        "cidr": 31,
                        "address": cfg.local_ipv4,
                        "gateway": cfg.local_ipv4,
                    },
                ],
            },
            "api_url": "https://metadata.platformequinix.com",
            "phone_home_url": "http://tinkerbell.example/phone-home",
            "spot": {},
        }

    def route(self, req: Request) -> Reply:
        """Answer as the Equinix Metal metadata service."""
        opts = self.config.options
        if req.path == "/metadata":
            if not accepts(req.headers.get("accept"), "application/json"):
                return _tree.text_reply(b"Not Acceptable\n", 406)
            if "error" in opts:
                status = int(opts.get("error_status", "200"))
                return Reply(status, json.dumps({"error": opts["error"]}).encode(), _tree.JSON)
            return Reply(200, json.dumps(self.metadata()).encode(), _tree.JSON)
        if req.path == "/userdata":
            if not accepts(req.headers.get("accept"), "text/plain"):
                return _tree.text_reply(b"Not Acceptable\n", 406)
            if self.config.userdata is None:
                return _tree.not_found()
            return _tree.text_reply(self.config.userdata)
        return _tree.not_found()


EMULATOR = PacketEmulator
