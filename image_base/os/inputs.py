"""Where the ISO's inputs live and the cache key over them.

The key covers the rootfs recipe (through :func:`image_base.os.recipe.rootfs_key`), this project's
``datasources`` and ``image_base`` sources (init scripts included), the vendored Python packages'
versions, the k3OS config and the k3s binary. Equal keys mean an identical ISO, so the previous one is
reused.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import image_base
from image_base.os import recipe

# Bump when the ISO layout or the build steps change in a way the hashed sources do not show.
LAYOUT_VERSION = "1"
PROJECT_PACKAGES: tuple[str, ...] = ("datasources", "image_base")
# Pure-Python dependencies copied from this environment into the image (Debian's are too old).
VENDORED_PACKAGES: tuple[str, ...] = ("pluggy", "pycdlib")
CACHE_ENV = "FACTORY_CACHE_DIR"


def project_root() -> Path:
    """The directory holding the ``datasources`` and ``image_base`` packages (the repo root)."""
    return Path(image_base.__file__).resolve().parent.parent


def default_cache_dir() -> Path:
    """``$FACTORY_CACHE_DIR``, else ``.cache/k3os-factory`` in the repo root."""
    override = os.environ.get(CACHE_ENV)
    return Path(override) if override else project_root() / ".cache" / "k3os-factory"


def default_output() -> Path:
    """``dist/k3os.iso`` in the repo root."""
    return project_root() / "dist" / "k3os.iso"


def project_files(root: Path | None = None) -> Iterator[tuple[str, Path]]:
    """(relative name, path) of every source and data file of the packages copied into the image.

    ``root`` is the directory holding the packages (default: :func:`project_root`).
    """
    root = root or project_root()
    for package in PROJECT_PACKAGES:
        for path in sorted((root / package).rglob("*")):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                yield path.relative_to(root).as_posix(), path


def vendored_versions() -> dict[str, str]:
    """Version of each vendored package installed here (``missing`` when it is not)."""
    versions = {}
    for name in VENDORED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "missing"
    return versions


def iso_key(config: bytes | None, k3s_sha256: str | None, root: Path | None = None) -> str:
    """The cache key of an ISO built from the sources under ``root`` with ``config`` and k3s."""
    digest = hashlib.sha256()

    def feed(label: str, data: bytes) -> None:
        digest.update(label.encode() + b"\0" + hashlib.sha256(data).digest())

    feed("layout", LAYOUT_VERSION.encode())
    feed("rootfs", recipe.rootfs_key().encode())
    for name, path in project_files(root):
        feed(name, path.read_bytes())
    for name, version in sorted(vendored_versions().items()):
        feed(f"vendored:{name}", version.encode())
    feed("config", b"none" if config is None else b"some:" + config)
    feed("k3s", (k3s_sha256 or "none").encode())
    return digest.hexdigest()[:16]
