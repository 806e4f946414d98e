"""Checks of a ``factory bake aws`` request that need AWS but create nothing, run after the STS
identity check and before the first step: a failure here is the user's to fix, so it is a
:class:`~factory.pipeline.UsageError` (exit 2), not a failed bake (exit 1).

- the AMI name is free in the main region and in every ``--copy-to-regions`` region (AMI names are
  unique per account and region; finding out after the builder ran wastes the whole bake);
- ``--source-ami`` exists in the region and matches ``--arch``;
- ``--subnet-id`` exists in the region;
- with ``--public``, image block public access is not on in any target region.

API errors other than "not found" propagate (the bake command reports them as exit 1).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

import botocore.exceptions
from botocore.parsers import ResponseParserError

from factory.clouds import aws_api
from factory.pipeline import UsageError

if TYPE_CHECKING:
    from mypy_boto3_ec2.client import EC2Client

#: ``--arch`` -> EC2's ``Architecture`` of an AMI
EC2_ARCH = {"amd64": "x86_64", "arm64": "arm64"}


def check_bake_targets(clients: aws_api.Clients, args: argparse.Namespace, name: str) -> None:
    """Raise UsageError for the first input AWS says is wrong (see the module docstring)."""
    ec2 = clients.ec2()
    if args.source_ami:
        _check_source_ami(ec2, clients.region, args.source_ami, args.arch)
    if args.subnet_id:
        _check_subnet(ec2, clients.region, args.subnet_id)
    for region in [clients.region, *args.copy_to_regions]:
        regional = clients.ec2(region)
        _check_name_free(regional, region, name)
        if args.public:
            _check_public_allowed(regional, region)


def _check_source_ami(ec2: EC2Client, region: str, ami: str, arch: str) -> None:
    try:
        images = ec2.describe_images(ImageIds=[ami])["Images"]
    except botocore.exceptions.ClientError as exc:
        if not aws_api.is_not_found(exc):
            raise
        images = []
    if not images:
        raise UsageError(f"--source-ami {ami}: no such AMI in {region} (or not visible to this account)")
    found = images[0].get("Architecture", "")
    if found and found != EC2_ARCH[arch]:
        raise UsageError(f"--source-ami {ami} is {found}, but --arch {arch} needs {EC2_ARCH[arch]}")


def _check_subnet(ec2: EC2Client, region: str, subnet: str) -> None:
    try:
        found = ec2.describe_subnets(SubnetIds=[subnet])["Subnets"]
    except botocore.exceptions.ClientError as exc:
        if not aws_api.is_not_found(exc):
            raise
        found = []
    if not found:
        raise UsageError(f"--subnet-id {subnet}: no such subnet in {region}")


def _check_name_free(ec2: EC2Client, region: str, name: str) -> None:
    taken = ec2.describe_images(Owners=["self"], Filters=[{"Name": "name", "Values": [name]}])["Images"]
    if taken:
        raise UsageError(
            f"--name {name!r}: an AMI with that name already exists in {region} ({taken[0]['ImageId']}); "
            "choose another name or remove it (factory images aws prune)"
        )


def _check_public_allowed(ec2: EC2Client, region: str) -> None:
    try:
        state = ec2.get_image_block_public_access_state()["ImageBlockPublicAccessState"]
    except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError, ResponseParserError):
        return  # older endpoints (and moto) do not know the call; the share step says so in the log
    if state == "block-new-sharing":
        raise UsageError(
            f"--public: image block public access is on in {region}; turn it off with "
            f"`aws ec2 disable-image-block-public-access --region {region}` or drop --public"
        )
