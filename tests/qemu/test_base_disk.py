"""Base disk pieces on real tools: cloud-init module pruning, mirror discovery, and a small bootable
disk assembled without loop devices (MBR boot code, core.img before the partition, ext4 labelled
cloudimg-rootfs holding /boot/grub/grub.cfg and GRUB's modules)."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from image_base.base_disk import disk, rootfs
from image_base.base_disk.build import input_key

TOOLS = ("mke2fs", "sfdisk", "grub-mkimage", "debugfs")


def test_dropped_cloud_init_modules_only_exact_names() -> None:
    cfg = (
        "cloud_config_modules:\n - locale\n - ssh-import-id\n - runcmd\n"
        "cloud_init_modules:\n - ssh\n - write-files\n"
    )
    out = rootfs.drop_cloud_init_modules(cfg, ("locale", "ssh"))
    assert out == "cloud_config_modules:\n - ssh-import-id\n - runcmd\ncloud_init_modules:\n - write-files\n"


def test_host_mirror_from_deb822_and_one_line_sources(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.example/debian-security\n\nTypes: deb\nURIs: http://mirror.example/debian\n"
    )
    assert rootfs.host_debian_mirror(tmp_path) == "http://mirror.example/debian"
    (tmp_path / "sources.list").write_text("deb [arch=amd64] http://other.example/debian bookworm main\n")
    assert rootfs.host_debian_mirror(tmp_path) == "http://other.example/debian"
    assert rootfs.host_debian_mirror(tmp_path / "nothing") == rootfs.DEFAULT_MIRROR


def test_cache_key_depends_on_inputs() -> None:
    assert input_key("http://a", 4096) == input_key("http://a", 4096)
    assert input_key("http://a", 4096) != input_key("http://b", 4096)
    assert input_key("http://a", 4096) != input_key("http://a", 2048)


@pytest.mark.skipif(any(shutil.which(t) is None for t in TOOLS), reason="needs e2fsprogs, fdisk, grub-pc-bin")
def test_assembled_disk_has_boot_code_core_partition_and_grub_files(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "boot").mkdir(parents=True)
    (tree / "etc").mkdir()
    (tree / "etc" / "hostname").write_text("t\n")
    disk.install_grub_files(tree, "6.1.0-test")
    raw = tmp_path / "disk.raw"
    disk.assemble_raw_disk(tree, raw, 64, tmp_path)

    data = raw.read_bytes()[: 1024 * 1024]
    boot_img = (disk.GRUB_PLATFORM_DIR / "boot.img").read_bytes()
    assert data[:440] == boot_img[:440]
    assert data[510:512] == b"\x55\xaa"
    assert data[512:1024] != b"\x00" * 512  # core.img's first sector (diskboot) at LBA 1

    table = json.loads(
        subprocess.run(["sfdisk", "--json", str(raw)], capture_output=True, text=True, check=True).stdout
    )
    (part,) = table["partitiontable"]["partitions"]
    assert part["start"] == disk.PARTITION_START_SECTOR and part.get("bootable") is True

    spec = f"{raw}?offset={disk.PARTITION_START_SECTOR * disk.SECTOR}"
    label = subprocess.run(["dumpe2fs", "-h", spec], capture_output=True, text=True).stdout
    assert "Filesystem volume name:   cloudimg-rootfs" in label
    cfg = subprocess.run(
        ["debugfs", "-R", "cat /boot/grub/grub.cfg", spec], capture_output=True, text=True
    ).stdout
    assert "linux /boot/vmlinuz-6.1.0-test root=LABEL=cloudimg-rootfs" in cfg and "console=ttyS0" in cfg
    mods = subprocess.run(
        ["debugfs", "-R", "ls /boot/grub/i386-pc", spec], capture_output=True, text=True
    ).stdout
    for module in ("normal.mod", "linux.mod", "search_label.mod", "loopback.mod", "squash4.mod"):
        assert module in mods
    # core.img (prefix by partition, so a relabel to K3OS_STATE keeps it reading this grub.cfg) at LBA 1.
    disk.make_core_image(tmp_path / "again.img")
    core = (tmp_path / "again.img").read_bytes()
    assert data[512 : 512 + len(core)] == core
