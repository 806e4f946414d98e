"""``factory bake openstack`` end to end: the real console script and the real openstacksdk against the
fake OpenStack API on 127.0.0.1 (happy path, sharing, dry-run, usage errors, signals, secrets)."""

from __future__ import annotations

import functools
import gzip
import json
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from factory.fakes.openstack_api import FakeOpenStackApi
from factory.fakes.openstack_state import World
from tests.cloudkit import run_concurrently
from tests.openstack.conftest import (
    BAKE_KEY,
    SECRETS,
    STATE_KEY,
    bake_args,
    interrupt_when,
    os_environment,
    run_factory,
)

pytestmark = pytest.mark.cloud


def _builder_script(fake: FakeOpenStackApi) -> str:
    (state,) = fake.world.servers.values() if fake.world.servers else (None,)
    assert state is not None
    data = state.user_data
    return (gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data).decode()


def test_happy_path_makes_a_labelled_image_and_deletes_the_builder(
    fake: FakeOpenStackApi, os_env: dict[str, str], tmp_path: Path
) -> None:
    fake.world.guest_polls = 10_000  # keep the builder until we looked at its user data
    proc_args = bake_args(tmp_path, "--name", "k3os-test", "--tag", "team=edge", "--json")
    seen: dict[str, str] = {}

    def power_off_after_inspecting() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with fake.world.lock:
                states = list(fake.world.servers.values())
                if states and states[0].doc["status"] == "ACTIVE":
                    seen["script"] = _builder_script(fake)
                    seen["metadata"] = json.dumps(states[0].doc["metadata"])
                    seen["flavor"] = states[0].doc["flavor"]["original_name"]
                    seen["networks"] = json.dumps(states[0].create_body.get("networks"))
                    states[0].off_at = states[0].polls + 1
                    return
            time.sleep(0.05)

    watcher = threading.Thread(target=power_off_after_inspecting)
    watcher.start()
    proc = subprocess.run(proc_args, env=os_env, capture_output=True, text=True, timeout=30)
    watcher.join()
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    image_id = summary["artifacts"][0]["image_id"]
    assert summary["cloud"] == "openstack" and summary["name"] == "k3os-test"
    assert summary["artifacts"] == [{"region": "RegionOne", "image_id": image_id}]
    # the builder: user data is the builder script, metadata carries the bake id, it is gone now
    assert "https://example.invalid/k3os.iso" in seen["script"] and "--takeover" in seen["script"]
    metadata = json.loads(seen["metadata"])
    assert metadata[BAKE_KEY] == summary["bake_id"] and metadata["team"] == "edge"
    assert seen["flavor"] == "m1.small"
    assert json.loads(seen["networks"]) == [{"uuid": fake.world.networks[0]["id"]}]
    assert fake.world.servers == {}
    assert "DELETE /v2.1/servers/{id}" in fake.calls
    # the image: properties, tags, private, active
    image = fake.world.images[image_id]
    assert image["status"] == "active" and image["name"] == "k3os-test"
    assert image[BAKE_KEY] == summary["bake_id"] and image[STATE_KEY] == "complete"
    assert image["team"] == "edge" and image["visibility"] == "private"
    assert set(image["tags"]) == {"k3os", "k3os-factory"}
    # Packer-shaped manifest
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    build = manifest["builds"][-1]
    assert build["builder_type"] == "openstack" and build["artifact_id"] == image_id
    assert build["files"] is None and build["packer_run_uuid"] == summary["bake_id"]
    assert manifest["last_run_uuid"] == summary["bake_id"]
    assert build["custom_data"]["source_image"].startswith("Ubuntu 24.04 (")
    # the image is saved before the builder goes (Nova kills an image whose server is deleted mid-upload)
    calls = fake.calls
    assert calls.index("DELETE /v2.1/servers/{id}") > calls.index(
        "POST /v2.1/servers/{id}/action:createImage"
    )


def test_share_with_makes_a_shared_image_with_members(
    fake: FakeOpenStackApi, os_env: dict[str, str], tmp_path: Path
) -> None:
    proc = run_factory(bake_args(tmp_path, "--share-with", "proj-a", "--share-with", "proj-b"), os_env)
    assert proc.returncode == 0, proc.stderr
    image_id = proc.stdout.split()[-1]
    assert fake.world.images[image_id]["visibility"] == "shared"
    assert [m["member_id"] for m in fake.world.members[image_id]] == ["proj-a", "proj-b"]


def test_named_network_and_source_image_by_id(
    fake: FakeOpenStackApi, os_env: dict[str, str], tmp_path: Path
) -> None:
    other = fake.world.add_network("lab")
    old = "0d6b2c8a-7f3e-4c1b-8a11-2a2b2c2d2204"
    proc = run_factory(bake_args(tmp_path, "--network", "lab", "--source-image", old, "--json"), os_env)
    assert proc.returncode == 0, proc.stderr
    custom = json.loads((tmp_path / "manifest.json").read_text())["builds"][-1]["custom_data"]
    assert custom["source_image"] == f"ubuntu-24.04 ({old})"
    assert "network lab" in proc.stderr and other["id"]


USAGE_CASES = [
    (("--flavor", "m9.huge"), "--flavor 'm9.huge': no such flavor"),
    (("--source-image", "Debian 12"), "--source-image 'Debian 12'"),
    (("--network", "nope"), "--network 'nope'"),
    (("--key-name", "nobody"), "--key-name 'nobody'"),
    (("--share-with", "p1", "--image-visibility", "private"), "--share-with needs"),
    (("--tag", "visibility=public"), "reserved"),
    (("--tag", "bad/key=1"), "Nova metadata keys"),
    (("--region", "Region Two"), "--region"),
]


def _usage_run(tmp: Path, extra: tuple[str, ...]) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    api = FakeOpenStackApi(world=World())
    api.start()
    try:
        return run_factory(bake_args(tmp, *extra), os_environment(api, tmp)), list(api.calls)
    finally:
        api.stop()


@pytest.fixture(scope="module")
def usage_outcomes(
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[tuple[str, ...], tuple[subprocess.CompletedProcess[str], list[str]]]:
    """Every usage-error bake at once (each against its own fake)."""
    jobs = {
        " ".join(extra): functools.partial(_usage_run, tmp_path_factory.mktemp("usage"), extra)
        for extra, _ in USAGE_CASES
    }
    done = run_concurrently(jobs)
    return {extra: done[" ".join(extra)] for extra, _ in USAGE_CASES}


@pytest.mark.parametrize(("extra", "message"), USAGE_CASES, ids=[" ".join(c[0]) for c in USAGE_CASES])
def test_usage_errors_exit_2_and_create_nothing(
    usage_outcomes: dict[tuple[str, ...], tuple[subprocess.CompletedProcess[str], list[str]]],
    extra: tuple[str, ...],
    message: str,
) -> None:
    proc, calls = usage_outcomes[extra]
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert message in lines[-1] and "Traceback" not in proc.stderr
    assert "POST /v2.1/servers" not in calls


def test_several_networks_need_network_flag(
    fake: FakeOpenStackApi, os_env: dict[str, str], tmp_path: Path
) -> None:
    fake.world.add_network("lab")
    proc = run_factory(bake_args(tmp_path), os_env)
    assert proc.returncode == 2
    assert "several networks (lab, private)" in proc.stderr and "--network" in proc.stderr
    assert "POST /v2.1/servers" not in fake.calls


def test_invalid_config_exits_2_before_any_call(
    fake: FakeOpenStackApi, os_env: dict[str, str], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"k3os:\n  password: {SECRETS[0]}\n  no_such_key: 1\n")
    proc = run_factory(bake_args(tmp_path, "--config", str(bad)), os_env)
    assert proc.returncode == 2 and "no_such_key" in proc.stderr
    assert SECRETS[0] not in proc.stderr
    assert fake.calls == []


def test_dry_run_calls_nothing(fake: FakeOpenStackApi, os_env: dict[str, str], tmp_path: Path) -> None:
    proc = run_factory(bake_args(tmp_path, "--dry-run", "--json"), os_env)
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    assert [s["name"] for s in plan["steps"]][:3] == ["launch-builder", "wait-running", "wait-stopped"]
    assert fake.calls == [] and not (tmp_path / "manifest.json").exists()


def test_missing_credentials_is_one_line_exit_2(os_env: dict[str, str], tmp_path: Path) -> None:
    env = {k: v for k, v in os_env.items() if not k.startswith("OS_")}
    proc = run_factory(bake_args(tmp_path), env)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "OS_CLOUD" in proc.stderr


def test_wrong_password_is_exit_2_and_not_echoed(
    fake: FakeOpenStackApi, os_env: dict[str, str], tmp_path: Path
) -> None:
    env = dict(os_env, OS_PASSWORD="wr0ng-Secret-pw")
    proc = run_factory(bake_args(tmp_path), env)
    assert proc.returncode == 2, proc.stderr
    assert "rejected the credentials" in proc.stderr and "wr0ng-Secret-pw" not in proc.stderr
    assert "POST /v2.1/servers" not in fake.calls


def test_secrets_never_in_output(
    fake: FakeOpenStackApi, os_env: dict[str, str], tmp_path: Path, secret_config: Path
) -> None:
    proc = run_factory(bake_args(tmp_path, "--config", str(secret_config), "--json"), os_env)
    assert proc.returncode == 0, proc.stderr
    manifest = (tmp_path / "manifest.json").read_text()
    for secret in (*SECRETS, os_env["OS_PASSWORD"]):
        assert secret not in proc.stdout and secret not in proc.stderr and secret not in manifest


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_while_waiting_deletes_the_builder(
    fake: FakeOpenStackApi, os_env: dict[str, str], tmp_path: Path, sig: signal.Signals, code: int
) -> None:
    fake.world.guest_powers_off = False
    rc, out, err = interrupt_when(bake_args(tmp_path), os_env, "wait-stopped: waiting up to", sig, settle=0.3)
    assert rc == code, err
    assert f"interrupted by {sig.name}" in err.strip().splitlines()[-1]
    assert fake.labelled(BAKE_KEY) == {"servers": [], "images": []}
    assert not [c for c in fake.calls if "createImage" in c]
    assert out == "" and not (tmp_path / "manifest.json").exists()


def test_builder_in_error_fails_fast_and_cleans_up(
    fake: FakeOpenStackApi, os_env: dict[str, str], tmp_path: Path
) -> None:
    fake.world.guest_powers_off = False

    def break_builder() -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with fake.world.lock:
                for state in fake.world.servers.values():
                    if state.doc["status"] == "ACTIVE":
                        state.doc["status"] = "ERROR"
                        state.doc["fault"] = {"code": 500, "message": "host failed", "created": "x"}
                        return
            time.sleep(0.05)

    threading.Thread(target=break_builder, daemon=True).start()
    proc = run_factory(bake_args(tmp_path), os_env)
    assert proc.returncode == 1
    assert "went to ERROR: host failed" in proc.stderr.strip().splitlines()[-1]
    assert fake.labelled(BAKE_KEY) == {"servers": [], "images": []}
