"""``factory gc aws``: find and remove leftovers tagged ``k3os-factory:bake-id`` that are not products.

Found: instances (not terminated), volumes, security groups, key pairs, AMIs and snapshots whose
``k3os-factory:state`` is not ``complete``. Age comes from the ``k3os-factory:created`` tag, else the
resource's own creation time; a resource of unknown age is removed only with ``--older-than 0s``.
Bakes still running on this host (journal + live pid) are skipped.
Removal order: instances (wait terminated) -> AMIs (+ their snapshots) -> snapshots -> volumes ->
security groups (DependencyViolation retried) -> key pairs.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TextIO

import botocore.exceptions

from factory.clouds import aws_api
from factory.clouds.base import GcItem
from factory.journal import read_journals
from factory.pipeline import BAKE_ID_TAG, CREATED_TAG, STATE_COMPLETE, STATE_TAG

if TYPE_CHECKING:
    from mypy_boto3_ec2.client import EC2Client

ORDER = ("instance", "image", "snapshot", "volume", "security-group", "key-pair")


def _age(tags: dict[str, str], fallback: Any) -> float:
    stamp: Any = tags.get(CREATED_TAG) or fallback
    if not stamp:
        return float("inf")
    if isinstance(stamp, str):
        try:
            stamp = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
        except ValueError:
            return float("inf")
    if isinstance(stamp, datetime):
        if stamp.tzinfo is None:
            stamp = stamp.replace(tzinfo=UTC)
        return max(0.0, time.time() - float(stamp.timestamp()))
    return float("inf")


def _running_bakes() -> set[str]:
    return {j.bake_id for j in read_journals("aws") if j.running()}


def find_leftovers(ec2: EC2Client, region: str, older_than_s: float) -> list[GcItem]:
    """Every tagged, non-product resource in ``region`` at least ``older_than_s`` old."""
    tag_filter: list[Any] = [{"Name": "tag-key", "Values": [BAKE_ID_TAG]}]
    skip = _running_bakes()
    found: list[GcItem] = []

    def add(kind: str, rid: str, raw_tags: Any, created: Any) -> None:
        tags = aws_api.tag_dict(raw_tags)
        bake = tags.get(BAKE_ID_TAG, "")
        if not bake or bake in skip or tags.get(STATE_TAG) == STATE_COMPLETE:
            return
        age = _age(tags, created)
        if age == float("inf") and older_than_s > 0:
            return  # age unknown: only an explicit --older-than 0s removes it
        if age >= older_than_s:
            found.append(GcItem(kind, rid, region, bake, age))

    for res in ec2.describe_instances(Filters=tag_filter)["Reservations"]:
        for inst in res["Instances"]:
            if inst["State"]["Name"] not in ("terminated", "shutting-down"):
                add("instance", inst["InstanceId"], inst.get("Tags"), inst.get("LaunchTime"))
    for image in ec2.describe_images(Owners=["self"], Filters=tag_filter)["Images"]:
        add("image", image["ImageId"], image.get("Tags"), image.get("CreationDate"))
    for snap in ec2.describe_snapshots(OwnerIds=["self"], Filters=tag_filter)["Snapshots"]:
        add("snapshot", snap["SnapshotId"], snap.get("Tags"), snap.get("StartTime"))
    for vol in ec2.describe_volumes(Filters=tag_filter)["Volumes"]:
        add("volume", vol["VolumeId"], vol.get("Tags"), vol.get("CreateTime"))
    for group in ec2.describe_security_groups(Filters=tag_filter)["SecurityGroups"]:
        add("security-group", group["GroupId"], group.get("Tags"), None)
    for pair in ec2.describe_key_pairs(Filters=tag_filter)["KeyPairs"]:
        add("key-pair", pair["KeyName"], pair.get("Tags"), pair.get("CreateTime"))
    return sorted(found, key=lambda i: (ORDER.index(i.kind), i.id))


def _remove_one(ec2: EC2Client, item: GcItem) -> None:
    if item.kind == "instance":
        aws_api.terminate_instance(ec2, item.id, 600.0, 2.0)
    elif item.kind == "image":
        aws_api.delete_image(ec2, item.id)
    elif item.kind == "snapshot":
        aws_api.retry_call(
            lambda: ec2.delete_snapshot(SnapshotId=item.id), retry_codes=["InvalidSnapshot.InUse"]
        )
    elif item.kind == "volume":
        aws_api.retry_call(lambda: ec2.delete_volume(VolumeId=item.id), retry_codes=["VolumeInUse"])
    elif item.kind == "security-group":
        aws_api.retry_call(
            lambda: ec2.delete_security_group(GroupId=item.id), retry_codes=["DependencyViolation"]
        )
    elif item.kind == "key-pair":
        ec2.delete_key_pair(KeyName=item.id)


def remove_leftovers(ec2: EC2Client, items: list[GcItem], out: TextIO) -> list[GcItem]:
    """Remove ``items`` in dependency order; print one line each; return the ones that failed."""
    failed: list[GcItem] = []
    for item in sorted(items, key=lambda i: ORDER.index(i.kind)):
        try:
            _remove_one(ec2, item)
        except (botocore.exceptions.ClientError, TimeoutError) as exc:
            if aws_api.is_not_found(exc):
                print(f"gone     {item.kind} {item.id} ({item.region})", file=out)
                continue
            print(f"FAILED   {item.kind} {item.id} ({item.region}): {exc}", file=out)
            failed.append(item)
            continue
        print(f"removed  {item.kind} {item.id} ({item.region}) bake {item.bake_id}", file=out)
    return failed
