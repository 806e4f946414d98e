"""packer/scripts/wait-for-poweroff.sh, the wait the gcp, openstack and hetzner templates run:
against stand-in cloud CLIs on PATH that report a scripted sequence of states."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.packer.conftest import PACKER_DIR

SCRIPT = PACKER_DIR / "scripts" / "wait-for-poweroff.sh"
CLI = {"gcp": "gcloud", "openstack": "openstack", "hetzner": "hcloud"}
OFF = {"gcp": "TERMINATED", "openstack": "SHUTOFF", "hetzner": "off"}
RUNNING = {"gcp": "RUNNING", "openstack": "ACTIVE", "hetzner": "running"}


def _fake_cli(bin_dir: Path, name: str, states: list[str]) -> Path:
    """A CLI that prints the next state of ``states`` on each call (``!`` = fail) and logs its argv."""
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "states").write_text("\n".join(states) + "\n")
    cli = bin_dir / name
    cli.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> "{bin_dir}/calls"\n'
        f'state=$(head -n 1 "{bin_dir}/states")\n'
        f'[ "$(wc -l < "{bin_dir}/states")" -gt 1 ] && sed -i 1d "{bin_dir}/states"\n'
        'if [ "$state" = "!" ]; then echo "API unavailable" >&2; exit 1; fi\n'
        'echo "$state"\n'
    )
    cli.chmod(0o755)
    return cli


def _wait(cloud: str, bin_dir: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "WAIT_CLOUD": cloud,
        "WAIT_INSTANCE": "k3os-builder-1234abcd",
        "WAIT_POLL_SECONDS": "1",
        "WAIT_TIMEOUT_SECONDS": "20",
        "WAIT_GCP_PROJECT": "proj",
        "WAIT_GCP_ZONE": "zone-a",
        **extra,
    }
    return subprocess.run(["sh", str(SCRIPT)], capture_output=True, text=True, env=env, timeout=60)


def test_script_is_shellcheck_clean() -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (make apt)")
    res = subprocess.run(["shellcheck", str(SCRIPT)], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout
    assert os.access(SCRIPT, os.X_OK)


@pytest.mark.parametrize("cloud", ["gcp", "openstack", "hetzner"])
def test_waits_until_the_instance_is_off(cloud: str, tmp_path: Path) -> None:
    _fake_cli(tmp_path, CLI[cloud], [RUNNING[cloud], RUNNING[cloud], OFF[cloud]])
    res = _wait(cloud, tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    assert len(calls) == 3
    assert "k3os-builder-1234abcd" in calls[0]
    if cloud == "gcp":
        assert "--project proj --zone zone-a" in calls[0]
    assert f"is {OFF[cloud]}" in res.stdout


def test_times_out_when_the_guest_never_powers_off(tmp_path: Path) -> None:
    _fake_cli(tmp_path, "hcloud", ["running"])
    started = time.monotonic()
    res = _wait("hetzner", tmp_path, WAIT_TIMEOUT_SECONDS="2")
    assert res.returncode == 1
    assert "did not power off within 2s (last state: running)" in res.stderr
    assert time.monotonic() - started < 6


def test_openstack_error_state_fails_at_once(tmp_path: Path) -> None:
    _fake_cli(tmp_path, "openstack", ["ACTIVE", "ERROR"])
    res = _wait("openstack", tmp_path)
    assert res.returncode == 1
    assert "state ERROR" in res.stderr


def test_transient_cli_failures_are_retried_then_give_up(tmp_path: Path) -> None:
    _fake_cli(tmp_path, "gcloud", ["!", "RUNNING", "!", "TERMINATED"])
    assert _wait("gcp", tmp_path).returncode == 0
    _fake_cli(tmp_path / "b", "gcloud", ["!"])
    res = _wait("gcp", tmp_path / "b", WAIT_MAX_ERRORS="2")
    assert res.returncode == 1
    assert "failed 2 times in a row" in res.stderr and "API unavailable" in res.stdout


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"WAIT_CLOUD": "azure"}, "WAIT_CLOUD must be"),
        ({"WAIT_INSTANCE": ""}, "WAIT_INSTANCE is not set"),
        ({"WAIT_POLL_SECONDS": "0.5"}, "whole numbers"),
        ({"WAIT_GCP_ZONE": ""}, "WAIT_GCP_PROJECT and WAIT_GCP_ZONE"),
    ],
)
def test_bad_settings_exit_2(extra: dict[str, str], message: str, tmp_path: Path) -> None:
    _fake_cli(tmp_path, "gcloud", ["TERMINATED"])
    res = _wait("gcp", tmp_path, **extra)
    assert res.returncode == 2
    assert message in res.stderr


def test_missing_cli_is_named(tmp_path: Path) -> None:
    tmp_path.mkdir(exist_ok=True)
    res = _wait("hetzner", tmp_path)
    assert res.returncode == 2
    assert "hcloud CLI is not installed" in res.stderr
