"""The state behind the fake Compute Engine API (:mod:`factory.fakes.gcp_api`): instances, disks,
images and the long-running operations that change them, with the validation rules and error shapes
of the real API.

Every mutation answers an ``Operation``; the change becomes visible when the operation completes, after
``op_polls`` GETs of that operation (as a real client polls it). A running builder instance "powers
itself off" (status ``TERMINATED``) after ``poweroff_after`` GETs of the instance, like the k3OS
takeover does; ``None`` keeps it running forever (the guest hangs).
"""

from __future__ import annotations

import itertools
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from factory.fakes.gcp_rules import (
    API,
    DISK_REF_RE,
    IMAGE_REF_RE,
    MACHINE_TYPE_RE,
    MACHINE_TYPES,
    PUBLIC_IMAGES,
    ZONES,
    ApiError,
    check_labels,
    check_name,
    label_fingerprint,
    not_found,
    now_rfc3339,
)

__all__ = ["ZONES", "ApiError", "Model", "Operation"]


@dataclass
class Operation:
    """A long-running operation; ``apply`` runs when it completes (or ``fail`` when it errors)."""

    data: dict[str, Any]
    polls_left: int
    apply: Callable[[], None]
    error: tuple[str, str, int] | None = None
    rollback: Callable[[], None] | None = None


@dataclass
class Model:
    """All resources of one fake project. Callers hold :attr:`lock`."""

    project: str = "fake-project"
    project_number: str = "123456789012"
    principal: str = "baker@fake-project.iam.gserviceaccount.com"
    op_polls: int = 2
    poweroff_after: int | None = 3
    instances: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    disks: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    images: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    operations: dict[str, Operation] = field(default_factory=dict)
    request_ids: dict[str, str] = field(default_factory=dict)
    op_faults: dict[str, tuple[str, str, int]] = field(default_factory=dict)
    instance_polls: dict[str, int] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1000))

    def __post_init__(self) -> None:
        for project, rows in PUBLIC_IMAGES.items():
            for name, family, arch in rows:
                self.images[(project, name)] = self._image_doc(
                    project, name, {"family": family, "architecture": arch}, {}, "READY"
                )

    # -- ids, links --------------------------------------------------------------------------------
    def new_id(self) -> str:
        """A numeric resource id (int64 as a JSON string, like the API)."""
        return str(next(self._ids) * 7919)

    def link(self, path: str) -> str:
        """Full self link of a path under this project."""
        return f"{API}/projects/{self.project}/{path}"

    def check_project(self, project: str) -> None:
        """Only one project exists; others are 404 as for a project the caller cannot see."""
        if project != self.project:
            raise not_found(f"projects/{project}")

    def check_zone(self, zone: str) -> None:
        """Unknown zones are 404."""
        if zone not in ZONES:
            raise not_found(f"projects/{self.project}/zones/{zone}")

    # -- operations --------------------------------------------------------------------------------
    def start_operation(
        self,
        call: str,
        kind: str,
        target: str,
        zone: str | None,
        apply: Callable[[], None],
        *,
        request_id: str | None = None,
        rollback: Callable[[], None] | None = None,
        polls: int | None = None,
    ) -> dict[str, Any]:
        """Record an operation that runs ``apply`` after ``op_polls`` polls; return its JSON."""
        if request_id and request_id in self.request_ids:
            return self.operations[self.request_ids[request_id]].data
        name = f"operation-{int(time.time() * 1000)}-{uuid.uuid4().hex[:12]}"
        where = f"zones/{zone}/operations/{name}" if zone else f"global/operations/{name}"
        data: dict[str, Any] = {
            "kind": "compute#operation",
            "id": self.new_id(),
            "name": name,
            "operationType": kind,
            "targetLink": target,
            "targetId": self.new_id(),
            "status": "RUNNING",
            "user": self.principal,
            "progress": 0,
            "insertTime": now_rfc3339(),
            "startTime": now_rfc3339(),
            "selfLink": self.link(where),
        }
        if zone:
            data["zone"] = self.link(f"zones/{zone}")
        op = Operation(data, self.op_polls if polls is None else polls, apply, rollback=rollback)
        op.error = self.op_faults.pop(call, None)
        self.operations[name] = op
        if request_id:
            self.request_ids[request_id] = name
        if op.polls_left <= 0:
            self._finish(op)
        return data

    def _finish(self, op: Operation) -> None:
        op.data.update(status="DONE", progress=100, endTime=now_rfc3339())
        if op.error:
            code, message, http_status = op.error
            op.data["error"] = {"errors": [{"code": code, "message": message}]}
            op.data["httpErrorStatusCode"] = http_status
            op.data["httpErrorMessage"] = {
                400: "BAD REQUEST",
                403: "FORBIDDEN",
                503: "SERVICE UNAVAILABLE",
            }.get(http_status, "ERROR")
            if op.rollback:
                op.rollback()
            return
        op.apply()

    def poll_operation(self, name: str, zone: str | None) -> dict[str, Any]:
        """GET of an operation: counts down and completes it."""
        op = self.operations.get(name)
        expect_zone = self.link(f"zones/{zone}") if zone else None
        if op is None or op.data.get("zone") != expect_zone:
            where = f"zones/{zone}/operations/{name}" if zone else f"global/operations/{name}"
            raise not_found(f"projects/{self.project}/{where}")
        if op.data["status"] != "DONE":
            op.polls_left -= 1
            if op.polls_left <= 0:
                self._finish(op)
            else:
                op.data["progress"] = 50
        return op.data

    # -- images ------------------------------------------------------------------------------------
    def _image_doc(
        self, project: str, name: str, body: dict[str, Any], labels: dict[str, str], status: str
    ) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "kind": "compute#image",
            "id": self.new_id(),
            "creationTimestamp": now_rfc3339(),
            "name": name,
            "status": status,
            "selfLink": f"{API}/projects/{project}/global/images/{name}",
            "labels": labels,
            "labelFingerprint": label_fingerprint(labels),
            "diskSizeGb": "10",
            "archiveSizeBytes": "1073741824",
        }
        for key in ("family", "description", "storageLocations", "architecture", "sourceDisk"):
            if body.get(key):
                doc[key] = body[key]
        return doc

    def image(self, project: str, name: str) -> dict[str, Any]:
        """One image (404 if missing)."""
        found = self.images.get((project, name))
        if found is None:
            raise not_found(f"projects/{project}/global/images/{name}")
        return found

    def image_from_family(self, project: str, family: str) -> dict[str, Any]:
        """Newest READY, non-deprecated image of ``family``."""
        rows = [
            img
            for (proj, _), img in self.images.items()
            if proj == project and img.get("family") == family and img["status"] == "READY"
        ]
        if not rows:
            raise not_found(f"projects/{project}/global/images/family/{family}")
        return max(rows, key=lambda i: str(i["creationTimestamp"]))

    def insert_image(self, body: dict[str, Any], request_id: str | None, force: bool) -> dict[str, Any]:
        """images.insert from a source disk (the disk may not be in use by a running instance)."""
        name = check_name(body.get("name"), "resource.name")
        labels = check_labels(body.get("labels"), "resource.labels")
        if request_id and request_id in self.request_ids:
            return self.operations[self.request_ids[request_id]].data
        if (self.project, name) in self.images:
            raise ApiError(
                409,
                "alreadyExists",
                f"The resource 'projects/{self.project}/global/images/{name}' already exists",
            )
        match = DISK_REF_RE.search(str(body.get("sourceDisk", "")))
        if not match:
            raise ApiError(400, "required", "Required field 'resource.sourceDisk' not specified")
        zone, disk_name = match.groups()
        disk = self.disks.get((zone, disk_name))
        if disk is None:
            raise not_found(f"projects/{self.project}/zones/{zone}/disks/{disk_name}")
        for user in disk.get("users", []):
            inst = self.instances.get((zone, user.rsplit("/", 1)[-1]))
            if inst and inst["status"] not in ("TERMINATED", "STOPPED") and not force:
                raise ApiError(
                    400,
                    "resourceInUseByAnotherResource",
                    f"The disk resource '{disk['selfLink']}' is already being used by '{user}'",
                )
        doc = self._image_doc(self.project, name, {**body, "sourceDisk": disk["selfLink"]}, labels, "PENDING")
        self.images[(self.project, name)] = doc

        def ready() -> None:
            doc["status"] = "READY"

        def failed() -> None:
            self.images.pop((self.project, name), None)

        return self.start_operation(
            "images.insert", "insert", doc["selfLink"], None, ready, request_id=request_id, rollback=failed
        )

    def delete_image(self, name: str, request_id: str | None) -> dict[str, Any]:
        """images.delete."""
        doc = self.image(self.project, name)

        def gone() -> None:
            self.images.pop((self.project, name), None)

        return self.start_operation(
            "images.delete", "delete", doc["selfLink"], None, gone, request_id=request_id
        )

    def set_image_labels(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """images.setLabels with the optimistic-locking fingerprint."""
        doc = self.image(self.project, name)
        labels = check_labels(body.get("labels"), "labels")
        if body.get("labelFingerprint") != doc["labelFingerprint"]:
            raise ApiError(
                412, "conditionNotMet", "Labels fingerprint either invalid or resource labels have changed"
            )

        def apply() -> None:
            doc["labels"] = labels
            doc["labelFingerprint"] = label_fingerprint(labels)

        return self.start_operation("images.setLabels", "setLabels", doc["selfLink"], None, apply, polls=0)

    # -- instances and disks ------------------------------------------------------------------------
    def instance(self, zone: str, name: str) -> dict[str, Any]:
        """One instance (404 if missing)."""
        self.check_zone(zone)
        found = self.instances.get((zone, name))
        if found is None:
            raise not_found(f"projects/{self.project}/zones/{zone}/instances/{name}")
        return found

    def insert_instance(self, zone: str, body: dict[str, Any], request_id: str | None) -> dict[str, Any]:
        """instances.insert: validates the body, creates the instance and its boot disk."""
        self.check_zone(zone)
        name = check_name(body.get("name"), "resource.name")
        labels = check_labels(body.get("labels"), "resource.labels")
        if request_id and request_id in self.request_ids:
            return self.operations[self.request_ids[request_id]].data
        mt = MACHINE_TYPE_RE.search(str(body.get("machineType", "")))
        if not mt or mt.group(1) != zone or mt.group(2) not in MACHINE_TYPES:
            raise ApiError(
                400,
                "invalid",
                f"Invalid value for field 'resource.machineType': '{body.get('machineType')}'.",
            )
        disks = body.get("disks") or []
        boot = next((d for d in disks if d.get("boot")), None)
        if boot is None:
            raise ApiError(400, "invalid", "Invalid value for field 'resource.disks': no boot disk.")
        init = boot.get("initializeParams") or {}
        ref = IMAGE_REF_RE.search(str(init.get("sourceImage", "")))
        if not ref:
            raise ApiError(
                400, "invalid", "Invalid value for field 'resource.disks[0].initializeParams.sourceImage'."
            )
        project, is_family, image_name = ref.groups()
        source = self.image_from_family(project, image_name) if is_family else self.image(project, image_name)
        disk_labels = check_labels(init.get("labels"), "resource.disks[0].initializeParams.labels")
        if (zone, name) in self.instances:
            raise ApiError(
                409,
                "alreadyExists",
                f"The resource 'projects/{self.project}/zones/{zone}/instances/{name}' already exists",
            )
        disk_name = init.get("diskName") or name
        if (zone, disk_name) in self.disks:
            raise ApiError(
                409,
                "alreadyExists",
                f"The resource 'projects/{self.project}/zones/{zone}/disks/{disk_name}' already exists",
            )
        self_link = self.link(f"zones/{zone}/instances/{name}")
        disk = {
            "kind": "compute#disk",
            "id": self.new_id(),
            "creationTimestamp": now_rfc3339(),
            "name": disk_name,
            "zone": self.link(f"zones/{zone}"),
            "sizeGb": str(init.get("diskSizeGb") or 10),
            "status": "READY",
            "sourceImage": source["selfLink"],
            "labels": disk_labels,
            "labelFingerprint": label_fingerprint(disk_labels),
            "users": [self_link],
            "selfLink": self.link(f"zones/{zone}/disks/{disk_name}"),
        }
        inst = {
            "kind": "compute#instance",
            "id": self.new_id(),
            "creationTimestamp": now_rfc3339(),
            "name": name,
            "zone": self.link(f"zones/{zone}"),
            "machineType": self.link(f"zones/{zone}/machineTypes/{mt.group(2)}"),
            "status": "PROVISIONING",
            "labels": labels,
            "labelFingerprint": label_fingerprint(labels),
            "metadata": {
                "kind": "compute#metadata",
                "fingerprint": "abc=",
                "items": list((body.get("metadata") or {}).get("items") or []),
            },
            "networkInterfaces": body.get("networkInterfaces") or [],
            "disks": [
                {
                    "boot": True,
                    "autoDelete": bool(boot.get("autoDelete", False)),
                    "source": disk["selfLink"],
                    "deviceName": disk_name,
                }
            ],
            "selfLink": self_link,
        }
        self.instances[(zone, name)] = inst
        self.disks[(zone, disk_name)] = disk

        def running() -> None:
            inst["status"] = "RUNNING"

        def failed() -> None:
            self.instances.pop((zone, name), None)
            self.disks.pop((zone, disk_name), None)

        return self.start_operation(
            "instances.insert", "insert", self_link, zone, running, request_id=request_id, rollback=failed
        )

    def get_instance(self, zone: str, name: str) -> dict[str, Any]:
        """instances.get; a running builder powers itself off after ``poweroff_after`` GETs."""
        inst = self.instance(zone, name)
        if inst["status"] == "STOPPING":
            inst["status"] = "TERMINATED"
        elif inst["status"] == "RUNNING" and self.poweroff_after is not None:
            count = self.instance_polls.get(inst["selfLink"], 0) + 1
            self.instance_polls[inst["selfLink"]] = count
            if count >= self.poweroff_after:
                inst["status"] = "STOPPING"
        return inst

    def delete_instance(self, zone: str, name: str, request_id: str | None) -> dict[str, Any]:
        """instances.delete: the instance goes when the operation completes, with its auto-delete disks."""
        inst = self.instance(zone, name)

        def gone() -> None:
            self.instances.pop((zone, name), None)
            for att in inst["disks"]:
                key = (zone, att["source"].rsplit("/", 1)[-1])
                disk = self.disks.get(key)
                if disk is None:
                    continue
                disk["users"] = [u for u in disk.get("users", []) if u != inst["selfLink"]]
                if att.get("autoDelete"):
                    self.disks.pop(key, None)

        inst["status"] = "STOPPING" if inst["status"] == "RUNNING" else inst["status"]
        return self.start_operation(
            "instances.delete", "delete", inst["selfLink"], zone, gone, request_id=request_id
        )

    def delete_disk(self, zone: str, name: str, request_id: str | None) -> dict[str, Any]:
        """disks.delete: refused while an instance uses the disk."""
        self.check_zone(zone)
        disk = self.disks.get((zone, name))
        if disk is None:
            raise not_found(f"projects/{self.project}/zones/{zone}/disks/{name}")
        if disk.get("users"):
            raise ApiError(
                400,
                "resourceInUseByAnotherResource",
                f"The disk resource '{disk['selfLink']}' is already being used by '{disk['users'][0]}'",
            )

        def gone() -> None:
            self.disks.pop((zone, name), None)

        return self.start_operation(
            "disks.delete", "delete", disk["selfLink"], zone, gone, request_id=request_id
        )
