"""Write the winner's files into the output directory (``/run/config``), atomically.

Every file is written to a temporary file in the same directory, fsynced and renamed over the
target. Files the provider did not give are not written, and our files left from an earlier run
are removed; no other file in the directory is ever touched.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Sequence

from datasources.model import Metadata

DEFAULT_OUTPUT = "/run/config"
SSH_DIR = "ssh"
# Every file this module may write, relative to the output directory.
KNOWN_FILES: tuple[str, ...] = (
    "provider",
    "userdata",
    "local_hostname",
    "hostname",
    "ssh/authorized_keys",
    "instance_id",
    "metadata.json",
)
_SECRET_FILES = frozenset({"userdata", "ssh/authorized_keys"})
# Temporary files are ".<name>.tmp-<pid>" next to their target.
TMP_MARK = ".tmp-"


def planned_files(md: Metadata) -> Iterator[tuple[str, bytes]]:
    """The ``(relative path, content)`` pairs to write for ``md``, in write order."""
    import json

    yield "provider", f"{md.provider}\n".encode()
    if md.userdata is not None:
        yield "userdata", md.userdata
    local = md.local_hostname or md.hostname
    if local:
        yield "local_hostname", f"{local}\n".encode()
    if md.hostname:
        yield "hostname", f"{md.hostname}\n".encode()
    keys = [k.strip() for k in md.ssh_keys if k and k.strip()]
    if keys:
        yield "ssh/authorized_keys", ("\n".join(keys) + "\n").encode()
    if md.instance_id:
        yield "instance_id", f"{md.instance_id}\n".encode()
    yield "metadata.json", (json.dumps(md.normalised(), indent=2, sort_keys=True) + "\n").encode()


def write_atomic(path: str, content: bytes, mode: int) -> None:
    """Write ``content`` to ``path`` through a temporary file in the same directory + rename."""
    directory, name = os.path.split(path)
    tmp = os.path.join(directory, f".{name}{TMP_MARK}{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        try:
            os.fchmod(fd, mode)
            view = memoryview(content)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_output(output_dir: str, md: Metadata | None) -> list[str]:
    """Write ``md``'s files into ``output_dir`` and remove our stale ones.

    With ``md`` None (nothing detected) every file of an earlier run is removed. When a file
    cannot be written, every file of ours is removed before the error is raised, so the
    directory never mixes this run's files with an earlier run's.

    :return: the relative paths written, in write order.
    :raises OSError: the directory or a file cannot be written (``filename`` names it).
    """
    try:
        os.makedirs(output_dir, mode=0o755, exist_ok=True)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, output_dir) from None
    written: list[str] = []
    for rel, content in planned_files(md) if md is not None else ():
        path = os.path.join(output_dir, rel)
        try:
            if rel.startswith(SSH_DIR + "/"):
                ssh_dir = os.path.join(output_dir, SSH_DIR)
                os.makedirs(ssh_dir, mode=0o700, exist_ok=True)
                os.chmod(ssh_dir, 0o700)
            write_atomic(path, content, 0o600 if rel in _SECRET_FILES else 0o644)
        except OSError as exc:
            with contextlib.suppress(OSError):
                _remove_ours(output_dir, keep=())
            raise OSError(exc.errno, exc.strerror, path) from None
        written.append(rel)
    _remove_ours(output_dir, keep=written)
    _fsync_dir(output_dir)
    return written


def _remove_ours(output_dir: str, keep: Sequence[str]) -> None:
    """Remove every file of :data:`KNOWN_FILES` in ``output_dir`` except ``keep``.

    :raises OSError: a file exists but cannot be removed (``filename`` names it).
    """
    errors: list[OSError] = []
    for rel in KNOWN_FILES:
        if rel in keep:
            continue
        path = os.path.join(output_dir, rel)
        try:
            os.unlink(path)
        except (FileNotFoundError, NotADirectoryError):
            pass
        except OSError as exc:
            errors.append(OSError(exc.errno, exc.strerror, path))
    _remove_leftover_temporaries(output_dir)
    if not any(rel.startswith(SSH_DIR + "/") for rel in keep):
        # Our ssh/ directory goes with its last file; rmdir leaves it when someone else's files are in it.
        with contextlib.suppress(OSError):
            os.rmdir(os.path.join(output_dir, SSH_DIR))
    if errors:
        raise errors[0]


def _remove_leftover_temporaries(output_dir: str) -> None:
    """Remove temporary files of ours that a killed run left (they may hold userdata)."""
    for rel_dir in ("", SSH_DIR):
        directory = os.path.join(output_dir, rel_dir)
        names = {os.path.basename(rel) for rel in KNOWN_FILES if os.path.dirname(rel) == rel_dir}
        try:
            entries = os.listdir(directory)
        except OSError:
            continue
        for entry in entries:
            stem, mark, pid = entry.rpartition(TMP_MARK)
            if mark and pid.isdigit() and stem.startswith(".") and stem[1:] in names:
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(directory, entry))
