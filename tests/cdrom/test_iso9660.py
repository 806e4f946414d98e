"""The own ISO 9660 reader against real images from genisoimage, xorriso and pycdlib."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from datasources.providers._blockdev import DeviceReader, FileTooLarge, VolumeError
from datasources.providers._iso9660 import IsoVolume, read_label
from tests.cdrom import images

ALL_FILES = {**images.NOCLOUD_FILES, **images.CONFIG_DRIVE_FILES, "deep/a/b/c/long-file-name.yaml": b"deep\n"}


def _read_all(image: Path) -> tuple[str, dict[str, bytes | None]]:
    with DeviceReader(str(image)) as dev:
        volume = IsoVolume(dev)
        return volume.naming, {name: volume.read_file(name, 1 << 20) for name in ALL_FILES}


@pytest.mark.parametrize(
    ("flags", "naming"),
    [(("-J", "-R"), "rockridge"), (("-R",), "rockridge"), (("-J",), "joliet"), ((), "iso9660")],
)
def test_genisoimage_names_are_read_with_the_best_scheme(
    tmp_path: Path, flags: tuple[str, ...], naming: str
) -> None:
    image = images.genisoimage(tmp_path, ALL_FILES, "cidata", *flags)
    found_naming, contents = _read_all(image)
    assert found_naming == naming
    assert contents == ALL_FILES


def test_xorriso_image_with_upper_case_label(tmp_path: Path) -> None:
    image = images.xorriso(tmp_path, ALL_FILES, "CIDATA", "-J", "-R")
    with DeviceReader(str(image)) as dev:
        assert read_label(dev) == "CIDATA"
    assert _read_all(image) == ("rockridge", ALL_FILES)


@pytest.mark.parametrize(
    "options",
    [
        {"level": 1},
        {"level": 3},
        {"level": 1, "joliet": True},
        {"level": 1, "rock_ridge": True},
        {"level": 3, "rock_ridge": True, "joliet": True},
    ],
)
def test_pycdlib_images_including_level1_mangled_names(tmp_path: Path, options: dict[str, object]) -> None:
    files = {**images.NOCLOUD_FILES, **images.CONFIG_DRIVE_FILES}
    image = images.pycdlib_iso(tmp_path, files, "config-2", **options)  # type: ignore[arg-type]
    with DeviceReader(str(image)) as dev:
        assert read_label(dev) == "config-2"
        volume = IsoVolume(dev)
        assert {name: volume.read_file(name, 1 << 20) for name in files} == files


def test_agrees_with_pycdlib_on_a_large_file(tmp_path: Path) -> None:
    import pycdlib

    big = bytes(range(256)) * 4096 + b"tail"  # 1 MiB + 4 bytes, many sectors
    image = images.genisoimage(tmp_path, {"user-data": big, "meta-data": b"{}"}, "cidata", "-J", "-R")
    iso = pycdlib.PyCdlib()
    iso.open(str(image))
    expected = io.BytesIO()
    iso.get_file_from_iso_fp(expected, rr_path="/user-data")
    label = iso.pvd.volume_identifier.decode().strip()
    iso.close()
    with DeviceReader(str(image)) as dev:
        assert read_label(dev) == label == "cidata"
        assert IsoVolume(dev).read_file("user-data", 2 << 20) == expected.getvalue() == big


def test_missing_files_and_directories_are_none(tmp_path: Path) -> None:
    image = images.genisoimage(tmp_path, ALL_FILES, "cidata", "-J", "-R")
    with DeviceReader(str(image)) as dev:
        volume = IsoVolume(dev)
        assert volume.read_file("vendor-data", 100) is None
        assert volume.read_file("openstack/2012-08-10/meta_data.json", 100) is None
        assert volume.read_file("openstack", 100) is None  # a directory, not a file
        assert volume.read_file("user-data/x", 100) is None


def test_file_over_the_limit_is_refused(tmp_path: Path) -> None:
    image = images.genisoimage(tmp_path, ALL_FILES, "cidata", "-J", "-R")
    with DeviceReader(str(image)) as dev, pytest.raises(FileTooLarge):
        IsoVolume(dev).read_file("user-data", 10)


def test_not_an_iso_has_no_label(tmp_path: Path) -> None:
    blank = tmp_path / "blank.img"
    blank.write_bytes(bytes(64 * 1024))
    with DeviceReader(str(blank)) as dev:
        assert read_label(dev) is None


def test_truncated_image_is_a_volume_error(tmp_path: Path) -> None:
    image = images.genisoimage(tmp_path, ALL_FILES, "cidata", "-J", "-R")
    image.write_bytes(image.read_bytes()[: 20 * 2048])  # descriptors only: the root directory is gone
    with DeviceReader(str(image)) as dev:
        assert read_label(dev) == "cidata"
        with pytest.raises(VolumeError):
            IsoVolume(dev)
