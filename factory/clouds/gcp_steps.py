"""The steps of ``factory bake gcp``: source image -> builder instance (user-data in metadata) ->
running -> TERMINATED (the takeover powered it off) -> image from its boot disk -> delete the builder
-> label the image complete. Each resource is journaled and gets its cleanup the moment the API
accepted its creation (see :mod:`factory.pipeline`); operations are polled with ``ctx.wait``."""

from __future__ import annotations

import argparse
import base64
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import compute_v1

from factory.clouds.base import RESULT_KEY, Artifact, BakeRequest, BakeResult
from factory.clouds.gcp_client import (
    STATE_LABEL,
    Clients,
    OperationFailed,
    base_labels,
    new_request_id,
    remover,
    retry_call,
)
from factory.journal import Resource
from factory.pipeline import STATE_COMPLETE, STATE_PENDING, BakeContext, Step, StepFailed

GZIP_MAGIC = b"\x1f\x8b"
GLOBAL = "global"


def userdata_items(userdata: bytes) -> list[Any]:
    """Metadata items for cloud-init: ``user-data`` as text, or base64 + ``user-data-encoding`` if gzip."""
    if userdata[:2] == GZIP_MAGIC:
        return [
            compute_v1.Items(key="user-data", value=base64.b64encode(userdata).decode("ascii")),
            compute_v1.Items(key="user-data-encoding", value="base64"),
        ]
    return [compute_v1.Items(key="user-data", value=userdata.decode("utf-8"))]


class GcpBake:
    """One GCE bake: holds the clients and options; :meth:`steps` returns the pipeline steps."""

    def __init__(
        self, args: argparse.Namespace, request: BakeRequest, clients: Clients, userdata: bytes
    ) -> None:
        """Bind options; nothing is called on GCP here."""
        self.args = args
        self.request = request
        self.clients = clients
        self.userdata = userdata
        self.zone: str = args.zone
        self.instance = f"k3os-builder-{request.bake_id}"
        self.image = request.name
        self.ops: dict[str, Any] = {}

    def steps(self) -> list[Step]:
        """The ordered pipeline steps (their ``plan`` is what ``--dry-run`` prints)."""
        a = self.args
        src = f"{a.source_image_project}/{a.source_image_family}"
        return [
            Step("source-image", self.source_image, f"newest image of family {src}; check the name is free"),
            Step(
                "launch-builder",
                self.launch,
                f"instances.insert {self.instance} ({a.machine_type}, {self.zone}), user-data, labelled",
            ),
            Step("wait-running", self.wait_running, "wait for the insert operation and the builder to run"),
            Step(
                "wait-stopped",
                self.wait_stopped,
                "wait for the takeover to power the builder off (TERMINATED)",
            ),
            Step(
                "create-image",
                self.create_image,
                f"images.insert {self.image!r} from the boot disk, labelled",
            ),
            Step("wait-image", self.wait_image, "wait for the image operation and status READY"),
            Step("delete-builder", self.delete_builder, "delete the builder and its boot disk, and wait"),
            Step("finish", self.finish, f"label the image {STATE_LABEL}={STATE_COMPLETE}; keep it"),
        ]

    # -- helpers -----------------------------------------------------------------------------------
    def _labels(self, ctx: BakeContext, state: str | None = None) -> dict[str, str]:
        return base_labels(ctx.bake_id, self.request.tags, state)

    def _get_instance(self) -> Any:
        return self.clients.instances().get(
            project=self.clients.project, zone=self.zone, instance=self.instance
        )

    def _get_image(self) -> Any | None:
        try:
            return self.clients.images().get(project=self.clients.project, image=self.image)
        except gexc.NotFound:
            return None

    def _wait_op(self, ctx: BakeContext, phase: str, key: str, zone: str | None, what: str) -> None:
        op = self.ops[key]

        def check() -> bool | None:
            try:
                return self.clients.operation_done(op.name, zone, what)
            except OperationFailed as exc:
                raise StepFailed(str(exc)) from None

        ctx.wait(phase, f"operation {op.name} ({what})", check)

    # -- steps -------------------------------------------------------------------------------------
    def source_image(self, ctx: BakeContext) -> None:
        """Resolve the source image family and make sure the image name is free."""
        a = self.args
        try:
            src = retry_call(
                lambda: self.clients.images().get_from_family(
                    project=a.source_image_project, family=a.source_image_family
                )
            )
        except gexc.NotFound:
            raise StepFailed(
                f"no image in family {a.source_image_family!r} of project {a.source_image_project!r}"
            ) from None
        ctx.state["source_image"] = src.self_link
        ctx.log("source-image", f"{src.name} ({a.source_image_project})")
        taken = retry_call(self._get_image)
        if taken is not None:
            raise StepFailed(
                f"an image named {self.image!r} already exists in project {self.clients.project}"
            )

    def _instance_body(self, ctx: BakeContext) -> Any:
        a = self.args
        labels = self._labels(ctx)
        iface = compute_v1.NetworkInterface()
        if a.network:
            iface.network = a.network if "/" in a.network else f"global/networks/{a.network}"
        if a.subnetwork:
            region = self.zone.rsplit("-", 1)[0]
            iface.subnetwork = (
                a.subnetwork if "/" in a.subnetwork else f"regions/{region}/subnetworks/{a.subnetwork}"
            )
        if not a.network and not a.subnetwork:
            iface.network = "global/networks/default"
        if not a.omit_external_ip:
            iface.access_configs = [compute_v1.AccessConfig(name="External NAT", type_="ONE_TO_ONE_NAT")]
        disk = compute_v1.AttachedDisk(
            boot=True,
            auto_delete=True,
            initialize_params=compute_v1.AttachedDiskInitializeParams(
                source_image=ctx.state["source_image"],
                disk_name=self.instance,
                disk_size_gb=a.disk_size,
                labels=labels,
            ),
        )
        return compute_v1.Instance(
            name=self.instance,
            machine_type=f"zones/{self.zone}/machineTypes/{a.machine_type}",
            labels=labels,
            disks=[disk],
            network_interfaces=[iface],
            metadata=compute_v1.Metadata(items=userdata_items(self.userdata)),
            description=f"k3os-factory builder of bake {ctx.bake_id}",
        )

    def launch(self, ctx: BakeContext) -> None:
        """instances.insert; the instance and its boot disk get their cleanups as soon as it is accepted."""
        clients = self.clients
        request = compute_v1.InsertInstanceRequest(
            project=clients.project,
            zone=self.zone,
            instance_resource=self._instance_body(ctx),
            request_id=new_request_id(),
        )
        self.ops["insert"] = retry_call(lambda: clients.instances().insert_unary(request=request))
        poll = ctx.poll_interval
        zone, name = self.zone, self.instance
        ctx.created(
            Resource("disk", name, zone),
            remover(clients, "disk", name, zone, poll),
        )
        ctx.created(
            Resource("instance", name, zone),
            remover(clients, "instance", name, zone, poll),
        )

    def _status_check(self, wanted: tuple[str, ...]) -> Any:
        def check() -> str | None:
            try:
                status = str(self._get_instance().status)
            except gexc.NotFound:
                raise StepFailed(f"builder {self.instance} disappeared") from None
            return status if status in wanted else None

        return check

    def wait_running(self, ctx: BakeContext) -> None:
        """The insert operation finishes (its errors fail the bake), then the builder runs (or stopped)."""
        self._wait_op(ctx, "wait-running", "insert", self.zone, f"insert instance {self.instance}")
        check = self._status_check(("RUNNING", "STOPPING", "TERMINATED"))
        ctx.wait("wait-running", f"{self.instance} to run", check)

    def wait_stopped(self, ctx: BakeContext) -> None:
        """Wait for status TERMINATED; on timeout show the tail of serial port 1."""

        def serial_tail() -> str:
            try:
                request = compute_v1.GetSerialPortOutputInstanceRequest(
                    project=self.clients.project, zone=self.zone, instance=self.instance, port=1
                )
                out = self.clients.instances().get_serial_port_output(request=request)
            except gexc.GoogleAPICallError as exc:
                return f"no serial port output ({exc.code})"
            lines = [ln for ln in (out.contents or "").splitlines() if ln.strip()][-15:]
            return "serial console tail:\n  " + "\n  ".join(lines) if lines else "serial console empty"

        ctx.wait(
            "wait-stopped",
            f"{self.instance} to stop (TERMINATED)",
            self._status_check(("TERMINATED",)),
            on_timeout=serial_tail,
        )

    def create_image(self, ctx: BakeContext) -> None:
        """images.insert from the stopped builder's boot disk, labelled pending; cleanup at once."""
        a = self.args
        clients = self.clients
        image = compute_v1.Image(
            name=self.image,
            source_disk=f"projects/{clients.project}/zones/{self.zone}/disks/{self.instance}",
            labels=self._labels(ctx, STATE_PENDING),
            description=f"k3OS image baked by k3os-factory (bake {ctx.bake_id})",
            architecture="ARM64" if a.arch == "arm64" else "X86_64",
        )
        if a.image_family:
            image.family = a.image_family
        if a.storage_location:
            image.storage_locations = [a.storage_location]
        request = compute_v1.InsertImageRequest(
            project=clients.project, image_resource=image, request_id=new_request_id()
        )
        self.ops["image"] = retry_call(lambda: clients.images().insert_unary(request=request))
        poll = ctx.poll_interval
        name = self.image
        ctx.created(
            Resource("image", name, GLOBAL),
            remover(clients, "image", name, None, poll),
        )

    def wait_image(self, ctx: BakeContext) -> None:
        """The image operation finishes, then the image is READY (FAILED stops the bake)."""
        self._wait_op(ctx, "wait-image", "image", None, f"create image {self.image}")
        last: dict[str, str] = {}

        def check() -> str | None:
            found = self._get_image()
            if found is None:
                return None
            last["status"] = str(found.status)
            if found.status == "FAILED":
                raise StepFailed(f"image {self.image} is FAILED")
            return "ready" if found.status == "READY" else None

        ctx.wait(
            "wait-image",
            f"image {self.image} to be READY",
            check,
            on_timeout=lambda: f"image {self.image} is {last.get('status', 'unknown')}",
        )

    def delete_builder(self, ctx: BakeContext) -> None:
        """Delete the builder (its boot disk goes with it: autoDelete) and wait; the image stays."""
        clients = self.clients
        request = compute_v1.DeleteInstanceRequest(
            project=clients.project, zone=self.zone, instance=self.instance, request_id=new_request_id()
        )
        try:
            self.ops["delete"] = retry_call(lambda: clients.instances().delete_unary(request=request))
        except gexc.NotFound:
            self.ops["delete"] = None
        if self.ops["delete"] is not None:
            self._wait_op(ctx, "delete-builder", "delete", self.zone, f"delete instance {self.instance}")
        ctx.discard(Resource("instance", self.instance, self.zone))
        try:
            clients.disks().get(project=clients.project, zone=self.zone, disk=self.instance)
        except gexc.NotFound:
            ctx.discard(Resource("disk", self.instance, self.zone))
            return
        ctx.log("delete-builder", f"boot disk {self.instance} survived the instance; deleting it")
        remover(clients, "disk", self.instance, self.zone, ctx.poll_interval)()
        ctx.discard(Resource("disk", self.instance, self.zone))

    def finish(self, ctx: BakeContext) -> None:
        """Label the image complete (setLabels with its fingerprint), keep it, store the result."""
        clients = self.clients
        found = retry_call(lambda: clients.images().get(project=clients.project, image=self.image))
        labels = {**dict(found.labels), STATE_LABEL: STATE_COMPLETE}
        request = compute_v1.SetLabelsImageRequest(
            project=clients.project,
            resource=self.image,
            global_set_labels_request_resource=compute_v1.GlobalSetLabelsRequest(
                labels=labels, label_fingerprint=found.label_fingerprint
            ),
        )
        self.ops["labels"] = retry_call(lambda: clients.images().set_labels_unary(request=request))
        self._wait_op(ctx, "finish", "labels", None, f"label image {self.image}")
        ctx.keep(Resource("image", self.image, GLOBAL))
        a = self.args
        ctx.state[RESULT_KEY] = BakeResult(
            artifacts=[Artifact(GLOBAL, self.image)],
            artifact_id=self.image,
            files=None,
            custom_data={
                "bake_id": ctx.bake_id,
                "project": clients.project,
                "zone": self.zone,
                "image_self_link": str(found.self_link),
                "image_family": a.image_family or "",
                "source_image": str(ctx.state.get("source_image", "")),
                "machine_type": a.machine_type,
                "arch": a.arch,
                "iso_url": self.request.iso_url or "",
                "iso_sha256": self.request.iso_sha256 or "",
            },
        )
