"""Fixtures for the OpenStack tests: the shipped fake OpenStack API (Keystone + Nova + Glance + Neutron)
on loopback, and a runner for the real ``factory`` console script pointed at it through ``OS_AUTH_URL``
and the standard ``OS_*`` password credentials."""

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

from factory.fakes.openstack_api import FakeOpenStackApi
from factory.fakes.openstack_state import World

FACTORY = shutil.which("factory", path=str(Path(sys.executable).parent)) or "factory"
BAKE_KEY = "k3os-factory:bake-id"
STATE_KEY = "k3os-factory:state"
ISO_SHA = "a" * 64
SECRETS = ("Pa55-w0rd-XYZZY", "K10-t0ken-PLUGH", "w1f1-PASSPHRASE-frotz")


def os_environment(api: FakeOpenStackApi, tmp_path: Path) -> dict[str, str]:
    """Environment for a ``factory`` subprocess: password credentials of the fake, own state dir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "FACTORY_"))}
    project = api.world.project
    env.update(
        OS_AUTH_URL=api.auth_url,
        OS_USERNAME=project.user_name,
        OS_PASSWORD=project.password,
        OS_PROJECT_NAME=project.name,
        OS_USER_DOMAIN_NAME=project.domain_name,
        OS_PROJECT_DOMAIN_NAME=project.domain_name,
        OS_REGION_NAME=project.region,
        FACTORY_STATE_DIR=str(tmp_path / "state"),
        FACTORY_POLL_SECONDS="0.1",
        HOME=str(tmp_path),
    )
    return env


@pytest.fixture
def fake() -> Iterator[FakeOpenStackApi]:
    """A fresh fake cloud: BUILD for 1 read, the builder guest powers off 2 reads after ACTIVE."""
    api = FakeOpenStackApi(world=World(action_polls=1, guest_polls=2))
    api.start()
    yield api
    api.stop()


@pytest.fixture
def os_env(fake: FakeOpenStackApi, tmp_path: Path) -> dict[str, str]:
    """The environment for the ``factory`` subprocess against :func:`fake`."""
    return os_environment(fake, tmp_path)


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
    """A ``factory bake openstack`` command line with the ISO options and a per-test manifest."""
    return [
        FACTORY, "bake", "openstack",
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
