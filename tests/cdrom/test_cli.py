"""End to end: the ``datasources`` console script with DATASOURCES_CDROM_DEVICES, in a subprocess."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from tests.cdrom import images

DATASOURCES = Path(sys.executable).with_name("datasources")


def _fetch(devices: list[Path | str], output: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, DATASOURCES_CDROM_DEVICES=":".join(str(d) for d in devices))
    argv = [str(DATASOURCES), "fetch", "cdrom", "--output", str(output), "--json", *extra]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=30)


def test_nocloud_vfat_end_to_end(tmp_path: Path) -> None:
    image = images.vfat(tmp_path, images.NOCLOUD_FILES, "CIDATA", 32)
    out = tmp_path / "out"
    result = _fetch(["/nonexistent", image], out)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["provider"] == "cdrom" and report["userdata"] is True
    assert report["attempts"][0]["outcome"] == "userdata"
    assert (out / "userdata").read_bytes() == images.NOCLOUD_FILES["user-data"]
    assert stat.S_IMODE((out / "userdata").stat().st_mode) == 0o600
    assert (out / "local_hostname").read_text().strip() == "node-1"
    assert (out / "instance_id").read_text().strip() == "iid-local01"
    keys = (out / "ssh" / "authorized_keys").read_text().splitlines()
    assert keys == ["ssh-ed25519 AAAAC3Nza-one one@example", "ssh-rsa AAAAB3Nza-two two@example"]
    assert "/nonexistent" in result.stderr


def test_config_drive_iso_end_to_end(tmp_path: Path) -> None:
    image = images.genisoimage(tmp_path, images.CONFIG_DRIVE_FILES, "config-2", "-J", "-R")
    out = tmp_path / "out"
    result = _fetch([image], out)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["provider"] == "cdrom"
    assert (out / "userdata").read_bytes() == images.CONFIG_DRIVE_FILES["openstack/latest/user_data"]
    assert (out / "hostname").read_text().strip() == "cfg2.novalocal"
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["zone"] == "nova" and metadata["has_userdata"] is True


def test_no_volume_exits_1_and_garbage_is_an_error(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = _fetch([tmp_path / "missing.iso"], out)
    assert result.returncode == 1, result.stderr
    assert json.loads(result.stdout)["attempts"][0]["outcome"] == "absent"

    broken = images.genisoimage(tmp_path, {"user-data": b"x", "meta-data": b"a: [b"}, "cidata", "-J", "-R")
    result = _fetch([broken], out)
    assert result.returncode == 1, result.stderr
    attempt = json.loads(result.stdout)["attempts"][0]
    assert attempt["outcome"] == "error" and "meta-data" in attempt["detail"]
    assert "Traceback" not in result.stderr
