"""The steps of ``factory bake aws``: source AMI -> builder -> running -> stopped -> image -> terminate
builder, then (from :mod:`factory.clouds.aws_images`) encrypt/copy to regions (parallel) -> share ->
mark complete. Each resource is journaled and gets its cleanup the moment AWS returned its id (see
:mod:`factory.pipeline`)."""

from __future__ import annotations

import argparse
import re
from typing import TYPE_CHECKING, Any

import botocore.exceptions

from factory.clouds import aws_api
from factory.clouds.aws_api import Clients, tag_list
from factory.clouds.aws_images import AwsImageSteps
from factory.clouds.base import BakeRequest
from factory.journal import Resource
from factory.pipeline import STATE_COMPLETE, STATE_PENDING, STATE_TAG, BakeContext, Step, StepFailed

if TYPE_CHECKING:
    from mypy_boto3_ec2.client import EC2Client

CANONICAL_OWNER = "099720109477"
SSM_UBUNTU = "/aws/service/canonical/ubuntu/server/24.04/stable/current/{arch}/hvm/ebs-gp3/ami-id"
UBUNTU_NAME = "ubuntu/images/*/ubuntu-*-{arch}-server-*"
#: ``ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20240701``: LTS = an even year's .04
_UBUNTU_VERSION = re.compile(r"/ubuntu-[a-z]+-(\d\d)\.04-")


def is_ubuntu_lts(name: str) -> bool:
    """True for the name of a Canonical Ubuntu LTS server image (``YY.04`` with an even ``YY``)."""
    match = _UBUNTU_VERSION.search(name)
    return match is not None and int(match.group(1)) % 2 == 0


CLEANUP_WAIT_S = 600.0


class AwsBake(AwsImageSteps):
    """One AWS bake: :meth:`steps` returns the pipeline steps (image and publishing steps inherited)."""

    def __init__(
        self, args: argparse.Namespace, request: BakeRequest, clients: Clients, userdata: bytes
    ) -> None:
        """Bind options; nothing is called on AWS here."""
        super().__init__(args, request, clients)
        self.userdata = userdata
        self.instance_id = ""

    def steps(self) -> list[Step]:
        """The ordered pipeline steps (their ``plan`` is what ``--dry-run`` prints)."""
        a = self.args
        src = a.source_ami or f"newest Canonical Ubuntu 24.04 {a.arch} (SSM, else describe_images)"
        steps = [
            Step("source-ami", self.source_ami, f"resolve {src} in {self.region}"),
            Step("launch-builder", self.launch, f"run_instances {a.instance_type} (shutdown=stop), tagged"),
            Step("wait-running", self.wait_running, "wait for the builder to run"),
            Step("wait-stopped", self.wait_stopped, "wait for the takeover to power the builder off"),
            Step("create-image", self.create_image, f"create_image {self._first_image_name()!r} (tagged)"),
            Step("wait-image", self.wait_image, "wait for the AMI to be available; tag snapshots; check ENA"),
            Step("terminate-builder", self.terminate_builder, "terminate the builder and wait"),
        ]
        if self._encrypted():
            steps.append(Step("encrypt", self.encrypt, f"copy_image Encrypted=True in {self.region}"))
        if a.copy_to_regions:
            regions = ", ".join(a.copy_to_regions)
            steps.append(
                Step("copy-regions", self.copy_regions, f"copy_image to {regions} in parallel, re-tag")
            )
        if a.share_with or a.public:
            who = ", ".join([*a.share_with, *(["all (public)"] if a.public else [])])
            steps.append(Step("share", self.share, f"launch permission for {who} in every region"))
        steps.append(Step("finish", self.finish, f"tag images {STATE_TAG}={STATE_COMPLETE}; keep them"))
        return steps

    def source_ami(self, ctx: BakeContext) -> None:
        """Resolve the source AMI (``--source-ami``, SSM, else the newest Canonical LTS). The name and
        an explicit ``--source-ami`` were already checked by the preflight."""
        ec2 = self.clients.ec2()
        ami = self.args.source_ami or self._newest_ubuntu(ctx, ec2)
        found = self._describe_image(ec2, ami)
        if found is None:
            raise StepFailed(f"source AMI {ami} not found in {self.region}")
        ctx.state["source_ami"] = ami
        ctx.log("source-ami", f"{ami} ({found.get('Name', '?')})")

    def _newest_ubuntu(self, ctx: BakeContext, ec2: EC2Client) -> str:
        arch = self.args.arch
        param = self.args.ssm_parameter or SSM_UBUNTU.format(arch=arch)
        try:
            value = self.clients.client("ssm").get_parameter(Name=param)["Parameter"]["Value"]
            ctx.log("source-ami", f"SSM {param} -> {value}")
            return str(value)
        except botocore.exceptions.ClientError as exc:
            ctx.log(
                "source-ami", f"SSM {param} unavailable ({aws_api.error_code(exc)}); using describe_images"
            )
        images = ec2.describe_images(
            Owners=[CANONICAL_OWNER],
            Filters=[
                {"Name": "name", "Values": [UBUNTU_NAME.format(arch=arch)]},
                {"Name": "architecture", "Values": ["x86_64" if arch == "amd64" else "arm64"]},
                {"Name": "root-device-type", "Values": ["ebs"]},
                {"Name": "state", "Values": ["available"]},
            ],
        )["Images"]
        images = [i for i in images if is_ubuntu_lts(str(i.get("Name", "")))]
        if not images:
            raise StepFailed(f"no Canonical Ubuntu LTS AMI for {arch} in {self.region}; pass --source-ami")
        newest = max(images, key=lambda i: i.get("CreationDate", ""))
        return str(newest["ImageId"])

    def launch(self, ctx: BakeContext) -> None:
        """Run the builder; instance and its volumes tagged at creation; cleanup registered at once."""
        ec2 = self.clients.ec2()
        tags = tag_list(self._tags(ctx, f"{self.request.name}-builder"))
        params: dict[str, Any] = {
            "ImageId": ctx.state["source_ami"],
            "InstanceType": self.args.instance_type,
            "MinCount": 1,
            "MaxCount": 1,
            "UserData": self.userdata,
            "InstanceInitiatedShutdownBehavior": "stop",
            "MetadataOptions": {"HttpTokens": "optional", "HttpEndpoint": "enabled"},
            "TagSpecifications": [
                {"ResourceType": "instance", "Tags": tags},
                {"ResourceType": "volume", "Tags": tags},
            ],
        }
        if self.args.subnet_id:
            params["SubnetId"] = self.args.subnet_id
        instance_id = ec2.run_instances(**params)["Instances"][0]["InstanceId"]
        self.instance_id = instance_id
        poll = ctx.poll_interval
        ctx.created(
            Resource("instance", instance_id, self.region),
            lambda: aws_api.terminate_instance(ec2, instance_id, CLEANUP_WAIT_S, poll),
        )

    def _instance_check(self, ctx: BakeContext, wanted: str) -> Any:
        ec2 = self.clients.ec2()

        def check() -> str | None:
            inst = aws_api.describe_instance(ec2, self.instance_id)
            state = inst.get("State", {}).get("Name", "")
            if state in ("terminated", "shutting-down"):
                reason = inst.get("StateReason", {}).get("Message", "no reason given")
                raise StepFailed(f"builder {self.instance_id} was {state}: {reason}")
            return state if state == wanted else None

        return check

    def wait_running(self, ctx: BakeContext) -> None:
        """Wait for ``running`` (or already ``stopped``: the guest may be fast)."""
        check = self._instance_check(ctx, "running")
        stopped = self._instance_check(ctx, "stopped")
        ctx.wait("wait-running", f"{self.instance_id} to run", lambda: check() or stopped())

    def wait_stopped(self, ctx: BakeContext) -> None:
        """Wait for the takeover to power the builder off; on timeout show the console tail."""
        ec2 = self.clients.ec2()

        def console_tail() -> str:
            try:
                out = ec2.get_console_output(InstanceId=self.instance_id, Latest=True).get("Output", "")
            except botocore.exceptions.ClientError as exc:
                return f"no console output ({aws_api.error_code(exc)})"
            lines = [ln for ln in (out or "").splitlines() if ln.strip()][-15:]
            return "console tail:\n  " + "\n  ".join(lines) if lines else "console output empty"

        ctx.wait(
            "wait-stopped",
            f"{self.instance_id} to stop",
            self._instance_check(ctx, "stopped"),
            on_timeout=console_tail,
        )

    def create_image(self, ctx: BakeContext) -> None:
        """Set ENA on the stopped builder if missing, then ``create_image`` with tags (state pending)."""
        ec2 = self.clients.ec2()
        try:
            ena = ec2.describe_instance_attribute(InstanceId=self.instance_id, Attribute="enaSupport")
            if not ena.get("EnaSupport", {}).get("Value", False):
                ctx.log("create-image", "builder lacks EnaSupport; enabling it before create_image")
                ec2.modify_instance_attribute(InstanceId=self.instance_id, EnaSupport={"Value": True})
        except botocore.exceptions.ClientError as exc:
            ctx.log("create-image", f"could not check EnaSupport ({aws_api.error_code(exc)})")
        tags = tag_list(self._tags(ctx, self.request.name, STATE_PENDING))
        image_id = ec2.create_image(
            InstanceId=self.instance_id,
            Name=self._first_image_name(ctx.bake_id),
            Description=f"k3OS image baked by k3os-factory (bake {ctx.bake_id})",
            TagSpecifications=[{"ResourceType": "image", "Tags": tags}],
        )["ImageId"]
        self.images.append(self._register_image(ctx, self.region, image_id))

    def wait_image(self, ctx: BakeContext) -> None:
        """Wait until the AMI is available, tag its snapshots, check EnaSupport."""
        image = self.images[0]
        found = self._wait_image(ctx, image, "wait-image")
        self._tag_image(ctx, image, STATE_PENDING)
        if not found.get("EnaSupport", True):
            ctx.log(
                "wait-image",
                f"warning: {image.image_id} has EnaSupport=false; Nitro types will not launch it",
            )

    def terminate_builder(self, ctx: BakeContext) -> None:
        """The builder is no longer needed: terminate it now (not at the very end) and wait."""
        ec2 = self.clients.ec2()
        ctx.log("terminate-builder", f"terminating {self.instance_id}")
        aws_api.terminate_instance(
            ec2, self.instance_id, ctx.timeouts.for_phase("terminate"), ctx.poll_interval
        )
        ctx.discard(Resource("instance", self.instance_id, self.region))
