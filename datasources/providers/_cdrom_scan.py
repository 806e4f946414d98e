"""Discovery and reading for the ``cdrom`` provider (imported only when cdrom is probed).

Finds the volume by filesystem label on iso9660 or vfat, reading the devices directly (no
mount, read-only, bounded reads), then reads ``user-data``/``meta-data`` (NoCloud) or
``openstack/latest/meta_data.json``/``user_data`` (config drive). Discovery order: the devices
of ``DATASOURCES_CDROM_DEVICES`` (colon-separated) when set, else every ``/sys/class/block``
entry except ``loop*``/``ram*``/``zram*`` in natural order, then ``/dev/sr*``. The first NoCloud
volume wins, then the first config drive; a labelled volume that cannot be read is logged and
the next labelled one is tried.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Mapping
from typing import NamedTuple

from datasources.model import Metadata, ProviderError
from datasources.providers import _iso9660, _vfat
from datasources.providers._blockdev import DeviceReader, FileTooLarge, Volume, VolumeError
from datasources.providers._seeds import config_drive_metadata, nocloud_metadata

NAME = "cdrom"  # the provider name recorded in Metadata
DEVICES_ENV = "DATASOURCES_CDROM_DEVICES"
SKIPPED_PREFIXES = ("loop", "ram", "zram")
NOCLOUD, CONFIG_DRIVE = "nocloud", "config-2"
LABELS = {"cidata": NOCLOUD, "config-2": CONFIG_DRIVE}
MAX_USERDATA_BYTES = 16 << 20
MAX_METADATA_BYTES = 1 << 20
# Garbage on a device can trip index/decoding errors in the readers: treat those as corruption.
_CORRUPTION = (VolumeError, ValueError, IndexError, KeyError)


class Seed(NamedTuple):
    """A device whose filesystem label names a NoCloud or config-drive volume."""

    path: str
    kind: str
    fstype: str
    label: str


def _natural_key(name: str) -> list[object]:
    """Sort ``sr2`` before ``sr10`` and ``vda`` before ``vdb``."""
    return [(0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", name) if part]


def _has_no_medium(sys_entry: str) -> bool:
    """True when sysfs reports a size of 0 (empty tray, unloaded media): no I/O on the device."""
    try:
        with open(os.path.join(sys_entry, "size"), "rb") as handle:
            return handle.read(32).strip() == b"0"
    except OSError:
        return False


def candidate_devices(
    env: Mapping[str, str], sys_block: str = "/sys/class/block", dev_dir: str = "/dev"
) -> list[str]:
    """The devices to probe, in discovery order (see the module docstring)."""
    configured = env.get(DEVICES_ENV)
    if configured is not None:
        return list(dict.fromkeys(path for path in configured.split(":") if path))
    try:
        names = sorted(os.listdir(sys_block), key=_natural_key)
    except OSError:
        names = []
    devices = [
        os.path.join(dev_dir, name.replace("!", "/"))  # sysfs spells /dev/cciss/c0d0 "cciss!c0d0"
        for name in names
        if not name.startswith(SKIPPED_PREFIXES) and not _has_no_medium(os.path.join(sys_block, name))
    ]
    try:
        optical = sorted((n for n in os.listdir(dev_dir) if re.fullmatch(r"sr\d+", n)), key=_natural_key)
    except OSError:
        optical = []
    # /dev/sr* catches drives sysfs does not list; those sysfs listed were judged above.
    devices += [os.path.join(dev_dir, name) for name in optical if name not in names]
    return list(dict.fromkeys(devices))


def read_volume_label(dev: DeviceReader) -> tuple[str, str] | None:
    """(filesystem type, label) of an iso9660 or vfat volume on ``dev``; None for anything else.

    :raises OSError: the device cannot be read.
    :raises VolumeError: a FAT volume whose root directory is corrupt.
    """
    try:
        label = _iso9660.read_label(dev)
    except VolumeError:  # shorter than 34 KiB: cannot be iso9660, may still be a small vfat
        label = None
    if label is not None:
        return "iso9660", label
    label = _vfat.read_label(dev)
    return None if label is None else ("vfat", label)


def probe_device(path: str, log: Callable[[str], None]) -> Seed | None:
    """The Seed on ``path`` when its label is cidata/config-2 (any case); else None.

    Unreadable devices (missing, EACCES, EIO, empty tray, too short, not a device) are logged
    and give None; never raises.
    """
    try:
        with DeviceReader(path) as dev:
            found = read_volume_label(dev)
    except OSError as exc:
        log(f"{path}: unreadable, skipped ({exc.strerror or exc})")
        return None
    except _CORRUPTION as exc:
        log(f"{path}: skipped ({exc})")
        return None
    if found is None:
        return None
    fstype, label = found
    kind = LABELS.get(label.lower())
    return None if kind is None else Seed(path, kind, fstype, label)


def _open_volume(dev: DeviceReader, fstype: str) -> Volume:
    return _iso9660.IsoVolume(dev) if fstype == "iso9660" else _vfat.FatVolume(dev)


def _read_files(volume: Volume, kind: str) -> Metadata:
    """Read the files of a NoCloud or config-drive volume."""
    if kind == NOCLOUD:
        userdata = volume.read_file("user-data", MAX_USERDATA_BYTES)
        if userdata is None:  # the name `linuxkit metadata create` writes
            userdata = volume.read_file("config", MAX_USERDATA_BYTES)
        meta = volume.read_file("meta-data", MAX_METADATA_BYTES)
        if userdata is None and meta is None:
            raise ProviderError("neither user-data nor meta-data on the volume")
        return nocloud_metadata(NAME, meta, userdata)
    meta = volume.read_file("openstack/latest/meta_data.json", MAX_METADATA_BYTES)
    if meta is None:
        raise ProviderError("no openstack/latest/meta_data.json on the volume")
    userdata = volume.read_file("openstack/latest/user_data", MAX_USERDATA_BYTES)
    return config_drive_metadata(NAME, meta, userdata)


def read_seed(seed: Seed) -> Metadata:
    """Read the NoCloud or config-drive files of ``seed`` into Metadata.

    :raises ProviderError: the device cannot be read, its filesystem is corrupt, a file is too
        large, the documents are garbage, or the volume holds none of the expected files.
    """
    where = f"{seed.path} ({seed.fstype} {seed.label})"
    try:
        with DeviceReader(seed.path) as dev:
            return _read_files(_open_volume(dev, seed.fstype), seed.kind)
    except (ProviderError, FileTooLarge) as exc:
        raise ProviderError(f"{where}: {exc}") from None
    except OSError as exc:
        raise ProviderError(f"{where}: unreadable ({exc.strerror or exc})") from None
    except _CORRUPTION as exc:
        raise ProviderError(f"{where}: corrupt filesystem ({exc})") from None


def find_seeds(devices: list[str], deadline: float, log: Callable[[str], None]) -> list[Seed]:
    """Probe ``devices`` in order (until ``deadline``); NoCloud seeds first, then config drives."""
    seeds: list[Seed] = []
    for index, path in enumerate(devices):
        if time.monotonic() >= deadline:
            log(f"deadline reached after {index} of {len(devices)} devices")
            break
        seed = probe_device(path, log)
        if seed is not None:
            seeds.append(seed)
    return [s for s in seeds if s.kind == NOCLOUD] + [s for s in seeds if s.kind == CONFIG_DRIVE]
