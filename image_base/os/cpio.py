"""A minimal writer of the ``newc`` cpio format the Linux kernel unpacks as an initramfs.

Written in Python so the initrd needs neither root (device nodes) nor the ``cpio`` tool, and so the
archive is reproducible (fixed owner, mode and mtime).
"""

from __future__ import annotations

import gzip
import stat
from dataclasses import dataclass, field
from pathlib import Path

_MAGIC = b"070701"


@dataclass
class Archive:
    """An in-memory initramfs: add directories, files, symlinks and device nodes, then :meth:`write`."""

    _chunks: list[bytes] = field(default_factory=list)
    _inode: int = 1
    _names: set[str] = field(default_factory=set)

    def _entry(self, name: str, mode: int, data: bytes = b"", rdev: tuple[int, int] = (0, 0)) -> None:
        name = name.strip("/")
        if name in self._names:
            raise ValueError(f"duplicate initrd entry {name!r}")
        self._names.add(name)
        encoded = name.encode() + b"\0"
        fields = (
            self._inode,
            mode,
            0,  # uid
            0,  # gid
            1,  # nlink
            0,  # mtime
            len(data),
            0,  # dev major
            0,  # dev minor
            rdev[0],
            rdev[1],
            len(encoded),
            0,  # check
        )
        self._inode += 1
        header = _MAGIC + b"".join(b"%08x" % value for value in fields)
        self._chunks.append(_pad(header + encoded) + _pad(data))

    def directory(self, name: str, mode: int = 0o755) -> None:
        """Add a directory (parents are not implied: add them first)."""
        self._entry(name, stat.S_IFDIR | mode)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        """Add a regular file with ``data`` as content."""
        self._entry(name, stat.S_IFREG | mode, data)

    def copy(self, name: str, source: Path, mode: int | None = None) -> None:
        """Add the regular file ``source`` as ``name`` (keeping its permission bits unless ``mode``)."""
        perms = stat.S_IMODE(source.stat().st_mode) if mode is None else mode
        self.file(name, source.read_bytes(), perms)

    def symlink(self, name: str, target: str) -> None:
        """Add a symbolic link ``name`` -> ``target``."""
        self._entry(name, stat.S_IFLNK | 0o777, target.encode())

    def char_device(self, name: str, major: int, minor: int, mode: int = 0o600) -> None:
        """Add a character device node (e.g. ``dev/console`` 5:1), which needs no root here."""
        self._entry(name, stat.S_IFCHR | mode, rdev=(major, minor))

    def names(self) -> set[str]:
        """The entry names added so far (without leading slash)."""
        return set(self._names)

    def to_bytes(self) -> bytes:
        """The uncompressed archive, terminated by the ``TRAILER!!!`` entry."""
        trailer = _MAGIC + b"".join(b"%08x" % v for v in (0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 11, 0))
        return b"".join(self._chunks) + _pad(trailer + b"TRAILER!!!\0")

    def write(self, path: Path) -> int:
        """Write the archive gzip-compressed (reproducibly, mtime 0) to ``path``; return its size."""
        payload = gzip.compress(self.to_bytes(), compresslevel=6, mtime=0)
        path.write_bytes(payload)
        return len(payload)


def _pad(chunk: bytes) -> bytes:
    return chunk + b"\0" * (-len(chunk) % 4)
