"""``factory bake openstack`` end to end: the real console script and the real openstacksdk against the
fake OpenStack API on 127.0.0.1 (happy path, sharing, dry-run, usage errors, signals, secrets)."""

from __future__ import annotations

import gzip
import json
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from factory.fakes.openstack_api import FakeOpenStackApi
from tests.cloudkit import Outcome, Run, runs_fixture, secret_config_text
from tests.openstack.conftest import BAKE_KEY, SECRETS, STATE_KEY, bake_args, new_fake, os_environment

pytestmark = pytest.mark.cloud


def _builder_script(fake: FakeOpenStackApi) -> str:
    (state,) = fake.world.servers.values() if fake.world.servers else (None,)
    assert state is not None
    data = state.user_data
    return (gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data).decode()


def _inspect_then_power_off(fake: FakeOpenStackApi) -> tuple[threading.Thread, dict[str, str]]:
    """Keep the builder until its user data and metadata are seen, then let it power off."""
    fake.world.guest_polls = 10_000  # keep the builder until we looked at its user data
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
    return watcher, seen


def _break_builder(fake: FakeOpenStackApi) -> None:
    """Put the builder into ERROR (a host failure) once it is ACTIVE."""
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


def _with_file(tmp: Path, name: str, text: str) -> str:
    path = tmp / name
    path.write_text(text)
    return str(path)


def _args(*extra: str) -> Callable[[Path], list[str]]:
    return lambda tmp: bake_args(tmp, *extra)


def _never_stops(fake: FakeOpenStackApi) -> None:
    fake.world.guest_powers_off = False


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
OLD_IMAGE = "0d6b2c8a-7f3e-4c1b-8a11-2a2b2c2d2204"
BAD_CONFIG = f"k3os:\n  password: {SECRETS[0]}\n  no_such_key: 1\n"
RUNS: dict[str, Run[FakeOpenStackApi]] = {
    "happy": Run(_args("--name", "k3os-test", "--tag", "team=edge", "--json"), _inspect_then_power_off),
    "share-with": Run(_args("--share-with", "proj-a", "--share-with", "proj-b")),
    "named-network": Run(
        _args("--network", "lab", "--source-image", OLD_IMAGE, "--json"),
        lambda fake: fake.world.add_network("lab"),
    ),
    "several-networks": Run(bake_args, lambda fake: fake.world.add_network("lab")),
    "invalid-config": Run(lambda tmp: bake_args(tmp, "--config", _with_file(tmp, "bad.yaml", BAD_CONFIG))),
    "dry-run": Run(_args("--dry-run", "--json")),
    "missing-credentials": Run(
        bake_args, env=lambda env: {k: v for k, v in env.items() if not k.startswith("OS_")}
    ),
    "wrong-password": Run(bake_args, env=lambda env: dict(env, OS_PASSWORD="wr0ng-Secret-pw")),
    "secrets": Run(
        lambda tmp: bake_args(tmp, "--config", _with_file(tmp, "config.yaml", secret_config_text()), "--json")
    ),
    "SIGINT": Run(bake_args, _never_stops, interrupt=("wait-stopped: waiting up to", signal.SIGINT, 0.3)),
    "SIGTERM": Run(bake_args, _never_stops, interrupt=("wait-stopped: waiting up to", signal.SIGTERM, 0.3)),
    "builder-error": Run(bake_args, _break_builder),
    **{f"usage {' '.join(extra)}": Run(_args(*extra)) for extra, _ in USAGE_CASES},
}


runs = runs_fixture(RUNS, new_fake, os_environment)


def test_happy_path_makes_a_labelled_image_and_deletes_the_builder(
    runs: dict[str, Outcome[FakeOpenStackApi]],
) -> None:
    fake, proc, tmp_path = runs["happy"].fake, runs["happy"].proc, runs["happy"].tmp
    watcher, seen = runs["happy"].prepared
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


def test_share_with_makes_a_shared_image_with_members(runs: dict[str, Outcome[FakeOpenStackApi]]) -> None:
    fake, proc = runs["share-with"].fake, runs["share-with"].proc
    assert proc.returncode == 0, proc.stderr
    image_id = proc.stdout.split()[-1]
    assert fake.world.images[image_id]["visibility"] == "shared"
    assert [m["member_id"] for m in fake.world.members[image_id]] == ["proj-a", "proj-b"]


def test_named_network_and_source_image_by_id(runs: dict[str, Outcome[FakeOpenStackApi]]) -> None:
    proc, tmp_path = runs["named-network"].proc, runs["named-network"].tmp
    other: dict[str, Any] = runs["named-network"].prepared
    old = OLD_IMAGE
    assert proc.returncode == 0, proc.stderr
    custom = json.loads((tmp_path / "manifest.json").read_text())["builds"][-1]["custom_data"]
    assert custom["source_image"] == f"ubuntu-24.04 ({old})"
    assert "network lab" in proc.stderr and other["id"]


@pytest.mark.parametrize(("extra", "message"), USAGE_CASES, ids=[" ".join(c[0]) for c in USAGE_CASES])
def test_usage_errors_exit_2_and_create_nothing(
    runs: dict[str, Outcome[FakeOpenStackApi]], extra: tuple[str, ...], message: str
) -> None:
    out = runs[f"usage {' '.join(extra)}"]
    proc, calls = out.proc, out.fake.calls
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert message in lines[-1] and "Traceback" not in proc.stderr
    assert "POST /v2.1/servers" not in calls


def test_several_networks_need_network_flag(runs: dict[str, Outcome[FakeOpenStackApi]]) -> None:
    fake, proc = runs["several-networks"].fake, runs["several-networks"].proc
    assert proc.returncode == 2
    assert "several networks (lab, private)" in proc.stderr and "--network" in proc.stderr
    assert "POST /v2.1/servers" not in fake.calls


def test_invalid_config_exits_2_before_any_call(runs: dict[str, Outcome[FakeOpenStackApi]]) -> None:
    fake, proc = runs["invalid-config"].fake, runs["invalid-config"].proc
    assert proc.returncode == 2 and "no_such_key" in proc.stderr
    assert SECRETS[0] not in proc.stderr
    assert fake.calls == []


def test_dry_run_calls_nothing(runs: dict[str, Outcome[FakeOpenStackApi]]) -> None:
    fake, proc, tmp_path = runs["dry-run"].fake, runs["dry-run"].proc, runs["dry-run"].tmp
    assert proc.returncode == 0, proc.stderr
    plan = json.loads(proc.stdout)
    assert [s["name"] for s in plan["steps"]][:3] == ["launch-builder", "wait-running", "wait-stopped"]
    assert fake.calls == [] and not (tmp_path / "manifest.json").exists()


def test_missing_credentials_is_one_line_exit_2(runs: dict[str, Outcome[FakeOpenStackApi]]) -> None:
    proc = runs["missing-credentials"].proc
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "OS_CLOUD" in proc.stderr


def test_wrong_password_is_exit_2_and_not_echoed(runs: dict[str, Outcome[FakeOpenStackApi]]) -> None:
    fake, proc = runs["wrong-password"].fake, runs["wrong-password"].proc
    assert proc.returncode == 2, proc.stderr
    assert "rejected the credentials" in proc.stderr and "wr0ng-Secret-pw" not in proc.stderr
    assert "POST /v2.1/servers" not in fake.calls


def test_secrets_never_in_output(runs: dict[str, Outcome[FakeOpenStackApi]]) -> None:
    fake, proc, tmp_path = runs["secrets"].fake, runs["secrets"].proc, runs["secrets"].tmp
    os_env = os_environment(fake, tmp_path)
    assert proc.returncode == 0, proc.stderr
    manifest = (tmp_path / "manifest.json").read_text()
    for secret in (*SECRETS, os_env["OS_PASSWORD"]):
        assert secret not in proc.stdout and secret not in proc.stderr and secret not in manifest


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_while_waiting_deletes_the_builder(
    runs: dict[str, Outcome[FakeOpenStackApi]], sig: signal.Signals, code: int
) -> None:
    fake, tmp_path = runs[sig.name].fake, runs[sig.name].tmp
    rc, out, err = runs[sig.name].proc.returncode, runs[sig.name].proc.stdout, runs[sig.name].proc.stderr
    assert rc == code, err
    assert f"interrupted by {sig.name}" in err.strip().splitlines()[-1]
    assert fake.labelled(BAKE_KEY) == {"servers": [], "images": []}
    assert not [c for c in fake.calls if "createImage" in c]
    assert out == "" and not (tmp_path / "manifest.json").exists()


def test_builder_in_error_fails_fast_and_cleans_up(runs: dict[str, Outcome[FakeOpenStackApi]]) -> None:
    fake, proc = runs["builder-error"].fake, runs["builder-error"].proc
    assert proc.returncode == 1
    assert "went to ERROR: host failed" in proc.stderr.strip().splitlines()[-1]
    assert fake.labelled(BAKE_KEY) == {"servers": [], "images": []}
