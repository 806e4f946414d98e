"""Emulator of the Vultr metadata service (169.254.169.254).

``GET /v1.json`` (the whole document), the ``/v1/...`` path API (``/v1/`` index, ``hostname``,
``instanceid``, ``public-keys`` (one a line), ``region/regioncode``,
``interfaces/<n>/ipv4/address``, ...) and ``GET /user-data/user-data`` (404 when none).

Options: ``empty_userdata=list|string`` how ``user-data`` looks in ``/v1.json`` when there is
none (default ``list``, i.e. ``[]``); ``ec2=1`` also serves a minimal EC2-style
``/latest/meta-data/`` tree (the real service has one, which is why linuxkit's aws probe
mistook Vultr for AWS); ``instance_v2_id=UUID``.
"""

from __future__ import annotations

import json

from datasources.emulator import _tree
from datasources.emulator.base import Emulator, Reply, Request


class VultrEmulator(Emulator):
    """The Vultr metadata service."""

    provider = "vultr"

    def document(self) -> dict[str, object]:
        """The ``/v1.json`` document."""
        cfg, opts = self.config, self.config.options
        if cfg.userdata is not None:
            userdata: object = cfg.userdata.decode("utf-8", "surrogateescape")
        else:
            userdata = "" if opts.get("empty_userdata") == "string" else []
        subid = cfg.instance_id if cfg.instance_id.isdigit() else "12345678"
        return {
            "hostname": cfg.hostname,
            "local-hostname": cfg.hostname,
            "instance-v2-id": opts.get("instance_v2_id", cfg.instance_id),
            "instance-id": subid,
            "instanceid": subid,
            "interfaces": [
                {
                    "ipv4": {
                        "address": cfg.public_ipv4,
                        "gateway": "203.0.113.1",
                        "netmask": "255.255.254.0",
                        "additional": [],
                    },
                    "ipv6": {
                        "address": "2001:db8::1",
                        "network": "2001:db8::",
                        "prefix": "64",
                        "additional": [],
                    },
                    "mac": "56:00:04:00:00:01",
                    "network-type": "public",
                },
                {
                    "ipv4": {
                        "address": cfg.local_ipv4,
                        "gateway": "",
                        "netmask": "255.255.240.0",
                        "additional": [],
                    },
                    "mac": "5a:00:04:00:00:01",
                    "network-type": "private",
                    "network-v2-id": "f3c6c5b1-0000-4000-8000-000000000001",
                },
            ],
            "public-keys": list(cfg.ssh_keys),
            "region": {"regioncode": cfg.region.upper(), "countrycode": "US"},
            "user-defined": [],
            "startup-script": "echo No configured startup script",
            "user-data": userdata,
            "vendor-data": "#cloud-config\n",
            "bgp": {},
        }

    def path_tree(self) -> dict[str, object]:
        """The ``/v1/`` path API as a tree."""
        doc = self.document()
        tree: dict[str, object] = {
            key: value for key, value in doc.items() if key not in ("public-keys", "user-data", "interfaces")
        }
        tree["public-keys"] = "".join(f"{key}\n" for key in self.config.ssh_keys)
        tree["interfaces"] = doc["interfaces"]
        return tree

    def route(self, req: Request) -> Reply:
        """Answer as the Vultr metadata service."""
        cfg = self.config
        if req.path == "/v1.json":
            return Reply(200, json.dumps(self.document()).encode(), _tree.JSON)
        if req.path == "/user-data/user-data":
            return _tree.not_found() if cfg.userdata is None else _tree.text_reply(cfg.userdata)
        if req.path == "/v1" or req.path.startswith("/v1/"):
            return _tree.serve_path(self.path_tree(), req.path[len("/v1") :])
        if _tree.option_flag(cfg.options, "ec2") and req.path.startswith("/latest/"):
            ec2 = {
                "meta-data": {
                    "hostname": cfg.hostname,
                    "instance-id": cfg.instance_id,
                    "local-hostname": cfg.hostname,
                    "public-ipv4": cfg.public_ipv4,
                }
            }
            return _tree.serve_path(ec2, req.path[len("/latest") :])
        return _tree.not_found()


EMULATOR = VultrEmulator
