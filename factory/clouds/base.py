"""The cloud backend interface and the plugin registry.

A backend is a subclass of :class:`CloudBackend` living in its own module; it imports its cloud SDK
only inside that module (ideally inside methods), and the module is imported only when the user names
that cloud. Built-in backends are listed in :data:`BUILTIN_BACKENDS`; third-party ones register an entry
point in the group ``k3os_factory.clouds`` (``name = "package.module:BackendClass"``).

The ``factory`` commands drive a backend like this (see ``factory/commands/bake.py``)::

    backend = load_backend("aws")
    backend.add_arguments(parser)             # its own `factory bake aws` flags
    backend.validate(args, request)           # UsageError -> exit 2, before anything is created
    print(backend.preflight(args))            # e.g. STS identity; UsageError if no credentials
    steps = backend.bake_steps(args, request) # list[Step]; dry-run prints their `plan`
    Pipeline(ctx, steps).run()                # the steps fill ctx.state[RESULT_KEY] with a BakeResult

``gc``, ``images list/prune`` and ``whoami`` work the same way with their own ``add_*_arguments``.
"""

from __future__ import annotations

import abc
import argparse
import importlib
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, ClassVar, TextIO

from factory.pipeline import BakeContext, Step, UsageError

ENTRY_POINT_GROUP = "k3os_factory.clouds"
RESULT_KEY = "result"

#: Built-in backends: cloud name -> "module:Class". Modules are imported lazily by :func:`load_backend`.
BUILTIN_BACKENDS: dict[str, str] = {
    "aws": "factory.clouds.aws:AwsBackend",
    "gcp": "factory.clouds.gcp:GcpBackend",
    "openstack": "factory.clouds.openstack:OpenStackBackend",
    "hetzner": "factory.clouds.hetzner:HetznerBackend",
    "qemu": "factory.clouds.qemu:QemuBackend",
}


@dataclass
class BakeRequest:
    """The cloud-independent part of a bake, validated by ``factory bake`` before a backend sees it.

    ``config_yaml`` is the k3OS config to bake in (data sources defaulted to the backend's list);
    ``secrets`` are the config's secret values (never print them: use ``ctx.redact``);
    ``tags`` are the user's ``--tag`` pairs (the backend adds the bake-id tag itself).
    """

    name: str
    iso_url: str | None
    iso_path: str | None
    iso_sha256: str | None
    insecure_skip_checksum: bool
    config_yaml: str
    secrets: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    timeout_s: float = 3600.0
    poll_interval_s: float = 15.0
    bake_id: str = ""


@dataclass(frozen=True)
class Artifact:
    """One produced image: ``region`` ("" for local clouds) and the image id or path."""

    region: str
    image_id: str


@dataclass
class BakeResult:
    """What a successful bake produced; the steps store it in ``ctx.state[RESULT_KEY]``.

    ``artifact_id`` and ``files`` follow Packer's manifest (``files`` is None for clouds, a list of
    ``{"name", "size"}`` for local images); ``custom_data`` must hold no secret.
    """

    artifacts: list[Artifact]
    artifact_id: str
    files: list[dict[str, Any]] | None = None
    custom_data: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class GcItem:
    """A leftover found by ``gc``: what it is, its id, region and bake id, and why it is removed."""

    kind: str
    id: str
    region: str
    bake_id: str
    age_s: float


class CloudBackend(abc.ABC):
    """Base class of every cloud backend. Subclasses set the class attributes and implement the hooks."""

    #: cloud name as typed on the command line (``aws``)
    name: ClassVar[str]
    #: Packer-compatible ``builder_type`` for the manifest (``amazon-ebs``, ``qemu``, ...)
    builder_type: ClassVar[str]
    #: ``k3os.data_sources`` baked in when the config names none
    default_data_sources: ClassVar[tuple[str, ...]]
    #: default deadline per phase in seconds (phase names as used in ``ctx.wait``)
    phase_timeouts: ClassVar[dict[str, float]] = {}

    @abc.abstractmethod
    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add this cloud's own ``factory bake CLOUD`` flags."""

    def add_common_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Flags shared by this cloud's ``gc``, ``images`` and ``whoami`` (e.g. ``--region``)."""
        return None

    @abc.abstractmethod
    def validate(self, args: argparse.Namespace, request: BakeRequest) -> None:
        """Raise :class:`UsageError` for anything wrong, without touching the cloud."""

    @abc.abstractmethod
    def preflight(self, args: argparse.Namespace) -> str:
        """Check credentials/reachability before a bake; return a one-line identity. UsageError if none."""

    @abc.abstractmethod
    def bake_steps(self, args: argparse.Namespace, request: BakeRequest) -> list[Step]:
        """The ordered steps of a bake. The last one stores a :class:`BakeResult` in ``ctx.state``."""

    def plan_resources(self, args: argparse.Namespace, request: BakeRequest) -> list[str]:
        """Human-readable list of resources a bake would create (for ``--dry-run``)."""
        return []

    def is_transient(self, exc: BaseException) -> bool:
        """True for errors worth retrying inside a poll loop (throttling, 5xx)."""
        return False

    def user_error(self, exc: BaseException) -> UsageError | None:
        """A :class:`UsageError` (exit 2) for an SDK error that is the user's to fix (no or bad
        credentials, unknown profile), else None (the command fails with exit 1)."""
        return None

    def whoami(self, args: argparse.Namespace) -> dict[str, str]:
        """The identity the cloud sees (account, user/ARN, ...). UsageError without credentials."""
        raise UsageError(f"factory whoami {self.name}: not supported")

    def gc_find(self, args: argparse.Namespace, older_than_s: float) -> list[GcItem]:
        """Leftovers tagged with a bake id, older than ``older_than_s``, products excluded."""
        raise UsageError(f"factory gc {self.name}: not supported")

    def gc_remove(self, args: argparse.Namespace, items: list[GcItem], out: TextIO) -> list[GcItem]:
        """Remove ``items`` (in a safe order); return those that could not be removed."""
        raise UsageError(f"factory gc {self.name}: not supported")

    def images_list(self, args: argparse.Namespace) -> list[dict[str, Any]]:
        """Images this factory produced: dicts with ``region``, ``image_id``, ``name``, ``created``."""
        raise UsageError(f"factory images {self.name}: not supported")

    def images_delete(self, args: argparse.Namespace, image: dict[str, Any]) -> None:
        """Delete one image returned by :meth:`images_list` (and its snapshots/files)."""
        raise UsageError(f"factory images {self.name}: not supported")

    def new_context(self, request: BakeRequest, **kwargs: Any) -> BakeContext:
        """Hook to customise the :class:`BakeContext` (default: nothing special)."""
        return BakeContext(cloud=self.name, name=request.name, is_transient=self.is_transient, **kwargs)


def _entry_point_targets() -> dict[str, str]:
    targets: dict[str, str] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        targets[ep.name] = ep.value
    return targets


def available_clouds() -> list[str]:
    """Names of every known backend (built-in first, then entry points), without importing any."""
    names = list(BUILTIN_BACKENDS)
    names += [n for n in _entry_point_targets() if n not in BUILTIN_BACKENDS]
    return names


def load_backend(name: str) -> CloudBackend:
    """Import and instantiate the backend for ``name``. UsageError if unknown or its SDK is missing."""
    target = BUILTIN_BACKENDS.get(name) or _entry_point_targets().get(name)
    if target is None:
        raise UsageError(f"unknown cloud {name!r} (known: {', '.join(available_clouds())})")
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name:
            raise UsageError(f"cloud {name!r} is not available in this installation") from None
        raise UsageError(
            f"cloud {name!r} needs the Python package {exc.name!r}: pip install 'k3os-factory[{name}]'"
        ) from None
    cls = getattr(module, attr)
    backend = cls()
    if not isinstance(backend, CloudBackend):
        raise UsageError(f"{target} is not a CloudBackend")
    return backend
