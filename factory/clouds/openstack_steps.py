"""The steps of ``factory bake openstack``: builder server (user data, metadata) -> ACTIVE -> SHUTOFF
(the k3OS takeover powered it off) -> Nova ``createImage`` -> Glance image ``active`` -> delete the
builder -> image properties, tags, visibility and members. Each resource is journaled and gets its
cleanup the moment the API returned its id (see :mod:`factory.pipeline`).

:func:`resolve_targets` runs in the preflight: flavor, source image, network and key pair are looked up
before anything is created, so a wrong name is exit 2 with one line, not a failed bake.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import openstack.exceptions as os_exc
from openstack.connection import Connection

from factory.clouds import openstack_client as oc
from factory.clouds.base import RESULT_KEY, Artifact, BakeRequest, BakeResult
from factory.journal import Resource
from factory.pipeline import STATE_COMPLETE, STATE_PENDING, BakeContext, Step, StepFailed, UsageError

CLEANUP_WAIT_S = 600.0
DEFAULT_IMAGE = re.compile(r"^ubuntu[\s_-]*24\.04(\b|[\s_-])", re.IGNORECASE)
_UUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$")


@dataclass
class Resolved:
    """What the preflight found: ids (and names, for the log and the manifest)."""

    flavor_id: str
    flavor: str
    image_id: str
    image: str
    network_id: str | None
    network: str
    key_name: str | None


def _find_image(conn: Connection, ref: str | None) -> tuple[str, str]:
    if ref and _UUID.match(ref):
        try:
            image = conn.image.get_image(ref)
            return str(image.id), str(image.name)
        except Exception as exc:
            if not oc.is_not_found(exc):
                raise
    if ref:
        found = list(conn.image.images(name=ref, status="active"))
        what = f"--source-image {ref!r}: no active image with that name or id"
    else:
        found = [i for i in conn.image.images(status="active") if DEFAULT_IMAGE.match(str(i.name or ""))]
        found = [i for i in found if (i.properties or {}).get("image_type") != "snapshot"]
        what = "no active image named like 'ubuntu-24.04' or 'Ubuntu 24.04': pass --source-image NAME|ID"
    if not found:
        raise UsageError(what)
    newest = max(found, key=lambda i: (str(i.created_at or ""), str(i.id)))
    return str(newest.id), str(newest.name)


def _find_network(conn: Connection, ref: str | None) -> tuple[str | None, str]:
    if ref:
        net = conn.network.find_network(ref, ignore_missing=True)
        if net is None:
            raise UsageError(f"--network {ref!r}: no such network visible to the project")
        return str(net.id), str(net.name)
    usable = [n for n in conn.network.networks() if not n.is_router_external]
    if len(usable) > 1:
        names = ", ".join(sorted(str(n.name or n.id) for n in usable))
        raise UsageError(f"the project has several networks ({names}): choose one with --network NAME|ID")
    if not usable:
        return None, "auto"
    return str(usable[0].id), str(usable[0].name)


def resolve_targets(conn: Connection, args: argparse.Namespace) -> Resolved:
    """Look up flavor, source image, network and key pair; UsageError (exit 2) naming what is wrong."""
    flavor = conn.compute.find_flavor(args.flavor, ignore_missing=True)
    if flavor is None:
        raise UsageError(f"--flavor {args.flavor!r}: no such flavor")
    image_id, image_name = _find_image(conn, args.source_image)
    network_id, network_name = _find_network(conn, args.network)
    if args.key_name:
        try:
            conn.compute.get_keypair(args.key_name)
        except Exception as exc:
            if oc.is_not_found(exc):
                raise UsageError(f"--key-name {args.key_name!r}: no such key pair for this user") from None
            raise
    return Resolved(
        str(flavor.id), str(flavor.name), image_id, image_name, network_id, network_name, args.key_name
    )


def _one_line_errors(run: Callable[[BakeContext], None]) -> Callable[[BakeContext], None]:
    """SDK errors leave a step as :class:`StepFailed` with one line (HTTP status and the service's
    message), not the SDK's multi-part text with the request URL."""

    def guarded(ctx: BakeContext) -> None:
        try:
            run(ctx)
        except os_exc.SDKException as exc:
            raise StepFailed(oc.one_line(exc)) from exc

    return guarded


class OpenStackBake:
    """One OpenStack bake: options, the connection and the ids found so far; :meth:`steps` lists them."""

    def __init__(
        self,
        args: argparse.Namespace,
        request: BakeRequest,
        get_conn: Callable[[], Connection],
        userdata_b64: str,
        get_resolved: Callable[[], Resolved],
    ) -> None:
        """Bind options; nothing is called on the API here."""
        self.args = args
        self.request = request
        self._get_conn = get_conn
        self._get_resolved = get_resolved
        self.userdata_b64 = userdata_b64
        self.region = str(args.region or "")
        self.server_id = ""
        self.image_id = ""

    @property
    def conn(self) -> Connection:
        """The SDK connection (made on first use, so ``--dry-run`` needs no credentials)."""
        return self._get_conn()

    @property
    def server_name(self) -> str:
        """Builder name: ``k3os-builder-<first 8 of the bake id>``."""
        return f"k3os-builder-{self.request.bake_id[:8]}"

    def steps(self) -> list[Step]:
        """The ordered pipeline steps (their ``plan`` is what ``--dry-run`` prints)."""
        return [Step(s.name, _one_line_errors(s.run), s.plan) for s in self._steps()]

    def _steps(self) -> list[Step]:
        a = self.args
        return [
            Step(
                "launch-builder",
                self.launch,
                f"create server {self.server_name} ({a.flavor}, image {a.source_image or 'Ubuntu 24.04'}, "
                f"network {a.network or 'the only one'}) with the builder user data, metadata bake id",
            ),
            Step("wait-running", self.wait_running, "wait for the server to be ACTIVE"),
            Step(
                "wait-stopped", self.wait_stopped, "wait for the takeover to power the builder off (SHUTOFF)"
            ),
            Step(
                "create-image",
                self.create_image,
                f"createImage {self.request.name!r} with the bake properties",
            ),
            Step("wait-image", self.wait_image, "wait for the Glance image to be active"),
            Step(
                "delete-builder", self.delete_builder, "delete the builder server and wait until it is gone"
            ),
            Step(
                "finish",
                self.finish,
                f"tag the image, set visibility {a.image_visibility}"
                + (f", share with {', '.join(a.share_with)}" if a.share_with else "")
                + f", {oc.STATE_KEY}={STATE_COMPLETE}; keep it",
            ),
        ]

    def _server(self) -> Any:
        try:
            return self.conn.compute.get_server(self.server_id)
        except Exception as exc:
            if oc.is_not_found(exc):
                raise StepFailed(f"builder server {self.server_id} disappeared") from None
            raise

    @staticmethod
    def _fault(server: Any) -> str:
        fault = server.fault or {}
        return str(fault.get("message") or "no fault message") if isinstance(fault, dict) else str(fault)

    # -- steps ------------------------------------------------------------------------------------
    def launch(self, ctx: BakeContext) -> None:
        """Create the builder with user data and metadata; cleanup registered at once."""
        found = self._get_resolved()
        self.region = self.region or str(self.conn.config.region_name or "")
        ctx.state["source_image"] = f"{found.image} ({found.image_id})"
        ctx.state["flavor"] = found.flavor
        ctx.log(
            "launch-builder", f"{found.flavor}, image {ctx.state['source_image']}, network {found.network}"
        )
        attrs: dict[str, Any] = {
            "name": self.server_name,
            "image_id": found.image_id,
            "flavor_id": found.flavor_id,
            "networks": [{"uuid": found.network_id}] if found.network_id else "auto",
            "user_data": self.userdata_b64,
            "metadata": oc.base_metadata(ctx.bake_id, self.request.tags),
        }
        if found.key_name:
            attrs["key_name"] = found.key_name
        server = self.conn.compute.create_server(**attrs)
        self.server_id = str(server.id)
        conn, sid, poll = self.conn, self.server_id, max(ctx.poll_interval, 0.1)
        ctx.created(
            Resource("server", sid, self.region), lambda: oc.delete_server(conn, sid, CLEANUP_WAIT_S, poll)
        )

    def wait_running(self, ctx: BakeContext) -> None:
        """Wait for ``ACTIVE`` (or already ``SHUTOFF``: the guest may be fast); ``ERROR`` stops at once."""

        def check() -> str | None:
            server = self._server()
            if server.status == "ERROR":
                raise StepFailed(f"builder server {self.server_id} went to ERROR: {self._fault(server)}")
            return str(server.status) if server.status in ("ACTIVE", "SHUTOFF") else None

        ctx.wait("wait-running", f"server {self.server_id} to be ACTIVE", check)

    def wait_stopped(self, ctx: BakeContext) -> None:
        """Wait for ``SHUTOFF``; on timeout show the tail of the console log."""
        last = {"status": "unknown"}

        def check() -> str | None:
            server = self._server()
            last["status"] = str(server.status)
            if server.status == "ERROR":
                raise StepFailed(f"builder server {self.server_id} went to ERROR: {self._fault(server)}")
            return "SHUTOFF" if server.status == "SHUTOFF" else None

        def on_timeout() -> str:
            try:
                tail = self.conn.compute.get_server_console_output(self.server_id, length=5).get("output", "")
            except Exception as exc:
                tail = f"(console log unavailable: {oc.one_line(exc)})"
            lines = " | ".join(line.strip() for line in str(tail).splitlines()[-5:] if line.strip())
            return (
                f"server {self.server_id} is still {last['status']} (Nova may report a guest poweroff up to "
                f"its sync_power_state_interval late); console: {lines or '(empty)'}"
            )

        ctx.wait("wait-stopped", f"server {self.server_id} to power off", check, on_timeout=on_timeout)

    def create_image(self, ctx: BakeContext) -> None:
        """Nova ``createImage`` with the bake's properties (state pending); image registered at once."""
        meta = oc.base_metadata(ctx.bake_id, self.request.tags, STATE_PENDING)
        server = self.conn.compute.get_server(self.server_id)
        self.image_id = str(server.create_image(self.conn.compute, self.request.name, meta))
        conn, iid = self.conn, self.image_id
        ctx.created(Resource("image", iid, self.region), lambda: oc.delete_image(conn, iid))

    def wait_image(self, ctx: BakeContext) -> None:
        """Wait until Glance says ``active`` (before the builder is deleted: Nova kills an image whose
        server goes away while it uploads)."""
        last = {"status": "unknown"}

        def check() -> str | None:
            try:
                status = str(self.conn.image.get_image(self.image_id).status)
            except Exception as exc:
                if oc.is_not_found(exc):
                    raise StepFailed(f"image {self.image_id} disappeared while being saved") from None
                raise
            last["status"] = status
            if status in ("killed", "deleted", "pending_delete"):
                raise StepFailed(f"image {self.image_id} is {status}: the snapshot failed")
            return status if status == "active" else None

        ctx.wait(
            "wait-image",
            f"image {self.image_id} to be active",
            check,
            on_timeout=lambda: f"image {self.image_id} is {last['status']}",
        )

    def delete_builder(self, ctx: BakeContext) -> None:
        """The builder is no longer needed: delete it and wait until Nova no longer lists it."""
        ctx.log("delete-builder", f"deleting server {self.server_id}")
        oc.delete_server(
            self.conn, self.server_id, ctx.timeouts.for_phase("delete-builder"), max(ctx.poll_interval, 0.1)
        )
        ctx.discard(Resource("server", self.server_id, self.region))

    def finish(self, ctx: BakeContext) -> None:
        """Tags, visibility and members, then ``state=complete`` (gc never touches it); keep the image."""
        image_api: Any = self.conn.image  # the v2 proxy (the SDK types it as v1 | v2)
        for tag in oc.IMAGE_TAGS:
            image_api.add_tag(self.image_id, tag)
        visibility = self.args.image_visibility
        image = image_api.get_image(self.image_id)
        image_api.update_image(image, visibility=visibility)
        for project in self.args.share_with:
            image_api.add_member(self.image_id, member=project)
        # update_image(**props) would send the given properties as the complete set (removing the
        # bake id and the user's tags); update_image_properties merges into the existing ones
        image = image_api.get_image(self.image_id)
        image_api.update_image_properties(image=image, meta={oc.STATE_KEY: STATE_COMPLETE})
        ctx.keep(Resource("image", self.image_id, self.region))
        ctx.state[RESULT_KEY] = BakeResult(
            artifacts=[Artifact(self.region, self.image_id)],
            artifact_id=self.image_id,
            files=None,
            custom_data={
                "bake_id": ctx.bake_id,
                "source_image": str(ctx.state.get("source_image", "")),
                "flavor": str(ctx.state.get("flavor", "")),
                "region": self.region,
                "visibility": visibility,
                "iso_url": self.request.iso_url or "",
                "iso_sha256": self.request.iso_sha256 or "",
            },
        )
