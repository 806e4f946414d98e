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
from factory.clouds.common import Leftovers, age_seconds, remove_in_order
from factory.clouds.gcp_client import (
    BAKE_ID_LABEL,
    CREATED_LABEL,
    STATE_LABEL,
    Clients,
    delete_and_wait,
)
from factory.pipeline import STATE_COMPLETE

ORDER = ("instance", "image", "disk")
GLOBAL = "global"
REMOVE_WAIT_S = 600.0


def _age(labels: dict[str, str], created: str) -> float:
    stamp = labels.get(CREATED_LABEL, "")
    if stamp.isdigit():
        return max(0.0, time.time() - int(stamp))
    return age_seconds(created)


def find_leftovers(clients: Clients, older_than_s: float) -> list[GcItem]:
    """Every labelled, non-product instance, disk and image at least ``older_than_s`` old."""
    project = clients.project
    flt = f"labels.{BAKE_ID_LABEL}:*"
    found = Leftovers("gcp", older_than_s, unknown_age_is_young=True)

    def add(kind: str, name: str, where: str, labels: dict[str, str], created: str) -> None:
        bake, state = labels.get(BAKE_ID_LABEL, ""), labels.get(STATE_LABEL)
        found.offer(kind, name, where, bake, state, _age(labels, created))

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
    return found.in_order(ORDER)


def remove_leftovers(clients: Clients, items: list[GcItem], out: TextIO, poll_s: float = 2.0) -> list[GcItem]:
    """Remove ``items`` in dependency order; print one line each; return the ones that failed."""

    def remove(item: GcItem) -> bool:
        zone = None if item.region == GLOBAL else item.region
        return bool(delete_and_wait(clients, item.kind, item.id, zone, REMOVE_WAIT_S, poll_s))

    errors = (gexc.GoogleAPICallError, TimeoutError, RuntimeError)
    return remove_in_order(items, ORDER, remove, str, out, errors=errors)


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
