"""Lay this project over an extracted rootfs: init/boot files, Python packages, shims, os-release, k3s.

Also splits off what does not belong in ``k3os.squashfs``: the kernel image (``/boot``) and the kernel
modules (``/usr/lib/modules``, shipped as ``kernel.squashfs`` and mounted back at boot).
"""

from __future__ import annotations

import compileall
import importlib.util
import py_compile
import shutil
from importlib import resources
from pathlib import Path

from image_base.os import inputs

SITE_DIR = "usr/lib/k3os-factory"  # on sys.path of the shims; /usr is read-only at run time
SHIMS: dict[str, tuple[str, str]] = {
    "usr/bin/datasources": ("datasources.cli", "main"),
    "usr/bin/k3os": ("image_base.config.cli", "main"),
}
K3S_LINKS: tuple[str, ...] = ("kubectl", "crictl", "ctr")
NO_K3S_NOTE = "built without Kubernetes (no k3s binary given)"


class PayloadError(RuntimeError):
    """The project could not be laid over the rootfs (e.g. a vendored package is not installed)."""


def split_kernel(tree: Path, kernel_dir: Path) -> tuple[str, Path]:
    """Move the modules to ``kernel_dir/modules`` and return (kernel version, vmlinuz path outside)."""
    modules = tree / "usr/lib/modules"
    versions = sorted(p.name for p in modules.iterdir() if p.is_dir())
    if len(versions) != 1:
        raise PayloadError(f"expected one kernel in the rootfs, found {versions or 'none'}")
    version = versions[0]
    kernel_dir.mkdir(parents=True, exist_ok=True)
    shutil.move(str(modules), kernel_dir / "modules")
    modules.mkdir()  # mount point of kernel.squashfs
    vmlinuz = kernel_dir / "vmlinuz"
    shutil.copyfile(tree / "boot" / f"vmlinuz-{version}", vmlinuz)
    for entry in (tree / "boot").iterdir():
        entry.unlink()
    return version, vmlinuz


def overlay_files(tree: Path) -> None:
    """Copy ``files/rootfs/**`` (inittab, boot, shutdown, udhcpc hook, install mode) into the tree."""
    source = resources.files("image_base.os").joinpath("files", "rootfs")
    with resources.as_file(source) as source_dir:
        shutil.copytree(source_dir, tree, dirs_exist_ok=True, symlinks=True)
    # Package data may lose the executable bit on the way: every file of /usr/lib/k3os is a program.
    for program in (tree / "usr/lib/k3os").iterdir():
        program.chmod(0o755)
    installer = inputs.project_root() / "image_base" / "install.sh"
    if installer.is_file():
        shutil.copyfile(installer, tree / "usr/lib/k3os/install.sh")
        (tree / "usr/lib/k3os/install.sh").chmod(0o755)


def install_python(tree: Path) -> None:
    """Copy the project packages and the vendored deps to ``/usr/lib/k3os-factory`` and write shims."""
    site = tree / SITE_DIR
    site.mkdir(parents=True, exist_ok=True)
    for name, path in inputs.project_files():
        target = site / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, target)
    for package in inputs.VENDORED_PACKAGES:
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            raise PayloadError(f"{package} is not installed here; it is vendored into the image")
        shutil.copytree(
            Path(spec.origin).parent, site / package, ignore=shutil.ignore_patterns("__pycache__")
        )
    # Compiled once here: the node's /usr is read-only, so it could never cache bytecode itself.
    compileall.compile_dir(
        site, quiet=1, workers=1, invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH
    )
    for shim, (module, function) in SHIMS.items():
        path = tree / shim
        path.write_text(
            "#!/usr/bin/python3\n"
            "import sys\n"
            f"sys.path.insert(0, '/{SITE_DIR}')\n"
            f"from {module} import {function}\n"
            f"sys.exit({function}())\n"
        )
        path.chmod(0o755)


def install_k3s(tree: Path, k3s: Path | None) -> None:
    """Put the k3s binary at ``/usr/bin/k3s`` with its multi-call links, when one is given."""
    if k3s is None:
        return
    target = tree / "usr/bin/k3s"
    shutil.copyfile(k3s, target)
    target.chmod(0o755)
    for link in K3S_LINKS:
        (tree / "usr/bin" / link).unlink(missing_ok=True)
        (tree / "usr/bin" / link).symlink_to("k3s")


#: The node's /etc/hosts. The metadata line is what GCE's own images carry: the gcp datasource asks
#: ``metadata.google.internal``, which only GCE's DNS answers (not QEMU's user network, not a private
#: resolver); elsewhere it is harmless, since the gcp provider also requires ``Metadata-Flavor: Google``.
HOSTS = (
    "127.0.0.1\tlocalhost\n"
    "::1\tlocalhost ip6-localhost ip6-loopback\n"
    "169.254.169.254\tmetadata.google.internal metadata\n"
)


def write_identity(tree: Path, version: str, k3s_note: str) -> None:
    """Write ``/etc/os-release``, ``/etc/hostname``, ``/etc/hosts`` and an empty ``/etc/fstab``."""
    os_release = tree / "etc/os-release"
    os_release.unlink(missing_ok=True)
    os_release.write_text(
        'NAME="k3OS factory"\n'
        "ID=k3os\n"
        "ID_LIKE=debian\n"
        f'VERSION="{version}"\n'
        f"VERSION_ID={version}\n"
        f'PRETTY_NAME="k3OS factory {version} (Debian bookworm userspace)"\n'
        f'K3S="{k3s_note}"\n'
        'HOME_URL="https://github.com/rancher/k3os"\n'
    )
    (tree / "etc/hostname").write_text("k3os\n")
    (tree / "etc/hosts").write_text(HOSTS)
    (tree / "etc/issue").write_text(f"k3OS factory {version} \\n \\l\n\n")
    (tree / "etc/fstab").write_text("# k3os-factory: mounts are made by the initrd\n")
