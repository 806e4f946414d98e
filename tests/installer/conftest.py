"""Installer test fixtures: a fake k3OS ISO, stub tools that log their argv, a loopback HTTP server."""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
INSTALL_SH = REPO / "image_base" / "install.sh"
ARG_SEP = "\x1f"


def build_fake_iso(dest: Path, version: str = "v0.1.0", extra: dict[str, str] | None = None) -> Path:
    """An ISO with volume id K3OS and k3OS's /k3os/system layout (``current`` symlinks included)."""
    tree = dest.parent / f"{dest.stem}-tree"
    system = tree / "k3os" / "system"
    kernel = system / "kernel" / version
    rootfs = system / "k3os" / version
    kernel.mkdir(parents=True)
    rootfs.mkdir(parents=True)
    (kernel / "vmlinuz").write_text(f"fake kernel {version}\n")
    (kernel / "initrd").write_text(f"fake initrd {version}\n")
    (kernel / "kernel.squashfs").write_text(f"fake modules {version}\n")
    (rootfs / "k3os.squashfs").write_text(f"fake rootfs {version}\n")
    (system / "kernel" / "current").symlink_to(version)
    (system / "k3os" / "current").symlink_to(version)
    (system / "config.yaml").write_text("k3os: {}\n")
    for name, text in (extra or {}).items():
        (tree / name).parent.mkdir(parents=True, exist_ok=True)
        (tree / name).write_text(text)
    subprocess.run(
        ["xorriso", "-as", "mkisofs", "-quiet", "-o", str(dest), "-V", "K3OS", "-R", "-J", str(tree)],
        check=True,
        capture_output=True,
    )
    shutil.rmtree(tree)
    return dest


@pytest.fixture
def fake_iso(tmp_path: Path) -> Path:
    """A small k3OS-shaped ISO file."""
    if shutil.which("xorriso") is None:
        pytest.skip("xorriso is not installed (make apt)")
    return build_fake_iso(tmp_path / "k3os.iso")


@dataclass
class Stubs:
    """A directory of stub programs; each call appends ``name<US>arg<US>arg...`` to ``log``."""

    bin: Path
    log: Path

    def add(self, name: str, stdout: str = "", exit_code: int = 0, script: str = "") -> Path:
        """Create stub ``name`` that logs its argv, runs ``script``, prints ``stdout`` and exits."""
        path = self.bin / name
        path.write_text(
            "#!/bin/bash\n"
            f"( IFS=$'\\037'; printf '%s\\n' \"${{0##*/}}${{IFS}}$*\" ) >> {self.log}\n"
            f"{script}\n"
            f"printf '%s' '{stdout}'\n"
            f"exit {exit_code}\n"
        )
        path.chmod(0o755)
        return path

    def calls(self) -> list[list[str]]:
        """Every recorded call, in order, as ``[name, arg, ...]``."""
        if not self.log.exists():
            return []
        return [line.split(ARG_SEP) for line in self.log.read_text().splitlines()]

    def names(self) -> list[str]:
        """The stub names in call order."""
        return [call[0] for call in self.calls()]


@pytest.fixture
def stubs(tmp_path: Path) -> Stubs:
    """An empty stub directory with its call log."""
    bin_dir = tmp_path / "stubs"
    bin_dir.mkdir()
    return Stubs(bin=bin_dir, log=tmp_path / "calls.log")


@dataclass
class FileServer:
    """A loopback HTTP server over a directory; ``fail_first[path] = n`` answers n times with 503."""

    root: Path
    port: int = 0
    fail_first: dict[str, int] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)

    def url(self, name: str) -> str:
        """The URL of ``name`` under the served directory."""
        return f"http://127.0.0.1:{self.port}/{name}"


class _Handler(http.server.SimpleHTTPRequestHandler):
    server_state: FileServer

    def do_GET(self) -> None:
        state = self.server_state
        state.requests.append(self.path)
        if state.fail_first.get(self.path, 0) > 0:
            state.fail_first[self.path] -= 1
            self.send_error(503, "try again")
            return
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        pass


@pytest.fixture
def file_server(tmp_path: Path) -> Iterator[FileServer]:
    """Serve ``tmp_path/www`` on 127.0.0.1 on a free port."""
    root = tmp_path / "www"
    root.mkdir()
    state = FileServer(root=root)
    handler = type("Handler", (_Handler,), {"server_state": state})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(root))
    )
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def loop_devices_usable() -> str | None:
    """None when this process can attach loop devices, else the reason it cannot."""
    if os.geteuid() != 0:
        return "needs root for loop devices and mounts"
    if shutil.which("losetup") is None:
        return "losetup is not installed"
    probe = subprocess.run(["losetup", "-f"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"no free loop device: {probe.stderr.strip()}"
    return None


@pytest.fixture
def needs_loop() -> None:
    """Skip (with the reason) when loop devices cannot be used here."""
    reason = loop_devices_usable()
    if reason:
        pytest.skip(reason)
