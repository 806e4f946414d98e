"""Build the base disk once per set of inputs and keep it in the cache.

The cache key hashes everything that shapes the disk: the package list, the mirror, the disk size and
the source of this package (so a change to the builder invalidates old disks). A cache entry is a
directory ``<cache>/base/<key>/`` with ``base.qcow2``, the kernel and initrd (used by the QEMU
accelerator probe) and ``build.json``; it appears atomically (built in a temp dir, then renamed).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from image_base.base_disk import disk, rootfs

DEFAULT_CACHE_DIR = Path(".cache/k3os-factory")
DEFAULT_OUTPUT = Path("dist/base.qcow2")
DEFAULT_SIZE_MIB = 4096


class BaseDiskError(RuntimeError):
    """The base disk could not be built (message is one line for the user)."""


@dataclass(frozen=True)
class BaseDisk:
    """A built (or reused) base disk."""

    path: Path
    kernel: Path
    initrd: Path
    key: str
    reused: bool
    seconds: float


def cache_dir_from_env(default: Path = DEFAULT_CACHE_DIR) -> Path:
    """The cache directory: ``$FACTORY_CACHE_DIR`` when set, else ``.cache/k3os-factory``."""
    return Path(os.environ.get("FACTORY_CACHE_DIR") or default)


def input_key(mirror: str, size_mib: int, packages: tuple[str, ...] = rootfs.PACKAGES) -> str:
    """The cache key: sha256 over the inputs and this package's source files (first 16 hex)."""
    digest = hashlib.sha256()
    digest.update(json.dumps({"mirror": mirror, "size": size_mib, "packages": packages}).encode())
    for source in sorted(Path(__file__).parent.glob("*.py")):
        digest.update(source.name.encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()[:16]


def cached_base_disk(cache_dir: Path, key: str | None = None) -> BaseDisk | None:
    """The cache entry for ``key`` (default: the current inputs with this machine's mirror)."""
    key = key or input_key(rootfs.host_debian_mirror(), DEFAULT_SIZE_MIB)
    entry = cache_dir / "base" / key
    qcow2 = entry / "base.qcow2"
    if not qcow2.is_file() or not (entry / "build.json").is_file():
        return None
    return BaseDisk(qcow2, entry / "vmlinuz", entry / "initrd.img", key, True, 0.0)


def probe_kernel(cache_dir: Path) -> Path | None:
    """A kernel for the KVM probe boot: the current base disk's, else any cached one's."""
    current = cached_base_disk(cache_dir)
    if current is not None and current.kernel.is_file():
        return current.kernel
    found = sorted((cache_dir / "base").glob("*/vmlinuz"))
    return found[-1] if found else None


def _step(log: TextIO, message: str) -> None:
    print(f"factory base: {message}", file=log, flush=True)


def _build_entry(entry_tmp: Path, mirror: str, size_mib: int, log: TextIO) -> dict[str, object]:
    tree = entry_tmp / "rootfs"
    started = time.monotonic()
    _step(log, f"mmdebstrap {rootfs.SUITE} from {mirror} ({len(rootfs.PACKAGES)} packages) ...")
    result = subprocess.run(rootfs.mmdebstrap_argv(tree, mirror), capture_output=True, text=True)
    if result.returncode != 0:
        tail = " | ".join((result.stderr or result.stdout).strip().splitlines()[-3:])
        raise BaseDiskError(f"mmdebstrap failed: {tail}")
    debootstrap_s = time.monotonic() - started
    version = rootfs.configure_rootfs(tree)
    disk.install_grub_files(tree, version)
    shutil.copy2(tree / f"boot/vmlinuz-{version}", entry_tmp / "vmlinuz")
    shutil.copy2(tree / f"boot/initrd.img-{version}", entry_tmp / "initrd.img")
    _step(log, f"rootfs ready in {debootstrap_s:.0f}s (kernel {version}); writing disk ...")
    raw = entry_tmp / "disk.raw"
    disk.assemble_raw_disk(tree, raw, size_mib, entry_tmp)
    shutil.rmtree(tree)
    disk.convert_to_qcow2(raw, entry_tmp / "base.qcow2")
    raw.unlink()
    return {"kernel_version": version, "mirror": mirror, "size_mib": size_mib, "suite": rootfs.SUITE}


def build_base_disk(
    *,
    cache_dir: Path,
    output: Path | None = DEFAULT_OUTPUT,
    force: bool = False,
    size_mib: int = DEFAULT_SIZE_MIB,
    mirror: str | None = None,
    log: TextIO = sys.stderr,
) -> BaseDisk:
    """Build the base disk into the cache (or reuse it) and place it at ``output`` (hard link when
    possible, else a copy). Needs root (mmdebstrap in root mode, chroot)."""
    started = time.monotonic()
    mirror = mirror or rootfs.host_debian_mirror()
    key = input_key(mirror, size_mib)
    entry = cache_dir / "base" / key
    found = None if force else cached_base_disk(cache_dir, key)
    if found is None:
        if os.geteuid() != 0:
            raise BaseDiskError("factory base build needs root (mmdebstrap --mode=root and chroot)")
        for tool in ("mmdebstrap", "mke2fs", "sfdisk", "grub-mkimage", "qemu-img"):
            if shutil.which(tool) is None:
                raise BaseDiskError(f"{tool} not found (run `make apt`)")
        (cache_dir / "base").mkdir(parents=True, exist_ok=True)
        entry_tmp = Path(tempfile.mkdtemp(prefix=f".{key}-", dir=cache_dir / "base"))
        try:
            info = _build_entry(entry_tmp, mirror, size_mib, log)
            info["seconds"] = round(time.monotonic() - started, 1)
            (entry_tmp / "build.json").write_text(json.dumps(info, indent=2) + "\n")
            if entry.exists():
                shutil.rmtree(entry)
            entry_tmp.rename(entry)
        finally:
            if entry_tmp.exists():
                shutil.rmtree(entry_tmp, ignore_errors=True)
        found = BaseDisk(entry / "base.qcow2", entry / "vmlinuz", entry / "initrd.img", key, False, 0.0)
    path = found.path
    if output is not None:
        _place(found.path, output)
        path = output
    seconds = time.monotonic() - started
    return BaseDisk(path, found.kernel, found.initrd, key, found.reused, seconds)


def _place(source: Path, output: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.exists() and output.samefile(source):
        return
    tmp = output.with_name(f".{output.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    tmp.replace(output)
