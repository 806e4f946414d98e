"""A small read-only FAT12/16/32 reader: volume label and file contents, without mounting.

Reads the boot sector (BPB), follows cluster chains in the FAT, and walks directories with
VFAT long file names (checksummed against their short entry). Names match case-insensitively,
as FAT does. Everything is bounded: chain lengths (loops are errors), directory sizes, path
depth and file sizes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

from datasources.providers._blockdev import DeviceReader, FileTooLarge, VolumeError

MAX_DIRECTORY_BYTES = 1 << 20
FAT_CHUNK = 4096
NO_LABEL = "NO NAME"
_END_OF_CHAIN = {12: 0xFF8, 16: 0xFFF8, 32: 0x0FFFFFF8}


class _Geometry(NamedTuple):
    """The layout a boot sector describes."""

    fat_bits: int
    sector: int
    cluster: int
    fat_start: int
    root_start: int  # FAT12/16: byte offset of the fixed root directory
    root_bytes: int  # FAT12/16: its size
    root_cluster: int  # FAT32: first cluster of the root directory
    data_start: int
    max_cluster: int
    boot_label: str


class _Entry(NamedTuple):
    """One directory entry: long and short name, type, first cluster, size."""

    long_name: str | None
    short_name: str
    is_dir: bool
    cluster: int
    size: int


def _u16(data: bytes, offset: int) -> int:
    return int.from_bytes(data[offset : offset + 2], "little")


def _u32(data: bytes, offset: int) -> int:
    return int.from_bytes(data[offset : offset + 4], "little")


def _clean_label(raw: bytes) -> str:
    return raw.decode("cp437").rstrip(" \x00")


def parse_boot_sector(boot: bytes) -> _Geometry | None:
    """The geometry of a FAT boot sector, or None when ``boot`` is not one."""
    if len(boot) < 512 or boot[510:512] != b"\x55\xaa" or boot[0] not in (0xEB, 0xE9):
        return None
    sector, per_cluster, reserved = _u16(boot, 11), boot[13], _u16(boot, 14)
    fats, root_entries = boot[16], _u16(boot, 17)
    total = _u16(boot, 19) or _u32(boot, 32)
    fat_sectors = _u16(boot, 22) or _u32(boot, 36)
    if (
        sector not in (512, 1024, 2048, 4096)
        or per_cluster == 0
        or per_cluster & (per_cluster - 1)
        or reserved == 0
        or fats not in (1, 2, 3, 4)
        or total == 0
        or fat_sectors == 0
    ):
        return None
    root_sectors = (root_entries * 32 + sector - 1) // sector
    data_sector = reserved + fats * fat_sectors + root_sectors
    if data_sector >= total:
        return None
    clusters = (total - data_sector) // per_cluster
    fat_bits = 12 if clusters < 4085 else 16 if clusters < 65525 else 32
    # The extended boot signature 0x29 says a volume label follows (FAT32 BPB is 28 bytes longer).
    signature_at, label_at = (66, 71) if fat_bits == 32 else (38, 43)
    boot_label = _clean_label(boot[label_at : label_at + 11]) if boot[signature_at] == 0x29 else ""
    return _Geometry(
        fat_bits=fat_bits,
        sector=sector,
        cluster=sector * per_cluster,
        fat_start=reserved * sector,
        root_start=(reserved + fats * fat_sectors) * sector,
        root_bytes=root_entries * 32,
        root_cluster=_u32(boot, 44) if fat_bits == 32 else 0,
        data_start=data_sector * sector,
        max_cluster=clusters + 1,
        boot_label="" if boot_label == NO_LABEL else boot_label,
    )


def _lfn_checksum(short: bytes) -> int:
    total = 0
    for byte in short:
        total = (((total & 1) << 7) + (total >> 1) + byte) & 0xFF
    return total


def _short_name(entry: bytes) -> str:
    raw = (b"\xe5" + entry[1:11]) if entry[0] == 0x05 else entry[0:11]
    base = raw[0:8].decode("cp437").rstrip(" ")
    ext = raw[8:11].decode("cp437").rstrip(" ")
    if entry[12] & 0x08:
        base = base.lower()
    if entry[12] & 0x10:
        ext = ext.lower()
    return f"{base}.{ext}" if ext else base


class FatVolume:
    """A FAT12/16/32 volume opened on a device."""

    fstype = "vfat"

    def __init__(self, dev: DeviceReader) -> None:
        """Read the boot sector and the root directory's label.

        :raises VolumeError: not a FAT filesystem, or corrupt.
        :raises OSError: the device cannot be read.
        """
        self._dev = dev
        geometry = parse_boot_sector(dev.read(0, 512))
        if geometry is None:
            raise VolumeError("no FAT boot sector")
        self._geo = geometry
        self._fat_cache: dict[int, bytes] = {}
        self.fat_bits = geometry.fat_bits
        self.label = self._root_label() or geometry.boot_label

    def _fat_bytes(self, offset: int, size: int) -> bytes:
        """``size`` bytes of the first FAT at ``offset``, through a chunk cache."""
        out = b""
        while size > 0:
            chunk_no, within = divmod(offset, FAT_CHUNK)
            chunk = self._fat_cache.get(chunk_no)
            if chunk is None:
                chunk = self._dev.read(self._geo.fat_start + chunk_no * FAT_CHUNK, FAT_CHUNK)
                self._fat_cache[chunk_no] = chunk
            piece = chunk[within : within + size]
            out += piece
            offset += len(piece)
            size -= len(piece)
        return out

    def _next_cluster(self, cluster: int) -> int:
        bits = self._geo.fat_bits
        if bits == 12:
            value = _u16(self._fat_bytes(cluster + cluster // 2, 2), 0)
            return value >> 4 if cluster & 1 else value & 0xFFF
        if bits == 16:
            return _u16(self._fat_bytes(cluster * 2, 2), 0)
        return _u32(self._fat_bytes(cluster * 4, 4), 0) & 0x0FFFFFFF

    def _chain(self, first: int, max_clusters: int) -> list[int]:
        """The clusters of a chain starting at ``first``, at most ``max_clusters`` of them."""
        chain: list[int] = []
        seen: set[int] = set()
        cluster = first
        end = _END_OF_CHAIN[self._geo.fat_bits]
        while True:
            if cluster < 2 or cluster > self._geo.max_cluster:
                raise VolumeError(f"cluster chain reaches invalid cluster {cluster:#x}")
            if cluster in seen:
                raise VolumeError(f"cluster chain loops back to cluster {cluster:#x}")
            seen.add(cluster)
            chain.append(cluster)
            if len(chain) >= max_clusters:
                return chain
            cluster = self._next_cluster(cluster)
            if cluster >= end:
                return chain

    def _read_clusters(self, clusters: list[int], size: int) -> bytes:
        """Read ``size`` bytes from ``clusters``, one ``pread`` per contiguous run."""
        geo = self._geo
        parts: list[bytes] = []
        remaining = size
        run_start = index = 0
        while index < len(clusters) and remaining > 0:
            if index + 1 < len(clusters) and clusters[index + 1] == clusters[index] + 1:
                index += 1
                continue
            length = min((index - run_start + 1) * geo.cluster, remaining)
            offset = geo.data_start + (clusters[run_start] - 2) * geo.cluster
            parts.append(self._dev.read(offset, length))
            remaining -= length
            index += 1
            run_start = index
        return b"".join(parts)

    def _directory_bytes(self, cluster: int | None) -> bytes:
        """The raw entries of the root (None) or of the directory starting at ``cluster``."""
        geo = self._geo
        if cluster is None and geo.fat_bits != 32:
            if geo.root_bytes > MAX_DIRECTORY_BYTES:
                raise VolumeError("root directory exceeds the limit")
            return self._dev.read(geo.root_start, geo.root_bytes)
        first = geo.root_cluster if cluster is None else cluster
        limit = MAX_DIRECTORY_BYTES // geo.cluster + 1
        clusters = self._chain(first, limit + 1)
        if len(clusters) > limit:
            raise VolumeError("directory exceeds the size limit")
        return self._read_clusters(clusters, len(clusters) * geo.cluster)

    def _root_label(self) -> str:
        """The volume-label entry of the root directory ("" when there is none)."""
        data = self._directory_bytes(None)
        for pos in range(0, len(data) - 31, 32):
            entry = data[pos : pos + 32]
            if entry[0] == 0:
                break
            if entry[0] != 0xE5 and entry[11] & 0x3F != 0x0F and entry[11] & 0x08:
                return _clean_label(entry[0:11])
        return ""

    def _entries(self, cluster: int | None) -> Iterator[_Entry]:
        """Yield the files and subdirectories of a directory (not ``.``, ``..`` or labels)."""
        data = self._directory_bytes(cluster)
        parts: dict[int, str] = {}
        checksum = -1
        for pos in range(0, len(data) - 31, 32):
            entry = data[pos : pos + 32]
            if entry[0] == 0:
                return
            if entry[0] == 0xE5:
                parts.clear()
                continue
            attributes = entry[11]
            if attributes & 0x3F == 0x0F:
                if entry[0] & 0x40:
                    parts.clear()
                    checksum = entry[13]
                raw = entry[1:11] + entry[14:26] + entry[28:32]
                parts[entry[0] & 0x1F] = raw.decode("utf-16-le", "replace").split("\x00", 1)[0]
                continue
            long_name = None
            complete = set(parts) == set(range(1, len(parts) + 1))
            if parts and complete and checksum == _lfn_checksum(entry[0:11]):
                long_name = "".join(parts[key] for key in sorted(parts))
            parts.clear()
            if attributes & 0x08:
                continue
            short = _short_name(entry)
            if short in (".", ".."):
                continue
            first = (_u16(entry, 20) << 16 if self._geo.fat_bits == 32 else 0) | _u16(entry, 26)
            yield _Entry(long_name, short, bool(attributes & 0x10), first, _u32(entry, 28))

    def _lookup(self, path: str) -> _Entry | None:
        components = [part for part in path.split("/") if part]
        if not components or len(components) > 8:
            raise VolumeError(f"unsupported path {path!r}")
        directory: int | None = None
        found: _Entry | None = None
        for index, component in enumerate(components):
            wanted = component.lower()
            found = next(
                (
                    e
                    for e in self._entries(directory)
                    if wanted in ((e.long_name or "").lower(), e.short_name.lower())
                ),
                None,
            )
            if found is None or (index < len(components) - 1 and not found.is_dir):
                return None
            directory = found.cluster or None
        return found

    def read_file(self, path: str, max_bytes: int) -> bytes | None:
        """Return the contents of the regular file ``path``, or None when it does not exist.

        :raises FileTooLarge: the file is larger than ``max_bytes``.
        :raises VolumeError: corrupt structures (broken or looping chain, chain too short).
        :raises OSError: the device cannot be read.
        """
        entry = self._lookup(path)
        if entry is None or entry.is_dir:
            return None
        if entry.size > max_bytes:
            raise FileTooLarge(f"{path}: {entry.size} bytes exceeds the limit of {max_bytes}")
        if entry.size == 0:
            return b""
        needed = (entry.size + self._geo.cluster - 1) // self._geo.cluster
        clusters = self._chain(entry.cluster, needed)
        if len(clusters) < needed:
            raise VolumeError(f"{path}: cluster chain ends before the file's {entry.size} bytes")
        return self._read_clusters(clusters, entry.size)


def read_label(dev: DeviceReader) -> str | None:
    """Return the FAT volume label (root-directory entry first, then the boot sector).

    None when the device holds no FAT filesystem; "" when it holds one without a label.

    :raises OSError: the device cannot be read.
    :raises VolumeError: the device is too short or the root directory is corrupt.
    """
    if parse_boot_sector(dev.read(0, 512)) is None:
        return None
    return FatVolume(dev).label
