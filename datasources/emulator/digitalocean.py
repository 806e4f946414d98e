"""Emulator of the DigitalOcean droplet metadata service (169.254.169.254).

``GET /metadata/v1.json`` (the whole document; ``user_data`` absent when there is none) and the
``/metadata/v1/`` path API (``hostname``, ``id``, ``region``, ``public-keys`` (one a line),
``user-data`` (404 when none), ``interfaces/public/0/ipv4/address``, ...).
"""

from __future__ import annotations

import json
from typing import Any

from datasources.emulator import _tree
from datasources.emulator.base import Emulator, Reply, Request


class DigitalOceanEmulator(Emulator):
    """The DigitalOcean metadata service."""

    provider = "digitalocean"

    def droplet_id(self) -> int:
        """The numeric droplet id (the configured instance id when numeric)."""
        return int(self.config.instance_id) if self.config.instance_id.isdigit() else 2756294

    def nics(self) -> dict[str, list[dict[str, Any]]]:
        """The ``interfaces`` section: one public and one private NIC."""

        def nic(address: str, kind: str) -> dict[str, Any]:
            gateway = address.rsplit(".", 1)[0] + ".1"
            return {
                "ipv4": {"ip_address": address, "netmask": "255.255.240.0", "gateway": gateway},
                "mac": "ea:00:00:00:00:01" if kind == "public" else "ea:00:00:00:00:02",
                "type": kind,
            }

        cfg = self.config
        return {"public": [nic(cfg.public_ipv4, "public")], "private": [nic(cfg.local_ipv4, "private")]}

    def document(self) -> dict[str, object]:
        """The ``/metadata/v1.json`` document."""
        cfg = self.config

        doc: dict[str, object] = {
            "droplet_id": self.droplet_id(),
            "hostname": cfg.hostname,
            "vendor_data": "#cloud-config\n",
            "public_keys": list(cfg.ssh_keys),
            "auth_key": "0123456789abcdef",
            "region": cfg.region,
            "interfaces": self.nics(),
            "floating_ip": {"ipv4": {"active": False}},
            "dns": {"nameservers": ["2001:4860:4860::8844", "8.8.8.8"]},
            "tags": [],
            "features": {"dhcp_enabled": False},
        }
        if cfg.userdata is not None:
            doc["user_data"] = cfg.userdata.decode("utf-8", "surrogateescape")
        return doc

    def path_tree(self) -> dict[str, object]:
        """The ``/metadata/v1/`` path API as a tree."""
        doc = self.document()
        tree: dict[str, object] = {
            "id": doc["droplet_id"],
            "hostname": doc["hostname"],
            "region": doc["region"],
            "public-keys": "".join(f"{key}\n" for key in self.config.ssh_keys),
            "vendor-data": doc["vendor_data"],
            # the path API also names the address "address" (what linuxkit reads)
            "interfaces": {
                kind: [{**nic, "ipv4": {**nic["ipv4"], "address": nic["ipv4"]["ip_address"]}} for nic in nics]
                for kind, nics in self.nics().items()
            },
            "dns": doc["dns"],
            "tags": "",
        }
        if self.config.userdata is not None:
            tree["user-data"] = self.config.userdata
        return tree

    def route(self, req: Request) -> Reply:
        """Answer as the DigitalOcean metadata service."""
        if req.path == "/metadata/v1.json":
            return Reply(200, json.dumps(self.document()).encode(), _tree.JSON)
        if req.path == "/metadata/v1" or req.path.startswith("/metadata/v1/"):
            return _tree.serve_path(self.path_tree(), req.path[len("/metadata/v1") :])
        return _tree.not_found()


EMULATOR = DigitalOceanEmulator
