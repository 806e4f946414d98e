"""Pieces the cloud backends share (gcp, openstack, hetzner; aws uses the spec, ages, removal order): the
builder spec of a bake request, the poll interval outside a bake, and the two halves of ``factory gc``
(collecting leftovers of bakes not running here, removing them in a safe order). No cloud SDK here."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, TextIO, TypeVar

from factory.clouds.base import BakeRequest, GcItem
from factory.journal import read_journals
from factory.pipeline import STATE_COMPLETE, UsageError

if TYPE_CHECKING:
    from image_base.builder import BuilderSpec

T = TypeVar("T")
POLL_ENV = "FACTORY_POLL_SECONDS"
#: default deadline per phase of a takeover bake (builder runs, powers itself off, image, builder
#: deleted); a backend adds its own phases (``{**TAKEOVER_PHASE_TIMEOUTS, "finish": 300.0}``)
TAKEOVER_PHASE_TIMEOUTS: dict[str, float] = {
    "wait-running": 10 * 60.0,
    "wait-stopped": 40 * 60.0,
    "wait-image": 60 * 60.0,
    "delete-builder": 10 * 60.0,
}
#: poll interval of gc and image deletes when ``$FACTORY_POLL_SECONDS`` is not set
GC_POLL_DEFAULT_S = 2.0


def builder_spec(request: BakeRequest) -> BuilderSpec:
    """The builder user data's spec for ``request`` (ISO URL and checksum, the k3OS config); a bad one
    is a :class:`UsageError` (exit 2) naming the problem."""
    from image_base.builder import BuilderSpec, BuilderSpecError

    try:
        return BuilderSpec(
            iso_url=request.iso_url or "",
            iso_sha256=request.iso_sha256 or "",
            config_yaml=request.config_yaml,
            insecure_skip_checksum=request.insecure_skip_checksum,
        )
    except BuilderSpecError as exc:
        raise UsageError(f"builder user data: {exc}") from None


def bake_labels(
    keys: tuple[str, str, str], bake_id: str, user_tags: dict[str, str], created: str, state: str | None
) -> dict[str, str]:
    """The labels (tags, metadata) every resource of a bake carries: the user's ``--tag`` pairs, then
    ``keys`` = (bake-id key, created key, state key) in the cloud's spelling; the state only if given."""
    labels = {**user_tags, keys[0]: bake_id, keys[1]: created}
    if state:
        labels[keys[2]] = state
    return labels


def gc_poll_seconds(*, strict: bool = False) -> float:
    """Poll interval outside a bake (gc, image deletes): ``$FACTORY_POLL_SECONDS`` as for bakes (at
    least 0.05 s), else 2 s. A value that is not a number counts as unset, or with ``strict`` is a
    :class:`UsageError`."""
    try:
        return max(0.05, float(os.environ.get(POLL_ENV) or GC_POLL_DEFAULT_S))
    except ValueError:
        if strict:
            raise UsageError(f"{POLL_ENV}: not a number of seconds") from None
        return GC_POLL_DEFAULT_S


def age_seconds(created: object) -> float:
    """Seconds since ``created``: a datetime or an ISO-8601 text as the clouds print it (``Z`` or an
    offset; none means UTC); ``inf`` when there is none or it cannot be read."""
    if isinstance(created, datetime):
        when = created
    else:
        try:
            when = datetime.fromisoformat(str(created).replace("Z", "+00:00"))
        except ValueError:
            return float("inf")
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, time.time() - when.timestamp())


def retry_transient(
    call: Callable[[], T], is_transient: Callable[[BaseException], bool], deadline: float, poll_s: float
) -> T:
    """``call()``, again every ``poll_s`` seconds while it raises an error ``is_transient`` accepts and
    the monotonic ``deadline`` has not passed (then the error is raised)."""
    while True:
        try:
            return call()
        except Exception as exc:
            if not is_transient(exc) or time.monotonic() >= deadline:
                raise
        time.sleep(poll_s)


def running_bake_ids(cloud: str) -> set[str]:
    """Bake ids of ``cloud`` whose journal on this host belongs to a live process (gc skips them)."""
    return {j.bake_id for j in read_journals(cloud) if j.running()}


@dataclass
class Leftovers:
    """Collects what ``factory gc CLOUD`` removes: resources carrying a bake id, not labelled complete,
    of a bake not running on this host, at least ``older_than_s`` old. An unknown age (``inf``) counts
    as old, unless ``unknown_age_is_young`` (then it is only taken when any age is)."""

    cloud: str
    older_than_s: float
    unknown_age_is_young: bool = False
    found: list[GcItem] = field(default_factory=list)
    skip: set[str] = field(init=False)

    def __post_init__(self) -> None:
        """Read the journals once: the bakes still running here."""
        self.skip = running_bake_ids(self.cloud)

    def offer(self, kind: str, rid: str, where: str, bake_id: str, state: str | None, age_s: float) -> None:
        """Take the resource if it is a leftover (see the class docstring)."""
        if not bake_id or bake_id in self.skip or state == STATE_COMPLETE:
            return
        if age_s == float("inf") and self.unknown_age_is_young and self.older_than_s > 0:
            return
        if age_s >= self.older_than_s:
            self.found.append(GcItem(kind, rid, where, bake_id, age_s))

    def in_order(self, order: Sequence[str]) -> list[GcItem]:
        """What was taken, sorted by kind (in ``order``), then id."""
        return sorted(self.found, key=lambda i: (order.index(i.kind), i.id))


def remove_in_order(
    items: list[GcItem],
    order: Sequence[str],
    remove: Callable[[GcItem], bool | None],
    describe: Callable[[Exception], str],
    out: TextIO,
    *,
    errors: type[Exception] | tuple[type[Exception], ...] = Exception,
    region_in_removed: bool = True,
    region_in_failed: bool = True,
) -> list[GcItem]:
    """Remove ``items`` by kind in ``order`` (dependents first) with ``remove`` (False: it was already
    gone), one line each on ``out`` (``removed``/``gone``/``FAILED``; the region in parentheses as the
    flags say); an ``errors`` exception is a failure, described by ``describe``. Returns the failures."""
    failed: list[GcItem] = []
    for item in sorted(items, key=lambda i: order.index(i.kind)):
        where = f" ({item.region})"
        try:
            removed = remove(item)
        except errors as exc:
            print(
                f"FAILED   {item.kind} {item.id}{where if region_in_failed else ''}: {describe(exc)}",
                file=out,
            )
            failed.append(item)
            continue
        if removed is False:
            print(f"gone     {item.kind} {item.id}{where}", file=out)
            continue
        print(
            f"removed  {item.kind} {item.id}{where if region_in_removed else ''} bake {item.bake_id}",
            file=out,
        )
    return failed
