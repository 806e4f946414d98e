"""install.sh for real: against ext4 filesystem images and whole-disk image files (loop devices)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.installer.conftest import INSTALL_SH, FileServer, build_fake_iso

CONFIG = "k3os:\n  password: hunter2-secret\nhostname: baked\n"


def run_install(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run install.sh with bash; env entries are added to the current environment."""
    full_env = {**os.environ, "K3OS_INSTALL_RETRY_DELAY": "0", **(env or {})}
    return subprocess.run(
        ["/bin/bash", str(INSTALL_SH), *args], env=full_env, capture_output=True, text=True, timeout=120
    )


def debugfs(image: str, request: str) -> str:
    """Run one debugfs request against an ext filesystem image (``file?offset=N`` for a partition)."""
    out = subprocess.run(["debugfs", "-R", request, image], capture_output=True, text=True, check=True)
    return out.stdout


def fs_label(image: str) -> str:
    """The ext filesystem's volume name, read without mounting."""
    match = re.search(r"^Filesystem volume name:\s*(\S*)", debugfs(image, "stats"), re.M)
    assert match, "not an ext filesystem"
    return match.group(1)


def inode_stat(image: str, path: str) -> str:
    """debugfs's ``stat`` output for ``path`` ("" when it does not exist)."""
    out = subprocess.run(["debugfs", "-R", f"stat {path}", image], capture_output=True, text=True)
    return out.stdout


def make_ext4(path: Path, label: str = "cloudimg-rootfs") -> Path:
    """A 64 MiB ext4 filesystem image, like a cloud image's root partition."""
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", label, str(path), "64M"], check=True, capture_output=True)
    return path


def partitions(disk: Path) -> list[dict[str, object]]:
    """sfdisk's view of the partition table of an image file."""
    table = json.loads(subprocess.run(["sfdisk", "-J", str(disk)], capture_output=True, check=True).stdout)
    parts: list[dict[str, object]] = table["partitiontable"]["partitions"]
    return parts


def loops_on(path: Path) -> str:
    """Loop devices still attached to ``path`` (must be none after install.sh)."""
    return subprocess.run(["losetup", "-j", str(path)], capture_output=True, text=True).stdout.strip()


TOOLBOX = (
    *("cp", "mkdir", "mktemp", "chmod", "mv", "touch", "sync", "rm", "cat", "stat", "sleep", "grep", "sed"),
    *("mount", "umount", "blkid", "tune2fs", "findmnt", "parted", "mkfs.ext4", "mkfs.vfat"),
    *("grub-install", "losetup", "lsblk", "xorriso", "curl", "wget", "partx", "blockdev"),
)


@pytest.fixture
def toolbox(tmp_path: Path) -> Path:
    """A PATH directory for ``make_toolbox``."""
    path = tmp_path / "toolbox"
    path.mkdir()
    return path


def make_toolbox(toolbox: Path, without: set[str]) -> str:
    """Fill ``toolbox`` with links to every tool install.sh may call, except ``without``."""
    for name in TOOLBOX:
        found = shutil.which(name)
        if found and name not in without:
            (toolbox / name).symlink_to(found)
    return str(toolbox)


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    for args in (
        [],
        ["only-one"],
        ["--bogus", "a", "b"],
        ["--tty", "ttyS0 init=/bin/sh", "a", "b"],
        ["--tty"],
    ):
        result = run_install(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert "usage: install.sh" in result.stderr


def test_target_dir_hook_needs_no_device(tmp_path: Path, fake_iso: Path) -> None:
    target = tmp_path / "target"
    config = tmp_path / "cfg.yaml"
    config.write_text(CONFIG)
    result = run_install(
        "--takeover", "--config", str(config), "/dev/does-not-matter", str(fake_iso),
        env={"K3OS_INSTALL_TARGET_DIR": str(target)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    system = target / "k3os" / "system"
    assert os.readlink(system / "kernel" / "current") == "v0.1.0"
    assert (system / "kernel" / "current" / "vmlinuz").read_text() == "fake kernel v0.1.0\n"
    assert (system / "config.yaml").read_text() == CONFIG
    assert stat.S_IMODE((system / "config.yaml").stat().st_mode) == 0o600
    assert (system / "takeover").exists() and not (system / "poweroff").exists()
    assert "console=ttyS0" not in (target / "boot" / "grub" / "grub.cfg").read_text()
    assert "hunter2" not in result.stderr + result.stdout


@pytest.mark.usefixtures("needs_loop")
def test_no_format_takeover_on_filesystem_image(tmp_path: Path, fake_iso: Path) -> None:
    fs = make_ext4(tmp_path / "fs.img")
    config = tmp_path / "cfg.yaml"
    config.write_text(CONFIG)
    result = run_install(
        "--takeover", "--poweroff", "--no-format", "--tty", "ttyS0", "--config", str(config), str(fs),
        str(fake_iso),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    image = str(fs)
    assert fs_label(image) == "K3OS_STATE"
    assert 'Fast link dest: "v0.1.0"' in inode_stat(image, "/k3os/system/kernel/current")
    assert 'Fast link dest: "v0.1.0"' in inode_stat(image, "/k3os/system/k3os/current")
    assert debugfs(image, "cat /k3os/system/kernel/v0.1.0/initrd") == "fake initrd v0.1.0\n"
    assert debugfs(image, "cat /k3os/system/k3os/v0.1.0/k3os.squashfs") == "fake rootfs v0.1.0\n"
    assert debugfs(image, "cat /k3os/system/config.yaml") == CONFIG
    assert re.search(r"Mode:\s+0600", inode_stat(image, "/k3os/system/config.yaml"))
    for marker in ("takeover", "poweroff"):
        assert "Type: regular" in inode_stat(image, f"/k3os/system/{marker}")
    grub = debugfs(image, "cat /boot/grub/grub.cfg")
    assert "search --no-floppy --set=root --label K3OS_STATE" in grub
    assert (
        "linux /k3os/system/kernel/current/vmlinuz k3os.mode=disk console=tty1 console=ttyS0,115200n8" in grub
    )
    assert "initrd /k3os/system/kernel/current/initrd" in grub
    assert "k3os.mode=shell" in grub and "serial --unit=0 --speed=115200" in grub
    assert "hunter2" not in result.stderr + result.stdout
    assert loops_on(fs) == ""

    # A second run with a newer ISO moves the "current" links and keeps the old version.
    newer = build_fake_iso(tmp_path / "newer.iso", version="v0.2.0")
    again = run_install("--no-format", str(fs), str(newer))
    assert again.returncode == 0, again.stderr
    assert 'Fast link dest: "v0.2.0"' in inode_stat(image, "/k3os/system/kernel/current")
    assert debugfs(image, "cat /k3os/system/kernel/v0.1.0/vmlinuz") == "fake kernel v0.1.0\n"
    assert debugfs(image, "cat /k3os/system/config.yaml") == CONFIG  # kept: no --config this time


@pytest.mark.usefixtures("needs_loop")
def test_iso_and_config_urls_are_downloaded_with_retries(
    tmp_path: Path, fake_iso: Path, file_server: FileServer
) -> None:
    shutil.copy(fake_iso, file_server.root / "k3os.iso")
    (file_server.root / "config.yaml").write_text(CONFIG)
    file_server.fail_first.update({"/k3os.iso": 2, "/config.yaml?token=abc": 1})
    fs = make_ext4(tmp_path / "fs.img")
    result = run_install(
        "--no-format", "--config", file_server.url("config.yaml?token=abc"), str(fs),
        file_server.url("k3os.iso"),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert file_server.requests.count("/k3os.iso") == 3
    assert file_server.requests.count("/config.yaml?token=abc") == 2
    assert "token=abc" not in result.stderr  # query strings (credentials) are not logged
    assert debugfs(str(fs), "cat /k3os/system/config.yaml") == CONFIG


def test_download_failure_is_reported(tmp_path: Path, file_server: FileServer) -> None:
    result = run_install(
        "--no-format", str(tmp_path / "fs.img"), file_server.url("missing.iso"),
        env={"K3OS_INSTALL_RETRIES": "2", "K3OS_INSTALL_TARGET_DIR": str(tmp_path / "t")},
    )  # fmt: skip
    assert result.returncode == 1
    assert "download failed after 2 attempt(s)" in result.stderr
    assert file_server.requests.count("/missing.iso") == 2


def test_not_an_iso_tree_is_refused(tmp_path: Path) -> None:
    if shutil.which("xorriso") is None:
        pytest.skip("xorriso is not installed (make apt)")
    other = tmp_path / "other-tree"
    other.mkdir()
    (other / "README").write_text("not k3os\n")
    iso = tmp_path / "other.iso"
    subprocess.run(["xorriso", "-as", "mkisofs", "-quiet", "-o", str(iso), "-R", str(other)], check=True)
    result = run_install("x", str(iso), env={"K3OS_INSTALL_TARGET_DIR": str(tmp_path / "t")})
    assert result.returncode == 1
    assert "not a k3OS ISO" in result.stderr


@pytest.mark.usefixtures("needs_loop")
def test_no_format_refuses_non_ext_filesystem(tmp_path: Path, fake_iso: Path) -> None:
    vfat = tmp_path / "vfat.img"
    subprocess.run(["mkfs.vfat", "-C", "-n", "OTHER", str(vfat), "8192"], check=True, capture_output=True)
    before = hashlib.sha256(vfat.read_bytes()).hexdigest()
    result = run_install("--no-format", str(vfat), str(fake_iso))
    assert result.returncode == 1
    assert "has a vfat filesystem; --no-format needs ext2/3/4" in result.stderr
    assert hashlib.sha256(vfat.read_bytes()).hexdigest() == before


def test_missing_tools_are_all_named_and_nothing_is_touched(
    tmp_path: Path, fake_iso: Path, toolbox: Path
) -> None:
    disk = tmp_path / "disk.img"
    disk.write_bytes(b"\xaa" * 4 * 1024 * 1024)
    path = make_toolbox(toolbox, without={"mkfs.vfat", "grub-install"})
    result = run_install("--force-efi", str(disk), str(fake_iso), env={"PATH": path})
    assert result.returncode == 1
    assert "missing tools: grub-install mkfs.vfat (nothing was changed)" in result.stderr
    assert disk.read_bytes() == b"\xaa" * 4 * 1024 * 1024

    fs = make_ext4(tmp_path / "fs.img")
    for name in toolbox.iterdir():
        name.unlink()
    path = make_toolbox(toolbox, without={"tune2fs", "xorriso", "mount"})
    result = run_install("--no-format", str(fs), str(fake_iso), env={"PATH": path})
    assert result.returncode == 1
    assert "missing tools: mount-or-xorriso-or-bsdtar mount tune2fs" in result.stderr
    assert fs_label(str(fs)) == "cloudimg-rootfs"


@pytest.mark.usefixtures("needs_loop")
def test_format_bios_disk_image(tmp_path: Path, fake_iso: Path) -> None:
    if shutil.which("grub-install") is None:
        pytest.skip("grub-install is not installed (Debian grub2-common; make apt)")
    disk = tmp_path / "disk.img"
    with disk.open("wb") as handle:
        handle.truncate(128 * 1024 * 1024)
    config = tmp_path / "cfg.yaml"
    config.write_text(CONFIG)
    result = run_install("--tty", "ttyS1", "--config", str(config), str(disk), str(fake_iso))
    assert result.returncode == 0, result.stderr
    (part,) = partitions(disk)
    assert part["type"] == "83" and part.get("bootable") is True
    state = f"{disk}?offset={int(str(part['start'])) * 512}"
    assert fs_label(state) == "K3OS_STATE"
    assert debugfs(state, "cat /k3os/system/config.yaml") == CONFIG
    assert 'Fast link dest: "v0.1.0"' in inode_stat(state, "/k3os/system/kernel/current")
    assert "Type: regular" in inode_stat(state, "/boot/grub/i386-pc/core.img")
    grub = debugfs(state, "cat /boot/grub/grub.cfg")
    assert "console=ttyS1,115200n8" in grub and "serial --unit=1" in grub
    assert inode_stat(state, "/k3os/system/takeover") == ""
    assert b"GRUB" in disk.read_bytes()[:512]  # boot.img in the MBR
    assert loops_on(disk) == ""


@pytest.mark.usefixtures("needs_loop")
def test_format_efi_disk_image(tmp_path: Path, fake_iso: Path) -> None:
    for tool in ("grub-install", "grub-mkstandalone", "mcopy", "mdir"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (make apt)")
    disk = tmp_path / "disk.img"
    with disk.open("wb") as handle:
        handle.truncate(256 * 1024 * 1024)
    result = run_install("--force-efi", "--takeover", str(disk), str(fake_iso))
    assert result.returncode == 0, result.stderr
    esp, state_part = partitions(disk)
    assert str(esp["type"]).upper() == "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
    esp_offset = int(str(esp["start"])) * 512
    listing = subprocess.run(
        ["mdir", "-b", "-i", f"{disk}@@{esp_offset}", "::/EFI/BOOT"],
        capture_output=True, text=True, env={**os.environ, "MTOOLS_SKIP_CHECK": "1"},
    )  # fmt: skip
    assert "BOOTX64.EFI" in listing.stdout.upper(), listing.stderr
    state = f"{disk}?offset={int(str(state_part['start'])) * 512}"
    assert fs_label(state) == "K3OS_STATE"
    assert "Type: regular" in inode_stat(state, "/k3os/system/takeover")
    assert loops_on(disk) == ""


@pytest.mark.vm
@pytest.mark.usefixtures("needs_loop")
def test_formatted_bios_disk_boots_into_our_grub_menu(tmp_path: Path, fake_iso: Path) -> None:
    if shutil.which("qemu-system-x86_64") is None or shutil.which("grub-install") is None:
        pytest.skip("qemu-system-x86_64 or grub-install is not installed (make apt)")
    disk = tmp_path / "disk.img"
    with disk.open("wb") as handle:
        handle.truncate(128 * 1024 * 1024)
    assert run_install("--tty", "ttyS0", str(disk), str(fake_iso)).returncode == 0
    console = tmp_path / "console.log"
    qemu = [
        "qemu-system-x86_64", "-accel", "tcg", "-m", "256", "-display", "none", "-nodefaults",
        "-serial", f"file:{console}", "-drive", f"file={disk},format=raw,if=virtio", "-no-reboot",
    ]  # fmt: skip
    proc = subprocess.Popen(qemu, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(120):  # bounded: 60 s
            text = console.read_bytes().decode(errors="replace") if console.exists() else ""
            if "Booting `k3OS'" in text and "vmlinuz" in text:
                break
            try:
                proc.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                pass
    finally:
        proc.kill()
        proc.wait()
    text = console.read_bytes().decode(errors="replace")
    assert "k3OS rescue shell" in text  # the menu came from our grub.cfg, over the serial console
    assert "Booting `k3OS'" in text
    # GRUB followed the "current" link and tried our (fake) kernel.
    assert "/k3os/system/kernel/current/vmlinuz" in text
