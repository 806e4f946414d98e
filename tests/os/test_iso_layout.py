"""The ISO's k3OS layout, written by grub-mkrescue and read back with pycdlib (no mounting)."""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pycdlib
import pytest

from image_base.os import isotree

pytestmark = pytest.mark.skipif(shutil.which("grub-mkrescue") is None, reason="needs grub-mkrescue + xorriso")


def read_iso_file(iso: pycdlib.PyCdlib, path: str) -> bytes:
    """Content of ``path`` (Rock Ridge name) in an opened ISO."""
    out = io.BytesIO()
    iso.get_file_from_iso_fp(out, rr_path=path)
    return out.getvalue()


def inspect_layout(iso_path: Path) -> dict[str, str]:
    """Volume id, the two ``current`` link targets, the kernel version and grub.cfg of a k3OS ISO."""
    iso = pycdlib.PyCdlib()
    iso.open(str(iso_path))
    try:
        kernel = iso.get_record(rr_path="/k3os/system/kernel/current").rock_ridge.symlink_path().decode()
        version = iso.get_record(rr_path="/k3os/system/k3os/current").rock_ridge.symlink_path().decode()
        for name in ("vmlinuz", "initrd", "kernel.squashfs"):
            iso.get_record(rr_path=f"/k3os/system/kernel/{kernel}/{name}")
        iso.get_record(rr_path=f"/k3os/system/k3os/{version}/k3os.squashfs")
        return {
            "volume_id": iso.pvd.volume_identifier.decode().strip(),
            "kernel": kernel,
            "version": version,
            "grub_cfg": read_iso_file(iso, "/boot/grub/grub.cfg").decode(),
            "config": read_iso_file(iso, "/k3os/system/config.yaml").decode(),
        }
    finally:
        iso.close()


def test_layout_written_by_grub_mkrescue(tmp_path: Path) -> None:
    root = tmp_path / "iso"
    kernel_dir, os_dir = isotree.layout(root, "6.1.0-7-cloud-amd64", "v9.9.9")
    for path in (kernel_dir / "vmlinuz", kernel_dir / "initrd", kernel_dir / "kernel.squashfs"):
        path.write_bytes(b"x" * 10)
    (os_dir / "k3os.squashfs").write_bytes(b"y" * 10)
    (root / "k3os/system/config.yaml").write_text("hostname: test\n")
    isotree.make_iso(root, tmp_path / "k3os.iso")
    found = inspect_layout(tmp_path / "k3os.iso")
    assert found["volume_id"] == "K3OS"
    assert found["kernel"] == "6.1.0-7-cloud-amd64" and found["version"] == "v9.9.9"
    assert "k3os.mode=install" in found["grub_cfg"]
    assert found["config"] == "hostname: test\n"


def test_make_iso_failure_is_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(isotree.IsoError, match="grub-mkrescue failed"):
        isotree.make_iso(tmp_path / "missing-dir", tmp_path / "out.iso")
