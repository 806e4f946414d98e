"""Build the k3OS-style ISO: rootfs tarball (cached) -> project payload -> squashfs images + initrd
-> ISO tree -> ``grub-mkrescue``, reusing a previous ISO whose inputs hash the same.

:func:`build_iso` is the entry point (``factory iso build`` and ``make iso`` call it).
"""

from __future__ import annotations

import hashlib
import shutil
import tarfile
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import yaml

from image_base.os import initrd, inputs, isotree, payload, recipe

KEEP_CACHED_ISOS = 3
DEFAULT_CONFIG = b"# k3os-factory: built without a --config file\n{}\n"


class BuildError(RuntimeError):
    """The ISO could not be built; the message is one line for the user."""


class InputError(BuildError):
    """A user input (config file, k3s binary or URL, checksum) is wrong: a usage error."""


@dataclass(frozen=True)
class BuildOptions:
    """What to build: output path, k3OS config, k3s binary source, cache location."""

    output: Path
    cache_dir: Path
    config: Path | None = None
    k3s: Path | None = None
    k3s_url: str | None = None
    k3s_sha256: str | None = None
    force: bool = False


@dataclass
class BuildResult:
    """The finished ISO and what it took."""

    path: Path
    size: int
    seconds: float
    cached: bool
    key: str
    kernel_version: str = ""
    k3s: bool = False
    timings: dict[str, float] = field(default_factory=dict)


def os_version() -> str:
    """The version of k3os-factory written into the ISO (``v<version>``)."""
    try:
        return "v" + metadata.version("k3os-factory")
    except metadata.PackageNotFoundError:
        return "v0.0.0"


def read_config(path: Path | None) -> bytes:
    """The config bytes for ``/k3os/system/config.yaml``, validated with the config model."""
    if path is None:
        return DEFAULT_CONFIG
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"--config {path}: cannot read: {exc.strerror}") from None
    try:
        from image_base.config.errors import ConfigError
        from image_base.config.load import load_config_file
    except ImportError:  # config model not available: at least require a YAML map
        try:
            parsed = yaml.safe_load(data)
        except yaml.YAMLError:
            raise InputError(f"--config {path}: not valid YAML") from None
        if parsed is not None and not isinstance(parsed, dict):
            raise InputError(f"--config {path}: expected a map of config keys") from None
        return data
    try:
        load_config_file(path)
    except ConfigError as exc:
        raise InputError(f"--config: {exc}") from None
    return data


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def resolve_k3s(options: BuildOptions, log: Callable[[str], None]) -> Path | None:
    """The local k3s binary to ship: ``--k3s``, or ``--k3s-url`` downloaded (cached) and checked."""
    if options.k3s is not None:
        if not options.k3s.is_file():
            raise InputError(f"--k3s {options.k3s}: no such file")
        return options.k3s
    if options.k3s_url is None:
        return None
    expected = (options.k3s_sha256 or "").lower()
    cached = options.cache_dir / f"k3s-{expected}"
    if cached.is_file() and sha256_file(cached) == expected:
        return cached
    log(f"downloading k3s from {options.k3s_url.split('?', 1)[0]}")
    partial = cached.with_suffix(".partial")
    options.cache_dir.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(options.k3s_url, timeout=60) as response, partial.open("wb") as out:
            shutil.copyfileobj(response, out)
    except (OSError, ValueError) as exc:
        partial.unlink(missing_ok=True)
        raise BuildError(f"cannot download k3s: {exc}") from None
    actual = sha256_file(partial)
    if actual != expected:
        partial.unlink()
        raise BuildError(f"k3s download sha256 {actual} does not match --k3s-sha256 {expected}")
    partial.replace(cached)
    return cached


def _prune(cache_dir: Path, pattern: str, keep: int) -> None:
    entries = sorted(cache_dir.glob(pattern), key=lambda p: p.stat().st_mtime, reverse=True)
    for stale in entries[keep:]:
        stale.unlink(missing_ok=True)


def _deliver(source: Path, output: Path) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    shutil.copyfile(source, partial)
    partial.replace(output)


def build_iso(options: BuildOptions, log: Callable[[str], None] = lambda _m: None) -> BuildResult:
    """Build (or reuse from the cache) the ISO described by ``options``; progress goes to ``log``."""
    started = time.monotonic()
    config = read_config(options.config)
    k3s = resolve_k3s(options, log)
    k3s_sum = sha256_file(k3s) if k3s is not None else None
    key = inputs.iso_key(config, k3s_sum)
    cached_iso = options.cache_dir / f"k3os-{key}.iso"
    if k3s is None:
        log(payload.NO_K3S_NOTE)
    if cached_iso.is_file() and not options.force:
        log(f"inputs unchanged (key {key}): reusing {cached_iso}")
        _deliver(cached_iso, options.output)
        return BuildResult(options.output, cached_iso.stat().st_size, time.monotonic() - started, True, key)

    timings: dict[str, float] = {}
    mark = time.monotonic()
    try:
        tarball, built = recipe.build_rootfs_tarball(options.cache_dir, force=options.force)
    except recipe.RecipeError as exc:
        raise BuildError(str(exc)) from None
    timings["mmdebstrap" if built else "rootfs_cached"] = time.monotonic() - mark
    log(("bootstrapped" if built else "reusing") + f" rootfs {tarball.name}")

    with tempfile.TemporaryDirectory(prefix="k3os-iso-", dir=options.cache_dir) as work_name:
        work = Path(work_name)
        tree, kernel_work, iso_root = work / "rootfs", work / "kernel", work / "iso"
        mark = time.monotonic()
        tree.mkdir()
        with tarfile.open(tarball) as archive:
            archive.extractall(tree, filter="fully_trusted")
        kernel_version, vmlinuz = payload.split_kernel(tree, kernel_work)
        payload.overlay_files(tree)
        payload.install_python(tree)
        payload.install_k3s(tree, k3s)
        note = f"k3s sha256 {k3s_sum}" if k3s_sum else payload.NO_K3S_NOTE
        payload.write_identity(tree, os_version(), note)
        timings["payload"] = time.monotonic() - mark

        mark = time.monotonic()
        kernel_dir, os_dir = isotree.layout(iso_root, kernel_version, os_version())
        (iso_root / "k3os/system/config.yaml").write_bytes(config)
        shutil.copyfile(vmlinuz, kernel_dir / "vmlinuz")
        modules = kernel_work / "modules"
        try:
            initrd.build_initrd(tree / "usr/bin/busybox", modules / kernel_version, kernel_dir / "initrd")
        except initrd.InitrdError as exc:
            raise BuildError(str(exc)) from None
        timings["initrd"] = time.monotonic() - mark

        mark = time.monotonic()
        try:
            isotree.mksquashfs(modules, kernel_dir / "kernel.squashfs")
            isotree.mksquashfs(tree, os_dir / "k3os.squashfs")
            timings["squashfs"] = time.monotonic() - mark
            mark = time.monotonic()
            partial = cached_iso.with_name(cached_iso.name + ".partial")
            isotree.make_iso(iso_root, partial)
        except isotree.IsoError as exc:
            raise BuildError(str(exc)) from None
        partial.replace(cached_iso)
        timings["iso"] = time.monotonic() - mark

    _prune(options.cache_dir, "k3os-*.iso", KEEP_CACHED_ISOS)
    _prune(options.cache_dir, "rootfs-*.tar", 1)
    _deliver(cached_iso, options.output)
    size = cached_iso.stat().st_size
    return BuildResult(
        options.output,
        size,
        time.monotonic() - started,
        False,
        key,
        kernel_version=kernel_version,
        k3s=k3s is not None,
        timings=timings,
    )
