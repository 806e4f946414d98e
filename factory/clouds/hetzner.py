"""Hetzner Cloud backend: ``factory bake hetzner`` (a snapshot via a takeover builder server), ``gc``,
``images``, ``whoami``. hcloud-python is imported only through :mod:`factory.clouds.hetzner_client` and
:mod:`factory.clouds.hetzner_steps`, i.e. when Hetzner is used."""

from __future__ import annotations

import argparse
import hashlib
import os
import re
from typing import Any, ClassVar, TextIO

from factory.clouds import hetzner_client as hc
from factory.clouds.base import BakeRequest, CloudBackend, GcItem
from factory.clouds.common import (
    TAKEOVER_PHASE_TIMEOUTS,
    Leftovers,
    age_seconds,
    builder_spec,
    gc_poll_seconds,
    remove_in_order,
)
from factory.clouds.hetzner_steps import HetznerBake
from factory.pipeline import STATE_COMPLETE, Step, UsageError

USERDATA_LIMIT = 32 * 1024
DEFAULT_SERVER_TYPE = {"amd64": "cx22", "arm64": "cax11"}
_LOCATION = re.compile(r"^[a-z]{2,8}[0-9]{0,2}$")
_SERVER_TYPE = re.compile(r"^[a-z]{2,6}[0-9]{1,4}[a-z]*$")
ORDER = ("server", "image")


class HetznerBackend(CloudBackend):
    """Hetzner Cloud: builder server -> takeover -> off -> create_image (snapshot) -> delete builder."""

    name: ClassVar[str] = "hetzner"
    builder_type: ClassVar[str] = "hcloud"
    default_data_sources: ClassVar[tuple[str, ...]] = ("hetzner",)
    phase_timeouts: ClassVar[dict[str, float]] = dict(TAKEOVER_PHASE_TIMEOUTS)

    def __init__(self) -> None:
        """No API call here; the client is made on first use."""
        self._client: Any = None
        self._userdata = ""

    def client(self, poll_s: float = 1.0) -> Any:
        """The hcloud client (made once; UsageError without ``HCLOUD_TOKEN``)."""
        if self._client is None:
            self._client = hc.make_client(poll_s)
        return self._client

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """The ``factory bake hetzner`` flags."""
        parser.add_argument("--location", default="fsn1", help="location of the builder (default fsn1)")
        parser.add_argument("--arch", choices=sorted(DEFAULT_SERVER_TYPE), default="amd64")
        parser.add_argument(
            "--server-type", help="builder server type (default cx22; cax11 with --arch arm64)"
        )
        parser.add_argument("--source-image", default="ubuntu-24.04", help="builder image name or id")
        parser.add_argument("--snapshot-description", help="snapshot description (default: --name)")
        parser.add_argument(
            "--ssh-key",
            action="append",
            default=[],
            metavar="NAME|ID",
            help="existing project SSH key to debug the builder (repeatable; optional)",
        )
        parser.add_argument("--network", metavar="NAME|ID", help="attach the builder to this private network")

    def validate(self, args: argparse.Namespace, request: BakeRequest) -> None:
        """Everything checkable offline; renders the builder user data (as text, size-checked)."""
        if not request.iso_url:
            raise UsageError("hetzner needs --iso-url (the builder downloads the ISO; --iso is a local file)")
        if not _LOCATION.match(args.location):
            raise UsageError(
                f"--location {args.location!r} is not a Hetzner location name (fsn1, nbg1, hel1, ash)"
            )
        args.server_type = args.server_type or DEFAULT_SERVER_TYPE[args.arch]
        if not _SERVER_TYPE.match(args.server_type):
            raise UsageError(
                f"--server-type {args.server_type!r}: expected a type name such as cx22 or cax11"
            )
        if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*$", args.source_image):
            raise UsageError(f"--source-image {args.source_image!r}: expected an image name or id")
        description = args.snapshot_description or request.name
        if not 1 <= len(description) <= 255 or any(ord(c) < 32 for c in description):
            raise UsageError(
                "the snapshot description (--snapshot-description or --name) must be 1-255 printable"
            )
        for key, value in request.tags.items():
            problem = hc.label_problem(key, value)
            if problem:
                raise UsageError(f"--tag {key}={value}: {problem}")
            if key.startswith("k3os-factory/"):
                raise UsageError(f"--tag {key}: the k3os-factory/ label prefix is the factory's own")
        self._userdata = self._render_userdata(request)

    @staticmethod
    def _render_userdata(request: BakeRequest) -> str:
        from image_base.builder import BuilderSpecError, render_builder_userdata
        from image_base.builder.userdata import GZIP_MAGIC, render_builder_script

        spec = builder_spec(request)
        # The API's user_data is a JSON string (up to 32 KiB): gzip bytes cannot go there, so a script
        # that the renderer gzipped (or refused, over EC2's 16 KiB even gzipped) is sent as plain text.
        try:
            data = render_builder_userdata(spec)
            text = render_builder_script(spec) if data.startswith(GZIP_MAGIC) else data.decode("utf-8")
        except BuilderSpecError:
            text = render_builder_script(spec)
        size = len(text.encode("utf-8"))
        if size > USERDATA_LIMIT:
            raise UsageError(f"builder user data is {size} bytes, over Hetzner's {USERDATA_LIMIT}-byte limit")
        return text

    def preflight(self, args: argparse.Namespace) -> str:
        """A cheap authenticated call (exit 2 with one line when the token is missing or rejected)."""
        who = self.whoami(args)
        return f"Hetzner Cloud project token {who['token_sha256']} at {who['endpoint']} ({who['locations']})"

    def whoami(self, args: argparse.Namespace) -> dict[str, str]:
        """``GET /locations`` with the token. Hetzner tokens belong to one project and the API has no
        identity call, so this reports the endpoint, a token fingerprint and the visible locations."""
        client = self.client()
        try:
            locations = client.locations.get_all()
        except Exception as exc:
            usage = hc.credentials_error(exc)
            if usage:
                raise usage from None
            raise RuntimeError(hc.describe(exc)) from None
        token = os.environ.get(hc.TOKEN_ENV, "").strip()
        return {
            "endpoint": hc.endpoint(),
            "token_sha256": hashlib.sha256(token.encode()).hexdigest()[:12],
            "locations": ",".join(str(loc.name) for loc in locations),
        }

    def is_transient(self, exc: BaseException) -> bool:
        """Rate limits, locks, 5xx and connection errors are polled again."""
        return hc.is_transient(exc)

    def bake_steps(self, args: argparse.Namespace, request: BakeRequest) -> list[Step]:
        """See :class:`factory.clouds.hetzner_steps.HetznerBake` (the client is made lazily)."""
        bake = HetznerBake(args, request, lambda: self.client(request.poll_interval_s), self._userdata)
        return bake.steps()

    def plan_resources(self, args: argparse.Namespace, request: BakeRequest) -> list[str]:
        """What ``--dry-run`` says will be created."""
        return [
            f"server k3os-builder-{request.bake_id[:8]} ({args.server_type}, {args.location}) [temporary]",
            f"snapshot {(args.snapshot_description or request.name)!r} [kept]",
            "labels: " + ", ".join([hc.BAKE_ID_LABEL, hc.CREATED_LABEL, hc.STATE_LABEL, *request.tags]),
        ]

    # -- gc / images ---------------------------------------------------------------------------------
    def gc_find(self, args: argparse.Namespace, older_than_s: float) -> list[GcItem]:
        """Labelled servers and unfinished snapshots older than the given age (running bakes skipped)."""
        client = self.client()
        found = Leftovers(self.name, older_than_s)

        def add(kind: str, rid: int, labels: dict[str, str], created: Any, where: str = "global") -> None:
            bake, state = labels.get(hc.BAKE_ID_LABEL, ""), labels.get(hc.STATE_LABEL)
            found.offer(kind, str(rid), where, bake, state, age_seconds(created))

        for server in client.servers.get_all(label_selector=hc.BAKE_ID_LABEL):
            where = str(getattr(server.location, "name", "") or "")
            add("server", hc.rid(server.id), server.labels or {}, server.created, where)
        selector = f"{hc.BAKE_ID_LABEL},{hc.STATE_LABEL}!={STATE_COMPLETE}"
        for image in client.images.get_all(type=["snapshot"], label_selector=selector):
            add("image", hc.rid(image.id), image.labels or {}, image.created)
        return found.in_order(ORDER)

    def gc_remove(self, args: argparse.Namespace, items: list[GcItem], out: TextIO) -> list[GcItem]:
        """Delete servers (and wait), then snapshots; one line each; return the failures."""
        client = self.client()

        def remove(item: GcItem) -> None:
            if item.kind == "server":
                hc.delete_server(client, int(item.id), 600.0, gc_poll_seconds())
            else:
                hc.delete_image(client, int(item.id))

        return remove_in_order(items, ORDER, remove, hc.describe, out, region_in_failed=False)

    def images_list(self, args: argparse.Namespace) -> list[dict[str, Any]]:
        """Finished snapshots of this factory, newest first (``name`` is the snapshot description)."""
        selector = f"{hc.STATE_LABEL}={STATE_COMPLETE}"
        rows = []
        for image in self.client().images.get_all(type=["snapshot"], label_selector=selector):
            labels = image.labels or {}
            rows.append(
                {
                    "region": "",
                    "image_id": str(image.id),
                    "name": str(image.description or ""),
                    "created": image.created.isoformat() if image.created else "",
                    "bake_id": labels.get(hc.BAKE_ID_LABEL, ""),
                    "architecture": str(image.architecture or ""),
                }
            )
        return sorted(rows, key=lambda r: (r["created"], int(r["image_id"])), reverse=True)

    def images_delete(self, args: argparse.Namespace, image: dict[str, Any]) -> None:
        """Delete one snapshot."""
        hc.delete_image(self.client(), int(image["image_id"]))
