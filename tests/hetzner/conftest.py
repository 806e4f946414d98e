"""Fixtures for the Hetzner tests: the shipped fake Hetzner Cloud API on loopback, and a runner for the
real ``factory`` console script pointed at it through ``HCLOUD_ENDPOINT`` / ``HCLOUD_TOKEN``."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from factory.fakes.hetzner_api import FakeHetznerApi
from factory.fakes.hetzner_state import World

FACTORY = shutil.which("factory", path=str(Path(sys.executable).parent)) or "factory"
BAKE_LABEL = "k3os-factory/bake-id"
STATE_LABEL = "k3os-factory/state"
TOKEN = "hz-T0KEN-sEcReT-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRS"
ISO_SHA = "a" * 64
SECRETS = ("Pa55-w0rd-XYZZY", "K10-t0ken-PLUGH", "w1f1-PASSPHRASE-frotz")


@pytest.fixture
def fake() -> Iterator[FakeHetznerApi]:
    """A fresh fake API: actions take 2 polls, the builder guest powers off 2 polls after running."""
    api = FakeHetznerApi(token=TOKEN, world=World(action_polls=2, guest_polls=2))
    api.start()
    yield api
    api.stop()


@pytest.fixture
def hz_env(fake: FakeHetznerApi, tmp_path: Path) -> dict[str, str]:
    """Environment for the ``factory`` subprocess: the fake's endpoint and token, own state dir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HCLOUD_", "FACTORY_"))}
    env.update(
        HCLOUD_TOKEN=TOKEN,
        HCLOUD_ENDPOINT=fake.url,
        FACTORY_STATE_DIR=str(tmp_path / "state"),
        FACTORY_POLL_SECONDS="0.1",
        HOME=str(tmp_path),
    )
    return env


@pytest.fixture
def secret_config(tmp_path: Path) -> Path:
    """A valid k3OS config with a password, a token and a wifi passphrase."""
    path = tmp_path / "config.yaml"
    path.write_text(
        "hostname: baked\n"
        "k3os:\n"
        f"  password: {SECRETS[0]}\n"
        f"  token: {SECRETS[1]}\n"
        "  wifi:\n"
        f"    - name: home\n      passphrase: {SECRETS[2]}\n"
    )
    return path


def bake_args(tmp_path: Path, *extra: str) -> list[str]:
    """A ``factory bake hetzner`` command line with the ISO options and a per-test manifest."""
    return [
        FACTORY, "bake", "hetzner",
        "--iso-url", "https://example.invalid/k3os.iso",
        "--iso-sha256", ISO_SHA,
        "--manifest", str(tmp_path / "manifest.json"),
        *extra,
    ]  # fmt: skip


def run_factory(
    args: list[str], env: dict[str, str], timeout: float = 30
) -> subprocess.CompletedProcess[str]:
    """Run the console script to completion."""
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)


def interrupt_when(
    args: list[str], env: dict[str, str], marker: str, sig: signal.Signals, timeout: float = 30
) -> tuple[int, str, str]:
    """Start the console script, send ``sig`` once ``marker`` shows on stderr, return (rc, out, err)."""
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None and proc.stdout is not None
    err_lines: list[str] = []
    sent = False
    deadline = time.monotonic() + timeout
    for line in proc.stderr:
        err_lines.append(line)
        if not sent and marker in line:
            time.sleep(0.3)  # a few polls into the wait
            proc.send_signal(sig)
            sent = True
        if time.monotonic() > deadline:
            proc.kill()
            break
    out = proc.stdout.read()
    rc = proc.wait(timeout=timeout)
    assert sent, "marker never printed:\n" + "".join(err_lines)
    return rc, out, "".join(err_lines)
