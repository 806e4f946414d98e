"""The own FAT12/16/32 reader against real images from mkfs.vfat and mtools."""

from __future__ import annotations

from pathlib import Path

import pytest

from datasources.providers._blockdev import DeviceReader, FileTooLarge, VolumeError
from datasources.providers._vfat import FatVolume, parse_boot_sector, read_label
from tests.cdrom import images

ALL_FILES = {
    **images.NOCLOUD_FILES,
    **images.CONFIG_DRIVE_FILES,
    "a much longer file name than eight dot three.txt": b"lfn\n",
    "SHORT.TXT": b"short\n",
}


@pytest.mark.parametrize("bits", [12, 16, 32])
def test_reads_lfn_names_and_subdirectories(tmp_path: Path, bits: int) -> None:
    image = images.vfat(tmp_path, ALL_FILES, "CIDATA", bits)
    with DeviceReader(str(image)) as dev:
        assert read_label(dev) == "CIDATA"
        volume = FatVolume(dev)
        assert volume.fat_bits == bits
        assert {name: volume.read_file(name, 1 << 20) for name in ALL_FILES} == ALL_FILES
        assert volume.read_file("USER-DATA", 100) == ALL_FILES["user-data"]  # FAT is case-insensitive
        assert volume.read_file("short.txt", 100) == b"short\n"
        assert volume.read_file("vendor-data", 100) is None
        assert volume.read_file("openstack/latest", 100) is None


@pytest.mark.parametrize("bits", [12, 16, 32])
def test_lower_case_config2_label(tmp_path: Path, bits: int) -> None:
    image = images.vfat(tmp_path, images.CONFIG_DRIVE_FILES, "config-2", bits)
    with DeviceReader(str(image)) as dev:
        assert read_label(dev) == "config-2"


def test_boot_sector_label_is_used_when_the_root_has_no_label_entry(tmp_path: Path) -> None:
    image = images.vfat(tmp_path, images.NOCLOUD_FILES, "CIDATA", 16)
    data = bytearray(image.read_bytes())
    with DeviceReader(str(image)) as dev:
        geometry = parse_boot_sector(dev.read(0, 512))
    assert geometry is not None
    root = data[geometry.root_start : geometry.root_start + geometry.root_bytes]
    label_at = next(i for i in range(0, len(root), 32) if root[i + 11] == 0x08)
    data[geometry.root_start + label_at] = 0xE5  # delete the volume-label entry
    data[43:54] = b"cidata     "
    image.write_bytes(bytes(data))
    with DeviceReader(str(image)) as dev:
        assert read_label(dev) == "cidata"


@pytest.mark.parametrize("bits", [12, 16])
def test_large_fragmented_file(tmp_path: Path, bits: int) -> None:
    big = b"".join(b"line %06d of a large user-data file\n" % n for n in range(8000))  # ~300 KB, 600 clusters
    image = images.vfat(tmp_path, {"one": b"1" * 3000, "gap": b"2" * 200_000}, "CIDATA", bits)
    # Fill the disk so that only ~150 KB stay free at its end: mtools must wrap around into
    # the hole that deleting "gap" leaves, which splits user-data's chain in two.
    filler = tmp_path / "filler"
    filler.write_bytes(b"f" * (images.free_bytes(image) - 150_000))
    images.mcopy(image, filler, "filler")
    images.mdel(image, "gap")
    source = tmp_path / "big"
    source.write_bytes(big)
    images.mcopy(image, source, "user-data")
    runs = images.mshowfat(image, "user-data")
    assert runs.count("<") >= 2, f"expected a fragmented chain, mtools shows {runs}"
    with DeviceReader(str(image)) as dev:
        volume = FatVolume(dev)
        assert volume.read_file("user-data", 1 << 20) == big
        assert volume.read_file("one", 1 << 20) == b"1" * 3000
        with pytest.raises(FileTooLarge):
            volume.read_file("user-data", len(big) - 1)


def _first_cluster_of(image: Path, name: str) -> tuple[int, int, int]:
    """(FAT offset, first cluster, root dir offset) of a FAT12/16 root-directory file."""
    data = image.read_bytes()
    geometry = parse_boot_sector(data[:512])
    assert geometry is not None
    root = data[geometry.root_start : geometry.root_start + geometry.root_bytes]
    for pos in range(0, len(root), 32):
        if root[pos : pos + 11] == name.encode():
            return (
                geometry.fat_start,
                int.from_bytes(root[pos + 26 : pos + 28], "little"),
                geometry.root_start,
            )
    raise AssertionError(f"{name} not in the root directory")


def test_looping_cluster_chain_is_a_volume_error(tmp_path: Path) -> None:
    files = {"DATA.TXT": b"x" * 4000}  # 8 clusters of 512 bytes
    image = images.vfat(tmp_path, files, "CIDATA", 16)
    fat, first, _ = _first_cluster_of(image, "DATA    TXT")
    data = bytearray(image.read_bytes())
    second = first + 1
    data[fat + 2 * second : fat + 2 * second + 2] = first.to_bytes(2, "little")  # 2nd -> 1st: a loop
    image.write_bytes(bytes(data))
    with DeviceReader(str(image)) as dev, pytest.raises(VolumeError, match="loops"):
        FatVolume(dev).read_file("data.txt", 1 << 20)


def test_looping_directory_chain_is_a_volume_error(tmp_path: Path) -> None:
    image = images.vfat(tmp_path, {"SUB/FILE.TXT": b"x"}, "CONFIG-2", 16)
    fat, first, _ = _first_cluster_of(image, "SUB        ")
    data = bytearray(image.read_bytes())
    data[fat + 2 * first : fat + 2 * first + 2] = first.to_bytes(
        2, "little"
    )  # the directory points to itself
    image.write_bytes(bytes(data))
    with DeviceReader(str(image)) as dev, pytest.raises(VolumeError, match="loops"):
        FatVolume(dev).read_file("sub/file.txt", 1 << 20)


def test_chain_ending_early_is_a_volume_error(tmp_path: Path) -> None:
    files = {"DATA.TXT": b"x" * 4000}
    image = images.vfat(tmp_path, files, "CIDATA", 16)
    fat, first, _ = _first_cluster_of(image, "DATA    TXT")
    data = bytearray(image.read_bytes())
    data[fat + 2 * first : fat + 2 * first + 2] = b"\xff\xff"  # end of chain after one cluster
    image.write_bytes(bytes(data))
    with DeviceReader(str(image)) as dev, pytest.raises(VolumeError, match="chain ends"):
        FatVolume(dev).read_file("data.txt", 1 << 20)


def test_chain_to_a_free_cluster_is_a_volume_error(tmp_path: Path) -> None:
    files = {"DATA.TXT": b"x" * 4000}
    image = images.vfat(tmp_path, files, "CIDATA", 12)
    fat, first, _ = _first_cluster_of(image, "DATA    TXT")
    data = bytearray(image.read_bytes())
    # FAT12: clear the 12-bit entry of the first cluster (points to cluster 0 = free).
    offset = fat + first + first // 2
    pair = int.from_bytes(data[offset : offset + 2], "little")
    pair = pair & 0x000F if first & 1 else pair & 0xF000
    data[offset : offset + 2] = pair.to_bytes(2, "little")
    image.write_bytes(bytes(data))
    with DeviceReader(str(image)) as dev, pytest.raises(VolumeError, match="invalid cluster"):
        FatVolume(dev).read_file("data.txt", 1 << 20)


def test_not_fat_and_too_short(tmp_path: Path) -> None:
    blank = tmp_path / "blank.img"
    blank.write_bytes(bytes(4096))
    with DeviceReader(str(blank)) as dev:
        assert read_label(dev) is None
    short = tmp_path / "short.img"
    short.write_bytes(b"\xeb\x3c\x90" + bytes(100))
    with DeviceReader(str(short)) as dev, pytest.raises(VolumeError):
        read_label(dev)
