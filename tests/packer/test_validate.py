"""Every template passes Debian's ``packer validate`` with the var file render writes, without
real credentials; and a broken var file is caught (so the check can fail)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.packer.conftest import CLOUDS, PACKER_DIR, packer_env, render_for_validate


def _validate(
    packer: str, cloud: str, var_file: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [packer, "validate", f"-var-file={var_file}", str(PACKER_DIR / cloud)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


@pytest.mark.parametrize("cloud", CLOUDS)
def test_template_validates_with_rendered_var_file(
    cloud: str, packer_bin: str, keystone_url: str, qemu_inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    result = render_for_validate(cloud, tmp_path, qemu_inputs)
    res = _validate(packer_bin, cloud, result.var_file, packer_env(cloud, tmp_path, keystone_url))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "Error" not in res.stdout + res.stderr


@pytest.mark.parametrize(
    ("cloud", "variables"),
    [
        ("aws", {"encrypt_boot": "true", "kms_key_id": "alias/k3os", "ami_regions": "eu-west-1,us-west-2",
                 "ami_users": "123456789012", "snapshot_users": "123456789012", "ami_groups": "all",
                 "source_ami": "ami-0123456789abcdef0", "arch": "arm64", "tags": "team=infra,env=ci"}),
        ("gcp", {"image_kms_key_name": "projects/p/locations/global/keyRings/r/cryptoKeys/k",
                 "image_storage_locations": "eu", "image_family": "k3os", "tags": "team=infra"}),
        ("openstack", {"source_image": "0b1c2d3e-aaaa-bbbb-cccc-111122223333", "image_visibility": "shared",
                       "image_members": "p2,p3", "use_blockstorage_volume": "true"}),
        ("hetzner", {"tags": "team=infra", "location": "hel1", "server_type": "cpx21"}),
        ("qemu", {"format": "raw", "disk_size": "8192M", "memory": "2048", "cpus": "4"}),
        ("qemu", {"use_backing_file": "true", "serial_log": "/tmp/k3os-packer-test.log"}),
    ],
)  # fmt: skip
def test_template_validates_with_options_set(
    cloud: str,
    variables: dict[str, str],
    packer_bin: str,
    keystone_url: str,
    qemu_inputs: tuple[Path, Path],
    tmp_path: Path,
) -> None:
    result = render_for_validate(cloud, tmp_path, qemu_inputs, **variables)
    res = _validate(packer_bin, cloud, result.var_file, packer_env(cloud, tmp_path, keystone_url))
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.parametrize("cloud", ["aws", "qemu"])
def test_validate_fails_when_the_userdata_file_is_gone(
    cloud: str, packer_bin: str, keystone_url: str, qemu_inputs: tuple[Path, Path], tmp_path: Path
) -> None:
    result = render_for_validate(cloud, tmp_path, qemu_inputs)
    result.userdata_file.unlink()
    res = _validate(packer_bin, cloud, result.var_file, packer_env(cloud, tmp_path, keystone_url))
    assert res.returncode != 0


def test_validate_fails_without_the_var_file(packer_bin: str, keystone_url: str, tmp_path: Path) -> None:
    res = subprocess.run(
        [packer_bin, "validate", str(PACKER_DIR / "aws")],
        capture_output=True,
        text=True,
        env=packer_env("aws", tmp_path, keystone_url),
        timeout=60,
    )
    assert res.returncode != 0
    assert "userdata_file" in res.stdout + res.stderr


@pytest.mark.parametrize("cloud", CLOUDS)
def test_templates_are_packer_fmt_clean(cloud: str, packer_bin: str, tmp_path: Path) -> None:
    res = subprocess.run(
        [packer_bin, "fmt", "-check", str(PACKER_DIR / cloud)],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "CHECKPOINT_DISABLE": "1"},
        timeout=60,
    )
    assert res.returncode == 0, f"run `packer fmt packer/{cloud}`: {res.stdout}"
