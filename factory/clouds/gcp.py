"""GCP backend: ``factory bake gcp`` (a Compute Engine image via a takeover builder), ``gc``, ``images``,
``whoami``. google-cloud-compute is imported only through the ``gcp_*`` modules, i.e. when GCP is used.

Labels: GCE label keys allow no ``:``, so ``k3os-factory:bake-id`` becomes ``k3os-factory-bake-id``
(likewise ``k3os-factory-state``, ``k3os-factory-created``), the same keys the Packer template uses.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
from typing import TYPE_CHECKING, Any, ClassVar

from factory.clouds.base import BakeRequest, CloudBackend, GcItem
from factory.clouds.common import TAKEOVER_PHASE_TIMEOUTS, builder_spec, gc_poll_seconds
from factory.pipeline import Step, UsageError

if TYPE_CHECKING:
    from factory.clouds import gcp_client

#: what ``pip install 'k3os-factory[gcp]'`` brings; checked (not imported) when this module loads, so
#: ``factory bake gcp`` usage errors and ``--dry-run`` do not pay the SDK's import (over a CPU second)
SDK_MODULES = ("google.auth", "google.api_core", "google.cloud.compute_v1", "requests")
PROJECT_ENVS = ("CLOUDSDK_CORE_PROJECT", "GOOGLE_CLOUD_PROJECT")

DEFAULT_ZONE = "us-central1-a"
DEFAULT_MACHINE_TYPE = {"amd64": "e2-small", "arm64": "t2a-standard-1"}
DEFAULT_FAMILY = {"amd64": "ubuntu-2404-lts-amd64", "arm64": "ubuntu-2404-lts-arm64"}
METADATA_VALUE_LIMIT = 256 * 1024
_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
_ZONE = re.compile(r"^[a-z]+-[a-z]+\d+-[a-z]$")
_PROJECT = re.compile(r"^(?:[a-z][-a-z0-9.:]{4,61}[a-z0-9])$")
_MACHINE = re.compile(r"^[a-z0-9][-a-z0-9]{1,62}$")
_LOCATION = re.compile(r"^[a-z0-9][-a-z0-9]{0,62}$")
_LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")


def _require_sdk() -> None:
    """Fail this module's import as a missing SDK does (:func:`factory.clouds.base.load_backend` turns
    that into "needs the Python package"), without importing the SDK."""
    for module in SDK_MODULES:
        if importlib.util.find_spec(module) is None:
            raise ModuleNotFoundError(f"No module named {module!r}", name=module)


_require_sdk()


def _sdk() -> Any:
    """:mod:`factory.clouds.gcp_client` (and with it the SDK), imported on first use."""
    from factory.clouds import gcp_client

    return gcp_client


def env_project() -> str | None:
    """The project named by the environment (``CLOUDSDK_CORE_PROJECT``, ``GOOGLE_CLOUD_PROJECT``)."""
    for name in PROJECT_ENVS:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def check_labels(tags: dict[str, str]) -> None:
    """``--tag`` pairs must be valid GCE labels (lowercase letters, digits, ``_``, ``-``)."""
    for key, value in tags.items():
        if not _LABEL_KEY.match(key):
            raise UsageError(
                f"--tag {key}: GCE label keys are 1-63 lowercase letters, digits, _ or -, "
                "starting with a letter"
            )
        if not _LABEL_VALUE.match(value):
            raise UsageError(
                f"--tag {key}={value}: GCE label values are 0-63 lowercase letters, digits, _ or -"
            )
        if key.startswith("k3os-factory-"):
            raise UsageError(f"--tag {key}: the k3os-factory- prefix is reserved")


class GcpBackend(CloudBackend):
    """Compute Engine: builder instance -> takeover -> TERMINATED -> images.insert -> delete builder."""

    name: ClassVar[str] = "gcp"
    builder_type: ClassVar[str] = "googlecompute"
    default_data_sources: ClassVar[tuple[str, ...]] = ("gcp",)
    phase_timeouts: ClassVar[dict[str, float]] = {**TAKEOVER_PHASE_TIMEOUTS, "finish": 5 * 60.0}

    def __init__(self) -> None:
        """No GCP call here; credentials and clients are made on first use."""
        self._clients: gcp_client.Clients | None = None
        self._userdata = b""

    def clients(self, args: argparse.Namespace) -> gcp_client.Clients:
        """The clients for ``args.project`` (made once)."""
        if self._clients is None:
            self._clients = _sdk().Clients(getattr(args, "project", None))
        return self._clients

    def add_common_arguments(self, parser: argparse.ArgumentParser) -> None:
        """``--project`` (default: CLOUDSDK_CORE_PROJECT, GOOGLE_CLOUD_PROJECT, the credentials')."""
        parser.add_argument(
            "--project",
            help="GCP project (default: CLOUDSDK_CORE_PROJECT / GOOGLE_CLOUD_PROJECT / the credentials')",
        )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """The ``factory bake gcp`` flags."""
        self.add_common_arguments(parser)
        parser.add_argument("--zone", default=DEFAULT_ZONE, help=f"builder zone (default {DEFAULT_ZONE})")
        parser.add_argument("--arch", choices=sorted(DEFAULT_MACHINE_TYPE), default="amd64")
        parser.add_argument(
            "--machine-type", help="builder type (default e2-small / t2a-standard-1 by --arch)"
        )
        parser.add_argument(
            "--source-image-family", help="builder image family (default ubuntu-2404-lts-amd64 / -arm64)"
        )
        parser.add_argument(
            "--source-image-project", default="ubuntu-os-cloud", help="project of the source image family"
        )
        parser.add_argument("--network", help="VPC network of the builder (default: default)")
        parser.add_argument("--subnetwork", help="subnetwork of the builder (custom-mode networks)")
        parser.add_argument("--omit-external-ip", action="store_true", help="no public IP (needs Cloud NAT)")
        parser.add_argument(
            "--disk-size", type=int, default=10, metavar="GB", help="boot disk size (default 10)"
        )
        parser.add_argument("--image-family", help="family of the produced image")
        parser.add_argument("--storage-location", help="where the image is stored (e.g. us, europe-west1)")

    def validate(self, args: argparse.Namespace, request: BakeRequest) -> None:
        """Everything checkable offline; renders the builder user data."""
        if not request.iso_url:
            raise UsageError("gcp needs --iso-url (the builder downloads the ISO; --iso is a local file)")
        if not _NAME.match(request.name):
            raise UsageError(
                f"--name {request.name!r}: GCE image names are 1-63 lowercase letters, digits and -, "
                "starting with a letter"
            )
        if not _ZONE.match(args.zone):
            raise UsageError(f"--zone {args.zone!r} is not a GCE zone name (e.g. us-central1-a)")
        args.machine_type = args.machine_type or DEFAULT_MACHINE_TYPE[args.arch]
        args.source_image_family = args.source_image_family or DEFAULT_FAMILY[args.arch]
        if not _MACHINE.match(args.machine_type):
            raise UsageError(f"--machine-type {args.machine_type!r}: expected a name like e2-small")
        for flag in ("source_image_family", "image_family"):
            value = getattr(args, flag)
            if value and not _NAME.match(value):
                raise UsageError(f"--{flag.replace('_', '-')} {value!r}: not a valid GCE family name")
        if args.storage_location and not _LOCATION.match(args.storage_location):
            raise UsageError(
                f"--storage-location {args.storage_location!r}: expected e.g. us or europe-west1"
            )
        if not 10 <= args.disk_size <= 2000:
            raise UsageError("--disk-size must be between 10 and 2000 GB")
        check_labels(request.tags)
        project = args.project or env_project()
        if project and not _PROJECT.match(project):
            raise UsageError(f"project {project!r} is not a GCP project id")
        self._userdata = self._render_userdata(request)

    @staticmethod
    def _render_userdata(request: BakeRequest) -> bytes:
        from image_base.builder import BuilderSpecError, render_builder_userdata

        spec = builder_spec(request)
        try:
            data = render_builder_userdata(spec)
        except BuilderSpecError as exc:
            raise UsageError(f"builder user data: {exc}") from None
        if len(data) * 4 // 3 + 4 > METADATA_VALUE_LIMIT:
            raise UsageError(f"builder user data is {len(data)} bytes, over GCE's metadata value limit")
        return data

    def preflight(self, args: argparse.Namespace) -> str:
        """projects.get as the credentials (exit 2 with a clear message when there are none)."""
        who = self.whoami(args)
        return f"GCP project {who['project']} ({who['project_number']}) as {who['principal']}"

    def whoami(self, args: argparse.Namespace) -> dict[str, str]:
        """``projects.get``: cheap, authenticated, and proves the project is reachable."""
        clients, sdk = self.clients(args), _sdk()
        try:
            project = sdk.retry_call(lambda: clients.projects().get(project=clients.project))
        except Exception as exc:
            usage = sdk.credentials_error(exc)
            if usage:
                raise usage from None
            if sdk.is_not_found(exc):
                raise UsageError(f"GCP project {clients.project!r} not found or not visible") from None
            raise
        return {
            "project": str(project.name),
            "project_number": str(project.id),
            "principal": clients.principal(),
            "endpoint": clients.endpoint or "https://compute.googleapis.com",
        }

    def is_transient(self, exc: BaseException) -> bool:
        """Rate limits, 5xx and connection errors are polled again."""
        return bool(_sdk().is_transient(exc))

    def bake_steps(self, args: argparse.Namespace, request: BakeRequest) -> list[Step]:
        """See :class:`factory.clouds.gcp_steps.GcpBake`."""
        from factory.clouds.gcp_steps import GcpBake

        return GcpBake(args, request, self.clients(args), self._userdata).steps()

    def plan_resources(self, args: argparse.Namespace, request: BakeRequest) -> list[str]:
        """What ``--dry-run`` says will be created."""
        project = args.project or env_project() or "(from the credentials)"
        return [
            f"instance k3os-builder-{request.bake_id} ({args.machine_type}, {args.zone}) "
            "+ its boot disk [temporary]",
            f"image {request.name!r} in project {project}"
            + (f", family {args.image_family}" if args.image_family else "")
            + " [kept]",
        ]

    # -- gc / images ---------------------------------------------------------------------------------
    def gc_find(self, args: argparse.Namespace, older_than_s: float) -> list[GcItem]:
        """Labelled leftovers in every zone of the project, older than the given age."""
        from factory.clouds.gcp_gc import find_leftovers

        return find_leftovers(self._checked(args), older_than_s)

    def gc_remove(self, args: argparse.Namespace, items: list[GcItem], out: Any) -> list[GcItem]:
        """Remove leftovers: instances first (and wait), then images, then disks."""
        from factory.clouds.gcp_gc import remove_leftovers

        return remove_leftovers(self.clients(args), items, out, gc_poll_seconds(strict=True))

    def images_list(self, args: argparse.Namespace) -> list[dict[str, Any]]:
        """Completed images of this factory in the project, newest first."""
        from factory.clouds.gcp_gc import list_images

        return list_images(self._checked(args))

    def images_delete(self, args: argparse.Namespace, image: dict[str, Any]) -> None:
        """Delete the image."""
        from factory.clouds.gcp_gc import delete_image

        delete_image(self.clients(args), str(image["image_id"]), gc_poll_seconds(strict=True))

    def _checked(self, args: argparse.Namespace) -> gcp_client.Clients:
        self.whoami(args)
        return self.clients(args)
