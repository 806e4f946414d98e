"""Bounded, read-only access to a block device or an image file (no mount, no writes).

Shared by the iso9660 and vfat readers of the cdrom provider. Every read is a ``pread`` of a
known, small size; a short read is an error, never silently padded.
"""

from __future__ import annotations

import os
import stat
from typing import Protocol


class VolumeError(Exception):
    """The bytes on the device are not a filesystem we can read (corrupt, truncated, unsupported)."""


class FileTooLarge(VolumeError):
    """A file is larger than the caller's limit; nothing of it was read."""


class Volume(Protocol):
    """A read-only filesystem on a device: its type, its label and a way to read one file."""

    fstype: str
    label: str

    def read_file(self, path: str, max_bytes: int) -> bytes | None:
        """Return the contents of ``path`` ("/"-separated, relative to the root), None when absent.

        :raises FileTooLarge: the file is larger than ``max_bytes``.
        :raises VolumeError: the filesystem structures are corrupt.
        :raises OSError: the device cannot be read.
        """
        ...


class DeviceReader:
    """A device or image file opened read-only, read with bounded ``pread`` calls.

    Opening uses ``O_NONBLOCK`` so that a FIFO never blocks and an optical drive with an empty
    tray still opens (its reads then fail with an ``OSError``). Anything that is neither a block
    device nor a regular file is refused with ``OSError``.
    """

    def __init__(self, path: str) -> None:
        """Open ``path`` read-only.

        :raises OSError: the path cannot be opened or is not a block device / regular file.
        """
        self.path = path
        self._fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            mode = os.fstat(self._fd).st_mode
            if not (stat.S_ISBLK(mode) or stat.S_ISREG(mode)):
                raise OSError(f"{path}: not a block device or image file")
        except BaseException:
            os.close(self._fd)
            raise

    def read(self, offset: int, size: int) -> bytes:
        """Read exactly ``size`` bytes at ``offset``.

        :raises VolumeError: the device ends before ``offset + size`` (truncated image).
        :raises OSError: the device cannot be read (EIO, no medium, ...).
        """
        if offset < 0 or size < 0:
            raise VolumeError(f"invalid read at offset {offset} size {size}")
        chunks: list[bytes] = []
        done = 0
        while done < size:
            chunk = os.pread(self._fd, size - done, offset + done)
            if not chunk:
                raise VolumeError(f"device ends before offset {offset + size}")
            chunks.append(chunk)
            done += len(chunk)
        return b"".join(chunks)

    def close(self) -> None:
        """Close the device."""
        os.close(self._fd)

    def __enter__(self) -> DeviceReader:
        """Use as a context manager that closes the device."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the device."""
        self.close()
