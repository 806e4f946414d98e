"""Boot the real ISO under QEMU TCG: live mode to the ready line, and a disk-mode takeover."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from image_base.os import build
from tests.os.conftest import boot_qemu
from tests.os.test_iso_layout import inspect_layout

pytestmark = [
    pytest.mark.vm,
    pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None, reason="needs qemu-system-x86"),
]
READY = re.compile(r"^k3os-factory: ready provider=\S+ userdata=(yes|no) hostname=\S+\r?$", re.M)


def test_iso_layout_and_os_release(built_iso: build.BuildResult, tmp_path: Path) -> None:
    found = inspect_layout(built_iso.path)
    assert found["volume_id"] == "K3OS"
    assert found["kernel"].endswith("-cloud-amd64")
    subprocess.run(
        ["xorriso", "-osirrox", "on", "-indev", str(built_iso.path), "-extract",
         f"/k3os/system/k3os/{found['version']}/k3os.squashfs", str(tmp_path / "root.squashfs")],
        check=True, capture_output=True,
    )  # fmt: skip
    os_release = subprocess.run(
        ["unsquashfs", "-cat", str(tmp_path / "root.squashfs"), "etc/os-release"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    assert 'K3S="built without Kubernetes (no k3s binary given)"' in os_release
    hosts = subprocess.run(
        ["unsquashfs", "-cat", str(tmp_path / "root.squashfs"), "etc/hosts"],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    assert "169.254.169.254\tmetadata.google.internal metadata" in hosts.splitlines()  # for gcp


def test_live_boot_reaches_ready_line(built_iso: build.BuildResult, tmp_path: Path) -> None:
    boot = boot_qemu(tmp_path / "console.log", ["-cdrom", str(built_iso.path)], b"k3os-factory: ready ")
    text = boot.console.decode(errors="replace")
    assert READY.search(text), text[-3000:]
    assert "k3os-init: mode=live" in text
    assert len(READY.findall(text)) == 1
    print(f"live boot to ready line: {boot.seconds:.1f}s")


def test_disk_mode_takeover_powers_off_then_boots_from_state(
    built_iso: build.BuildResult, tmp_path: Path
) -> None:
    # What install.sh --takeover --poweroff --no-format leaves on the old root filesystem.
    state = tmp_path / "state"
    iso = str(built_iso.path)
    subprocess.run(
        ["xorriso", "-osirrox", "on", "-indev", iso, "-extract", "/k3os", str(state / "k3os")],
        check=True, capture_output=True,
    )  # fmt: skip
    for marker in ("takeover", "poweroff"):
        (state / "k3os/system" / marker).touch()
    (state / "etc").mkdir()
    (state / "etc/old-os-release").write_text("Ubuntu\n")
    (state / "boot/grub").mkdir(parents=True)
    kernel = state / "k3os/system/kernel/current"
    shutil.copy(kernel / "vmlinuz", tmp_path / "vmlinuz")
    shutil.copy(kernel / "initrd", tmp_path / "initrd")
    disk = tmp_path / "disk.img"
    subprocess.run(
        ["mke2fs", "-q", "-t", "ext4", "-L", "K3OS_STATE", "-d", str(state), str(disk), "1G"], check=True
    )
    direct = ["-drive", f"file={disk},if=virtio,format=raw", "-kernel", str(tmp_path / "vmlinuz"),
              "-initrd", str(tmp_path / "initrd"), "-append", "console=ttyS0,115200n8"]  # fmt: skip

    first = boot_qemu(tmp_path / "first.log", direct, b"\x00never\x00", deadline=120)
    text = first.console.decode(errors="replace")
    assert first.exited, text[-3000:]
    assert "k3os-init: mode=disk" in text and "takeover done, powering off" in text
    listing = subprocess.run(["debugfs", "-R", "ls -p /", str(disk)], capture_output=True, text=True).stdout
    top = {line.split("/")[5] for line in listing.splitlines() if line.count("/") >= 6} - {".", ".."}
    assert top == {"boot", "k3os", "lost+found"}

    second = boot_qemu(tmp_path / "second.log", direct, b"k3os-factory: ready ")
    text = second.console.decode(errors="replace")
    assert READY.search(text), text[-3000:]
    assert "factory reset" in text and "takeover" not in text
