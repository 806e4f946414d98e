"""The steps of ``factory bake aws``: source AMI -> builder -> running -> stopped -> image -> terminate
builder -> encrypt/copy to regions (parallel) -> share -> mark complete. Each resource is journaled and
gets its cleanup the moment AWS returned its id (see :mod:`factory.pipeline`)."""

from __future__ import annotations

import argparse
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import botocore.exceptions

from factory.clouds import aws_api
from factory.clouds.aws_api import Clients, base_tags, delete_image, tag_list
from factory.clouds.base import RESULT_KEY, Artifact, BakeRequest, BakeResult
from factory.journal import Resource
from factory.manifest import aws_artifact_id
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


@dataclass
class _Image:
    region: str
    image_id: str
    snapshots: list[str] = field(default_factory=list)


class AwsBake:
    """One AWS bake: holds the clients and options; :meth:`steps` returns the pipeline steps."""

    def __init__(
        self, args: argparse.Namespace, request: BakeRequest, clients: Clients, userdata: bytes
    ) -> None:
        """Bind options; nothing is called on AWS here."""
        self.args = args
        self.request = request
        self.clients = clients
        self.userdata = userdata
        self.region = clients.region
        self.images: list[_Image] = []
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

    # -- helpers -----------------------------------------------------------------------------------
    def _encrypted(self) -> bool:
        return bool(self.args.encrypt or self.args.kms_key_id)

    def _first_image_name(self, bake_id: str | None = None) -> str:
        """The name of the image made from the builder. With encryption it is only the source of the
        encrypted copy, which takes the real name (AMI names are unique per region): it gets a
        temporary one, removed with it."""
        if not self._encrypted():
            return self.request.name
        suffix = f"-plain-{(bake_id or self.request.bake_id or 'BAKEID')[:8]}"
        return self.request.name[: 128 - len(suffix)] + suffix

    def _tags(self, ctx: BakeContext, name: str, state: str | None = None) -> dict[str, str]:
        tags = base_tags(ctx.bake_id, name, self.request.tags)
        if state:
            tags[STATE_TAG] = state
        return tags

    def _describe_image(self, ec2: EC2Client, image_id: str) -> dict[str, Any] | None:
        try:
            images = ec2.describe_images(ImageIds=[image_id])["Images"]
        except botocore.exceptions.ClientError as exc:
            if aws_api.is_not_found(exc):
                return None
            raise
        return dict(images[0]) if images else None

    def _register_image(self, ctx: BakeContext, region: str, image_id: str) -> _Image:
        ec2 = self.clients.ec2(region)
        image = _Image(region, image_id)
        ctx.created(Resource("image", image_id, region), lambda: delete_image(ec2, image_id))
        return image

    def _wait_image(self, ctx: BakeContext, image: _Image, phase: str) -> dict[str, Any]:
        ec2 = self.clients.ec2(image.region)
        last: dict[str, Any] = {}

        def check() -> dict[str, Any] | None:
            found = self._describe_image(ec2, image.image_id)
            if found is None:
                return None  # eventual consistency right after create/copy
            last.clear()
            last.update(found)
            if found.get("State") == "failed":
                reason = found.get("StateReason", {}).get("Message", "no reason given")
                raise StepFailed(f"AMI {image.image_id} in {image.region} failed: {reason}")
            return found if found.get("State") == "available" else None

        def on_timeout() -> str:
            reason = last.get("StateReason", {}).get("Message") or "none"
            state = last.get("State", "unknown")
            return f"AMI {image.image_id} in {image.region} is {state} (StateReason: {reason})"

        found = ctx.wait(
            phase, f"AMI {image.image_id} in {image.region} to be available", check, on_timeout=on_timeout
        )
        image.snapshots = [
            bdm["Ebs"]["SnapshotId"]
            for bdm in found.get("BlockDeviceMappings", [])
            if bdm.get("Ebs", {}).get("SnapshotId")
        ]
        return found

    def _tag_image(self, ctx: BakeContext, image: _Image, state: str) -> None:
        ec2 = self.clients.ec2(image.region)
        tags = tag_list(self._tags(ctx, self.request.name, state))
        ids = [image.image_id, *image.snapshots]
        aws_api.retry_call(
            lambda: ec2.create_tags(Resources=ids, Tags=tags), retry_codes=["InvalidAMIID.NotFound"]
        )

    # -- steps -------------------------------------------------------------------------------------
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

    def _copy(self, ctx: BakeContext, source: _Image, region: str, encrypt: bool) -> _Image:
        ctx.check_cancelled()
        ec2 = self.clients.ec2(region)
        params: dict[str, Any] = {
            "SourceRegion": source.region,
            "SourceImageId": source.image_id,
            "Name": self.request.name,
            "Description": f"k3OS image baked by k3os-factory (bake {ctx.bake_id})",
        }
        if encrypt:
            params["Encrypted"] = True
            if self.args.kms_key_id:
                params["KmsKeyId"] = self.args.kms_key_id
        image_id = ec2.copy_image(**params)["ImageId"]
        image = self._register_image(ctx, region, image_id)
        self._wait_image(ctx, image, "wait-copy")
        self._tag_image(ctx, image, STATE_PENDING)
        return image

    def encrypt(self, ctx: BakeContext) -> None:
        """Replace the unencrypted AMI by an encrypted copy in the same region."""
        plain = self.images[0]
        encrypted = self._copy(ctx, plain, self.region, encrypt=True)
        delete_image(self.clients.ec2(), plain.image_id, plain.snapshots)
        ctx.discard(Resource("image", plain.image_id, self.region))
        self.images[0] = encrypted

    def copy_regions(self, ctx: BakeContext) -> None:
        """Copy to every ``--copy-to-regions`` region in parallel threads; tags re-applied per region."""
        source = self.images[0]
        encrypt = self._encrypted()
        regions = self.args.copy_to_regions
        for region in regions:
            self.clients.ec2(region)  # create clients before threads start
        with ThreadPoolExecutor(max_workers=min(8, len(regions)), thread_name_prefix="copy") as pool:
            futures = {region: pool.submit(self._copy, ctx, source, region, encrypt) for region in regions}
            errors: list[str] = []
            for region, fut in futures.items():
                try:
                    self.images.append(fut.result())
                except Exception as exc:
                    errors.append(f"{region}: {exc}")
        if errors:
            raise StepFailed("copy failed in " + "; ".join(errors))

    def share(self, ctx: BakeContext) -> None:
        """Launch permissions (accounts, public) and snapshot volume permissions, in every region."""
        for image in self.images:
            ec2 = self.clients.ec2(image.region)
            if self.args.public:
                self._check_public_block(ctx, ec2, image.region)
            perms: list[dict[str, str]] = [{"UserId": acct} for acct in self.args.share_with]
            if self.args.public:
                perms.append({"Group": "all"})
            ec2.modify_image_attribute(ImageId=image.image_id, LaunchPermission={"Add": perms})  # type: ignore[typeddict-item]
            if self.args.share_with:
                for snap in image.snapshots:
                    ec2.modify_snapshot_attribute(
                        SnapshotId=snap,
                        Attribute="createVolumePermission",
                        OperationType="add",
                        UserIds=list(self.args.share_with),
                    )
            ctx.log("share", f"{image.region}:{image.image_id} shared with {len(perms)} principal(s)")

    def _check_public_block(self, ctx: BakeContext, ec2: EC2Client, region: str) -> None:
        try:
            state = ec2.get_image_block_public_access_state()["ImageBlockPublicAccessState"]
        except Exception as exc:  # older endpoints and moto do not implement it
            code = aws_api.error_code(exc) or type(exc).__name__
            ctx.log("share", f"cannot read image block public access in {region} ({code}); trying anyway")
            return
        if state == "block-new-sharing":
            raise StepFailed(
                f"--public: image block public access is on in {region}; turn it off with "
                f"`aws ec2 disable-image-block-public-access --region {region}` or drop --public"
            )

    def finish(self, ctx: BakeContext) -> None:
        """Mark every image and snapshot complete, release their cleanups, store the result."""
        for image in self.images:
            self._tag_image(ctx, image, STATE_COMPLETE)
        for image in self.images:
            ctx.keep(Resource("image", image.image_id, image.region))
        artifacts = [Artifact(i.region, i.image_id) for i in self.images]
        ctx.state[RESULT_KEY] = BakeResult(
            artifacts=artifacts,
            artifact_id=aws_artifact_id(artifacts),
            files=None,
            custom_data={
                "bake_id": ctx.bake_id,
                "source_ami": str(ctx.state.get("source_ami", "")),
                "region": self.region,
                "arch": self.args.arch,
                "instance_type": self.args.instance_type,
                "iso_url": self.request.iso_url or "",
                "iso_sha256": self.request.iso_sha256 or "",
                "encrypted": str(self._encrypted()).lower(),
            },
        )
