"""End to end under QEMU (TCG here): the bake boots the base disk, whose cloud-init runs the builder
from the NoCloud seed, and takes the disk over; the baked image boots to the ready line under aws,
hetzner and cdrom userdata; verify fails (exit 1, log kept) when the userdata cannot arrive. Base disk
and ISO are the session's shared ones (tests/qemu/vm_inputs.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from factory.qemu import diskimage
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
    # The base disk booted, its cloud-init ran the NoCloud seed's user data, k3OS took over.
    serial = (image.parent / "logs" / "k3os-vm-test.serial.log").read_text(errors="replace")
    for line in ("Cloud-init v.", "k3os-factory-builder: install done", "takeover done"):
        assert line in serial, line


#: Verify runs, started together (each boot is mostly waiting on one vCPU under TCG, so two at a time
#: finish in about the time of one and a half). The last one must fail: the emulator is stopped.
VERIFY_JOBS = {
    "aws": ["--provider", "aws"],
    "hetzner": ["--provider", "hetzner"],
    "cdrom": ["--provider", "cdrom"],
    "no-userdata": ["--provider", "aws", "--stop-emulator"],
}
VERIFY_PARALLEL = int(os.environ.get("FACTORY_TEST_VM_PARALLEL", "2"))


@pytest.fixture(scope="session")
def verify_runs(
    baked: tuple[Path, dict[str, object]], tmp_path_factory: pytest.TempPathFactory
) -> dict[str, tuple[subprocess.CompletedProcess[str], Path]]:
    image, _ = baked
    logs = tmp_path_factory.mktemp("verify-logs")

    def one(job: str) -> tuple[subprocess.CompletedProcess[str], Path]:
        log = logs / f"{job}.log"
        args = [*VERIFY_JOBS[job], "--timeout", "300", "--keep-log", str(log)]
        return _factory("verify", "qemu", str(image), *args, timeout=480), log

    with ThreadPoolExecutor(max_workers=max(1, VERIFY_PARALLEL)) as pool:
        return dict(zip(VERIFY_JOBS, pool.map(one, VERIFY_JOBS), strict=True))


@pytest.mark.parametrize("provider", ["aws", "hetzner", "cdrom"])
def test_baked_image_takes_its_userdata(
    verify_runs: dict[str, tuple[subprocess.CompletedProcess[str], Path]], provider: str
) -> None:
    res, _ = verify_runs[provider]
    assert res.returncode == 0, res.stderr[-3000:]
    assert f"ready provider={provider} userdata=yes" in res.stderr


def test_verify_fails_and_keeps_the_log_without_userdata(
    verify_runs: dict[str, tuple[subprocess.CompletedProcess[str], Path]],
) -> None:
    res, log = verify_runs["no-userdata"]
    assert res.returncode == 1, res.stderr[-3000:]
    assert f"serial log kept: {log}" in res.stderr
    assert log.is_file() and log.stat().st_size > 0
