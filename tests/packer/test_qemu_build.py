"""A real ``packer build`` of packer/qemu (TCG) through ``factory packer build`` on the base disk and
ISO the other VM tests share (built once per session), then ``factory verify qemu`` must accept the
image Packer produced: as gcp, so the one boot also proves the gcp path (metadata.google.internal
resolved by the image's /etc/hosts, Metadata-Flavor header, gcp DMI)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.packer.conftest import FACTORY, REPO
from tests.qemu.vm_inputs import shared_base_disk, shared_iso, vm_cache_dir

pytestmark = [
    pytest.mark.vm,
    pytest.mark.skipif(os.geteuid() != 0, reason="building the base disk needs root"),
    pytest.mark.skipif(shutil.which("packer") is None, reason="packer is not installed (make apt)"),
]

CACHE = vm_cache_dir()


def _factory(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FACTORY_CACHE_DIR": str(CACHE)}
    res = subprocess.run(
        [*FACTORY, *args], capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO
    )
    sys.stderr.write(res.stdout[-3000:] + res.stderr[-3000:])
    return res


@pytest.fixture(scope="module")
def inputs() -> tuple[Path, Path]:
    """The session's shared base disk and ISO (read-only: Packer boots an overlay on the base disk)."""
    return shared_base_disk().path, shared_iso().path


def test_packer_builds_an_image_that_verify_accepts(inputs: tuple[Path, Path], tmp_path: Path) -> None:
    base, iso = inputs
    manifest = tmp_path / "manifest.json"
    res = _factory(
        "packer", "build", "qemu", "--iso", str(iso), "--output-dir", str(tmp_path / "render"),
        "--var", f"base_image={base}", "--var", f"output_directory={tmp_path / 'images'}",
        "--var", f"manifest_output={manifest}", "--var", "timeout_minutes=25",
        "--var", "use_backing_file=true", "--var", "image_name=k3os-packer-vm-test",
        timeout=1800,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    build = json.loads(manifest.read_text())["builds"][-1]
    assert build["builder_type"] == "qemu"
    var_file = (tmp_path / "render" / "qemu.auto.pkrvars.hcl").read_text()
    bake_id = re.search(r'^bake_id = "([^"]+)"$', var_file, re.M)
    assert bake_id and build["custom_data"]["bake_id"] == bake_id.group(1)
    image = Path(build["files"][0]["name"])
    assert image.is_file() and image.name == "k3os-packer-vm-test.qcow2"
    info = json.loads(
        subprocess.run(
            ["qemu-img", "info", "--output=json", str(image)], capture_output=True, text=True, check=True
        ).stdout
    )
    assert "backing-filename" not in info  # standalone, even though the build started from an overlay
    serial = (tmp_path / "images" / "logs" / "k3os-packer-vm-test.serial.log").read_text(errors="replace")
    assert "k3os-factory-builder: install done" in serial and "takeover done" in serial

    res = _factory(
        "verify", "qemu", str(image), "--provider", "gcp", "--keep-log", str(tmp_path / "verify.log"),
        timeout=900,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    assert "ready provider=gcp userdata=yes" in res.stderr
