"""The ISO's k3OS layout, its GRUB menu, squashfs images and the ``grub-mkrescue`` call.

Layout (volume id ``K3OS``)::

    /boot/grub/grub.cfg
    /k3os/system/config.yaml
    /k3os/system/kernel/<kver>/{vmlinuz,initrd,kernel.squashfs}   + current -> <kver>
    /k3os/system/k3os/<version>/k3os.squashfs                     + current -> <version>
"""

from __future__ import annotations

import subprocess
from pathlib import Path

VOLUME_ID = "K3OS"
CONSOLE_ARGS = "console=tty1 console=ttyS0,115200n8"  # the last console is /dev/console: serial
MENU_ENTRIES: tuple[tuple[str, str], ...] = (
    ("k3OS live", "live"),
    ("k3OS install", "install"),
    ("k3OS rescue shell", "shell"),
)
SQUASHFS_COMPRESSION: tuple[str, ...] = ("-comp", "zstd", "-Xcompression-level", "3")


class IsoError(RuntimeError):
    """A squashfs image or the ISO could not be written."""


def grub_cfg(kernel_version: str, timeout: int = 1) -> str:
    """The ISO's ``/boot/grub/grub.cfg``: live (default), install and rescue-shell entries."""
    kernel_dir = f"/k3os/system/kernel/{kernel_version}"
    lines = [
        "# k3os-factory ISO boot menu",
        "serial --unit=0 --speed=115200",
        "terminal_input console serial",
        "terminal_output console serial",
        "set default=0",
        f"set timeout={timeout}",
        f"search --no-floppy --label {VOLUME_ID} --set=root",
    ]
    for title, mode in MENU_ENTRIES:
        lines += [
            f'menuentry "{title}" {{',
            f"    linux {kernel_dir}/vmlinuz k3os.mode={mode} {CONSOLE_ARGS}",
            f"    initrd {kernel_dir}/initrd",
            "}",
        ]
    return "\n".join(lines) + "\n"


def layout(iso_root: Path, kernel_version: str, os_version: str) -> tuple[Path, Path]:
    """Create the k3OS directories with their ``current`` links; return (kernel dir, os dir)."""
    system = iso_root / "k3os" / "system"
    kernel_dir = system / "kernel" / kernel_version
    os_dir = system / "k3os" / os_version
    for directory, name in ((kernel_dir, kernel_version), (os_dir, os_version)):
        directory.mkdir(parents=True)
        (directory.parent / "current").symlink_to(name)
    (iso_root / "boot" / "grub").mkdir(parents=True)
    (iso_root / "boot" / "grub" / "grub.cfg").write_text(grub_cfg(kernel_version))
    return kernel_dir, os_dir


def mksquashfs(source: Path, output: Path) -> None:
    """Write ``source`` as a zstd squashfs image (reproducible timestamps, no progress bar)."""
    command = [
        "mksquashfs",
        str(source),
        str(output),
        "-noappend",
        "-no-progress",
        "-quiet",
        *SQUASHFS_COMPRESSION,
        "-mkfs-time",
        "0",
    ]
    _run(command, "mksquashfs")


def make_iso(iso_root: Path, output: Path) -> None:
    """Write the hybrid (BIOS + UEFI) ISO of ``iso_root`` with volume id K3OS via grub-mkrescue."""
    _run(
        ["grub-mkrescue", "--locales=", "--fonts=", "--themes=", "-o", str(output), str(iso_root)]
        + ["--", "-volid", VOLUME_ID],
        "grub-mkrescue",
    )


def _run(command: list[str], what: str) -> None:
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise IsoError(f"{what} is not installed (run `make apt`)") from exc
    if result.returncode != 0:
        tail = " | ".join((result.stderr or result.stdout).strip().splitlines()[-3:])
        raise IsoError(f"{what} failed (exit {result.returncode}): {tail}")
