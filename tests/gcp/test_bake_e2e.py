"""End-to-end ``factory bake gcp`` runs of the real console script against the fake Compute API.

The runs start together (:func:`tests.gcp.conftest.gcp_runs`), each against its own
fake; each test then checks one of them."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from factory.fakes.gcp_api import FakeGcp
from tests.gcp.conftest import (
    BAKE_LABEL,
    NOTHING,
    PROJECT,
    SECRETS,
    STATE_LABEL,
    Outcome,
    Run,
    bake_args,
    gcp_runs,
    labelled,
)

pytestmark = pytest.mark.cloud
SECRET_CONFIG = (
    "hostname: baked\nk3os:\n"
    f"  password: {SECRETS[0]}\n  token: {SECRETS[1]}\n"
    f"  wifi:\n    - name: home\n      passphrase: {SECRETS[2]}\n"
)
BAD_CONFIG = "k3os:\n  password: Pa55-w0rd-XYZZY\n  wifi:\n    - name: x\n      passphrase: short\n"


def _with_file(tmp: Path, name: str, text: str) -> str:
    path = tmp / name
    path.write_text(text)
    return str(path)


def _throttle(fake: FakeGcp) -> None:
    fake.fail("images.getFromFamily", status=429, reason="rateLimitExceeded", times=1)
    fake.fail("instances.get", status=503, reason="backendError", times=1)


def _hang(fake: FakeGcp) -> None:
    fake.model.poweroff_after = None  # the guest never powers off


RUNS = {
    "happy": Run(
        lambda tmp: bake_args(
            tmp,
            "--name",
            "k3os-e2e-1",
            "--config",
            _with_file(tmp, "config.yaml", SECRET_CONFIG),
            "--tag",
            "team=platform",
            "--image-family",
            "k3os",
            "--storage-location",
            "us",
            "--json",
        )  # fmt: skip
    ),
    "arm64-throttled": Run(lambda tmp: bake_args(tmp, "--name", "k3os-arm", "--arch", "arm64"), _throttle),
    "timeout": Run(lambda tmp: bake_args(tmp, "--phase-timeout", "wait-stopped=0.01"), _hang),
    "bad-config": Run(lambda tmp: bake_args(tmp, "--config", _with_file(tmp, "bad.yaml", BAD_CONFIG))),
    "bad-tag": Run(lambda tmp: bake_args(tmp, "--tag", "Team=x")),
    "dry-run": Run(lambda tmp: bake_args(tmp, "--dry-run", "--tag", "a=b", "--image-family", "k3os")),
    **{
        sig.name: Run(
            lambda tmp: bake_args(tmp, "--name", "k3os-sig"),
            _hang,
            interrupt=("wait-stopped: waiting", sig, 0.0),
        )
        for sig in (signal.SIGINT, signal.SIGTERM)
    },
}


runs = gcp_runs(RUNS)


def test_bake_produces_labelled_image_and_removes_builder(runs: dict[str, Outcome]) -> None:
    fake, proc, tmp = runs["happy"].fake, runs["happy"].proc, runs["happy"].tmp
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["cloud"] == "gcp" and summary["name"] == "k3os-e2e-1"
    assert summary["artifacts"] == [{"region": "global", "image_id": "k3os-e2e-1"}]
    bake_id = summary["bake_id"]
    with fake.model.lock:
        image = dict(fake.model.images[(PROJECT, "k3os-e2e-1")])
        assert not fake.model.instances and not fake.model.disks  # builder and its disk deleted
    assert image["status"] == "READY" and image["family"] == "k3os" and image["storageLocations"] == ["us"]
    assert image["labels"]["team"] == "platform"
    assert image["labels"][BAKE_LABEL] == bake_id and image["labels"][STATE_LABEL] == "complete"
    assert image["sourceDisk"].endswith(f"/zones/us-central1-a/disks/k3os-builder-{bake_id}")
    # the builder: labelled instance and disk, Ubuntu 24.04 family, user-data for cloud-init
    insert = next(body for call, body in fake.bodies if call == "instances.insert")
    assert insert["labels"][BAKE_LABEL] == bake_id
    assert insert["machineType"] == "zones/us-central1-a/machineTypes/e2-small"
    boot = insert["disks"][0]
    assert boot["autoDelete"] and boot["initializeParams"]["labels"][BAKE_LABEL] == bake_id
    assert "ubuntu-2404-noble-amd64" in boot["initializeParams"]["sourceImage"]
    items = {i["key"]: i["value"] for i in insert["metadata"]["items"]}
    assert items["user-data"].startswith("#!") and "install.sh" in items["user-data"]
    assert fake.calls.index("images.insert") > max(
        i for i, c in enumerate(fake.calls) if c == "instances.get"
    )
    assert fake.calls.index("instances.delete") > fake.calls.index("images.insert")
    manifest = json.loads((tmp / "manifest.json").read_text())
    build = manifest["builds"][-1]
    assert manifest["last_run_uuid"] == bake_id == build["packer_run_uuid"]
    assert build["builder_type"] == "googlecompute" and build["files"] is None
    assert build["artifact_id"] == "k3os-e2e-1" and isinstance(build["build_time"], int)
    assert build["custom_data"]["project"] == PROJECT and build["custom_data"]["bake_id"] == bake_id
    everything = proc.stdout + proc.stderr + (tmp / "manifest.json").read_text()
    for secret in SECRETS:
        assert secret not in everything
    assert "wait-stopped: waiting up to 40m0s" in proc.stderr
    assert not list((tmp / "state" / "journal").glob("*.jsonl"))


def test_arm64_defaults_and_throttling_retried(runs: dict[str, Outcome]) -> None:
    fake, proc = runs["arm64-throttled"].fake, runs["arm64-throttled"].proc
    assert proc.returncode == 0, proc.stderr
    assert fake.calls.count("images.getFromFamily") == 2
    assert fake.faults["instances.get"].times == 0  # the 503 was answered, and survived
    insert = next(body for call, body in fake.bodies if call == "instances.insert")
    assert insert["machineType"].endswith("/t2a-standard-1")
    assert "arm64" in insert["disks"][0]["initializeParams"]["sourceImage"]
    with fake.model.lock:
        assert fake.model.images[(PROJECT, "k3os-arm")]["architecture"] == "ARM64"


def test_timeout_shows_serial_console_and_cleans_up(runs: dict[str, Outcome]) -> None:
    fake, proc = runs["timeout"].fake, runs["timeout"].proc
    assert proc.returncode == 1
    assert "gave up after" in proc.stderr and "serial console tail" in proc.stderr
    assert labelled(fake) == NOTHING


@pytest.mark.parametrize(
    ("name", "message"), [("bad-config", "k3os.wifi[0].passphrase"), ("bad-tag", "GCE label keys")]
)
def test_invalid_input_exits_2_and_calls_nothing(runs: dict[str, Outcome], name: str, message: str) -> None:
    fake, proc = runs[name].fake, runs[name].proc
    assert proc.returncode == 2, proc.stderr
    assert message in proc.stderr and "Pa55-w0rd-XYZZY" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert fake.calls == []


def test_dry_run_creates_nothing(runs: dict[str, Outcome]) -> None:
    fake, proc = runs["dry-run"].fake, runs["dry-run"].proc
    assert proc.returncode == 0, proc.stderr
    assert "launch-builder" in proc.stdout and "a=b" in proc.stdout and "family k3os" in proc.stdout
    assert fake.calls == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_while_waiting_deletes_builder(runs: dict[str, Outcome], sig: signal.Signals) -> None:
    fake, proc, tmp_path = runs[sig.name].fake, runs[sig.name].proc, runs[sig.name].tmp
    rc, err = proc.returncode, proc.stderr
    assert rc == 128 + sig, err
    assert f"interrupted by {sig.name}" in err and "all temporary resources removed" in err
    assert labelled(fake) == NOTHING
    assert "instances.delete" in fake.calls and "images.insert" not in fake.calls
    assert not (tmp_path / "manifest.json").exists()
