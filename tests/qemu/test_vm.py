"""End to end under QEMU (TCG here): the base disk boots cloud-init; the bake takes the disk over;
the baked image boots to the ready line under aws, hetzner and cdrom userdata; verify fails (exit 1,
log kept) when the userdata cannot arrive. Base disk and ISO come from the cache when present."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from factory.qemu import diskimage
from factory.qemu.argv import UserNet, VmSpec, qemu_argv
from factory.qemu.process import QemuProcess
from factory.qemu.seed import write_seed_iso
from factory.qemu.serial import SerialWatcher, watch
from image_base.base_disk import BaseDisk
from tests.qemu.vm_inputs import shared_base_disk, shared_iso, vm_cache_dir

pytestmark = [
    pytest.mark.vm,
    pytest.mark.skipif(os.geteuid() != 0, reason="building the base disk needs root"),
]

REPO = Path(__file__).resolve().parents[2]
CACHE = vm_cache_dir()
FACTORY = [sys.executable, "-m", "factory.cli"]


def _factory(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FACTORY_CACHE_DIR": str(CACHE)}
    res = subprocess.run(
        [*FACTORY, *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO
    )
    sys.stderr.write(res.stderr[-4000:])
    return res


@pytest.fixture(scope="session")
def base_disk() -> BaseDisk:
    return shared_base_disk()


@pytest.fixture(scope="session")
def k3os_iso() -> Path:
    return shared_iso().path


@pytest.fixture(scope="session")
def baked(
    base_disk: BaseDisk, k3os_iso: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, object]]:
    out = tmp_path_factory.mktemp("bake")
    manifest = out / "factory-manifest.json"
    res = _factory(
        "bake", "qemu", "--iso", str(k3os_iso), "--base-image", str(base_disk.path), "--output", str(out),
        "--manifest", str(manifest), "--name", "k3os-vm-test", "--timeout", "25",
        timeout=1800,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    data = json.loads(manifest.read_text())
    image = Path(data["builds"][-1]["files"][0]["name"])
    return image, data


def test_base_disk_boots_to_cloud_init_runcmd(base_disk: BaseDisk, tmp_path: Path) -> None:
    overlay = tmp_path / "overlay.qcow2"
    subprocess.run(
        [
            "qemu-img",
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            str(base_disk.path.resolve()),
            "-F",
            "qcow2",
            str(overlay),
        ],
        check=True,
    )
    userdata = b"#cloud-config\nruncmd:\n - echo base-disk-marker-$((40+2)) > /dev/console\n"
    seed = write_seed_iso(
        tmp_path / "seed.iso", user_data=userdata, instance_id="iid-vm-test", hostname="basetest"
    )
    log = tmp_path / "serial.log"
    spec = VmSpec(serial_log=log, disks=(overlay,), raw_drives=(seed,), net=UserNet())
    with QemuProcess(qemu_argv(spec), tmp_path / "qemu.log") as proc:
        res = watch(
            proc,
            SerialWatcher(log),
            deadline=time.monotonic() + 240,
            wanted=[re.compile(r"base-disk-marker-42")],
        )
    assert res.outcome == "matched", log.read_text(errors="replace")[-2000:]
    text = log.read_text(errors="replace")
    assert "Cloud-init v." in text and "basetest login:" in text


def test_bake_took_the_disk_over(baked: tuple[Path, dict[str, object]], tmp_path: Path) -> None:
    image, manifest = baked
    builds = manifest["builds"]
    assert isinstance(builds, list)
    last = builds[-1]
    assert last["builder_type"] == "qemu" and last["artifact_id"] == "VM"
    assert last["files"][0]["size"] == image.stat().st_size
    raw = tmp_path / "disk.raw"
    subprocess.run(["qemu-img", "convert", "-O", "raw", str(image), str(raw)], check=True)
    part = diskimage.state_partition(raw)
    assert part is not None, "no K3OS_STATE filesystem"
    top = diskimage.root_entries(raw, part)
    assert "k3os" in top and "usr" not in top and "etc" not in top, top
    assert diskimage.root_entries(raw, part, "/usr/bin") == []  # Debian's /usr/bin is gone
    assert "kernel" in diskimage.root_entries(raw, part, "/k3os/system")
    assert "K3OS_STATE" in diskimage.read_file(raw, part, "/boot/grub/grub.cfg")


@pytest.mark.parametrize("provider", ["aws", "hetzner", "cdrom"])
def test_baked_image_takes_its_userdata(baked: tuple[Path, dict[str, object]], provider: str) -> None:
    image, _ = baked
    res = _factory("verify", "qemu", str(image), "--provider", provider, "--timeout", "300", timeout=420)
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"ready provider={provider} userdata=yes" in res.stderr


def test_verify_fails_and_keeps_the_log_without_userdata(
    baked: tuple[Path, dict[str, object]], tmp_path: Path
) -> None:
    image, _ = baked
    log = tmp_path / "kept.log"
    res = _factory(
        "verify", "qemu", str(image), "--provider", "aws", "--stop-emulator", "--timeout", "300",
        "--keep-log", str(log), timeout=420,
    )  # fmt: skip
    assert res.returncode == 1
    assert f"serial log kept: {log}" in res.stderr
    assert log.is_file() and log.stat().st_size > 0
