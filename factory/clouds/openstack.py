"""OpenStack backend: ``factory bake openstack`` (a Glance image via a takeover builder server),
``gc``, ``images``, ``whoami``. openstacksdk is imported only through
:mod:`factory.clouds.openstack_client` and :mod:`factory.clouds.openstack_steps`, i.e. when OpenStack is
used. Credentials: ``--os-cloud``/``OS_CLOUD`` (clouds.yaml) or the standard ``OS_*`` environment
(Keystone v3 password or application credential); tests point ``OS_AUTH_URL`` at the fake API."""

from __future__ import annotations

import argparse
import base64
import re
from typing import Any, ClassVar, TextIO

from factory.clouds import openstack_client as oc
from factory.clouds.base import BakeRequest, CloudBackend, GcItem
from factory.clouds.common import (
    TAKEOVER_PHASE_TIMEOUTS,
    Leftovers,
    age_seconds,
    builder_spec,
    gc_poll_seconds,
    remove_in_order,
)
from factory.clouds.openstack_steps import OpenStackBake, Resolved, resolve_targets
from factory.pipeline import STATE_COMPLETE, Step, UsageError

USERDATA_LIMIT = 65535  # Nova: the base64 text of user_data
DEFAULT_FLAVOR = "m1.small"
VISIBILITIES = ("private", "shared", "community", "public")
ORDER = ("server", "image")
_METADATA_KEY = re.compile(r"^[a-zA-Z0-9-_:. ]{1,255}$")
_NAME_REF = re.compile(r"^[^\x00-\x1f]{1,255}$")
_PROJECT = re.compile(r"^[A-Za-z0-9_-]{1,255}$")
_REGION = re.compile(r"^[A-Za-z0-9._-]{1,255}$")


class OpenStackBackend(CloudBackend):
    """OpenStack: builder server -> takeover -> SHUTOFF -> createImage -> delete builder."""

    name: ClassVar[str] = "openstack"
    builder_type: ClassVar[str] = "openstack"
    default_data_sources: ClassVar[tuple[str, ...]] = ("openstack",)
    phase_timeouts: ClassVar[dict[str, float]] = dict(TAKEOVER_PHASE_TIMEOUTS)

    def __init__(self) -> None:
        """No API call here; the connection is made on first use."""
        self._conn: Any = None
        self._userdata_b64 = ""
        self._resolved: Resolved | None = None

    def conn(self, args: argparse.Namespace) -> Any:
        """The SDK connection (made once; UsageError without credentials)."""
        if self._conn is None:
            self._conn = oc.connect(getattr(args, "os_cloud", None), getattr(args, "region", None))
        return self._conn

    def add_common_arguments(self, parser: argparse.ArgumentParser) -> None:
        """``--os-cloud`` and ``--region`` for gc, images and whoami."""
        parser.add_argument(
            "--os-cloud", metavar="NAME", help="clouds.yaml entry (default: $OS_CLOUD or OS_* env)"
        )
        parser.add_argument(
            "--region", metavar="REGION", help="region (default: $OS_REGION_NAME / clouds.yaml)"
        )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """The ``factory bake openstack`` flags."""
        self.add_common_arguments(parser)
        parser.add_argument(
            "--flavor", default=DEFAULT_FLAVOR, help=f"builder flavor (default {DEFAULT_FLAVOR})"
        )
        parser.add_argument(
            "--source-image",
            metavar="NAME|ID",
            help="builder image (default: newest 'ubuntu-24.04'/'Ubuntu 24.04')",
        )
        parser.add_argument(
            "--network", metavar="NAME|ID", help="builder network (required if there are several)"
        )
        parser.add_argument("--key-name", metavar="NAME", help="existing Nova key pair, to debug the builder")
        parser.add_argument(
            "--image-visibility",
            choices=VISIBILITIES,
            default=None,
            help="Glance visibility of the image (default private; shared with --share-with)",
        )
        parser.add_argument(
            "--share-with",
            metavar="PROJECT",
            action="append",
            default=[],
            help="project id to share with (repeatable)",
        )

    def validate(self, args: argparse.Namespace, request: BakeRequest) -> None:
        """Everything checkable offline; renders the builder user data (base64, size-checked)."""
        if not request.iso_url:
            raise UsageError(
                "openstack needs --iso-url (the builder downloads the ISO; --iso is a local file)"
            )
        for flag in ("flavor", "source_image", "network", "key_name"):
            value = getattr(args, flag)
            if value is not None and not _NAME_REF.match(value):
                raise UsageError(
                    f"--{flag.replace('_', '-')} {value!r}: expected a name or id (1-255 printable)"
                )
        if args.region is not None and not _REGION.match(args.region):
            raise UsageError(f"--region {args.region!r}: not a region name")
        for project in args.share_with:
            if not _PROJECT.match(project):
                raise UsageError(f"--share-with {project!r}: expected a project id")
        if args.image_visibility is None:
            args.image_visibility = "shared" if args.share_with else "private"
        if args.share_with and args.image_visibility != "shared":
            raise UsageError(
                "--share-with needs --image-visibility shared (Glance: only shared images have members)"
            )
        if not 1 <= len(request.name) <= 255:
            raise UsageError("--name: an image name is 1-255 characters")
        if len(request.tags) > 100:
            raise UsageError("--tag: at most 100 tags (Nova allows 128 metadata items, the factory uses 3)")
        for key, value in request.tags.items():
            if not _METADATA_KEY.match(key):
                raise UsageError(f"--tag {key}: Nova metadata keys are 1-255 of letters, digits, '-_:. '")
            if len(value) > 255:
                raise UsageError(f"--tag {key}: values are at most 255 characters")
            if key in oc.GLANCE_RESERVED or key.startswith("os_glance"):
                raise UsageError(f"--tag {key}: a Glance image attribute of that name is reserved")
        self._userdata_b64 = self._render_userdata(request)

    @staticmethod
    def _render_userdata(request: BakeRequest) -> str:
        from image_base.builder import BuilderSpecError, render_builder_userdata
        from image_base.builder.userdata import render_builder_script

        spec = builder_spec(request)
        try:
            data = render_builder_userdata(spec)  # plain, or gzipped (cloud-init takes both)
        except BuilderSpecError:  # over EC2's limit even gzipped: Nova's is larger, send the script
            data = render_builder_script(spec).encode("utf-8")
        encoded = base64.b64encode(data).decode("ascii")
        if len(encoded) > USERDATA_LIMIT:
            raise UsageError(
                f"builder user data is {len(encoded)} bytes base64-encoded, "
                f"over Nova's {USERDATA_LIMIT}-byte limit"
            )
        return encoded

    def preflight(self, args: argparse.Namespace) -> str:
        """Authenticate, then look up flavor, image, network and key pair (exit 2 if one is wrong)."""
        who = self.whoami(args)
        self._resolved = resolve_targets(self.conn(args), args)
        return f"OpenStack project {who['project']} ({who['project_id']}) as {who['user']} in {who['region']}"

    def whoami(self, args: argparse.Namespace) -> dict[str, str]:
        """A Keystone token request (cheap, authenticated) and what the token says."""
        conn = self.conn(args)
        try:
            conn.authorize()
            access = conn.session.auth.get_access(conn.session)
        except Exception as exc:
            usage = oc.credentials_error(exc)
            if usage:
                raise usage from None
            raise RuntimeError(oc.one_line(exc)) from None
        return {
            "user": f"{access.username} ({access.user_id})",
            "user_domain": str(access.user_domain_name or access.user_domain_id or ""),
            "project": str(access.project_name or ""),
            "project_id": str(access.project_id or ""),
            "region": str(conn.config.region_name or ""),
            "auth_url": str(conn.config.get_auth_args().get("auth_url", "")),
        }

    def user_error(self, exc: BaseException) -> UsageError | None:
        """Missing/rejected credentials or an unreachable Keystone are exit 2."""
        return oc.credentials_error(exc)

    def is_transient(self, exc: BaseException) -> bool:
        """Rate limits, 5xx and connection errors are polled again."""
        return oc.is_transient(exc)

    def _resolved_targets(self) -> Resolved:
        if self._resolved is None:
            raise RuntimeError("preflight did not run")
        return self._resolved

    def bake_steps(self, args: argparse.Namespace, request: BakeRequest) -> list[Step]:
        """See :class:`factory.clouds.openstack_steps.OpenStackBake` (the connection is made lazily)."""
        bake = OpenStackBake(
            args, request, lambda: self.conn(args), self._userdata_b64, self._resolved_targets
        )
        return bake.steps()

    def plan_resources(self, args: argparse.Namespace, request: BakeRequest) -> list[str]:
        """What ``--dry-run`` says will be created."""
        return [
            f"server k3os-builder-{request.bake_id[:8]} ({args.flavor}) [temporary]",
            f"image {request.name!r} ({args.image_visibility}) [kept]",
            "metadata/properties: "
            + ", ".join([oc.BAKE_ID_KEY, oc.CREATED_KEY, oc.STATE_KEY, *request.tags]),
        ]

    # -- gc / images ---------------------------------------------------------------------------------
    def _own_images(self, args: argparse.Namespace) -> list[Any]:
        conn = self.conn(args)
        return [
            i
            for i in conn.image.images(owner=conn.current_project_id)
            if oc.BAKE_ID_KEY in (i.properties or {})
        ]

    def gc_find(self, args: argparse.Namespace, older_than_s: float) -> list[GcItem]:
        """Servers and unfinished images with a bake id, older than the given age (running bakes skipped)."""
        conn = self.conn(args)
        region = str(conn.config.region_name or "")
        found = Leftovers(self.name, older_than_s)

        def add(kind: str, rid: str, labels: dict[str, Any], created: Any) -> None:
            bake, state = str(labels.get(oc.BAKE_ID_KEY, "")), labels.get(oc.STATE_KEY)
            found.offer(kind, rid, region, bake, state, age_seconds(created))

        for server in conn.compute.servers(details=True):
            add("server", str(server.id), dict(server.metadata or {}), server.created_at)
        for image in self._own_images(args):
            add("image", str(image.id), dict(image.properties or {}), image.created_at)
        return found.in_order(ORDER)

    def gc_remove(self, args: argparse.Namespace, items: list[GcItem], out: TextIO) -> list[GcItem]:
        """Delete servers (and wait), then images; one line each; return the failures."""
        conn = self.conn(args)

        def remove(item: GcItem) -> None:
            if item.kind == "server":
                oc.delete_server(conn, item.id, 600.0, gc_poll_seconds())
            else:
                oc.delete_image(conn, item.id)

        return remove_in_order(
            items, ORDER, remove, oc.one_line, out, region_in_removed=False, region_in_failed=False
        )

    def images_list(self, args: argparse.Namespace) -> list[dict[str, Any]]:
        """Finished images of this factory in the project, newest first."""
        region = str(self.conn(args).config.region_name or "")
        rows = []
        for image in self._own_images(args):
            props = image.properties or {}
            if props.get(oc.STATE_KEY) != STATE_COMPLETE:
                continue
            rows.append(
                {
                    "region": region,
                    "image_id": str(image.id),
                    "name": str(image.name or ""),
                    "created": str(image.created_at or ""),
                    "bake_id": str(props.get(oc.BAKE_ID_KEY, "")),
                    "visibility": str(image.visibility or ""),
                }
            )
        return sorted(rows, key=lambda r: (r["created"], r["image_id"]), reverse=True)

    def images_delete(self, args: argparse.Namespace, image: dict[str, Any]) -> None:
        """Delete one image."""
        oc.delete_image(self.conn(args), str(image["image_id"]))
