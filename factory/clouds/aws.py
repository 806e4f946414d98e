"""AWS backend: ``factory bake aws`` (an EBS-backed AMI via a takeover builder), ``gc``, ``images``,
``whoami``. boto3 is imported only through :mod:`factory.clouds.aws_api`, i.e. when AWS is used."""

from __future__ import annotations

import argparse
import re
from typing import Any, ClassVar

from factory.clouds import aws_api
from factory.clouds.aws_gc import Sweep, forget_finished_journals, remove_leftovers, sweep
from factory.clouds.aws_preflight import check_bake_targets
from factory.clouds.aws_steps import AwsBake
from factory.clouds.base import BakeRequest, CloudBackend, GcItem
from factory.clouds.common import builder_spec
from factory.pipeline import BAKE_ID_TAG, STATE_COMPLETE, STATE_TAG, Step, UsageError

USERDATA_LIMIT = 16 * 1024
DEFAULT_INSTANCE_TYPE = {"amd64": "t3.small", "arm64": "t4g.small"}
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
_ACCOUNT = re.compile(r"^\d{12}$")
_AMI = re.compile(r"^ami-[0-9a-f]{8,17}$")
_SUBNET = re.compile(r"^subnet-[0-9a-f]{8,17}$")
_KMS_KEY = re.compile(
    r"^(arn:aws[a-z-]*:kms:[a-z0-9-]+:\d{12}:(key|alias)/\S+|alias/[A-Za-z0-9/_-]+|"
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})$"
)
#: tags the factory sets itself on every resource (AWS allows 50 per resource)
OWN_TAGS = 4
MAX_TAGS = 50


def _regions(text: str) -> list[str]:
    return [r.strip() for r in text.split(",") if r.strip()]


def _region_name(text: str) -> str:
    """argparse type of ``--region``: an AWS region name such as ``eu-west-1``."""
    if not _REGION.match(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not an AWS region name (e.g. us-east-1)")
    return text


def _check_encryption(args: argparse.Namespace) -> None:
    """Combinations AWS refuses only after a whole bake: refuse them up front."""
    if args.kms_key_id and not _KMS_KEY.match(args.kms_key_id):
        raise UsageError(
            f"--kms-key-id {args.kms_key_id!r}: expected a key id, mrk-<hex>, alias/NAME or a key/alias ARN"
        )
    encrypted = bool(args.encrypt or args.kms_key_id)
    if encrypted and args.public:
        raise UsageError(
            "--public cannot be combined with --encrypt/--kms-key-id: AWS refuses public encrypted AMIs"
        )
    if args.encrypt and not args.kms_key_id and args.share_with:
        raise UsageError(
            "--share-with with --encrypt needs --kms-key-id: AMIs encrypted with the AWS managed key "
            "cannot be shared (use a customer managed key the other accounts may use)"
        )


def _check_tags(tags: dict[str, str]) -> None:
    """AWS tag rules, so a bad --tag fails here rather than at RunInstances."""
    for key, value in tags.items():
        if len(key) > 128 or len(value) > 256:
            raise UsageError(
                f"--tag {key[:40]}...: AWS allows keys up to 128 and values up to 256 characters"
            )
        if key.lower().startswith("aws:"):
            raise UsageError(f"--tag {key}: the aws: prefix is reserved by AWS")
        if key == "Name":
            raise UsageError("--tag Name=...: the Name tag is set from --name")
    if len(tags) > MAX_TAGS - OWN_TAGS:
        raise UsageError(
            f"--tag: at most {MAX_TAGS - OWN_TAGS} tags (AWS allows {MAX_TAGS}, the factory uses {OWN_TAGS})"
        )


class AwsBackend(CloudBackend):
    """Amazon EC2: builder instance -> takeover -> stopped -> create_image -> copies -> sharing."""

    name: ClassVar[str] = "aws"
    builder_type: ClassVar[str] = "amazon-ebs"
    default_data_sources: ClassVar[tuple[str, ...]] = ("aws",)
    phase_timeouts: ClassVar[dict[str, float]] = {
        "wait-running": 10 * 60.0,
        "wait-stopped": 40 * 60.0,
        "wait-image": 60 * 60.0,
        "wait-copy": 60 * 60.0,
        "terminate": 10 * 60.0,
    }

    def __init__(self) -> None:
        """No AWS call here; clients are made on first use."""
        self._clients: aws_api.Clients | None = None
        self._userdata = b""
        self._image_name = ""
        self._sweep: Sweep | None = None

    def clients(self, args: argparse.Namespace) -> aws_api.Clients:
        """The session/clients for ``args.region`` (made once)."""
        if self._clients is None:
            self._clients = aws_api.Clients(getattr(args, "region", None))
        return self._clients

    def add_common_arguments(self, parser: argparse.ArgumentParser) -> None:
        """``--region`` (default: the boto3 chain's region)."""
        parser.add_argument(
            "--region",
            type=_region_name,
            help="AWS region (default: AWS_REGION / AWS_DEFAULT_REGION / profile)",
        )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """The ``factory bake aws`` flags of DESIGN.md."""
        self.add_common_arguments(parser)
        parser.add_argument("--copy-to-regions", metavar="R1,R2", type=_regions, default=[])
        parser.add_argument("--instance-type", help="builder type (default t3.small / t4g.small by --arch)")
        parser.add_argument("--source-ami", help="builder AMI (default: newest Canonical Ubuntu 24.04 LTS)")
        parser.add_argument(
            "--ssm-parameter", help="SSM parameter naming the source AMI (default Canonical's)"
        )
        parser.add_argument("--arch", choices=sorted(DEFAULT_INSTANCE_TYPE), default="amd64")
        parser.add_argument("--subnet-id", help="subnet for the builder (default VPC otherwise)")
        parser.add_argument("--share-with", metavar="ACCOUNT", action="append", default=[], help="repeatable")
        parser.add_argument("--public", action="store_true", help="make the AMIs public (launch group all)")
        parser.add_argument("--encrypt", action="store_true", help="encrypt the AMI snapshots")
        parser.add_argument("--kms-key-id", help="KMS key for --encrypt (implies --encrypt)")

    def validate(self, args: argparse.Namespace, request: BakeRequest) -> None:
        """Everything checkable offline; renders the builder user data (size-checked)."""
        if not request.iso_url:
            raise UsageError("aws needs --iso-url (the builder downloads the ISO; --iso is a local file)")
        if args.region and not _REGION.match(args.region):
            raise UsageError(f"--region {args.region!r} is not an AWS region name")
        for region in args.copy_to_regions:
            if not _REGION.match(region):
                raise UsageError(f"--copy-to-regions: {region!r} is not an AWS region name")
        for account in args.share_with:
            if not _ACCOUNT.match(account):
                raise UsageError(f"--share-with {account!r}: expected a 12-digit AWS account id")
        if args.source_ami and not _AMI.match(args.source_ami):
            raise UsageError(f"--source-ami {args.source_ami!r}: expected ami-<hex>")
        if args.subnet_id and not _SUBNET.match(args.subnet_id):
            raise UsageError(f"--subnet-id {args.subnet_id!r}: expected subnet-<hex>")
        args.instance_type = args.instance_type or DEFAULT_INSTANCE_TYPE[args.arch]
        if not re.match(r"^[a-z0-9-]{1,10}\.[a-z0-9-]+$", args.instance_type):
            raise UsageError(f"--instance-type {args.instance_type!r}: expected family.size (e.g. t3.small)")
        if not 3 <= len(request.name) <= 128 or not re.match(r"^[A-Za-z0-9()\[\] ./'@_-]+$", request.name):
            raise UsageError(
                f"--name {request.name!r}: AMI names are 3-128 of letters, digits, ( ) [ ] . / - ' @ _"
            )
        _check_encryption(args)
        _check_tags(request.tags)
        self._userdata = self._render_userdata(request)
        region = aws_api.Clients(args.region).region
        args.region = region
        args.copy_to_regions = [r for r in dict.fromkeys(args.copy_to_regions) if r != region]
        self._image_name = request.name

    @staticmethod
    def _render_userdata(request: BakeRequest) -> bytes:
        from image_base.builder import BuilderSpecError, render_builder_userdata

        try:
            data = render_builder_userdata(builder_spec(request))
        except BuilderSpecError as exc:
            raise UsageError(f"builder user data: {exc}".replace("iso_url", "--iso-url")) from None
        except UsageError as exc:  # the spec itself: common.builder_spec's message, in our option names
            raise UsageError(str(exc).replace("iso_url", "--iso-url")) from None
        if len(data) > USERDATA_LIMIT:
            raise UsageError(f"builder user data is {len(data)} bytes, over EC2's {USERDATA_LIMIT} limit")
        return data

    def preflight(self, args: argparse.Namespace) -> str:
        """STS identity, then the user's inputs that only AWS can check (exit 2, nothing created):
        the AMI name is free in every target region, ``--source-ami`` and ``--subnet-id`` exist,
        and ``--public`` is not blocked by image block public access."""
        who = self.whoami(args)
        check_bake_targets(self.clients(args), args, self._image_name)
        return f"AWS account {who['account']} as {who['arn']} in {who['region']}"

    def whoami(self, args: argparse.Namespace) -> dict[str, str]:
        """STS ``get_caller_identity``."""
        clients = self.clients(args)
        try:
            ident = clients.client("sts").get_caller_identity()
        except Exception as exc:
            usage = aws_api.credentials_error(exc)
            if usage:
                raise usage from None
            raise
        return {
            "account": ident["Account"],
            "arn": ident["Arn"],
            "user_id": ident["UserId"],
            "region": clients.region,
        }

    def is_transient(self, exc: BaseException) -> bool:
        """Throttling/5xx/connection errors are polled again."""
        return aws_api.is_transient(exc)

    def user_error(self, exc: BaseException) -> UsageError | None:
        """Missing, rejected or unknown-profile credentials are the user's to fix (exit 2)."""
        return aws_api.credentials_error(exc)

    def bake_steps(self, args: argparse.Namespace, request: BakeRequest) -> list[Step]:
        """See :class:`factory.clouds.aws_steps.AwsBake`."""
        return AwsBake(args, request, self.clients(args), self._userdata).steps()

    def plan_resources(self, args: argparse.Namespace, request: BakeRequest) -> list[str]:
        """What ``--dry-run`` says will be created."""
        out = [
            f"instance ({args.instance_type}, {args.region}) + its root volume [temporary]",
            f"AMI {request.name!r} + snapshot in {args.region} [kept]",
        ]
        out += [f"AMI copy + snapshot in {r} [kept]" for r in args.copy_to_regions]
        return out

    # -- gc / images ---------------------------------------------------------------------------------
    def gc_find(self, args: argparse.Namespace, older_than_s: float) -> list[GcItem]:
        """Tagged leftovers older than the given age (products excluded) in ``--region``, or, without
        it, in the default region and every region named by a dead bake's journal on this host."""
        clients = self.clients(args)
        self._sweep = sweep(clients.region, bool(getattr(args, "region", None)), clients.ec2)
        return self._sweep.older_than(older_than_s)

    def gc_remove(self, args: argparse.Namespace, items: list[GcItem], out: Any) -> list[GcItem]:
        """Remove leftovers: instances first (and wait), then AMIs, snapshots, volumes, SGs, key pairs;
        then forget the journals of bakes of which nothing is left."""
        clients = self.clients(args)
        failed = remove_leftovers(clients.ec2, items, out)
        if self._sweep is not None:
            removed = [i for i in items if i not in failed]
            for bake_id in forget_finished_journals(self._sweep, removed):
                print(f"journal  bake {bake_id} fully cleaned, journal removed", file=out)
        return failed

    def images_list(self, args: argparse.Namespace) -> list[dict[str, Any]]:
        """Completed images of this factory in ``--region``, newest first."""
        clients = self.clients(args)
        ec2 = clients.ec2()
        images = ec2.describe_images(
            Owners=["self"], Filters=[{"Name": f"tag:{STATE_TAG}", "Values": [STATE_COMPLETE]}]
        )["Images"]
        rows = []
        for image in images:
            tags = aws_api.tag_dict(image.get("Tags"))
            rows.append(
                {
                    "region": clients.region,
                    "image_id": image["ImageId"],
                    "name": image.get("Name", ""),
                    "created": image.get("CreationDate", ""),
                    "bake_id": tags.get(BAKE_ID_TAG, ""),
                    "public": bool(image.get("Public", False)),
                }
            )
        return sorted(rows, key=lambda r: str(r["created"]), reverse=True)

    def images_delete(self, args: argparse.Namespace, image: dict[str, Any]) -> None:
        """Deregister the AMI and delete its snapshots."""
        aws_api.delete_image(self.clients(args).ec2(), str(image["image_id"]))
