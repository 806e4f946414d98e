"""On-disk journal of the resources a bake created, so ``factory gc`` can clean up even after SIGKILL.

One JSON object per line, appended and fsynced the moment something happens:

- ``{"event": "begin", "bake_id", "cloud", "name", "pid", "host", "time"}``
- ``{"event": "created", "kind", "id", "region", "time"}`` -- written as soon as the cloud returned the id,
  before any wait on the resource
- ``{"event": "removed", "kind", "id", "region", "time"}`` -- a cleanup removed it
- ``{"event": "kept", "kind", "id", "region", "time"}`` -- a product of a successful bake (the image)
- ``{"event": "end", "outcome": "ok"|"failed"|"interrupted", "leftovers": [...], "time"}``

The journal lives in ``$FACTORY_STATE_DIR/journal/<bake-id>.jsonl`` (default
``$XDG_CACHE_HOME/k3os-factory`` or ``~/.cache/k3os-factory``). A journal whose bake ended with nothing
outstanding is deleted; the others are read back by :func:`read_journals`.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STATE_DIR_ENV = "FACTORY_STATE_DIR"


def state_dir() -> Path:
    """The factory's state directory (``$FACTORY_STATE_DIR``, else the user's cache dir)."""
    explicit = os.environ.get(STATE_DIR_ENV)
    if explicit:
        return Path(explicit)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "k3os-factory"


def journal_dir() -> Path:
    """Where the per-bake journals are written."""
    return state_dir() / "journal"


@dataclass(frozen=True)
class Resource:
    """One cloud resource a bake created: its kind (``instance``, ``image``, ...), id and region."""

    kind: str
    id: str
    region: str = ""

    def __str__(self) -> str:
        where = f" in {self.region}" if self.region else ""
        return f"{self.kind} {self.id}{where}"


class Journal:
    """Append-only, fsynced JSON-lines record of one bake's resources. Thread-safe."""

    def __init__(self, bake_id: str, cloud: str, name: str, directory: Path | None = None) -> None:
        """Open (create) the journal for ``bake_id`` and write its ``begin`` record."""
        self.bake_id = bake_id
        self.directory = directory or journal_dir()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / f"{bake_id}.jsonl"
        self._lock = threading.Lock()
        self._outstanding: dict[Resource, None] = {}
        self._write(
            {
                "event": "begin",
                "bake_id": bake_id,
                "cloud": cloud,
                "name": name,
                "pid": os.getpid(),
                "host": socket.gethostname(),
            }
        )

    def _write(self, record: dict[str, Any]) -> None:
        record = {**record, "time": time.time()}
        line = json.dumps(record, sort_keys=True) + "\n"
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line.encode())
                os.fsync(fd)
            finally:
                os.close(fd)

    def created(self, resource: Resource) -> None:
        """Record that ``resource`` exists (call before waiting on it)."""
        self._outstanding[resource] = None
        self._write({"event": "created", "kind": resource.kind, "id": resource.id, "region": resource.region})

    def removed(self, resource: Resource) -> None:
        """Record that ``resource`` was deleted by a cleanup."""
        self._outstanding.pop(resource, None)
        self._write({"event": "removed", "kind": resource.kind, "id": resource.id, "region": resource.region})

    def kept(self, resource: Resource) -> None:
        """Record that ``resource`` is a product of the bake and must not be garbage-collected."""
        self._outstanding.pop(resource, None)
        self._write({"event": "kept", "kind": resource.kind, "id": resource.id, "region": resource.region})

    def outstanding(self) -> list[Resource]:
        """Resources created and neither removed nor kept, in creation order."""
        return list(self._outstanding)

    def end(self, outcome: str, leftovers: list[Resource]) -> None:
        """Write the ``end`` record; delete the journal when nothing is left to clean."""
        self._write({"event": "end", "outcome": outcome, "leftovers": [str(r) for r in leftovers]})
        if not leftovers and not self._outstanding:
            self.path.unlink(missing_ok=True)


@dataclass
class JournalState:
    """What a journal file says about one bake (see :func:`read_journals`)."""

    path: Path
    bake_id: str
    cloud: str = ""
    pid: int = 0
    host: str = ""
    started: float = 0.0
    ended: bool = False
    outstanding: list[Resource] = field(default_factory=list)

    def running(self) -> bool:
        """True when the bake has no ``end`` record and its process still lives on this host."""
        if self.ended or self.host != socket.gethostname() or self.pid <= 0:
            return False
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


def read_journal(path: Path) -> JournalState:
    """Parse one journal file, tolerating a torn last line (the writer was killed mid-write)."""
    state = JournalState(path=path, bake_id=path.stem)
    outstanding: dict[Resource, None] = {}
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rec = json.loads(raw)
        except json.JSONDecodeError:
            continue
        event = rec.get("event")
        if event == "begin":
            state.cloud = str(rec.get("cloud", ""))
            state.pid = int(rec.get("pid", 0))
            state.host = str(rec.get("host", ""))
            state.started = float(rec.get("time", 0.0))
        elif event in ("created", "removed", "kept"):
            res = Resource(str(rec.get("kind", "")), str(rec.get("id", "")), str(rec.get("region", "")))
            if event == "created":
                outstanding[res] = None
            else:
                outstanding.pop(res, None)
        elif event == "end":
            state.ended = True
    state.outstanding = list(outstanding)
    return state


def read_journals(cloud: str | None = None, directory: Path | None = None) -> Iterator[JournalState]:
    """Every journal in ``directory`` (default :func:`journal_dir`), optionally only for ``cloud``."""
    base = directory or journal_dir()
    if not base.is_dir():
        return
    for path in sorted(base.glob("*.jsonl")):
        state = read_journal(path)
        if cloud is None or state.cloud == cloud:
            yield state
