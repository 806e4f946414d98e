"""The local base disk: a Debian bookworm cloud-style qcow2 that stands in for an Ubuntu cloud image
in the QEMU bake (``factory base build``)."""

from __future__ import annotations

from image_base.base_disk.build import (
    DEFAULT_CACHE_DIR,
    DEFAULT_OUTPUT,
    BaseDisk,
    BaseDiskError,
    build_base_disk,
    cache_dir_from_env,
    cached_base_disk,
    probe_kernel,
)

__all__ = [
    "DEFAULT_CACHE_DIR",
    "DEFAULT_OUTPUT",
    "BaseDisk",
    "BaseDiskError",
    "build_base_disk",
    "cache_dir_from_env",
    "cached_base_disk",
    "probe_kernel",
]
