"""``factory gc aws``, ``factory images aws list/prune`` and ``factory whoami aws`` against moto."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.aws.conftest import BAKE_TAG, FaultProxy, ec2, source_ami, tagged
from tests.cloudkit import FACTORY, run_factory

pytestmark = pytest.mark.cloud
STATE = "k3os-factory:state"


def _tags(bake: str, **extra: str) -> list[dict[str, Any]]:
    return [{"Key": BAKE_TAG, "Value": bake}, *({"Key": k, "Value": v} for k, v in extra.items())]


def _image(bake: str, name: str, state: str) -> str:
    client = ec2()
    inst = client.run_instances(ImageId=source_ami(), MinCount=1, MaxCount=1)["Instances"][0]["InstanceId"]
    spec = [{"ResourceType": "image", "Tags": _tags(bake, **{STATE: state})}]
    image = client.create_image(InstanceId=inst, Name=name, TagSpecifications=spec)["ImageId"]
    client.terminate_instances(InstanceIds=[inst])
    snaps = [
        b["Ebs"]["SnapshotId"]
        for b in client.describe_images(ImageIds=[image])["Images"][0]["BlockDeviceMappings"]
    ]
    client.create_tags(Resources=snaps, Tags=_tags(bake, **{STATE: state}))
    return str(image)


def _leftovers() -> dict[str, str]:
    client = ec2()
    spec = [{"ResourceType": "instance", "Tags": _tags("b-1")}]
    inst = client.run_instances(ImageId=source_ami(), MinCount=1, MaxCount=1, TagSpecifications=spec)
    vol = client.create_volume(
        AvailabilityZone="us-east-1a",
        Size=1,
        TagSpecifications=[{"ResourceType": "volume", "Tags": _tags("b-1")}],
    )
    sg = client.create_security_group(
        GroupName="k3os-b1",
        Description="leftover",
        TagSpecifications=[{"ResourceType": "security-group", "Tags": _tags("b-1")}],
    )
    key = client.create_key_pair(
        KeyName="k3os-b1", TagSpecifications=[{"ResourceType": "key-pair", "Tags": _tags("b-1")}]
    )
    return {
        "instance": inst["Instances"][0]["InstanceId"],
        "volume": vol["VolumeId"],
        "security-group": sg["GroupId"],
        "key-pair": key["KeyName"],
        "image": _image("b-2", "half-made", "pending"),
        "product": _image("b-3", "finished", "complete"),
    }


def test_gc_dry_run_then_removal(aws: FaultProxy, factory_env: dict[str, str]) -> None:
    ids = _leftovers()
    dry = run_factory([FACTORY, "gc", "aws", "--dry-run"], factory_env)
    assert dry.returncode == 0, dry.stderr
    for kind in ("instance", "volume", "security-group", "key-pair", "image"):
        assert ids[kind] in dry.stdout
    assert ids["product"] not in dry.stdout
    assert not {"TerminateInstances", "DeleteVolume", "DeregisterImage", "DeleteSnapshot"} & set(aws.seen)
    assert len(tagged()["instances"]) == 1
    young = run_factory([FACTORY, "gc", "aws", "--older-than", "2d"], factory_env)
    assert young.returncode == 0 and "nothing to remove" in young.stderr
    assert len(tagged()["instances"]) == 1
    proc = run_factory([FACTORY, "gc", "aws", "--region", "us-east-1", "--older-than", "0s"], factory_env)
    assert proc.returncode == 0, proc.stderr
    left = tagged()
    assert left["instances"] == [] and left["volumes"] == []
    assert left["images"] == [ids["product"]] and len(left["snapshots"]) == 1
    client = ec2()
    assert (
        client.describe_security_groups(Filters=[{"Name": "group-name", "Values": ["k3os-b1"]}])[
            "SecurityGroups"
        ]
        == []
    )
    assert client.describe_key_pairs(Filters=[{"Name": "tag-key", "Values": [BAKE_TAG]}])["KeyPairs"] == []


@pytest.mark.parametrize("duration", ["5", "1y", "-3h", "soon"])
def test_gc_bad_duration_exits_2(aws: FaultProxy, factory_env: dict[str, str], duration: str) -> None:
    proc = run_factory([FACTORY, "gc", "aws", f"--older-than={duration}"], factory_env)
    assert proc.returncode == 2 and "bad duration" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_images_list_and_prune(aws: FaultProxy, factory_env: dict[str, str]) -> None:
    made = [_image(f"b-{i}", f"k3os-v{i}", "complete") for i in range(3)]
    other = _image("b-x", "other-1", "complete")
    listed = run_factory([FACTORY, "images", "aws", "list", "--json"], factory_env)
    assert listed.returncode == 0, listed.stderr
    assert {i["image_id"] for i in json.loads(listed.stdout)} == {*made, other}
    dry = run_factory(
        [FACTORY, "images", "aws", "prune", "--keep", "1", "--name-prefix", "k3os-", "--dry-run"], factory_env
    )
    assert dry.returncode == 0 and dry.stdout.count("would delete") == 2
    assert len(ec2().describe_images(Owners=["self"])["Images"]) == 4
    proc = run_factory(
        [FACTORY, "images", "aws", "prune", "--keep", "1", "--name-prefix", "k3os-"], factory_env
    )
    assert proc.returncode == 0, proc.stderr
    remaining = {i["ImageId"] for i in ec2().describe_images(Owners=["self"])["Images"]}
    assert other in remaining and len(remaining & set(made)) == 1
    assert len(tagged()["snapshots"]) == 2  # the pruned images' snapshots went with them


def test_whoami(aws: FaultProxy, factory_env: dict[str, str]) -> None:
    proc = run_factory([FACTORY, "whoami", "aws", "--json"], factory_env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["account"] == "123456789012"


def test_region_from_aws_region_alone(aws: FaultProxy, factory_env: dict[str, str]) -> None:
    """AWS_REGION must take effect by itself (botocore reads only AWS_DEFAULT_REGION)."""
    env = {k: v for k, v in factory_env.items() if k != "AWS_DEFAULT_REGION"}
    env["AWS_REGION"] = "eu-west-1"
    proc = run_factory([FACTORY, "whoami", "aws", "--json"], env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["region"] == "eu-west-1"


def test_missing_credentials_exit_2(aws: FaultProxy, factory_env: dict[str, str], tmp_path: Path) -> None:
    env = {k: v for k, v in factory_env.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    env.update(AWS_EC2_METADATA_DISABLED="true", AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
               AWS_CONFIG_FILE=str(tmp_path / "none"))  # fmt: skip
    for cmd in (
        ["whoami", "aws"],
        ["bake", "aws", "--iso-url", "http://x/k.iso", "--insecure-skip-checksum"],
    ):
        proc = run_factory([FACTORY, *cmd], env)
        assert proc.returncode == 2, proc.stderr
        assert "no AWS credentials" in proc.stderr and "Traceback" not in proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
    assert ec2().describe_instances()["Reservations"] == []
