"""Emulator of the Hetzner Cloud metadata service, as it is since 2026-08-01: native routes only.

``GET /hetzner/v1/metadata`` (YAML), its leaves ``/hetzner/v1/metadata/{hostname, instance-id,
public-ipv4, local-ipv4, region, availability-zone, public-keys (JSON list), private-networks
(YAML), network-config (YAML)}`` and ``GET /hetzner/v1/userdata`` (200 with the data; without
userdata an empty 200, or 204 with ``--option empty_userdata=204``). Every EC2-compatible path
(``/latest/...``, ``/2009-04-04/...``) is a 404, as on the real service.
"""

from __future__ import annotations

import json

import yaml

from datasources.emulator import _tree
from datasources.emulator.base import Emulator, Reply, Request

PREFIX = "/hetzner/v1/metadata"


class HetznerEmulator(Emulator):
    """The Hetzner Cloud metadata service."""

    provider = "hetzner"

    def metadata(self) -> dict[str, object]:
        """The metadata document."""
        cfg = self.config
        instance_id: object = int(cfg.instance_id) if cfg.instance_id.isdigit() else cfg.instance_id
        return {
            "availability-zone": cfg.zone,
            "hostname": cfg.hostname,
            "instance-id": instance_id,
            "local-ipv4": "",
            "public-ipv4": cfg.public_ipv4,
            "public-keys": list(cfg.ssh_keys),
            "region": cfg.region,
            "vendor_data": "#cloud-config\n",
            "private-networks": [
                {
                    "ip": cfg.local_ipv4,
                    "alias_ips": [],
                    "interface_num": 2,
                    "mac_address": "86:00:00:00:00:02",
                    "network_id": 1234,
                    "network_name": "k3os",
                    "network": "10.0.0.0/16",
                    "subnet": "10.0.0.0/24",
                    "gateway": "10.0.0.1",
                }
            ],
            "network-config": {
                "version": 1,
                "config": [
                    {
                        "type": "physical",
                        "name": "eth0",
                        "mac_address": "96:00:00:00:00:01",
                        "subnets": [{"type": "dhcp", "ipv4": True}],
                    }
                ],
            },
        }

    def leaf(self, key: str) -> Reply:
        """``/hetzner/v1/metadata/<key>``."""
        doc = self.metadata()
        if key not in doc:
            return _tree.not_found()
        value = doc[key]
        if key == "public-keys":
            return Reply(200, json.dumps(value).encode(), _tree.JSON)
        if isinstance(value, dict | list):
            return _tree.text_reply(yaml.safe_dump(value, sort_keys=False).encode())
        return _tree.text_reply(str(value).encode())

    def route(self, req: Request) -> Reply:
        """Answer as Hetzner's metadata service (no EC2-compatible routes)."""
        if req.path.rstrip("/") == PREFIX:
            return _tree.text_reply(yaml.safe_dump(self.metadata(), sort_keys=False).encode())
        if req.path.startswith(PREFIX + "/"):
            return self.leaf(req.path[len(PREFIX) + 1 :].strip("/"))
        if req.path == "/hetzner/v1/userdata":
            if self.config.userdata is not None:
                return _tree.text_reply(self.config.userdata)
            if self.config.options.get("empty_userdata") == "204":
                return Reply(204, b"", {})
            return _tree.text_reply(b"")
        return _tree.not_found()


EMULATOR = HetznerEmulator
