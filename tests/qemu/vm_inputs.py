"""The base disk and ISO every VM test boots, built once per test session and shared read-only.

The OS tests, the bake/verify tests and the Packer build test all need the same two inputs. Each area's
session fixture calls these functions, which build (or take from the on-disk cache in
``$FACTORY_CACHE_DIR`` / ``.cache/k3os-factory``) at most once per process, so a cold session builds
each input exactly once and a warm one copies nothing but the ISO, once. Nothing writes to them: VMs boot
copy-on-write overlays (``qemu-img create -b``), and Packer's ``use_backing_file`` does the same.
"""

from __future__ import annotations

import atexit
import functools
import shutil
import sys
import tempfile
from pathlib import Path

from image_base.base_disk import BaseDisk, build_base_disk, cache_dir_from_env
from image_base.os import build, inputs


def vm_cache_dir() -> Path:
    """The factory's cache the VM tests share with ``make bake`` (``$FACTORY_CACHE_DIR`` honoured)."""
    return cache_dir_from_env(inputs.default_cache_dir())


@functools.cache
def shared_base_disk() -> BaseDisk:
    """The cached base disk (built on first use; its path is inside the cache: do not write to it)."""
    return build_base_disk(cache_dir=vm_cache_dir(), output=None)


@functools.cache
def shared_iso() -> build.BuildResult:
    """The ISO from the current sources, in a directory removed when the session ends."""
    work = Path(tempfile.mkdtemp(prefix="k3os-vm-iso-"))
    atexit.register(shutil.rmtree, work, True)
    options = build.BuildOptions(output=work / "k3os.iso", cache_dir=vm_cache_dir())
    return build.build_iso(options, lambda message: print(f"iso: {message}", file=sys.stderr))
