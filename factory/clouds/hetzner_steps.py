"""The steps of ``factory bake hetzner``: resolve (server type, location, image, keys, network) ->
builder server -> running -> off (the k3OS takeover powered it off) -> snapshot -> available -> delete
the builder -> label the snapshot complete. Each resource is journaled and gets its cleanup the moment
the API returned its id (see :mod:`factory.pipeline`)."""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from hcloud import APIException, Client
from hcloud.images import Image
from hcloud.locations import Location
from hcloud.networks import Network
from hcloud.server_types import ServerType
from hcloud.servers import Server
from hcloud.ssh_keys import SSHKey

from factory.clouds import hetzner_client as hc
from factory.clouds.base import RESULT_KEY, Artifact, BakeRequest, BakeResult
from factory.journal import Resource
from factory.pipeline import STATE_COMPLETE, STATE_PENDING, BakeContext, Step, StepFailed

CLEANUP_WAIT_S = 600.0
LOCKED_RETRY_S = 120.0
#: errors after which the API certainly did not start the action (safe to call again)
NOT_DONE_CODES = frozenset({"locked", "rate_limit_exceeded", "conflict"})
HCLOUD_ARCH = {"amd64": "x86", "arm64": "arm"}


class HetznerBake:
    """One Hetzner bake: options, the client and the ids found so far; :meth:`steps` lists the steps."""

    def __init__(
        self, args: argparse.Namespace, request: BakeRequest, get_client: Callable[[], Client], userdata: str
    ) -> None:
        """Bind options; nothing is called on the API here (``get_client`` is called on first use)."""
        self.args = args
        self.request = request
        self._get_client = get_client
        self.userdata = userdata
        self.location = str(args.location)
        self.arch = HCLOUD_ARCH[args.arch]
        self.server_id = 0
        self.image_id = 0
        self.actions: dict[str, int] = {}
        self.resolved: dict[str, Any] = {}

    @property
    def client(self) -> Client:
        """The hcloud client (made on first use, so ``--dry-run`` needs no token)."""
        return self._get_client()

    @property
    def description(self) -> str:
        """The snapshot description (Hetzner snapshots have no name; Packer stores its name here too)."""
        return str(self.args.snapshot_description or self.request.name)

    def steps(self) -> list[Step]:
        """The ordered pipeline steps (their ``plan`` is what ``--dry-run`` prints)."""
        a = self.args
        extras = "".join(
            [
                f", ssh keys {', '.join(a.ssh_key)}" if a.ssh_key else "",
                f", network {a.network}" if a.network else "",
            ]
        )
        return [
            Step(
                "resolve",
                self.resolve,
                f"look up {a.server_type} ({self.arch}), {self.location}, image {a.source_image}{extras}",
            ),  # fmt: skip
            Step(
                "launch-builder",
                self.launch,
                f"create server {self.server_name} with the builder user data, labelled",
            ),
            Step("wait-running", self.wait_running, "wait for the create action and the server to run"),
            Step(
                "wait-stopped",
                self.wait_stopped,
                "wait for the takeover to power the builder off (status off)",
            ),
            Step(
                "create-image",
                self.create_image,
                f"create_image type=snapshot {self.description!r}, labelled",
            ),
            Step("wait-image", self.wait_image, "wait for the snapshot to be available"),
            Step("delete-builder", self.delete_builder, "delete the builder server and wait"),
            Step("finish", self.finish, f"label the snapshot {hc.STATE_LABEL}={STATE_COMPLETE}; keep it"),
        ]

    @property
    def server_name(self) -> str:
        """Builder hostname: ``k3os-builder-<first 8 of the bake id>``."""
        return f"k3os-builder-{self.request.bake_id[:8]}"

    def _labels(self, ctx: BakeContext, state: str | None = None) -> dict[str, str]:
        return hc.base_labels(ctx.bake_id, self.request.tags, state)

    def _server_status(self) -> str:
        try:
            return str(self.client.servers.get_by_id(self.server_id).status)
        except APIException as exc:
            if hc.is_not_found(exc):
                raise StepFailed(f"builder server {self.server_id} disappeared") from None
            raise

    def _action_check(self, name: str) -> None:
        status, error = hc.action_status(self.client, self.actions[name])
        if status == "error":
            raise StepFailed(f"{name} action {self.actions[name]} failed: {error}")

    # -- steps -------------------------------------------------------------------------------------
    def resolve(self, ctx: BakeContext) -> None:
        """Server type (and its architecture), location, source image, SSH keys, network."""
        a = self.args
        stype = self.client.server_types.get_by_name(a.server_type)
        if stype is None:
            raise StepFailed(f"server type {a.server_type!r} does not exist")
        if stype.architecture != self.arch:
            raise StepFailed(
                f"server type {a.server_type} is {stype.architecture}, but --arch {a.arch} needs {self.arch}"
            )
        if self.client.locations.get_by_name(self.location) is None:
            raise StepFailed(f"location {self.location!r} does not exist")
        image = (
            self.client.images.get_by_id(int(a.source_image))
            if str(a.source_image).isdigit()
            else self.client.images.get_by_name_and_architecture(a.source_image, self.arch)
        )
        if image is None:
            raise StepFailed(f"image {a.source_image!r} ({self.arch}) not found")
        ctx.state["source_image"] = f"{image.name or image.description} ({image.id})"
        self.resolved["image"] = hc.rid(image.id)
        keys = []
        for ref in a.ssh_key:
            key = (
                self.client.ssh_keys.get_by_id(int(ref))
                if ref.isdigit()
                else self.client.ssh_keys.get_by_name(ref)
            )
            if key is None:
                raise StepFailed(f"SSH key {ref!r} not found in the project")
            keys.append(hc.rid(key.id))
        self.resolved["ssh_keys"] = keys
        if a.network:
            net = self.client.networks.get_by_id(int(a.network)) if a.network.isdigit() else None
            net = net or self.client.networks.get_by_name(a.network)
            if net is None:
                raise StepFailed(f"network {a.network!r} not found in the project")
            self.resolved["network"] = hc.rid(net.id)
        ctx.log("resolve", f"{a.server_type} in {self.location}, image {ctx.state['source_image']}")

    def launch(self, ctx: BakeContext) -> None:
        """Create the builder with the user data and labels; cleanup registered at once."""
        network = self.resolved.get("network")
        response = self.client.servers.create(
            name=self.server_name,
            server_type=ServerType(name=self.args.server_type),
            image=Image(id=self.resolved["image"]),
            ssh_keys=[SSHKey(id=k) for k in self.resolved["ssh_keys"]] or None,
            networks=[Network(id=network)] if network else None,
            user_data=self.userdata,
            labels=self._labels(ctx),
            location=Location(name=self.location),
            start_after_create=True,
        )
        self.server_id = hc.rid(response.server.id)
        self.actions["create_server"] = hc.rid(response.action.id)
        client, sid, poll = self.client, self.server_id, ctx.poll_interval
        ctx.created(
            Resource("server", str(sid), self.location),
            lambda: hc.delete_server(client, sid, CLEANUP_WAIT_S, max(poll, 0.1)),
        )

    def wait_running(self, ctx: BakeContext) -> None:
        """Wait for the create action and ``running`` (or already ``off``: the guest may be fast)."""

        def check() -> str | None:
            self._action_check("create_server")
            status = self._server_status()
            return status if status in ("running", "off") else None

        ctx.wait("wait-running", f"server {self.server_id} to run", check)

    def wait_stopped(self, ctx: BakeContext) -> None:
        """Wait for status ``off``; on timeout say where to look (Hetzner has no console-log API)."""
        last = {"status": "unknown"}

        def check() -> str | None:
            status = self._server_status()
            last["status"] = status
            if status == "deleting":
                raise StepFailed(f"builder server {self.server_id} is being deleted by someone else")
            return status if status == "off" else None

        def on_timeout() -> str:
            return (
                f"server {self.server_id} is still {last['status']}; the builder logs to its console: "
                "open it in the Hetzner Console (or `hcloud server request-console`)"
            )

        ctx.wait("wait-stopped", f"server {self.server_id} to power off", check, on_timeout=on_timeout)

    def create_image(self, ctx: BakeContext) -> None:
        """Snapshot the stopped builder with labels (state pending); on an error, adopt a snapshot that
        the API made anyway (found by the bake-id label) instead of making a second one."""
        labels = self._labels(ctx, STATE_PENDING)
        deadline = time.monotonic() + LOCKED_RETRY_S
        while True:
            try:
                response = self.client.servers.create_image(
                    Server(id=self.server_id), description=self.description, type="snapshot", labels=labels
                )
                break
            except APIException as exc:
                if hc.error_code(exc) in NOT_DONE_CODES and time.monotonic() < deadline:
                    ctx.log("create-image", f"{hc.describe(exc)}; trying again")  # nothing was started
                    ctx.cancelled.wait(max(ctx.poll_interval, 0.1))
                    ctx.check_cancelled()
                    continue
                made = self._adopt_snapshot(ctx, exc)
                if not made:
                    raise
                return
        self._register_image(ctx, hc.rid(response.image.id))
        self.actions["create_image"] = hc.rid(response.action.id)

    def _adopt_snapshot(self, ctx: BakeContext, exc: APIException) -> bool:
        """After a create_image error: register a snapshot the API made anyway (found by bake id)."""
        made = self.client.images.get_all(
            type=["snapshot"], label_selector=f"{hc.BAKE_ID_LABEL}={ctx.bake_id}"
        )
        if not made:
            return False
        ctx.log("create-image", f"create_image answered {hc.describe(exc)}, but snapshot {made[0].id} exists")
        self._register_image(ctx, hc.rid(made[0].id))
        return True

    def _register_image(self, ctx: BakeContext, image_id: int) -> None:
        self.image_id = image_id
        client = self.client
        ctx.created(
            Resource("image", str(image_id), self.location), lambda: hc.delete_image(client, image_id)
        )

    def wait_image(self, ctx: BakeContext) -> None:
        """Wait until the snapshot is ``available``; a failed create action stops the wait."""
        last = {"status": "unknown"}

        def check() -> str | None:
            if "create_image" in self.actions:
                self._action_check("create_image")
            try:
                status = str(self.client.images.get_by_id(self.image_id).status)
            except APIException as exc:
                if hc.is_not_found(exc):
                    raise StepFailed(f"snapshot {self.image_id} disappeared while being created") from None
                raise
            last["status"] = status
            return status if status == "available" else None

        ctx.wait(
            "wait-image",
            f"snapshot {self.image_id} to be available",
            check,
            on_timeout=lambda: f"snapshot {self.image_id} is {last['status']}",
        )

    def delete_builder(self, ctx: BakeContext) -> None:
        """The builder is no longer needed: delete it now and wait for the delete action."""
        ctx.log("delete-builder", f"deleting server {self.server_id}")
        hc.delete_server(
            self.client, self.server_id, ctx.timeouts.for_phase("delete-builder"), ctx.poll_interval
        )
        ctx.discard(Resource("server", str(self.server_id), self.location))

    def finish(self, ctx: BakeContext) -> None:
        """Label the snapshot complete (gc never touches it), release its cleanup, store the result."""
        self.client.images.update(Image(id=self.image_id), labels=self._labels(ctx, STATE_COMPLETE))
        ctx.keep(Resource("image", str(self.image_id), self.location))
        image_id = str(self.image_id)
        ctx.state[RESULT_KEY] = BakeResult(
            artifacts=[Artifact(self.location, image_id)],
            artifact_id=image_id,
            files=None,
            custom_data={
                "bake_id": ctx.bake_id,
                "source_image": str(ctx.state.get("source_image", "")),
                "server_type": self.args.server_type,
                "location": self.location,
                "arch": self.args.arch,
                "snapshot_description": self.description,
                "iso_url": self.request.iso_url or "",
                "iso_sha256": self.request.iso_sha256 or "",
            },
        )
