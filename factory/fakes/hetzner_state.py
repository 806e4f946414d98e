"""The world behind the fake Hetzner Cloud API (:mod:`factory.fakes.hetzner_api`): servers, images,
actions, server types, locations, networks and SSH keys, shaped like the real API's JSON.

Time is counted in polls, not seconds: every GET the API answers ticks the world once
(:meth:`World.tick`). A running action finishes after ``action_polls`` ticks; a builder server whose
user data looks like the k3os-factory builder script (the "guest") powers itself off ``guest_polls``
ticks after it started running, as the k3OS takeover does. Tests can turn the guest off
(``guest_poweroff = False``) to play a builder that never stops, and stall actions by command
(``stalled_commands = {"create_image"}``) to play a snapshot that takes forever.
"""

from __future__ import annotations

import itertools
import re
import time
from dataclasses import dataclass, field
from typing import Any

#: Hetzner's error codes and the HTTP status the API answers them with.
ERROR_STATUS: dict[str, int] = {
    "forbidden": 403,
    "unauthorized": 401,
    "invalid_input": 400,
    "json_error": 400,
    "locked": 423,
    "not_found": 404,
    "rate_limit_exceeded": 429,
    "resource_limit_exceeded": 403,
    "resource_unavailable": 412,
    "server_error": 500,
    "service_error": 503,
    "uniqueness_error": 409,
    "protected": 423,
    "maintenance": 503,
    "conflict": 409,
    "unsupported_error": 422,
    "token_readonly": 403,
    "unavailable": 503,
    "timeout": 504,
}

_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")
HOSTNAME = re.compile(r"^(?=.{1,63}$)[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?$")
BUILDER_MARKER = "--takeover --poweroff --no-format"


class ApiError(Exception):
    """An error the API answers as ``{"error": {"code", "message", "details"}}``."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        """``code`` is one of :data:`ERROR_STATUS`."""
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}

    @property
    def status(self) -> int:
        """The HTTP status for this error code."""
        return ERROR_STATUS.get(self.code, 400)


def now_iso() -> str:
    """The current UTC time as the API writes it (``2024-01-02T03:04:05+00:00``)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())


def label_problem(labels: Any) -> str | None:
    """Why ``labels`` is not a valid Hetzner label map (None when it is)."""
    if not isinstance(labels, dict):
        return "labels must be an object"
    for key, value in labels.items():
        if not isinstance(key, str) or not isinstance(value, str):
            return "label keys and values must be strings"
        prefix, _, name = key.rpartition("/")
        if not _LABEL_NAME.match(name) or (
            prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix))
        ):
            return f"invalid label key {key!r}"
        if prefix == "hetzner.cloud" or prefix.endswith(".hetzner.cloud"):
            return f"label key {key!r} uses the reserved hetzner.cloud prefix"
        if value and not _LABEL_NAME.match(value):
            return f"invalid label value {value!r} for key {key!r}"
    return None


def _selector_terms(selector: str) -> list[str]:
    terms, depth, current = [], 0, ""
    for char in selector:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            terms.append(current.strip())
            current = ""
        else:
            current += char
    if current.strip():
        terms.append(current.strip())
    return terms


def matches_selector(labels: dict[str, str], selector: str) -> bool:
    """Kubernetes-style label selector as the API implements it: ``k``, ``!k``, ``k=v``, ``k==v``,
    ``k!=v``, ``k in (a,b)``, ``k notin (a,b)``; terms joined by ``,`` must all hold."""
    for term in _selector_terms(selector):
        set_match = re.match(r"^(\S+)\s+(in|notin)\s+\((.*)\)$", term)
        if set_match:
            key, op, raw = set_match.groups()
            values = {v.strip() for v in raw.split(",")}
            inside = key in labels and labels[key] in values
            if inside != (op == "in"):
                return False
        elif "!=" in term:
            key, _, value = term.partition("!=")
            if labels.get(key.strip()) == value.strip():
                return False
        elif "=" in term:
            key, _, value = term.replace("==", "=").partition("=")
            if labels.get(key.strip()) != value.strip():
                return False
        elif term.startswith("!"):
            if term[1:].strip() in labels:
                return False
        elif term not in labels:
            return False
    return True


def check_selector(selector: str) -> None:
    """ApiError(invalid_input) for a selector the API would reject."""
    for term in _selector_terms(selector):
        key = re.split(r"\s+|!=|==|=", term.lstrip("!"), maxsplit=1)[0]
        if not key or label_problem({key: ""}):
            raise ApiError("invalid_input", f"invalid label_selector {selector!r}")


@dataclass
class Action:
    """An async action: ``running`` until ``remaining`` ticks passed, then ``success`` (or ``error``)."""

    id: int
    command: str
    resources: list[dict[str, Any]]
    remaining: int
    status: str = "running"
    started: str = field(default_factory=now_iso)
    finished: str | None = None
    error: dict[str, str] | None = None
    on_done: Any = None

    def to_json(self) -> dict[str, Any]:
        """The API's action object."""
        progress = 100 if self.status != "running" else 0
        return {
            "id": self.id,
            "command": self.command,
            "status": self.status,
            "progress": progress,
            "started": self.started,
            "finished": self.finished,
            "resources": self.resources,
            "error": self.error,
        }


@dataclass
class World:
    """Everything the fake project holds, plus the knobs tests turn."""

    action_polls: int = 2
    guest_polls: int = 3
    guest_poweroff: bool = True
    stalled_commands: set[str] = field(default_factory=set)
    servers: dict[int, dict[str, Any]] = field(default_factory=dict)
    images: dict[int, dict[str, Any]] = field(default_factory=dict)
    actions: dict[int, Action] = field(default_factory=dict)
    server_types: list[dict[str, Any]] = field(default_factory=list)
    locations: list[dict[str, Any]] = field(default_factory=list)
    networks: list[dict[str, Any]] = field(default_factory=list)
    ssh_keys: list[dict[str, Any]] = field(default_factory=list)
    user_data: dict[int, str] = field(default_factory=dict)
    create_requests: dict[int, dict[str, Any]] = field(default_factory=dict)
    _ids: Any = field(default_factory=lambda: itertools.count(4711))
    _guest_clock: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        """Seed the catalogue: locations, server types, Ubuntu system images, a network, a key."""
        for lid, (name, city, zone) in enumerate(
            [("fsn1", "Falkenstein", "eu-central"), ("nbg1", "Nuremberg", "eu-central"),
             ("hel1", "Helsinki", "eu-central"), ("ash", "Ashburn, VA", "us-east")], 1
        ):  # fmt: skip
            self.locations.append(
                {"id": lid, "name": name, "description": f"{city} DC Park 1", "country": "DE",
                 "city": city, "latitude": 50.47612, "longitude": 12.370071, "network_zone": zone}
            )  # fmt: skip
        for tid, (name, arch, cores, mem, disk) in enumerate(
            [("cx22", "x86", 2, 4.0, 40), ("cx32", "x86", 4, 8.0, 80), ("cax11", "arm", 2, 4.0, 40)], 1
        ):  # fmt: skip
            self.server_types.append(
                {"id": tid, "name": name, "description": name.upper(), "cores": cores, "memory": mem,
                 "disk": disk, "deprecated": False, "deprecation": None, "prices": [],
                 "storage_type": "local", "cpu_type": "shared", "architecture": arch}
            )  # fmt: skip
        for iid, (name, arch) in enumerate(
            [("ubuntu-24.04", "x86"), ("ubuntu-24.04", "arm"), ("ubuntu-22.04", "x86")], 100
        ):
            self.images[iid] = self.image_json(iid, "system", name, f"Ubuntu {name[7:]}", arch, {})
            self.images[iid].update(os_flavor="ubuntu", os_version=name[7:], status="available")
        self.networks.append(
            {"id": 1, "name": "k3os-net", "ip_range": "10.0.0.0/16", "subnets": [], "routes": [],
             "servers": [], "load_balancers": [], "protection": {"delete": False}, "labels": {},
             "created": now_iso(), "expose_routes_to_vswitch": False}
        )  # fmt: skip
        self.ssh_keys.append(
            {"id": 1, "name": "ops", "fingerprint": "b7:2f:30:a0:2f:6c:58:6c:21:04:58:61:ba:06:3b:2f",
             "public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFakeFakeFake ops", "labels": {},
             "created": now_iso()}
        )  # fmt: skip

    def next_id(self) -> int:
        """A fresh id for any resource or action."""
        return int(next(self._ids))

    @staticmethod
    def image_json(
        iid: int, kind: str, name: str | None, description: str, arch: str, labels: dict[str, str]
    ) -> dict[str, Any]:
        """The API's image object."""
        return {
            "id": iid, "type": kind, "status": "creating", "name": name, "description": description,
            "image_size": None, "disk_size": 40, "created": now_iso(), "created_from": None,
            "bound_to": None, "os_flavor": "ubuntu", "os_version": None, "rapid_deploy": kind == "system",
            "protection": {"delete": False}, "deprecated": None, "deleted": None, "labels": labels,
            "architecture": arch,
        }  # fmt: skip

    # -- actions -----------------------------------------------------------------------------------
    def new_action(self, command: str, resources: list[tuple[int, str]], on_done: Any = None) -> Action:
        """Start an action on ``resources`` ([(id, type)]); ``on_done()`` runs when it succeeds."""
        action = Action(
            self.next_id(),
            command,
            [{"id": rid, "type": rtype} for rid, rtype in resources],
            self.action_polls,
            on_done=on_done,
        )
        self.actions[action.id] = action
        if action.remaining <= 0:
            self._finish(action)
        return action

    def _finish(self, action: Action, error: dict[str, str] | None = None) -> None:
        action.status = "error" if error else "success"
        action.error = error
        action.finished = now_iso()
        if not error and action.on_done:
            action.on_done()

    def fail_action(self, action: Action, code: str, message: str) -> None:
        """End a running action with an error (e.g. its resource was deleted underneath it)."""
        if action.status == "running":
            self._finish(action, {"code": code, "message": message})

    def running_action_on(self, rid: int, rtype: str) -> Action | None:
        """The running action that locks a resource, if any."""
        for action in self.actions.values():
            if action.status == "running" and {"id": rid, "type": rtype} in action.resources:
                return action
        return None

    def tick(self) -> None:
        """One poll went by: advance running actions and the builder guests."""
        for action in list(self.actions.values()):
            if action.status == "running" and action.command not in self.stalled_commands:
                action.remaining -= 1
                if action.remaining <= 0:
                    self._finish(action)
        for sid, server in list(self.servers.items()):
            if server["status"] != "running" or not self.guest_poweroff:
                continue
            if BUILDER_MARKER not in self.user_data.get(sid, ""):
                continue  # not our builder: nothing in the guest would power it off
            self._guest_clock[sid] = self._guest_clock.get(sid, 0) + 1
            if self._guest_clock[sid] >= self.guest_polls:
                server["status"] = "off"
