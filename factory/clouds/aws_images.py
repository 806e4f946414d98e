"""Image handling shared by the ``factory bake aws`` steps, and the steps after the first image exists:
encrypt (a same-region encrypted copy replaces the plain image), copy to regions in parallel (tags
re-applied per region), share (launch and snapshot permissions per region), finish (mark complete,
keep). Every AMI is journaled and gets its cleanup the moment AWS returned its id."""

from __future__ import annotations

import argparse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import botocore.exceptions

from factory.clouds import aws_api
from factory.clouds.aws_api import Clients, base_tags, delete_image, tag_list
from factory.clouds.base import RESULT_KEY, Artifact, BakeRequest, BakeResult
from factory.journal import Resource
from factory.manifest import aws_artifact_id, url_without_credentials
from factory.pipeline import STATE_COMPLETE, STATE_PENDING, STATE_TAG, BakeContext, StepFailed

if TYPE_CHECKING:
    from mypy_boto3_ec2.client import EC2Client


@dataclass
class AwsImage:
    """One AMI of the bake: its region, id and (once available) snapshot ids."""

    region: str
    image_id: str
    snapshots: list[str] = field(default_factory=list)


class AwsImageSteps:
    """Options, clients and the images of one bake, with the image helpers and publishing steps."""

    def __init__(self, args: argparse.Namespace, request: BakeRequest, clients: Clients) -> None:
        """Bind options; nothing is called on AWS here."""
        self.args = args
        self.request = request
        self.clients = clients
        self.region = clients.region
        self.images: list[AwsImage] = []

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

    def _register_image(self, ctx: BakeContext, region: str, image_id: str) -> AwsImage:
        ec2 = self.clients.ec2(region)
        image = AwsImage(region, image_id)
        ctx.created(Resource("image", image_id, region), lambda: delete_image(ec2, image_id))
        return image

    def _wait_image(self, ctx: BakeContext, image: AwsImage, phase: str) -> dict[str, Any]:
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

    def _tag_image(self, ctx: BakeContext, image: AwsImage, state: str) -> None:
        ec2 = self.clients.ec2(image.region)
        tags = tag_list(self._tags(ctx, self.request.name, state))
        ids = [image.image_id, *image.snapshots]
        aws_api.retry_call(
            lambda: ec2.create_tags(Resources=ids, Tags=tags), retry_codes=["InvalidAMIID.NotFound"]
        )

    # -- steps after the first image ---------------------------------------------------------------
    def _copy(self, ctx: BakeContext, source: AwsImage, region: str, encrypt: bool) -> AwsImage:
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
                "iso_url": url_without_credentials(self.request.iso_url or ""),
                "iso_sha256": self.request.iso_sha256 or "",
                "encrypted": str(self._encrypted()).lower(),
            },
        )
