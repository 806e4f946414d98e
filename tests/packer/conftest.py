"""Shared pieces of the Packer tests: a loopback Keystone stand-in (the openstack builder logs in
already in ``packer validate``), per-cloud dummy credentials, and a tiny base disk and ISO for qemu."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from factory.packer import RenderOptions, RenderResult, render

REPO = Path(__file__).resolve().parents[2]
PACKER_DIR = REPO / "packer"
FACTORY = [sys.executable, "-m", "factory.cli"]
CLOUDS = ("aws", "gcp", "openstack", "hetzner", "qemu")
DUMMY_SHA256 = "ab" * 32
DUMMY_ISO_URL = "https://images.example.invalid/k3os/v0.1/k3os-amd64.iso"


class _Keystone(BaseHTTPRequestHandler):
    """``POST /v3/auth/tokens`` -> a token with an empty catalog; nothing else exists."""

    def do_POST(self) -> None:  # noqa: N802 (http.server naming)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.rstrip("/") != "/v3/auth/tokens":
            self.send_error(404)
            return
        scope = {"id": "p1", "name": "demo", "domain": {"id": "default", "name": "Default"}}
        token = {
            "token": {
                "methods": ["password"],
                "expires_at": "2099-01-01T00:00:00.000000Z",
                "issued_at": "2020-01-01T00:00:00.000000Z",
                "user": {**scope, "id": "u1", "name": "demo"},
                "project": scope,
                "catalog": [],
            }
        }
        body = json.dumps(token).encode()
        self.send_response(201)
        self.send_header("X-Subject-Token", "test-token")
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture(scope="session")
def keystone_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Keystone)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v3"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def packer_bin() -> str:
    path = shutil.which("packer")
    if path is None:
        pytest.skip("packer is not installed (make apt installs Debian's packer)")
    return path


def packer_env(cloud: str, home: Path, keystone_url: str) -> dict[str, str]:
    """A clean environment with only the dummy credentials ``packer validate`` insists on."""
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "CHECKPOINT_DISABLE": "1"}
    if cloud == "openstack":
        env |= {
            "OS_AUTH_URL": keystone_url,
            "OS_USERNAME": "demo",
            "OS_PASSWORD": "not-a-secret",
            "OS_USER_DOMAIN_NAME": "Default",
            "OS_PROJECT_NAME": "demo",
            "OS_PROJECT_DOMAIN_NAME": "Default",
        }
    if cloud == "hetzner":
        env["HCLOUD_TOKEN"] = "dummy-token-for-validate"
    return env


@pytest.fixture(scope="session")
def qemu_inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 64 MiB empty qcow2 base disk and a small stand-in ISO (validate reads neither's content)."""
    if shutil.which("qemu-img") is None:
        pytest.skip("qemu-img is not installed (make apt)")
    root = tmp_path_factory.mktemp("qemu-inputs")
    base = root / "base.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "64M"], check=True)
    iso = root / "k3os.iso"
    iso.write_bytes(b"not really an ISO\n" * 64)
    return base, iso


def render_for_validate(
    cloud: str, out: Path, qemu_inputs: tuple[Path, Path] | None, **variables: str
) -> RenderResult:
    """Render ``cloud`` with dummy inputs; qemu gets the tiny base disk and ISO, TCG, ``out`` dirs."""
    opts = RenderOptions(cloud=cloud, output_dir=out / "render", variables=dict(variables))
    if cloud == "qemu":
        assert qemu_inputs is not None
        base, iso = qemu_inputs
        opts.iso_path = str(iso)
        opts.variables.setdefault("base_image", str(base))
        opts.variables.setdefault("accelerator", "tcg")
        opts.variables.setdefault("output_directory", str(out / "images"))
    else:
        opts.iso_url = DUMMY_ISO_URL
        opts.iso_sha256 = DUMMY_SHA256
    if cloud == "gcp":
        opts.variables.setdefault("project_id", "k3os-factory-test")
    return render(opts)
