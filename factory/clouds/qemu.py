"""QEMU backend: ``factory bake qemu`` bakes the ISO into a local qcow2 (or raw) image.

The same takeover flow as the clouds, on this machine: a copy-on-write overlay on the base disk boots
with the builder userdata on a NoCloud seed; the ISO is served to the guest by a loopback HTTP server
(``http://10.0.2.2:PORT/k3os.iso`` on QEMU's user network); cloud-init runs the builder, install.sh
prepares the takeover, the forced reboot boots k3OS, which takes the disk over and powers off, so QEMU
exits (no ``-no-reboot``: the builder's reboot must really reboot). The overlay is then converted
(compressed) into ``--output``. QEMU, the HTTP server and the work directory are registered for
cleanup the moment they exist.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any, ClassVar

from factory.clouds.base import RESULT_KEY, Artifact, BakeRequest, BakeResult, CloudBackend
from factory.journal import Resource
from factory.pipeline import BakeContext, Step, StepFailed, UsageError

ISO_NAME = "k3os.iso"
DEFAULT_OUTPUT = Path("dist")
DEFAULT_MEMORY_MB = 1536
BUILDER_FAILURE = re.compile(r"k3os-factory-builder: (FAILED|ERROR)")
KERNEL_PANIC = re.compile(r"Kernel panic - not syncing")
BUILDER_DONE = re.compile(r"k3os-factory-builder: install done")
TAKEOVER = re.compile(r"takeover", re.IGNORECASE)
#: Top-level entries of a Debian/Ubuntu root that must be gone after the takeover.
BASE_OS_ENTRIES = frozenset({"usr", "etc", "var", "bin", "lib", "home", "root", "opt", "srv", "vmlinuz"})
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def image_format(path: Path) -> str:
    """The image format ``qemu-img info`` reports (qcow2, raw, ...)."""
    out = subprocess.run(
        ["qemu-img", "info", "--output=json", str(path)], capture_output=True, text=True, check=False
    )
    if out.returncode != 0:
        raise UsageError(f"{path}: not a disk image qemu-img can read ({out.stderr.strip()[-200:]})")
    return str(json.loads(out.stdout).get("format") or "raw")


def resolve_base_image(explicit: str | None, cache_dir: Path) -> Path:
    """``--base-image``, else ``dist/base.qcow2``, else the cached base disk; UsageError if none."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise UsageError(f"--base-image {explicit}: no such file")
        return path
    from image_base.base_disk import DEFAULT_OUTPUT as BASE_OUTPUT
    from image_base.base_disk import cached_base_disk

    if BASE_OUTPUT.is_file():
        return BASE_OUTPUT
    cached = cached_base_disk(cache_dir)
    if cached is not None:
        return cached.path
    raise UsageError("no base disk: run `factory base build` (or `make base`), or pass --base-image PATH")


class QemuBackend(CloudBackend):
    """Local bake under QEMU: overlay on a base disk -> builder -> takeover -> poweroff -> convert."""

    name: ClassVar[str] = "qemu"
    builder_type: ClassVar[str] = "qemu"
    default_data_sources: ClassVar[tuple[str, ...]] = ("aws", "gcp", "openstack", "hetzner", "cdrom")
    phase_timeouts: ClassVar[dict[str, float]] = {"install": 20 * 60.0}

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """``--base-image``, ``--output``, ``--format``, ``--accel`` and VM sizing."""
        parser.add_argument("--base-image", metavar="PATH", help="base disk (default: the locally built one)")
        parser.add_argument("--output", metavar="DIR", default=str(DEFAULT_OUTPUT), help="default: dist")
        parser.add_argument("--format", choices=("qcow2", "raw"), default="qcow2", help="default: qcow2")
        parser.add_argument("--accel", choices=("auto", "kvm", "tcg"), default="auto", help="default: auto")
        parser.add_argument("--memory", metavar="MIB", type=int, default=DEFAULT_MEMORY_MB)
        parser.add_argument("--cpus", type=int, default=2)
        parser.add_argument(
            "--cache-dir", metavar="DIR", help="default: $FACTORY_CACHE_DIR or .cache/k3os-factory"
        )
        parser.add_argument("--console", action="store_true", help="stream every serial console line")

    def validate(self, args: argparse.Namespace, request: BakeRequest) -> None:
        """Base image, ISO (sha256 computed for ``--iso``), tools, name and output directory."""
        from image_base.base_disk import cache_dir_from_env

        for tool in ("qemu-img", "qemu-system-x86_64"):
            if shutil.which(tool) is None:
                raise UsageError(f"{tool} not found (run `make apt`)")
        if not _NAME.match(request.name):
            raise UsageError(f"--name {request.name!r}: use letters, digits, '.', '_' and '-' (a file name)")
        if args.memory < 512 or args.cpus < 1:
            raise UsageError("--memory must be >= 512 MiB and --cpus >= 1")
        args.cache_dir = Path(args.cache_dir) if args.cache_dir else cache_dir_from_env()
        args.base_image = resolve_base_image(args.base_image, args.cache_dir)
        args.base_format = image_format(args.base_image)
        output = Path(args.output)
        if output.exists() and not output.is_dir():
            raise UsageError(f"--output {output}: not a directory")
        if not request.iso_path and not request.iso_url:
            raise UsageError(
                "qemu needs --iso PATH (served to the guest over loopback HTTP) or --iso-url URL"
            )
        if request.iso_path:
            actual = sha256_of(Path(request.iso_path))
            if request.iso_sha256 and request.iso_sha256 != actual:
                raise UsageError(f"--iso-sha256 does not match {request.iso_path} (its sha256 is {actual})")
            request.iso_sha256 = actual
        self._builder_userdata(request, "http://10.0.2.2:8000/" + ISO_NAME)

    @staticmethod
    def _builder_userdata(request: BakeRequest, iso_url: str) -> bytes:
        from image_base.builder import BuilderSpec, BuilderSpecError, render_builder_userdata

        try:
            spec = BuilderSpec(
                iso_url=iso_url,
                iso_sha256=request.iso_sha256,
                config_yaml=request.config_yaml,
                insecure_skip_checksum=request.insecure_skip_checksum,
            )
            return render_builder_userdata(spec)
        except BuilderSpecError as exc:
            raise UsageError(f"builder user data: {exc}") from None

    def preflight(self, args: argparse.Namespace) -> str:
        """Choose the accelerator (a real KVM test boot, cached per machine)."""
        from factory.journal import state_dir
        from factory.qemu.accel import detect_accel, qemu_version
        from image_base.base_disk import probe_kernel

        choice = detect_accel(args.accel, cache_dir=state_dir(), probe_kernel=probe_kernel(args.cache_dir))
        args.accel_choice = choice.accel
        note = " (cached)" if choice.cached else ""
        return (
            f"{qemu_version() or 'QEMU'}; accel {choice.accel}: {choice.reason}{note}; base {args.base_image}"
        )

    def plan_resources(self, args: argparse.Namespace, request: BakeRequest) -> list[str]:
        """What a bake creates locally."""
        plan = [f"work dir in {args.output} with a qcow2 overlay on {args.base_image}"]
        if request.iso_path:
            plan.append(f"HTTP server on 127.0.0.1 serving {request.iso_path} as {ISO_NAME}")
        plan += [
            f"QEMU VM ({args.memory} MiB, {args.cpus} vCPUs, accel {args.accel})",
            f"image {Path(args.output) / (request.name + '.' + args.format)}",
        ]
        return plan

    def bake_steps(self, args: argparse.Namespace, request: BakeRequest) -> list[Step]:
        """prepare -> serve -> install -> convert -> finish."""
        bake = _QemuBake(args, request)
        return [
            Step("prepare", bake.prepare, f"overlay on {args.base_image} in a work dir under {args.output}"),
            Step("serve", bake.serve, "serve the ISO on 127.0.0.1 and write the NoCloud seed"),
            Step("install", bake.install, "boot; builder, install.sh, reboot, takeover, power off"),
            Step("convert", bake.convert, f"qemu-img convert to {args.format} in {args.output}"),
            Step("finish", bake.finish, "record the image"),
        ]


class _QemuBake:
    """The state of one QEMU bake, shared by its steps."""

    def __init__(self, args: argparse.Namespace, request: BakeRequest) -> None:
        self.args = args
        self.request = request
        self.output = Path(args.output)
        self.work = Path()
        self.overlay = Path()
        self.seed = Path()
        self.serial_log = self.output / "logs" / f"{request.name}.serial.log"
        self.image = self.output / f"{request.name}.{args.format}"
        self.accel = getattr(args, "accel_choice", None) or ("tcg" if args.accel == "auto" else args.accel)
        self._server: Any = None
        self._server_resource: Resource | None = None
        self._image_resource: Resource | None = None
        self.builder_done = False
        self.takeover_seen = False

    def prepare(self, ctx: BakeContext) -> None:
        """Work dir and the copy-on-write overlay on the base disk."""
        self.output.mkdir(parents=True, exist_ok=True)
        self.work = Path(tempfile.mkdtemp(prefix=f".bake-{ctx.bake_id[:8]}-", dir=self.output))
        work = self.work
        ctx.created(Resource("workdir", str(work)), lambda: shutil.rmtree(work, ignore_errors=True))
        self.overlay = work / "disk.qcow2"
        base = Path(self.args.base_image).resolve()
        result = subprocess.run(
            ["qemu-img", "create", "-q", "-f", "qcow2", "-b", str(base), "-F", self.args.base_format,
             str(self.overlay)],
            capture_output=True,
            text=True,
        )  # fmt: skip
        if result.returncode != 0:
            raise StepFailed(f"qemu-img create failed: {result.stderr.strip()[-300:]}")
        ctx.log("prepare", f"overlay {self.overlay} on {base} ({self.args.base_format})")

    def serve(self, ctx: BakeContext) -> None:
        """Start the ISO server (for ``--iso``), render the builder userdata, write the seed ISO."""
        from factory.qemu.fileserver import FileServer
        from factory.qemu.seed import write_seed_iso

        iso_url = self.request.iso_url or ""
        if self.request.iso_path:
            server = FileServer({ISO_NAME: Path(self.request.iso_path)}).start()
            self._server = server
            self._server_resource = ctx.created(
                Resource("http-server", f"127.0.0.1:{server.port}"), server.stop
            )
            iso_url = server.url(ISO_NAME, host="10.0.2.2")
            ctx.log("serve", f"guest downloads {iso_url} (sha256 {self.request.iso_sha256})")
        userdata = QemuBackend._builder_userdata(self.request, iso_url)
        self.seed = write_seed_iso(
            self.work / "seed.iso",
            user_data=userdata,
            instance_id=f"k3os-factory-{ctx.bake_id}",
            hostname="k3os-builder",
        )
        ctx.log("serve", f"NoCloud seed {self.seed} ({len(userdata)} bytes of builder userdata)")

    def install(self, ctx: BakeContext) -> None:
        """Boot the overlay and follow the console until QEMU exits after the guest's poweroff."""
        from factory.qemu.argv import UserNet, VmSpec, join_for_display, qemu_argv
        from factory.qemu.process import QemuError, QemuProcess
        from factory.qemu.serial import SerialWatcher

        self.serial_log.parent.mkdir(parents=True, exist_ok=True)
        self.serial_log.unlink(missing_ok=True)
        spec = VmSpec(
            serial_log=self.serial_log,
            accel=self.accel,
            disks=(self.overlay,),
            raw_drives=(self.seed,),
            net=UserNet(),
            memory_mb=self.args.memory,
            cpus=self.args.cpus,
        )
        argv = qemu_argv(spec)
        ctx.log("install", f"serial console: {self.serial_log}")
        ctx.log("install", join_for_display(argv))
        proc = QemuProcess(argv, self.work / "qemu.log")
        try:
            proc.start()
        except QemuError as exc:
            raise StepFailed(str(exc)) from None

        def stop_vm() -> None:
            proc.stop()

        resource = ctx.created(Resource("qemu", f"pid {proc.pid}"), stop_vm)
        watcher = SerialWatcher(
            self.serial_log, emit=lambda line: ctx.log("console", line), verbose=self.args.console
        )

        def check() -> int | None:
            code = proc.poll()
            lines = watcher.poll() if code is None else [*watcher.poll(), *watcher.flush_partial()]
            for line in lines:
                if BUILDER_FAILURE.search(line) or KERNEL_PANIC.search(line):
                    raise StepFailed(f"guest: {line} (serial log {self.serial_log})")
                if self.builder_done and TAKEOVER.search(line):
                    self.takeover_seen = True
                if BUILDER_DONE.search(line):
                    self.builder_done = True
            return code

        def on_timeout() -> str:
            return f"last console lines: {' | '.join(watcher.tail(4))} (serial log {self.serial_log})"

        code = ctx.wait(
            "install",
            "the guest to install k3OS, take over and power off",
            check,
            poll_s=0.5,
            on_timeout=on_timeout,
        )
        ctx.discard(resource)
        if code != 0:
            raise StepFailed(f"QEMU exited with {code}: {proc.stderr_text().strip()[-300:]}")
        if not self.builder_done:
            raise StepFailed(
                f"the guest powered off before the builder finished (serial log {self.serial_log})"
            )
        if not self.takeover_seen:
            ctx.log("install", "warning: no takeover line seen on the console after the builder's reboot")

    def convert(self, ctx: BakeContext) -> None:
        """Check the takeover on the flattened disk, drop the deleted base OS's blocks, then write the
        standalone image (compressed qcow2, or raw) and remove the work files."""
        from factory.qemu import diskimage

        partial = self.image.with_name(self.image.name + ".partial")
        image = self.image

        def remove_image() -> None:
            partial.unlink(missing_ok=True)
            image.unlink(missing_ok=True)

        self._image_resource = ctx.created(Resource("image", str(image)), remove_image)
        flat = self.work / "disk.raw"
        self._qemu_img(["convert", "-O", "raw", str(self.overlay), str(flat)])
        self.overlay.unlink()
        part = diskimage.state_partition(flat)
        if part is None:
            raise StepFailed(f"no {diskimage.STATE_LABEL} filesystem on the disk: install.sh did not run")
        entries = diskimage.root_entries(flat, part)
        leftovers = sorted(set(entries) & BASE_OS_ENTRIES)
        if "k3os" not in entries or leftovers:
            raise StepFailed(f"takeover incomplete: top level is {entries} (serial log {self.serial_log})")
        try:
            summary = diskimage.trim_state_filesystem(flat, part, self.work)
        except RuntimeError as exc:
            raise StepFailed(str(exc)) from None
        ctx.log("convert", f"takeover verified (top level: {', '.join(entries)}); {summary}")
        if self.args.format == "raw":
            flat.replace(partial)
        else:
            self._qemu_img(["convert", "-c", "-f", "raw", "-O", "qcow2", str(flat), str(partial)])
        partial.replace(image)
        ctx.log("convert", f"{image}: {image.stat().st_size / 2**20:.0f} MiB")
        if self._server is not None and self._server_resource is not None:
            self._server.stop()
            ctx.discard(self._server_resource)
        shutil.rmtree(self.work, ignore_errors=True)
        ctx.discard(Resource("workdir", str(self.work)))

    @staticmethod
    def _qemu_img(args: list[str]) -> None:
        result = subprocess.run(["qemu-img", *args], capture_output=True, text=True)
        if result.returncode != 0:
            raise StepFailed(f"qemu-img {args[0]} failed: {result.stderr.strip()[-300:]}")

    def finish(self, ctx: BakeContext) -> None:
        """Keep the image and store the result for the manifest."""
        if self._image_resource is not None:
            ctx.keep(self._image_resource)
        size = self.image.stat().st_size
        ctx.state[RESULT_KEY] = BakeResult(
            artifacts=[Artifact("", str(self.image))],
            artifact_id="VM",
            files=[{"name": str(self.image), "size": size}],
            custom_data={
                "accel": self.accel,
                "base_image": str(self.args.base_image),
                "format": self.args.format,
                "iso_sha256": self.request.iso_sha256 or "",
            },
        )
