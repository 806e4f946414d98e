"""Build real iso9660 and vfat images for the cdrom tests (genisoimage, xorriso, pycdlib, mtools)."""

from __future__ import annotations

import io
import subprocess
from pathlib import Path

Files = dict[str, bytes]

NOCLOUD_FILES: Files = {
    "user-data": b"#cloud-config\nhostname: from-userdata\n",
    "meta-data": (
        b"instance-id: iid-local01\nlocal-hostname: node-1\nhostname: node-1.example.org\n"
        b"public-keys:\n  - ssh-ed25519 AAAAC3Nza-one one@example\n  - ssh-rsa AAAAB3Nza-two two@example\n"
    ),
}
CONFIG_DRIVE_FILES: Files = {
    "openstack/latest/meta_data.json": (
        b'{"uuid": "83679162-1378-4288-a2d4-70e13ec132aa", "hostname": "cfg2.novalocal", "name": "cfg2",'
        b' "availability_zone": "nova", "public_keys": {"mykey": "ssh-ed25519 AAAAC3Nza-cfg cfg@example"}}'
    ),
    "openstack/latest/user_data": b"#!/bin/sh\necho config-2\n",
}


def _run(*argv: str | Path) -> None:
    subprocess.run([str(a) for a in argv], check=True, capture_output=True)


def write_tree(root: Path, files: Files) -> Path:
    """Write ``files`` (relative path -> bytes) under ``root``."""
    for name, data in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return root


def genisoimage(tmp: Path, files: Files, label: str, *flags: str, name: str = "seed.iso") -> Path:
    """An ISO made by ``genisoimage -V LABEL FLAGS`` (e.g. ``-J -R``)."""
    tree = write_tree(tmp / f"{name}.d", files)
    image = tmp / name
    _run("genisoimage", "-quiet", "-o", image, "-V", label, *flags, tree)
    return image


def xorriso(tmp: Path, files: Files, label: str, *flags: str, name: str = "seed.iso") -> Path:
    """An ISO made by ``xorriso -as mkisofs -V LABEL FLAGS``."""
    tree = write_tree(tmp / f"{name}.d", files)
    image = tmp / name
    _run("xorriso", "-as", "mkisofs", "-quiet", "-o", image, "-V", label, *flags, tree)
    return image


def pycdlib_iso(
    tmp: Path,
    files: Files,
    label: str,
    *,
    level: int = 3,
    rock_ridge: bool = False,
    joliet: bool = False,
    name: str = "seed.iso",
) -> Path:
    """An ISO made with pycdlib; plain names are ``iso_name`` (upper-case, ``_`` for ``-``)."""
    import pycdlib

    def iso_name(part: str, is_file: bool) -> str:
        upper = part.upper().replace("-", "_")
        if level == 1:
            base, dot, ext = upper.rpartition(".")
            upper = f"{base[:8]}.{ext[:3]}" if dot else upper[:8]
        return f"{upper};1" if is_file and "." in upper else f"{upper}.;1" if is_file else upper

    iso = pycdlib.PyCdlib()
    iso.new(
        interchange_level=level,
        vol_ident=label,
        rock_ridge="1.09" if rock_ridge else None,
        joliet=3 if joliet else None,
    )
    made: set[str] = set()
    for path, data in files.items():
        parts = path.split("/")
        for depth in range(1, len(parts)):
            directory = "/".join(parts[:depth])
            if directory in made:
                continue
            made.add(directory)
            iso.add_directory(
                "/" + "/".join(iso_name(p, False) for p in parts[:depth]),
                rr_name=parts[depth - 1] if rock_ridge else None,
                joliet_path="/" + directory if joliet else None,
            )
        iso.add_fp(
            io.BytesIO(data),
            len(data),
            "/" + "/".join(iso_name(p, i == len(parts) - 1) for i, p in enumerate(parts)),
            rr_name=parts[-1] if rock_ridge else None,
            joliet_path="/" + path if joliet else None,
        )
    image = tmp / name
    iso.write(str(image))
    iso.close()
    return image


FAT_SIZES_KIB = {12: 2048, 16: 8192, 32: 40000}


def vfat(
    tmp: Path,
    files: Files,
    label: str,
    fat_bits: int,
    *,
    name: str = "seed.img",
    order: list[str] | None = None,
) -> Path:
    """A FAT image made by ``mkfs.vfat -F BITS -s 1 -n LABEL -C`` and filled with ``mcopy``.

    One sector per cluster, so FAT16 and FAT32 need only a few MiB (sparse files).
    """
    image = tmp / name
    _run("mkfs.vfat", "-F", str(fat_bits), "-s", "1", "-n", label, "-C", image, str(FAT_SIZES_KIB[fat_bits]))
    tree = write_tree(tmp / f"{name}.d", files)
    for path in order or list(files):
        parent = "::/" + "/".join(path.split("/")[:-1])
        for depth in range(1, len(path.split("/"))):
            directory = "::/" + "/".join(path.split("/")[:depth])
            subprocess.run(["mmd", "-D", "s", "-i", str(image), directory], capture_output=True)
        _run("mcopy", "-o", "-i", image, tree / path, parent + ("" if parent.endswith("/") else "/"))
    return image


def mcopy(image: Path, source: Path, path: str) -> None:
    """Copy a host file into a FAT image as ``::/path``."""
    _run("mcopy", "-o", "-i", image, source, "::/" + path)


def free_bytes(image: Path) -> int:
    """Free bytes of a FAT image as ``mdir`` reports them."""
    out = subprocess.run(["mdir", "-i", str(image), "::/"], check=True, capture_output=True).stdout.decode()
    line = next(line for line in out.splitlines() if "bytes free" in line)
    return int(line.split("bytes free")[0].replace(" ", "").replace(",", ""))


def mdel(image: Path, path: str) -> None:
    """Delete a file inside a FAT image (frees its clusters for the next ``mcopy``)."""
    _run("mdel", "-i", image, "::/" + path)


def mshowfat(image: Path, path: str) -> str:
    """mtools' view of a file's cluster runs, e.g. ``<2-5><9-40>``."""
    out = subprocess.run(["mshowfat", "-i", str(image), "::/" + path], check=True, capture_output=True)
    return "".join(out.stdout.decode().split()[1:])
