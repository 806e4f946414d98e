"""The world behind the fake OpenStack API (:mod:`factory.fakes.openstack_api`): one project with its
user and application credential, flavors, Glance images, Neutron networks, Nova key pairs and servers,
and the clock that moves them along.

Time is counted in polls, not seconds: a server is ``BUILD`` for ``action_polls`` reads of it, then
``ACTIVE``; a builder (a server with user data) whose guest "runs the takeover" is ``SHUTOFF`` after
``guest_polls`` further reads; a snapshot image is ``queued``, then ``saving``, then ``active``; a
deleted server stays visible (task_state ``deleting``) for ``action_polls`` reads, then is gone. As in
Nova, deleting a server whose snapshot is still uploading kills that image.
"""

from __future__ import annotations

import datetime as dt
import threading
import uuid
from dataclasses import dataclass, field
from typing import Any

UBUNTU_IMAGE_ID = "3b0c6a2e-5d1f-4a52-9a55-1f0c0c0e2404"
OLD_UBUNTU_IMAGE_ID = "0d6b2c8a-7f3e-4c1b-8a11-2a2b2c2d2204"
NETWORK_ID = "8a1d3c9e-2f4b-4c6d-9e8f-0a1b2c3d4e5f"


def now_iso(offset_s: float = 0.0) -> str:
    """UTC now (plus ``offset_s``) as ``2024-05-01T12:00:00Z``, the way Nova and Glance print times."""
    when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=offset_s)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def new_id() -> str:
    """A fresh resource UUID."""
    return str(uuid.uuid4())


class ApiError(Exception):
    """An error answer: HTTP ``status`` and a message; the service shapes the body (see the API module)."""

    def __init__(self, status: int, message: str, kind: str = "") -> None:
        """``kind`` is the Neutron error type (``NetworkNotFound``) where one exists."""
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind


@dataclass
class Project:
    """The one project (tenant) the fake knows, with its user and an application credential."""

    id: str = "5c8f1e0a6e2b4d0c9b7a1f2e3d4c5b6a"
    name: str = "k3os-ci"
    domain_id: str = "default"
    domain_name: str = "Default"
    user_id: str = "1f2e3d4c5b6a47988796a5b4c3d2e1f0"
    user_name: str = "baker"
    password: str = "fake-os-password"
    app_cred_id: str = "9e8d7c6b5a4f43e2b1c0d9e8f7a6b5c4"
    app_cred_name: str = "k3os-factory"
    app_cred_secret: str = "fake-app-cred-secret"
    region: str = "RegionOne"


def _flavor(fid: str, name: str, vcpus: int, ram: int, disk: int) -> dict[str, Any]:
    return {
        "id": fid,
        "name": name,
        "vcpus": vcpus,
        "ram": ram,
        "disk": disk,
        "OS-FLV-EXT-DATA:ephemeral": 0,
        "swap": 0,
        "rxtx_factor": 1.0,
        "os-flavor-access:is_public": True,
        "OS-FLV-DISABLED:disabled": False,
        "description": None,
        "extra_specs": {},
    }


def glance_image(iid: str, name: str, owner: str, **extra: Any) -> dict[str, Any]:
    """A Glance v2 image document (core attributes; extra properties go to the top level too)."""
    doc: dict[str, Any] = {
        "id": iid,
        "name": name,
        "status": "active",
        "visibility": "public",
        "protected": False,
        "os_hidden": False,
        "owner": owner,
        "container_format": "bare",
        "disk_format": "qcow2",
        "min_disk": 0,
        "min_ram": 0,
        "size": 620756992,
        "virtual_size": 3758096384,
        "checksum": "6c0b1b2a6f8e4d1c9a7b3e5f2d4c6a8b",
        "os_hash_algo": "sha512",
        "os_hash_value": "ab" * 64,
        "created_at": now_iso(),
        "updated_at": now_iso(),
        "tags": [],
        "self": f"/v2/images/{iid}",
        "file": f"/v2/images/{iid}/file",
        "schema": "/v2/schemas/image",
    }
    doc.update(extra)
    return doc


@dataclass
class ServerState:
    """Fake-side bookkeeping of one server (the API document is ``doc``)."""

    doc: dict[str, Any]
    user_data: bytes = b""
    polls: int = 0
    off_at: int | None = None
    deleting_polls: int | None = None
    snapshot: str | None = None
    create_body: dict[str, Any] = field(default_factory=dict)


@dataclass
class World:
    """Everything the fake API serves, guarded by ``lock``."""

    action_polls: int = 2
    guest_polls: int = 3
    guest_powers_off: bool = True
    project: Project = field(default_factory=Project)
    flavors: list[dict[str, Any]] = field(default_factory=list)
    images: dict[str, dict[str, Any]] = field(default_factory=dict)
    image_polls: dict[str, int] = field(default_factory=dict)
    members: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    networks: list[dict[str, Any]] = field(default_factory=list)
    keypairs: list[dict[str, Any]] = field(default_factory=list)
    servers: dict[str, ServerState] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)

    def __post_init__(self) -> None:
        """Seed flavors, two Ubuntu images, one network and one key pair."""
        if not self.flavors:
            self.flavors = [
                _flavor("1", "m1.tiny", 1, 512, 1),
                _flavor("2", "m1.small", 1, 2048, 20),
                _flavor("3", "m1.medium", 2, 4096, 40),
            ]
        if not self.images:
            other = "0" * 32
            self.images[OLD_UBUNTU_IMAGE_ID] = glance_image(
                OLD_UBUNTU_IMAGE_ID, "ubuntu-24.04", other, created_at=now_iso(-86400 * 30)
            )
            self.images[UBUNTU_IMAGE_ID] = glance_image(
                UBUNTU_IMAGE_ID, "Ubuntu 24.04", other, os_distro="ubuntu", os_version="24.04"
            )
        if not self.networks:
            self.add_network("private", NETWORK_ID)
        if not self.keypairs:
            self.keypairs.append(
                {
                    "name": "ci-debug",
                    "type": "ssh",
                    "fingerprint": "aa:bb:cc:dd:ee:ff:00:11:22:33:44:55:66:77:88:99",
                    "public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFake ci-debug",
                }
            )

    def add_network(self, name: str, nid: str | None = None, external: bool = False) -> dict[str, Any]:
        """Add a Neutron network of the project (``router:external`` when ``external``)."""
        net = {
            "id": nid or new_id(),
            "name": name,
            "tenant_id": self.project.id,
            "project_id": self.project.id,
            "status": "ACTIVE",
            "admin_state_up": True,
            "shared": False,
            "router:external": external,
            "subnets": [new_id()],
            "mtu": 1450,
            "description": "",
            "tags": [],
            "created_at": now_iso(),
            "updated_at": now_iso(),
        }
        self.networks.append(net)
        return net

    # -- clocks -------------------------------------------------------------------------------------
    def tick_server(self, sid: str) -> ServerState | None:
        """One read of server ``sid``: advance its state; None once it is gone."""
        state = self.servers.get(sid)
        if state is None:
            return None
        doc = state.doc
        if state.deleting_polls is not None:
            state.deleting_polls += 1
            if state.deleting_polls > self.action_polls:
                del self.servers[sid]
                return None
            return state
        state.polls += 1
        if doc["status"] == "BUILD" and state.polls > self.action_polls:
            self._set_status(doc, "ACTIVE", "active", 1)
            doc["OS-SRV-USG:launched_at"] = now_iso()
            doc["OS-EXT-STS:task_state"] = None
            doc["hostId"] = "4f1c0b0e6a7d2c3b8e9f0a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f"
            if state.user_data and self.guest_powers_off:
                state.off_at = state.polls + self.guest_polls
        if doc["status"] == "ACTIVE" and state.off_at is not None and state.polls >= state.off_at:
            self._set_status(doc, "SHUTOFF", "stopped", 4)
            state.off_at = None
        if state.snapshot and self.images.get(state.snapshot, {}).get("status") == "active":
            state.snapshot = None
            doc["OS-EXT-STS:task_state"] = None
        return state

    @staticmethod
    def _set_status(doc: dict[str, Any], status: str, vm_state: str, power: int) -> None:
        doc["status"] = status
        doc["OS-EXT-STS:vm_state"] = vm_state
        doc["OS-EXT-STS:power_state"] = power
        doc["updated"] = now_iso()

    def tick_image(self, iid: str) -> dict[str, Any] | None:
        """One read of image ``iid``: a snapshot goes queued -> saving -> active."""
        image = self.images.get(iid)
        if image is None or iid not in self.image_polls:
            return image
        self.image_polls[iid] += 1
        polls = self.image_polls[iid]
        if image["status"] == "queued" and polls > self.action_polls:
            image["status"] = "saving"
        if image["status"] == "saving" and polls > 2 * self.action_polls:
            image["status"] = "active"
            image["size"] = 2147483648
            image["updated_at"] = now_iso()
            del self.image_polls[iid]
        return image

    def delete_server(self, sid: str) -> None:
        """Start deleting; a snapshot of it that is still being uploaded is killed (as in Nova)."""
        state = self.servers[sid]
        state.deleting_polls = 0
        state.doc["OS-EXT-STS:task_state"] = "deleting"
        if state.snapshot and state.snapshot in self.images:
            self.images.pop(state.snapshot)
            self.image_polls.pop(state.snapshot, None)

    def labelled(self, key: str, value: str | None = None) -> dict[str, list[str]]:
        """Ids of servers (metadata) and images (properties) carrying ``key`` (with ``value``)."""

        def has(mapping: dict[str, Any]) -> bool:
            return key in mapping and (value is None or mapping[key] == value)

        with self.lock:
            return {
                "servers": [s for s, st in self.servers.items() if has(st.doc["metadata"])],
                "images": [i for i, img in self.images.items() if has(img)],
            }


@dataclass
class Call:
    """One request as a service handler sees it: ``ids`` are the path's id segments in order."""

    method: str
    path: str
    ids: list[str]
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any
    base_url: str
    microversion: tuple[int, int] = (2, 1)

    def arg(self, name: str) -> str | None:
        """The first value of query parameter ``name``."""
        values = self.query.get(name)
        return values[0] if values else None


#: (status, JSON body or None, extra headers)
Reply = tuple[int, Any, dict[str, str]]
