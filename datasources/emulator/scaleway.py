"""Emulator of the Scaleway instance metadata service (169.254.42.42).

``GET /conf?format=json`` (JSON), ``GET /conf`` (legacy ``KEY=value`` lines), ``GET /user_data``
(the list of keys), ``GET /user_data/cloud-init`` and ``GET /vendor_data/cloud-init`` (404 when
unset). The ``user_data`` routes answer **403** with an explanatory body to requests from a
source port >= 1024, as Scaleway does; ``--option privileged_port=0`` turns that check off (for
unprivileged test runs). ``PATCH /state`` is accepted (boot check-in).
"""

from __future__ import annotations

import json
import urllib.parse

from datasources.emulator import _tree
from datasources.emulator.base import Emulator, Reply, Request

REFUSAL = (
    b"For security reasons, access to user_data is only allowed to queries originating from a port "
    b"below 1024 (e.g. curl --local-port 1-1023).\n"
)


class ScalewayEmulator(Emulator):
    """The Scaleway metadata service."""

    provider = "scaleway"

    def conf(self) -> dict[str, object]:
        """The ``/conf?format=json`` document."""
        cfg = self.config
        return {
            "id": cfg.instance_id,
            "name": cfg.hostname,
            "hostname": cfg.hostname,
            "commercial_type": "DEV1-S",
            "organization": "00000000-0000-0000-0000-000000000000",
            "zone": cfg.zone,
            "location": {"zone_id": cfg.zone, "platform_id": "14", "hypervisor_id": "1201"},
            "private_ip": cfg.local_ipv4,
            "public_ip": {"address": cfg.public_ipv4, "dynamic": False, "id": "ip-1", "family": "inet"},
            "public_ips_v4": [],
            "ipv6": None,
            "ssh_public_keys": [
                {"key": key, "fingerprint": f"256 MD5:{i:02x} (ssh-ed25519)"}
                for i, key in enumerate(cfg.ssh_keys)
            ],
            "tags": [],
            "timezone": "UTC",
        }

    def legacy_conf(self) -> bytes:
        """The shell-style ``/conf`` document linuxkit parsed."""
        conf = self.conf()
        lines = [
            f"ID={conf['id']}",
            f"NAME={conf['name']}",
            f"HOSTNAME={conf['hostname']}",
            f"COMMERCIAL_TYPE={conf['commercial_type']}",
            f"PRIVATE_IP={self.config.local_ipv4}",
            f"PUBLIC_IP_ADDRESS={self.config.public_ipv4}",
            f"LOCATION_ZONE_ID={self.config.zone}",
            f"SSH_PUBLIC_KEYS={len(self.config.ssh_keys)}",
        ]
        for i, key in enumerate(self.config.ssh_keys):
            lines.append(f"SSH_PUBLIC_KEYS_{i}_KEY='{key}'")
        return ("\n".join(lines) + "\n").encode()

    def privileged(self, req: Request) -> bool:
        """Whether the request may read user_data (source port below 1024, unless disabled)."""
        if not _tree.option_flag(self.config.options, "privileged_port", default=True):
            return True
        return req.client_port < 1024

    def route(self, req: Request) -> Reply:
        """Answer as the Scaleway metadata service."""
        query = urllib.parse.parse_qs(req.query)
        if req.path == "/state" and req.method == "PATCH":
            return Reply(200, b"", {})
        if req.path == "/conf":
            if query.get("format", [""])[-1] == "json":
                return Reply(200, json.dumps(self.conf()).encode(), _tree.JSON)
            return _tree.text_reply(self.legacy_conf())
        if req.path.startswith(("/user_data", "/vendor_data")):
            if not self.privileged(req):
                return _tree.text_reply(REFUSAL, 403)
            if req.path == "/user_data":
                keys = ["cloud-init"] if self.config.userdata is not None else []
                return Reply(200, json.dumps({"user_data": keys}).encode(), _tree.JSON)
            if req.path == "/user_data/cloud-init" and self.config.userdata is not None:
                return _tree.text_reply(self.config.userdata)
            return _tree.not_found()
        return _tree.not_found()


EMULATOR = ScalewayEmulator
