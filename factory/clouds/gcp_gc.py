"""``factory gc gcp`` and ``factory images gcp``: find leftovers labelled ``k3os-factory-bake-id`` that
are not finished images, remove them in a safe order, and list/delete finished images.

Found: instances and disks in every zone (aggregated lists) and images of the project whose
``k3os-factory-state`` label is not ``complete``. Age comes from the ``k3os-factory-created`` label
(epoch seconds), else ``creationTimestamp``. Bakes still running on this host (journal with a live pid)
are skipped. Removal order: instances (their auto-delete disks go with them) -> images -> disks.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any, TextIO

from google.api_core import exceptions as gexc
from google.cloud import compute_v1

from factory.clouds.base import GcItem
from factory.clouds.gcp_client import (
    BAKE_ID_LABEL,
    CREATED_LABEL,
    STATE_LABEL,
    Clients,
    delete_and_wait,
)
from factory.journal import read_journals
from factory.pipeline import STATE_COMPLETE

ORDER = ("instance", "image", "disk")
GLOBAL = "global"
REMOVE_WAIT_S = 600.0


def _age(labels: dict[str, str], created: str) -> float:
    stamp = labels.get(CREATED_LABEL, "")
    if stamp.isdigit():
        return max(0.0, time.time() - int(stamp))
    try:
        return max(0.0, time.time() - datetime.fromisoformat(created.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return float("inf")


def _running_bakes() -> set[str]:
    return {j.bake_id for j in read_journals("gcp") if j.running()}


def find_leftovers(clients: Clients, older_than_s: float) -> list[GcItem]:
    """Every labelled, non-product instance, disk and image at least ``older_than_s`` old."""
    project = clients.project
    flt = f"labels.{BAKE_ID_LABEL}:*"
    skip = _running_bakes()
    found: list[GcItem] = []

    def add(kind: str, name: str, where: str, labels: dict[str, str], created: str) -> None:
        bake = labels.get(BAKE_ID_LABEL, "")
        if not bake or bake in skip or labels.get(STATE_LABEL) == STATE_COMPLETE:
            return
        age = _age(labels, created)
        if age == float("inf") and older_than_s > 0:
            return
        if age >= older_than_s:
            found.append(GcItem(kind, name, where, bake, age))

    instances = clients.instances().aggregated_list(
        request=compute_v1.AggregatedListInstancesRequest(project=project, filter=flt)
    )
    for scope, scoped in instances:
        for inst in scoped.instances:
            add("instance", inst.name, scope.rsplit("/", 1)[-1], dict(inst.labels), inst.creation_timestamp)
    disks = clients.disks().aggregated_list(
        request=compute_v1.AggregatedListDisksRequest(project=project, filter=flt)
    )
    for scope, scoped in disks:
        for disk in scoped.disks:
            add("disk", disk.name, scope.rsplit("/", 1)[-1], dict(disk.labels), disk.creation_timestamp)
    for image in clients.images().list(request=compute_v1.ListImagesRequest(project=project, filter=flt)):
        add("image", image.name, GLOBAL, dict(image.labels), image.creation_timestamp)
    return sorted(found, key=lambda i: (ORDER.index(i.kind), i.id))


def remove_leftovers(clients: Clients, items: list[GcItem], out: TextIO, poll_s: float = 2.0) -> list[GcItem]:
    """Remove ``items`` in dependency order; print one line each; return the ones that failed."""
    failed: list[GcItem] = []
    for item in sorted(items, key=lambda i: ORDER.index(i.kind)):
        zone = None if item.region == GLOBAL else item.region
        try:
            removed = delete_and_wait(clients, item.kind, item.id, zone, REMOVE_WAIT_S, poll_s)
        except (gexc.GoogleAPICallError, TimeoutError, RuntimeError) as exc:
            print(f"FAILED   {item.kind} {item.id} ({item.region}): {exc}", file=out)
            failed.append(item)
            continue
        if not removed:
            print(f"gone     {item.kind} {item.id} ({item.region})", file=out)
            continue
        print(f"removed  {item.kind} {item.id} ({item.region}) bake {item.bake_id}", file=out)
    return failed


def list_images(clients: Clients) -> list[dict[str, Any]]:
    """Finished images of this factory in the project, newest first."""
    flt = f"labels.{STATE_LABEL}={STATE_COMPLETE}"
    rows = []
    for image in clients.images().list(
        request=compute_v1.ListImagesRequest(project=clients.project, filter=flt)
    ):
        labels = dict(image.labels)
        rows.append(
            {
                "region": GLOBAL,
                "image_id": image.name,
                "name": image.name,
                "created": image.creation_timestamp,
                "bake_id": labels.get(BAKE_ID_LABEL, ""),
                "family": image.family,
                "project": clients.project,
            }
        )
    return sorted(rows, key=lambda r: _timestamp(str(r["created"])), reverse=True)


def _timestamp(text: str) -> float:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def delete_image(clients: Clients, name: str, poll_s: float = 2.0) -> None:
    """Delete one image and wait for the operation."""
    delete_and_wait(clients, "image", name, None, REMOVE_WAIT_S, poll_s)
