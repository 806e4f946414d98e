"""Emulator of the OpenStack Nova metadata service.

Serves the native tree (``/openstack`` version list, ``/openstack/<ver>/meta_data.json``,
``user_data`` (404 when none), ``vendor_data.json``, ``vendor_data2.json``,
``network_data.json``) **and** the EC2-compatible tree Nova also serves (``/latest/meta-data/...``,
``/latest/user-data``, dated versions), which is what fools naive EC2 probes. There is no IMDSv2
token route: ``PUT /latest/api/token`` is a 404 as on Nova.

Options: ``versions=V1,V2,...`` (the versions listed by ``/openstack``, ``latest`` always added;
default: every version up to 2018-08-27); ``ec2=0`` turns the EC2-compatible tree off.
"""

from __future__ import annotations

import json

from datasources.emulator import _tree
from datasources.emulator.base import Emulator, Reply, Request

DEFAULT_VERSIONS = (
    "2012-08-10",
    "2013-04-04",
    "2013-10-17",
    "2015-10-15",
    "2016-06-30",
    "2016-10-06",
    "2017-02-22",
    "2018-08-27",
)
EC2_VERSIONS = ("1.0", "2007-01-19", "2009-04-04", "latest")


class OpenStackEmulator(Emulator):
    """The Nova metadata service."""

    provider = "openstack"

    def versions(self) -> list[str]:
        """The versions ``/openstack`` lists (oldest first, ``latest`` last)."""
        listed = self.config.options.get("versions")
        chosen = [v.strip() for v in listed.split(",") if v.strip()] if listed else list(DEFAULT_VERSIONS)
        return [*chosen, "latest"]

    def uuid(self) -> str:
        """The instance UUID (the configured instance id)."""
        return self.config.instance_id

    def meta_data(self) -> dict[str, object]:
        """``meta_data.json``."""
        cfg = self.config
        keys = {f"key-{i}": key for i, key in enumerate(cfg.ssh_keys)}
        return {
            "uuid": self.uuid(),
            "hostname": cfg.hostname,
            "name": cfg.hostname.split(".", 1)[0],
            "availability_zone": cfg.zone,
            "launch_index": 0,
            "project_id": "6a8f2b1c4d5e4f60a1b2c3d4e5f60718",
            "public_keys": keys,
            "keys": [{"name": name, "type": "ssh", "data": key} for name, key in keys.items()],
            "meta": {},
            "devices": [],
            "random_seed": "c2VlZA==",
        }

    def native(self, parts: list[str]) -> Reply:
        """``/openstack/...``."""
        if not parts:
            return _tree.text_reply("".join(f"{v}\n" for v in self.versions()).encode())
        version, files = parts[0], parts[1:]
        if version not in self.versions():
            return _tree.not_found()
        documents: dict[str, bytes] = {
            "meta_data.json": json.dumps(self.meta_data()).encode(),
            "vendor_data.json": b"{}",
            "vendor_data2.json": b"{}",
            "network_data.json": json.dumps({"links": [], "networks": [], "services": []}).encode(),
        }
        if self.config.userdata is not None:
            documents["user_data"] = self.config.userdata
        if not files:
            return _tree.text_reply("".join(f"{name}\n" for name in documents).encode())
        body = documents.get("/".join(files))
        if body is None:
            return _tree.not_found()
        return Reply(200, body, _tree.JSON if files[-1].endswith(".json") else {})

    def ec2_tree(self) -> dict[str, object]:
        """The EC2-compatible ``meta-data`` tree."""
        cfg = self.config
        keys = {str(i): {"openssh-key": key} for i, key in enumerate(cfg.ssh_keys)}
        return {
            "ami-id": "ami-00000001",
            "hostname": cfg.hostname,
            "instance-id": "i-00000001",
            "instance-type": "m1.small",
            "local-hostname": cfg.hostname,
            "local-ipv4": cfg.local_ipv4,
            "public-hostname": cfg.hostname,
            "public-ipv4": cfg.public_ipv4,
            "placement": {"availability-zone": cfg.zone},
            "public-keys": keys,
            "block-device-mapping": {"ami": "vda", "root": "/dev/vda"},
        }

    def ec2(self, version: str, rest: list[str]) -> Reply:
        """``/<version>/...`` of the EC2-compatible tree."""
        if not rest:
            entries = ["meta-data/"] + (["user-data"] if self.config.userdata is not None else [])
            return _tree.text_reply("".join(f"{e}\n" for e in entries).encode())
        if rest == ["user-data"]:
            if self.config.userdata is None:
                return _tree.not_found()
            return Reply(200, self.config.userdata, {})
        if rest[0] != "meta-data":
            return _tree.not_found()
        if rest[1:] == ["public-keys"]:
            return _tree.text_reply(
                "".join(f"{i}=key-{i}\n" for i in range(len(self.config.ssh_keys))).encode()
            )
        return _tree.serve_path(self.ec2_tree(), "/".join(rest[1:]))

    def route(self, req: Request) -> Reply:
        """Answer as Nova's metadata API."""
        if req.method not in ("GET", "HEAD"):
            return _tree.not_found()
        parts = [p for p in req.path.split("/") if p]
        ec2_on = _tree.option_flag(self.config.options, "ec2", default=True)
        if not parts:
            listing = [*EC2_VERSIONS] if ec2_on else []
            return _tree.text_reply("".join(f"{v}\n" for v in [*listing, "openstack"]).encode())
        if parts[0] == "openstack":
            return self.native(parts[1:])
        if ec2_on and parts[0] in EC2_VERSIONS:
            return self.ec2(parts[0], parts[1:])
        return _tree.not_found()


EMULATOR = OpenStackEmulator
