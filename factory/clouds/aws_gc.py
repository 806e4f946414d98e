"""``factory gc aws``: find and remove leftovers tagged ``k3os-factory:bake-id`` that are not products.

Found: instances (not terminated), volumes, security groups, key pairs, AMIs and snapshots whose
``k3os-factory:state`` is not ``complete``. Age comes from the ``k3os-factory:created`` tag, else the
resource's own creation time; a resource of unknown age is removed only with ``--older-than 0s``.
Bakes still running on this host (journal + live pid) are skipped.

Regions: ``--region`` alone when given; otherwise the default region plus every region named in the
journals of dead bakes on this host (a bake killed while copying leaves AMIs in the copy regions).
A dead bake's journal is deleted once a sweep of all its regions finds nothing of it left.

Removal order: instances (wait terminated) -> AMIs (+ their snapshots) -> snapshots -> volumes ->
security groups (DependencyViolation retried) -> key pairs.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TextIO

import botocore.exceptions

from factory.clouds import aws_api
from factory.clouds.base import GcItem
from factory.clouds.common import age_seconds, remove_in_order
from factory.journal import JournalState, read_journals
from factory.pipeline import BAKE_ID_TAG, CREATED_TAG, STATE_COMPLETE, STATE_TAG

if TYPE_CHECKING:
    from mypy_boto3_ec2.client import EC2Client

ORDER = ("instance", "image", "snapshot", "volume", "security-group", "key-pair")
#: seconds to wait for a terminated instance before its volumes/AMIs are removed
TERMINATE_WAIT_S = 600.0


@dataclass
class Sweep:
    """One gc run: the regions looked at, every tagged non-product found (any age), dead journals."""

    regions: list[str]
    found: list[GcItem] = field(default_factory=list)
    dead_journals: list[JournalState] = field(default_factory=list)

    def older_than(self, seconds: float) -> list[GcItem]:
        """The leftovers at least ``seconds`` old (unknown age only when ``seconds`` is 0)."""
        keep = [i for i in self.found if i.age_s >= seconds and (i.age_s != float("inf") or seconds <= 0)]
        return sorted(keep, key=lambda i: (ORDER.index(i.kind), i.region, i.id))


def _age(tags: dict[str, str], fallback: Any) -> float:
    return age_seconds(tags.get(CREATED_TAG) or fallback)


def sweep(main_region: str, explicit_region: bool, ec2_for: Callable[[str], EC2Client]) -> Sweep:
    """Scan the regions (see the module docstring) for tagged leftovers of bakes not running here."""
    journals = list(read_journals("aws"))
    running = {j.bake_id for j in journals if j.running()}
    dead = [j for j in journals if not j.running()]
    regions = [main_region]
    if not explicit_region:
        for journal in dead:
            regions += [r.region for r in journal.outstanding if r.region]
    result = Sweep(list(dict.fromkeys(regions)), dead_journals=dead)
    for region in result.regions:
        result.found += find_leftovers(ec2_for(region), region, running)
    return result


def find_leftovers(ec2: EC2Client, region: str, skip_bakes: set[str]) -> list[GcItem]:
    """Every tagged, non-product resource in ``region`` (any age), except those of ``skip_bakes``."""
    tag_filter: list[Any] = [{"Name": "tag-key", "Values": [BAKE_ID_TAG]}]
    found: list[GcItem] = []

    def add(kind: str, rid: str, raw_tags: Any, created: Any) -> None:
        tags = aws_api.tag_dict(raw_tags)
        bake = tags.get(BAKE_ID_TAG, "")
        if bake and bake not in skip_bakes and tags.get(STATE_TAG) != STATE_COMPLETE:
            found.append(GcItem(kind, rid, region, bake, _age(tags, created)))

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
    return found


def _remove_one(ec2: EC2Client, item: GcItem) -> None:
    if item.kind == "instance":
        aws_api.terminate_instance(ec2, item.id, TERMINATE_WAIT_S, 2.0)
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


def remove_leftovers(ec2_for: Callable[[str], EC2Client], items: list[GcItem], out: TextIO) -> list[GcItem]:
    """Remove ``items`` in dependency order; print one line each; return the ones that failed."""

    def remove(item: GcItem) -> bool:
        try:
            _remove_one(ec2_for(item.region), item)
        except botocore.exceptions.ClientError as exc:
            if aws_api.is_not_found(exc):
                return False
            raise
        return True

    errors = (botocore.exceptions.ClientError, TimeoutError)
    return remove_in_order(items, ORDER, remove, str, out, errors=errors)


def forget_finished_journals(done: Sweep, removed: list[GcItem]) -> list[str]:
    """Delete the journals of dead bakes of which nothing is left in any of their regions; return
    their bake ids. A bake's resource counts as left if the sweep found it and it was not removed."""
    gone = {(i.kind, i.id, i.region) for i in removed}
    left = {i.bake_id for i in done.found if (i.kind, i.id, i.region) not in gone}
    forgotten: list[str] = []
    for journal in done.dead_journals:
        regions = {r.region for r in journal.outstanding if r.region}
        if journal.bake_id in left or not regions <= set(done.regions):
            continue
        journal.path.unlink(missing_ok=True)
        forgotten.append(journal.bake_id)
    return forgotten
