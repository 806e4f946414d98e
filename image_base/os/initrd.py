"""Build the initrd: static busybox, the kernel modules needed to find and mount the root, and /init.

Modules are resolved with the kernel's ``modules.dep`` and listed in load order (dependencies first)
in ``/lib/modules/load-order``, which /init walks with busybox ``insmod``: no depmod or modprobe needed
at that stage. Modules the kernel has built in (``modules.builtin``) are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from image_base.os.cpio import Archive

# What /init needs to reach K3OS (cdrom: ata_piix/sr_mod/isofs) or K3OS_STATE (virtio, scsi, nvme, Xen
# blkfront for older EC2 types, + ext4),
# then loop-mount the squashfs images and build the overlay root.
INITRD_MODULES: tuple[str, ...] = (
    "virtio_pci",
    "virtio_blk",
    "virtio_scsi",
    "scsi_mod",
    "sd_mod",
    "sr_mod",
    "cdrom",
    "libata",
    "ata_piix",
    "ata_generic",
    "ahci",
    "nvme",
    "xen_blkfront",
    "isofs",
    "squashfs",
    "overlay",
    "ext4",
    "loop",
    "vfat",
    "nls_cp437",
    "nls_iso8859_1",
    "nls_utf8",
    "crc32c_generic",
)
# Without these the initrd cannot reach any root: a kernel lacking them is an error. The others
# (ahci, nvme, ...) are taken when the kernel has them (the cloud kernel has no ahci, for one).
REQUIRED_MODULES: frozenset[str] = frozenset(
    {"virtio_pci", "virtio_blk", "sr_mod", "isofs", "squashfs", "overlay", "ext4", "loop"}
)

# Files under image_base/os/files/initrd/ placed into the initrd (name in archive -> mode).
INITRD_FILES: dict[str, int] = {"init": 0o755, "lib/k3os/initlib.sh": 0o644}


class InitrdError(RuntimeError):
    """The initrd could not be assembled (missing busybox or kernel modules)."""


@dataclass(frozen=True)
class ModuleIndex:
    """The kernel's module dependency data for one kernel version."""

    depends: dict[str, list[str]]  # module name -> relative paths of its .ko and its dependencies
    paths: dict[str, str]  # module name -> relative path of its .ko
    builtin: frozenset[str]

    @classmethod
    def load(cls, modules_dir: Path) -> ModuleIndex:
        """Read ``modules.dep`` and ``modules.builtin`` from ``/lib/modules/<kver>``."""
        depends: dict[str, list[str]] = {}
        paths: dict[str, str] = {}
        for line in (modules_dir / "modules.dep").read_text().splitlines():
            if ":" not in line:
                continue
            path, _, deps = line.partition(":")
            name = module_name(path)
            paths[name] = path
            depends[name] = [module_name(dep) for dep in deps.split()]
        builtin_file = modules_dir / "modules.builtin"
        builtin = (
            frozenset(module_name(p) for p in builtin_file.read_text().split())
            if builtin_file.is_file()
            else frozenset()
        )
        return cls(depends, paths, builtin)

    def load_order(self, wanted: tuple[str, ...]) -> list[str]:
        """Relative .ko paths of ``wanted`` and their dependencies, dependencies first.

        Built-in and absent optional modules are skipped; an absent required one is an error.
        """
        order: list[str] = []
        seen: set[str] = set()

        def visit(name: str) -> None:
            if name in seen:
                return
            seen.add(name)
            for dep in self.depends.get(name, []):
                visit(dep)
            order.append(self.paths[name])

        for raw in wanted:
            name = raw.replace("-", "_")
            if name in self.paths:
                visit(name)
            elif name not in self.builtin and name in REQUIRED_MODULES:
                raise InitrdError(f"kernel module {raw!r} is neither a module nor built in")
        return order


def module_name(path: str) -> str:
    """``kernel/fs/isofs/isofs.ko.xz`` -> ``isofs`` (dashes normalised to underscores)."""
    base = path.rsplit("/", 1)[-1]
    return base.split(".ko", 1)[0].replace("-", "_")


def init_source(name: str) -> bytes:
    """The packaged content of ``files/initrd/<name>``."""
    return resources.files("image_base.os").joinpath("files", "initrd", name).read_bytes()


def build_initrd(busybox: Path, modules_dir: Path, output: Path) -> list[str]:
    """Write the gzip-compressed initrd to ``output``; return the paths of the modules it holds.

    ``busybox`` is the static busybox of the rootfs, ``modules_dir`` its ``/lib/modules/<kver>``.
    """
    if not busybox.is_file():
        raise InitrdError(f"{busybox} is missing (the rootfs needs busybox-static)")
    order = ModuleIndex.load(modules_dir).load_order(INITRD_MODULES)

    archive = Archive()
    for directory in ("bin", "dev", "proc", "sys", "run", "newroot", "lib", "lib/k3os", "lib/modules"):
        archive.directory(directory)
    archive.char_device("dev/console", 5, 1)
    archive.char_device("dev/null", 1, 3, 0o666)
    archive.copy("bin/busybox", busybox, 0o755)
    archive.symlink("bin/sh", "busybox")
    for name, mode in INITRD_FILES.items():
        archive.file(name, init_source(name), mode)
    for relative in order:
        archive.copy(f"lib/modules/{module_name(relative)}.ko", modules_dir / relative, 0o644)
    load_list = "".join(f"{module_name(relative)}\n" for relative in order)
    archive.file("lib/modules/load-order", load_list.encode())
    archive.write(output)
    return order
