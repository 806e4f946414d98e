"""Assemble a BIOS-bootable disk from a root tree without loop devices or mounts.

Layout: MBR with GRUB's ``boot.img``, GRUB's ``core.img`` in the gap at sector 1, one bootable
partition from sector 2048 holding an ext4 filesystem labelled ``cloudimg-rootfs`` (written in place
by ``mke2fs -E offset=... -d TREE``). GRUB's prefix is ``(hd0,msdos1)/boot/grub``: by partition, not
by label, so after k3OS's installer relabels the filesystem ``K3OS_STATE`` and rewrites
``/boot/grub/grub.cfg`` the same core still finds and reads the new config, as on Ubuntu cloud images.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from image_base.base_disk.rootfs import ROOT_LABEL

SECTOR = 512
PARTITION_START_SECTOR = 2048
GRUB_PLATFORM_DIR = Path("/usr/lib/grub/i386-pc")
GRUB_PREFIX = "(hd0,msdos1)/boot/grub"
#: Modules built into core.img: enough to read /boot/grub on the first MBR partition. Everything
#: else (normal, linux, search, loopback, squash4, ...) loads from /boot/grub/i386-pc on demand.
CORE_MODULES = ("biosdisk", "part_msdos", "ext2")
#: GRUB 2.06 cannot read these ext4 features, which newer mke2fs versions may enable by default.
EXT4_OPTIONS = "^metadata_csum_seed,^orphan_file"
KERNEL_CMDLINE = f"root=LABEL={ROOT_LABEL} ro console=tty1 console=ttyS0,115200 net.ifnames=0"


def grub_cfg(kernel_version: str) -> str:
    """The base disk's boot menu: one entry, serial console, no wait."""
    return f"""\
serial --unit=0 --speed=115200
terminal_input serial console
terminal_output serial console
set timeout=0
set default=0
menuentry "Debian base (k3os-factory)" {{
  linux /boot/vmlinuz-{kernel_version} {KERNEL_CMDLINE}
  initrd /boot/initrd.img-{kernel_version}
}}
"""


def install_grub_files(root: Path, kernel_version: str) -> None:
    """Write ``/boot/grub/grub.cfg`` and copy GRUB's i386-pc modules into the tree."""
    grub_dir = root / "boot/grub"
    modules = grub_dir / "i386-pc"
    modules.mkdir(parents=True, exist_ok=True)
    for item in GRUB_PLATFORM_DIR.iterdir():
        if item.suffix in {".mod", ".lst", ".o"} or item.name == "modinfo.sh":
            shutil.copy2(item, modules / item.name)
    (grub_dir / "grub.cfg").write_text(grub_cfg(kernel_version))


def make_core_image(output: Path) -> None:
    """``grub-mkimage`` for BIOS with the partition prefix baked in."""
    subprocess.run(
        ["grub-mkimage", "-O", "i386-pc", "-p", GRUB_PREFIX, "-o", str(output), *CORE_MODULES],
        check=True,
        capture_output=True,
    )


def assemble_raw_disk(root: Path, raw: Path, size_mib: int, work: Path) -> None:
    """Create ``raw`` (sparse, ``size_mib`` MiB): partition table, boot code, ext4 from ``root``."""
    raw.unlink(missing_ok=True)
    with open(raw, "wb") as fh:
        fh.truncate(size_mib * 1024 * 1024)
    subprocess.run(
        ["sfdisk", "--quiet", str(raw)],
        input=f"label: dos\nstart={PARTITION_START_SECTOR}, type=83, bootable\n".encode(),
        check=True,
        capture_output=True,
    )
    offset = PARTITION_START_SECTOR * SECTOR
    fs_kib = (size_mib * 1024 * 1024 - offset) // 1024
    subprocess.run(
        [
            "mke2fs", "-q", "-F", "-t", "ext4", "-L", ROOT_LABEL, "-O", EXT4_OPTIONS,
            "-E", f"offset={offset}", "-d", str(root), str(raw), f"{fs_kib}k",
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    core = work / "core.img"
    make_core_image(core)
    core_bytes = core.read_bytes()
    if SECTOR + len(core_bytes) > offset:
        raise RuntimeError(f"GRUB core.img ({len(core_bytes)} bytes) does not fit before the partition")
    boot_code = (GRUB_PLATFORM_DIR / "boot.img").read_bytes()[:440]
    with open(raw, "r+b") as fh:
        fh.seek(0)
        fh.write(boot_code)
        fh.seek(SECTOR)
        fh.write(core_bytes)


def convert_to_qcow2(raw: Path, qcow2: Path) -> None:
    """``qemu-img convert`` (uncompressed, so the guest reads it fast)."""
    subprocess.run(
        ["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(raw), str(qcow2)],
        check=True,
        capture_output=True,
    )
