"""Single AWS steps against moto in-process (``mock_aws``): source AMI resolution and the builder launch."""

from __future__ import annotations

import argparse
import base64
import io
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from factory.clouds.aws_api import Clients
from factory.clouds.aws_steps import CANONICAL_OWNER, AwsBake
from factory.clouds.base import BakeRequest
from factory.journal import Journal
from factory.pipeline import BakeContext


@pytest.fixture
def mocked(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for key in ("AWS_ENDPOINT_URL", "AWS_PROFILE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    with mock_aws():
        yield


def _bake(tmp_path: Path, **opts: object) -> tuple[AwsBake, BakeContext]:
    args = argparse.Namespace(
        source_ami=None, arch="amd64", ssm_parameter=None, copy_to_regions=[], instance_type="t3.small",
        subnet_id=None, share_with=[], public=False, encrypt=False, kms_key_id=None,
    )  # fmt: skip
    vars(args).update(opts)
    request = BakeRequest("k3os-x", "http://x/k.iso", None, None, True, "k3os: {}\n", tags={"team": "a"})
    ctx = BakeContext(
        cloud="aws",
        name="k3os-x",
        bake_id="b",
        journal=Journal("b", "aws", "k3os-x", tmp_path),
        stream=io.StringIO(),
    )
    return AwsBake(args, request, Clients("us-east-1"), b"#!/bin/sh\necho hi\n"), ctx


def test_source_ami_falls_back_to_canonical_describe_images(mocked: None, tmp_path: Path) -> None:
    bake, ctx = _bake(tmp_path)
    bake.source_ami(ctx)
    image = boto3.client("ec2", "us-east-1").describe_images(ImageIds=[ctx.state["source_ami"]])["Images"][0]
    assert image["OwnerId"] == CANONICAL_OWNER and "ubuntu" in image["Name"]


def test_source_ami_from_ssm_parameter(mocked: None, tmp_path: Path) -> None:
    ec2 = boto3.client("ec2", "us-east-1")
    wanted = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    boto3.client("ssm", "us-east-1").put_parameter(Name="/test/ubuntu", Value=wanted, Type="String")
    bake, ctx = _bake(tmp_path, ssm_parameter="/test/ubuntu")
    bake.source_ami(ctx)
    assert ctx.state["source_ami"] == wanted


def test_launch_tags_instance_and_volumes_and_stops_on_shutdown(mocked: None, tmp_path: Path) -> None:
    ec2 = boto3.client("ec2", "us-east-1")
    bake, ctx = _bake(tmp_path)
    ctx.state["source_ami"] = ec2.describe_images(Owners=["amazon"])["Images"][0]["ImageId"]
    bake.launch(ctx)
    inst = ec2.describe_instances(InstanceIds=[bake.instance_id])["Reservations"][0]["Instances"][0]
    tags = {t["Key"]: t["Value"] for t in inst["Tags"]}
    assert (
        tags["k3os-factory:bake-id"] == ctx.bake_id
        and tags["team"] == "a"
        and tags["Name"] == "k3os-x-builder"
    )
    vol_id = inst["BlockDeviceMappings"][0]["Ebs"]["VolumeId"]
    vol_tags = {t["Key"]: t["Value"] for t in ec2.describe_volumes(VolumeIds=[vol_id])["Volumes"][0]["Tags"]}
    assert vol_tags["k3os-factory:bake-id"] == ctx.bake_id
    attr = ec2.describe_instance_attribute(
        InstanceId=bake.instance_id, Attribute="instanceInitiatedShutdownBehavior"
    )
    assert attr["InstanceInitiatedShutdownBehavior"]["Value"] == "stop"
    data = ec2.describe_instance_attribute(InstanceId=bake.instance_id, Attribute="userData")["UserData"][
        "Value"
    ]
    assert base64.b64decode(data) == b"#!/bin/sh\necho hi\n"
    assert '"created"' in (tmp_path / f"{ctx.bake_id}.jsonl").read_text()
