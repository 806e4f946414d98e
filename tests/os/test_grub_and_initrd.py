"""grub.cfg entries, module resolution through modules.dep, and the initrd archive itself."""

from __future__ import annotations

import gzip
import shutil
import subprocess
from pathlib import Path

import pytest

from image_base.os import initrd, isotree
from image_base.os.cpio import Archive


def test_grub_cfg_has_live_install_and_rescue_entries_with_serial_console() -> None:
    cfg = isotree.grub_cfg("6.1.0-9-cloud-amd64")
    entries = [line.strip() for line in cfg.splitlines() if line.strip().startswith("linux ")]
    modes = [entry.split("k3os.mode=")[1].split()[0] for entry in entries]
    assert modes == ["live", "install", "shell"]
    for entry in entries:
        assert entry.startswith("linux /k3os/system/kernel/6.1.0-9-cloud-amd64/vmlinuz ")
        # The last console= is /dev/console, where the ready line must go: the serial port.
        assert entry.endswith("console=tty1 console=ttyS0,115200n8")
    assert cfg.count("initrd /k3os/system/kernel/6.1.0-9-cloud-amd64/initrd") == 3
    assert "serial --unit=0 --speed=115200" in cfg


def _modules_dir(tmp_path: Path) -> Path:
    kdir = tmp_path / "lib" / "modules" / "6.1.0-test"
    deps = {
        "kernel/fs/isofs/isofs.ko": [],
        "kernel/drivers/cdrom/cdrom.ko": [],
        "kernel/drivers/scsi/scsi_mod.ko": [],
        "kernel/drivers/scsi/sr_mod.ko": ["kernel/drivers/cdrom/cdrom.ko", "kernel/drivers/scsi/scsi_mod.ko"],
        "kernel/drivers/ata/libata.ko": ["kernel/drivers/scsi/scsi_mod.ko"],
        "kernel/drivers/ata/ata_piix.ko": ["kernel/drivers/ata/libata.ko", "kernel/drivers/scsi/scsi_mod.ko"],
        "kernel/fs/squashfs/squashfs.ko": [],
        "kernel/fs/overlayfs/overlay.ko": [],
        "kernel/drivers/block/loop.ko": [],
        "kernel/drivers/virtio/virtio_pci.ko": [],
        "kernel/drivers/block/virtio_blk.ko": [],
    }
    lines = []
    for path, dep in deps.items():
        (kdir / path).parent.mkdir(parents=True, exist_ok=True)
        (kdir / path).write_bytes(b"\x7fELF fake " + path.encode())
        lines.append(f"{path}: {' '.join(dep)}")
    (kdir / "modules.dep").write_text("\n".join(lines) + "\n")
    (kdir / "modules.builtin").write_text("kernel/fs/ext4/ext4.ko\n")
    return kdir


def test_load_order_puts_dependencies_first_and_skips_builtin_and_absent_optional(tmp_path: Path) -> None:
    index = initrd.ModuleIndex.load(_modules_dir(tmp_path))
    order = [initrd.module_name(p) for p in index.load_order(("sr_mod", "ata_piix", "ext4", "ahci"))]
    assert order.index("scsi_mod") < order.index("sr_mod")
    assert order.index("cdrom") < order.index("sr_mod")
    assert order.index("libata") < order.index("ata_piix")
    assert order.count("scsi_mod") == 1
    assert "ext4" not in order and "ahci" not in order


def test_a_missing_required_module_is_an_error(tmp_path: Path) -> None:
    index = initrd.ModuleIndex.load(_modules_dir(tmp_path))
    without_squashfs = {name: path for name, path in index.paths.items() if name != "squashfs"}
    with pytest.raises(initrd.InitrdError, match="squashfs"):
        initrd.ModuleIndex(index.depends, without_squashfs, index.builtin).load_order(("squashfs",))


@pytest.mark.skipif(shutil.which("cpio") is None, reason="needs cpio to read the archive back")
def test_initrd_archive_holds_init_busybox_modules_and_console(tmp_path: Path) -> None:
    busybox = Path(shutil.which("busybox") or "/bin/busybox")
    output = tmp_path / "initrd"
    order = initrd.build_initrd(busybox, _modules_dir(tmp_path), output)
    listing = subprocess.run(
        ["cpio", "-itv", "--quiet"],
        input=gzip.decompress(output.read_bytes()),
        capture_output=True,
        check=True,
    ).stdout.decode()
    names = {line.split()[-1] for line in listing.splitlines() if "->" not in line}
    assert {"init", "bin/busybox", "lib/k3os/initlib.sh", "lib/modules/load-order"} <= names
    assert "lib/modules/sr_mod.ko" in names
    console = next(line for line in listing.splitlines() if line.endswith("dev/console"))
    assert console.startswith("crw") and "5,   1" in console
    init_line = next(line for line in listing.splitlines() if line.endswith(" init"))
    assert init_line.startswith("-rwxr-xr-x")
    extract = tmp_path / "x"
    extract.mkdir()
    subprocess.run(
        ["cpio", "-id", "--quiet", "--no-absolute-filenames", "lib/modules/load-order"],
        input=gzip.decompress(output.read_bytes()),
        cwd=extract,
        check=True,
    )
    assert (extract / "lib/modules/load-order").read_text().split() == [initrd.module_name(p) for p in order]


def test_cpio_rejects_duplicate_entries() -> None:
    archive = Archive()
    archive.directory("bin")
    with pytest.raises(ValueError, match="duplicate"):
        archive.directory("/bin")
