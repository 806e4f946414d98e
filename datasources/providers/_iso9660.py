"""A small read-only ISO 9660 reader: volume label and file contents, without mounting.

Names are taken from Rock Ridge (``NM`` entries) when the primary tree carries them, else from
the Joliet tree (UCS-2), else from plain ISO 9660 names, matched case-insensitively with the
d-character and 8.3 mangling that level-1 images apply (``user-data`` -> ``USER_DAT``).
Everything is bounded: directory sizes, continuation areas, path depth and file sizes.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import NamedTuple

from datasources.providers._blockdev import DeviceReader, FileTooLarge, VolumeError

DESCRIPTOR_START = 16 * 2048  # volume descriptors start at sector 16 (2048-byte sectors)
MAX_DESCRIPTORS = 32
MAX_DIRECTORY_BYTES = 1 << 20
MAX_CONTINUATIONS = 16
MAX_CONTINUATION_BYTES = 1 << 16
JOLIET_ESCAPES = (b"%/@", b"%/C", b"%/E")
_NOT_D_CHAR = re.compile(r"[^A-Z0-9_.]")


class _Entry(NamedTuple):
    """One directory record: its name as the chosen naming scheme gives it."""

    name: str
    is_dir: bool
    extent: int
    size: int
    multi_extent: bool


def _u32(data: bytes, offset: int) -> int:
    """Little-endian half of a both-endian 32-bit field."""
    return int.from_bytes(data[offset : offset + 4], "little")


def read_label(dev: DeviceReader) -> str | None:
    """Return the primary volume descriptor's volume identifier, or None when not iso9660.

    :raises OSError: the device cannot be read.
    :raises VolumeError: the device is too short to hold a volume descriptor.
    """
    pvd = dev.read(DESCRIPTOR_START, 2048)
    if pvd[0] != 1 or pvd[1:6] != b"CD001":
        return None
    return pvd[40:72].decode("latin-1").rstrip(" \x00")


class IsoVolume:
    """An ISO 9660 volume (with Rock Ridge / Joliet when present) opened on a device."""

    fstype = "iso9660"

    def __init__(self, dev: DeviceReader) -> None:
        """Read the volume descriptors and pick the naming scheme.

        :raises VolumeError: no primary volume descriptor or corrupt descriptors.
        :raises OSError: the device cannot be read.
        """
        self._dev = dev
        pvd: bytes | None = None
        joliet: bytes | None = None
        for index in range(MAX_DESCRIPTORS):
            desc = dev.read(DESCRIPTOR_START + index * 2048, 2048)
            if desc[1:6] != b"CD001":
                raise VolumeError(f"volume descriptor {index} lacks the CD001 signature")
            if desc[0] == 255:
                break
            if desc[0] == 1 and pvd is None:
                pvd = desc
            elif desc[0] == 2 and desc[88:91] in JOLIET_ESCAPES and joliet is None:
                joliet = desc
        if pvd is None:
            raise VolumeError("no primary volume descriptor")
        self.label = pvd[40:72].decode("latin-1").rstrip(" \x00")
        self._block = int.from_bytes(pvd[128:130], "little")
        if self._block not in (512, 1024, 2048):
            raise VolumeError(f"unsupported logical block size {self._block}")
        root = self._root_record(pvd)
        self._susp_skip = self._rock_ridge_skip(root)
        if self._susp_skip is not None:
            self.naming, self._root = "rockridge", root
        elif joliet is not None:
            self.naming, self._root = "joliet", self._root_record(joliet)
        else:
            self.naming, self._root = "iso9660", root

    def _root_record(self, descriptor: bytes) -> _Entry:
        """The root directory of a primary or supplementary volume descriptor."""
        record = descriptor[156:190]
        if record[0] < 34 or not record[25] & 0x02:
            raise VolumeError("root directory record is corrupt")
        return _Entry("", True, _u32(record, 2), _u32(record, 10), False)

    def _directory_bytes(self, entry: _Entry) -> bytes:
        """The raw bytes of a directory extent (bounded)."""
        if entry.size > MAX_DIRECTORY_BYTES:
            raise VolumeError(f"directory of {entry.size} bytes exceeds the limit")
        return self._dev.read(entry.extent * self._block, entry.size)

    def _rock_ridge_skip(self, root: _Entry) -> int | None:
        """The SUSP skip length when the root's ``.`` record carries an ``SP`` entry, else None."""
        data = self._directory_bytes(root)
        if not data or data[0] < 34:
            raise VolumeError("root directory is empty or corrupt")
        name_len = data[32]
        start = 33 + name_len + (1 - name_len % 2)
        system_use = data[start : data[0]]
        if len(system_use) >= 7 and system_use[0:2] == b"SP" and system_use[4:6] == b"\xbe\xef":
            return system_use[6]
        return None

    def _records(self, directory: _Entry) -> Iterator[tuple[bytes, bytes, int, int, int]]:
        """Yield (identifier, system use, extent, size, flags) of each record except ``.``/``..``."""
        data = self._directory_bytes(directory)
        pos = 0
        while pos < len(data):
            length = data[pos]
            if length == 0:  # records never cross a block; zero pads to the next one
                pos = (pos // self._block + 1) * self._block
                continue
            if length < 34 or pos + length > len(data):
                raise VolumeError(f"corrupt directory record at offset {pos}")
            record = data[pos : pos + length]
            pos += length
            name_len = record[32]
            if 33 + name_len > length:
                raise VolumeError("directory record name overruns the record")
            identifier = record[33 : 33 + name_len]
            if identifier in (b"\x00", b"\x01"):
                continue
            system_use = record[33 + name_len + (1 - name_len % 2) :]
            yield identifier, system_use, _u32(record, 2), _u32(record, 10), record[25]

    def _rock_ridge_name(self, system_use: bytes) -> tuple[str | None, bool]:
        """The ``NM`` name of a record (None when absent) and whether it is a relocated dir (RE)."""
        areas = [system_use[self._susp_skip or 0 :]]
        parts: list[bytes] = []
        relocated = False
        hops = 0
        while areas:
            area = areas.pop()
            pos = 0
            while pos + 4 <= len(area):
                signature, length = area[pos : pos + 2], area[pos + 2]
                if length < 4 or pos + length > len(area):
                    break
                if signature == b"NM" and length >= 5 and not area[pos + 4] & 0x06:
                    parts.append(area[pos + 5 : pos + length])
                elif signature == b"RE":
                    relocated = True
                elif signature == b"CE" and length >= 28:
                    hops += 1
                    if hops > MAX_CONTINUATIONS:
                        raise VolumeError("too many Rock Ridge continuation areas")
                    block, offset, size = _u32(area, pos + 4), _u32(area, pos + 12), _u32(area, pos + 20)
                    size = min(size, MAX_CONTINUATION_BYTES)
                    areas.append(self._dev.read(block * self._block + offset, size))
                elif signature == b"ST":
                    break
                pos += length
        name = b"".join(parts).decode("utf-8", "replace") if parts else None
        return name, relocated

    def _entries(self, directory: _Entry) -> Iterator[_Entry]:
        """Yield the entries of a directory, named by the volume's naming scheme."""
        for identifier, system_use, extent, size, flags in self._records(directory):
            if self.naming == "joliet":
                name = identifier.decode("utf-16-be", "replace")
            else:
                name = identifier.decode("latin-1")
                if self.naming == "rockridge":
                    rr_name, relocated = self._rock_ridge_name(system_use)
                    if relocated:
                        continue
                    name = rr_name if rr_name is not None else name
            if self.naming != "rockridge" and not flags & 0x02:
                name = name.split(";", 1)[0]  # drop the ";1" version
            yield _Entry(name, bool(flags & 0x02), extent, size, bool(flags & 0x80))

    def _matches(self, entry_name: str, wanted: str) -> bool:
        """Whether a directory entry names ``wanted`` under this volume's naming scheme."""
        if self.naming != "iso9660":
            return entry_name == wanted
        have = entry_name.upper().rstrip(".")
        full = _NOT_D_CHAR.sub("_", wanted.upper())
        base, dot, ext = full.rpartition(".")
        short = f"{base[:8]}.{ext[:3]}" if dot else full[:8]
        return have in (full, short)

    def _lookup(self, path: str) -> _Entry | None:
        """Walk ``path`` from the root; None when a component is missing."""
        components = [part for part in path.split("/") if part]
        if not components or len(components) > 8:
            raise VolumeError(f"unsupported path {path!r}")
        current = self._root
        for index, component in enumerate(components):
            if not current.is_dir:
                return None
            found = next((e for e in self._entries(current) if self._matches(e.name, component)), None)
            if found is None:
                return None
            if index < len(components) - 1 and not found.is_dir:
                return None
            current = found
        return current

    def read_file(self, path: str, max_bytes: int) -> bytes | None:
        """Return the contents of the regular file ``path``, or None when it does not exist.

        :raises FileTooLarge: the file is larger than ``max_bytes``.
        :raises VolumeError: corrupt structures or a multi-extent file.
        :raises OSError: the device cannot be read.
        """
        entry = self._lookup(path)
        if entry is None or entry.is_dir:
            return None
        if entry.multi_extent:
            raise VolumeError(f"{path}: multi-extent files are not supported")
        if entry.size > max_bytes:
            raise FileTooLarge(f"{path}: {entry.size} bytes exceeds the limit of {max_bytes}")
        return self._dev.read(entry.extent * self._block, entry.size)
