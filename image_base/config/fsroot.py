"""Writing files under a root directory (``/`` on a node, a fake root in tests): atomic, with modes."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


class FsRoot:
    """Paths of a system rooted at ``root``; ``live`` when that is the running system's ``/``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.live = os.path.realpath(self.root) == "/"

    def path(self, absolute: str) -> Path:
        """``/etc/hostname`` -> ``<root>/etc/hostname``."""
        return self.root / absolute.lstrip("/")

    def read_text(self, absolute: str) -> str | None:
        """The file's text, or None when it does not exist."""
        try:
            return self.path(absolute).read_text(encoding="utf-8", errors="replace")
        except (FileNotFoundError, NotADirectoryError):
            return None

    def _ids(self, table: str, name: str) -> tuple[int, int] | None:
        if name.isdigit():
            return int(name), int(name)
        for line in (self.read_text(table) or "").splitlines():
            fields = line.split(":")
            if len(fields) >= 3 and fields[0] == name and fields[2].isdigit():
                gid = (
                    int(fields[3])
                    if table == "/etc/passwd" and len(fields) > 3 and fields[3].isdigit()
                    else -1
                )
                return int(fields[2]), gid
        return None

    def user_ids(self, user: str) -> tuple[int, int] | None:
        """(uid, primary gid) of ``user`` from this root's /etc/passwd, or None."""
        return self._ids("/etc/passwd", user)

    def group_id(self, group: str) -> int | None:
        """gid of ``group`` from this root's /etc/group, or None."""
        ids = self._ids("/etc/group", group)
        return None if ids is None else ids[0]

    def owner_ids(self, owner: str) -> tuple[int, int]:
        """``user`` or ``user:group`` -> (uid, gid); ValueError when a name is unknown in this root."""
        user, _, group = (owner or "root").partition(":")
        ids = self.user_ids(user)
        if ids is None:
            if user != "root":
                raise ValueError(f"unknown user {user!r}")
            ids = (0, 0)
        uid, gid = ids[0], ids[1] if ids[1] >= 0 else 0
        if group:
            found = self.group_id(group)
            if found is None and group != "root":
                raise ValueError(f"unknown group {group!r}")
            gid = found if found is not None else 0
        return uid, gid

    def _check_inside(self, target: Path) -> None:
        if self.live:
            return
        real_root, real_parent = os.path.realpath(self.root), os.path.realpath(target.parent)
        if os.path.commonpath([real_root, real_parent]) != real_root:
            raise ValueError(f"{target} leaves the root {self.root} through a symlink")

    def makedirs(self, absolute: str, mode: int = 0o755, owner: tuple[int, int] | None = None) -> Path:
        """mkdir -p; the last component gets ``mode`` (and ``owner`` when given and we are root)."""
        target = self.path(absolute)
        self._check_inside(target / "x")
        target.mkdir(parents=True, exist_ok=True)
        if owner is not None and os.geteuid() == 0:
            os.chown(target, *owner)
        os.chmod(target, mode)
        return target

    def write(
        self, absolute: str, data: bytes, mode: int = 0o644, owner: tuple[int, int] | None = None
    ) -> Path:
        """Atomically replace ``absolute`` (temp file + rename in the same directory) with ``data``."""
        target = self.path(absolute)
        self._check_inside(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                if owner is not None and os.geteuid() == 0:
                    os.fchown(handle.fileno(), *owner)
                os.fchmod(handle.fileno(), mode)  # after chown, which clears setuid bits
                handle.write(data)
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        return target
