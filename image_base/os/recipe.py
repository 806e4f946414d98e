"""The root filesystem recipe: which Debian packages, from which mirror, and the mmdebstrap call.

The rootfs is the expensive part of the ISO (one to two minutes), so it is built once into a tarball
whose cache key covers only what mmdebstrap sees (:func:`rootfs_key`). Everything from this project
(init scripts, Python packages, shims) is laid over the extracted tarball later, so a change in the
project's code re-squashes without re-running mmdebstrap.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

SUITE = "bookworm"
VARIANT = "minbase"
HOST_DEB822_SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
FALLBACK_MIRROR = "http://deb.debian.org/debian"

# Everything the node needs at boot, plus the tools install.sh uses on a target disk.
# tiny-initramfs satisfies the kernel's "linux-initramfs-tool" dependency without building a big
# initramfs during the bootstrap (we build our own initrd; see initrd.py).
PACKAGES: tuple[str, ...] = (
    "linux-image-cloud-amd64",
    "tiny-initramfs",
    "busybox-static",
    "python3",
    "python3-yaml",
    "openssh-server",
    "iproute2",
    "e2fsprogs",
    "dosfstools",
    "parted",
    "fdisk",
    "grub-pc-bin",
    "grub2-common",
    "curl",
    "ca-certificates",
    "kmod",
    "util-linux",
    "procps",
)

# dpkg drops documentation, manuals and translations: smaller squashfs, faster boot from cdrom.
DPKG_OPTIONS: tuple[str, ...] = (
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
    "path-exclude=/usr/share/lintian/*",
)

# Run inside mmdebstrap once the packages are installed ("$1" is the root directory).
CUSTOMIZE_HOOKS: tuple[str, ...] = (
    'chroot "$1" useradd --create-home --shell /bin/bash --comment "k3OS user" rancher',
    'chroot "$1" passwd --lock rancher',
    # Host keys baked into an image would be shared by every node: the boot script makes them.
    'rm -f "$1"/etc/ssh/ssh_host_*',
    'rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/*',
    'mkdir -p "$1"/k3os/system',
)


class RecipeError(RuntimeError):
    """The rootfs could not be bootstrapped (mmdebstrap missing or failed)."""


def mirror_argument() -> str:
    """The mirror mmdebstrap uses: this machine's deb822 Debian sources when present, else deb.debian.org."""
    if HOST_DEB822_SOURCES.is_file():
        return str(HOST_DEB822_SOURCES)
    return FALLBACK_MIRROR


def rootfs_key(packages: tuple[str, ...] = PACKAGES) -> str:
    """Hash of everything that decides the mmdebstrap output (packages, options, hooks, mirror)."""
    digest = hashlib.sha256()
    for part in (SUITE, VARIANT, *packages, *DPKG_OPTIONS, *CUSTOMIZE_HOOKS):
        digest.update(part.encode() + b"\0")
    mirror = mirror_argument()
    digest.update(Path(mirror).read_bytes() if os.path.isfile(mirror) else mirror.encode())
    return digest.hexdigest()[:16]


def mmdebstrap_command(output_tar: Path) -> list[str]:
    """The mmdebstrap command line that writes the rootfs tarball ``output_tar``."""
    command = [
        "mmdebstrap",
        f"--variant={VARIANT}",
        "--include=" + ",".join(PACKAGES),
        "--aptopt=Acquire::Languages none",
    ]
    command += [f"--dpkgopt={option}" for option in DPKG_OPTIONS]
    command += [f"--customize-hook={hook}" for hook in CUSTOMIZE_HOOKS]
    command += [SUITE, str(output_tar), mirror_argument()]
    return command


def build_rootfs_tarball(cache_dir: Path, *, force: bool = False) -> tuple[Path, bool]:
    """Return the cached rootfs tarball, bootstrapping it first if needed; the flag says it was built."""
    tarball = cache_dir / f"rootfs-{rootfs_key()}.tar"
    if tarball.is_file() and not force:
        return tarball, False
    if shutil.which("mmdebstrap") is None:
        raise RecipeError("mmdebstrap is not installed (run `make apt`)")
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = cache_dir / f"rootfs-{rootfs_key()}.partial.tar"  # mmdebstrap picks the format by suffix
    result = subprocess.run(mmdebstrap_command(partial), capture_output=True, text=True, check=False)
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        tail = " | ".join(result.stderr.strip().splitlines()[-3:])
        raise RecipeError(f"mmdebstrap failed (exit {result.returncode}): {tail}")
    partial.replace(tarball)
    return tarball, True
