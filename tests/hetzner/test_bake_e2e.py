"""End-to-end ``factory bake hetzner`` runs of the real console script, with the real hcloud SDK,
against the fake Hetzner Cloud API on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import secrets
import signal
from pathlib import Path

import pytest

from factory.fakes.hetzner_api import FakeHetznerApi
from tests.cloudkit import Outcome, Run, runs_fixture, secret_config_text
from tests.hetzner.conftest import (
    BAKE_LABEL,
    SECRETS,
    STATE_LABEL,
    TOKEN,
    bake_args,
    hz_environment,
    new_fake,
)

pytestmark = pytest.mark.cloud


def blob(size: int) -> str:
    """``size`` random bytes, base64 (incompressible config content)."""
    return base64.b64encode(secrets.token_bytes(size)).decode()


def _with_file(tmp: Path, name: str, text: str) -> str:
    path = tmp / name
    path.write_text(text)
    return str(path)


def _happy_args(tmp: Path) -> list[str]:
    # A config big enough that the renderer gzips the script for EC2: Hetzner gets it as plain text.
    big = _with_file(
        tmp, "big.yaml", secret_config_text() + f"write_files:\n- path: /etc/blob\n  content: {blob(6000)}\n"
    )
    return bake_args(tmp, "--name", "k3os-e2e-1", "--config", big, "--tag", "team=platform", "--json")


def _no_token(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k != "HCLOUD_TOKEN"}


def _never_stops(fake: FakeHetznerApi) -> None:
    fake.world.guest_poweroff = False  # a builder that never stops (e.g. the install hangs)


def _snapshot_stalls(fake: FakeHetznerApi) -> None:
    fake.world.stalled_commands.add("create_image")  # the snapshot never finishes


USAGE_CASES = [
    (["--tag", "k3os:role=x"], "label key"),
    (["--tag", "team=a:b"], "values are"),
    (["--location", "Falkenstein 1"], "--location"),
    (["--server-type", "big box"], "--server-type"),
    (["--iso-sha256", "xyz"], "--iso-sha256"),
    (["--config", "@BAD@"], "no_such_key"),
    (["--config", "@HUGE@"], "over Hetzner's 32768-byte limit"),
]
FILES = {
    "@BAD@": ("bad.yaml", lambda: f"k3os:\n  no_such_key: 1\n  password: {SECRETS[0]}\n"),
    "@HUGE@": ("huge.yaml", lambda: f"write_files:\n- path: /etc/blob\n  content: {blob(30000)}\n"),
}


def _usage_args(extra: list[str]) -> Run[FakeHetznerApi]:
    def file_for(tmp: Path, placeholder: str) -> str:
        name, text = FILES[placeholder]
        return _with_file(tmp, name, text())

    def args(tmp: Path) -> list[str]:
        return bake_args(tmp, *[file_for(tmp, e) if e in FILES else e for e in extra])

    return Run(args)


RUNS: dict[str, Run[FakeHetznerApi]] = {
    "happy": Run(_happy_args),
    "arm64": Run(
        lambda tmp: bake_args(
            tmp,
            "--arch",
            "arm64",
            "--location",
            "nbg1",
            "--ssh-key",
            "ops",
            "--network",
            "k3os-net",
            "--snapshot-description",
            "k3os arm v1",
            "--json",
        )  # fmt: skip
    ),
    "dry-run": Run(lambda tmp: bake_args(tmp, "--dry-run", "--name", "k3os-plan"), env=_no_token),
    "missing-token": Run(bake_args, env=_no_token),
    "rejected-token": Run(bake_args, env=lambda env: {**env, "HCLOUD_TOKEN": "wrong-T0KEN-abc"}),
    "sigint": Run(bake_args, _never_stops, interrupt=("wait-stopped: waiting", signal.SIGINT, 0.3)),
    "sigterm": Run(bake_args, _snapshot_stalls, interrupt=("wait-image: waiting", signal.SIGTERM, 0.3)),
    "timeout": Run(lambda tmp: bake_args(tmp, "--phase-timeout", "wait-stopped=0.01"), _never_stops),
    **{f"usage-{n}": _usage_args(extra) for n, (extra, _) in enumerate(USAGE_CASES)},
}


runs = runs_fixture(RUNS, new_fake, hz_environment)


def test_bake_makes_a_labelled_snapshot_and_deletes_the_builder(
    runs: dict[str, Outcome[FakeHetznerApi]],
) -> None:
    fake, proc, tmp_path = runs["happy"].fake, runs["happy"].proc, runs["happy"].tmp
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    bake_id = summary["bake_id"]
    assert summary["cloud"] == "hetzner" and summary["name"] == "k3os-e2e-1"
    assert summary["artifacts"] == [{"region": "fsn1", "image_id": summary["artifacts"][0]["image_id"]}]
    image = fake.world.images[int(summary["artifacts"][0]["image_id"])]
    assert image["type"] == "snapshot" and image["status"] == "available"
    assert image["description"] == "k3os-e2e-1"
    assert image["labels"][BAKE_LABEL] == bake_id
    assert image["labels"][STATE_LABEL] == "complete"
    assert image["labels"]["team"] == "platform"
    assert fake.labelled(BAKE_LABEL, bake_id) == {"servers": [], "images": [image["id"]]}
    # the builder was a labelled cx22 in fsn1 from ubuntu-24.04, booted with the builder script
    builder = image["created_from"]["id"]
    user_data = fake.world.user_data[builder]
    assert user_data.startswith("#!") and "--takeover --poweroff --no-format" in user_data
    assert 16 * 1024 < len(user_data.encode()) <= 32 * 1024
    assert "DELETE /servers/{id}" in fake.calls
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    build = manifest["builds"][-1]
    assert manifest["last_run_uuid"] == bake_id == build["packer_run_uuid"]
    assert build["builder_type"] == "hcloud" and build["files"] is None
    assert build["artifact_id"] == str(image["id"])
    assert build["custom_data"]["server_type"] == "cx22" and build["custom_data"]["location"] == "fsn1"
    assert isinstance(build["build_time"], int)
    everything = proc.stdout + proc.stderr + (tmp_path / "manifest.json").read_text()
    for secret in (*SECRETS, TOKEN):
        assert secret not in everything
    assert "wait-stopped: waiting up to 40m0s" in proc.stderr


def test_arm64_uses_cax11_the_arm_image_ssh_key_and_network(
    runs: dict[str, Outcome[FakeHetznerApi]],
) -> None:
    fake, proc, tmp_path = runs["arm64"].fake, runs["arm64"].proc, runs["arm64"].tmp
    assert proc.returncode == 0, proc.stderr
    image = fake.world.images[int(json.loads(proc.stdout)["artifacts"][0]["image_id"])]
    assert image["architecture"] == "arm" and image["description"] == "k3os arm v1"
    (request,) = fake.world.create_requests.values()
    assert request["server_type"] == "cax11" and request["location"] == "nbg1"
    assert request["image"] == 101 and request["ssh_keys"] == [1] and request["networks"] == [1]
    assert request["name"].startswith("k3os-builder-") and request["labels"][BAKE_LABEL]
    build = json.loads((tmp_path / "manifest.json").read_text())["builds"][-1]
    assert build["custom_data"]["server_type"] == "cax11" and build["custom_data"]["location"] == "nbg1"


@pytest.mark.parametrize("case", range(len(USAGE_CASES)), ids=[" ".join(c[0]) for c in USAGE_CASES])
def test_usage_and_config_errors_exit_2_and_create_nothing(
    runs: dict[str, Outcome[FakeHetznerApi]], case: int
) -> None:
    proc, calls = runs[f"usage-{case}"].proc, runs[f"usage-{case}"].fake.calls
    assert proc.returncode == 2, proc.stderr
    assert USAGE_CASES[case][1] in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr and SECRETS[0] not in proc.stderr
    assert calls == []


def test_dry_run_prints_the_plan_and_calls_nothing(runs: dict[str, Outcome[FakeHetznerApi]]) -> None:
    fake, proc, tmp_path = runs["dry-run"].fake, runs["dry-run"].proc, runs["dry-run"].tmp
    assert proc.returncode == 0, proc.stderr
    assert "create server k3os-builder-" in proc.stdout and "k3os-factory/bake-id" in proc.stdout
    assert fake.calls == [] and not (tmp_path / "manifest.json").exists()


def test_missing_token_is_exit_2_one_line(runs: dict[str, Outcome[FakeHetznerApi]]) -> None:
    fake, proc = runs["missing-token"].fake, runs["missing-token"].proc
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "HCLOUD_TOKEN" in proc.stderr
    assert fake.calls == []


def test_rejected_token_is_exit_2_and_not_printed(runs: dict[str, Outcome[FakeHetznerApi]]) -> None:
    fake, proc = runs["rejected-token"].fake, runs["rejected-token"].proc
    assert proc.returncode == 2
    assert "rejected" in proc.stderr and "wrong-T0KEN-abc" not in proc.stderr
    assert fake.calls == ["GET /locations"]


def test_sigint_while_waiting_deletes_the_builder(runs: dict[str, Outcome[FakeHetznerApi]]) -> None:
    fake, tmp_path = runs["sigint"].fake, runs["sigint"].tmp
    rc, err = runs["sigint"].proc.returncode, runs["sigint"].proc.stderr
    assert rc == 130, err
    assert "interrupted by SIGINT during wait-stopped" in err
    assert fake.labelled(BAKE_LABEL) == {"servers": [], "images": []}
    assert "POST /servers/{id}/actions/create_image" not in fake.calls
    assert not (tmp_path / "manifest.json").exists()


def test_sigterm_while_the_snapshot_is_made_deletes_it_and_the_builder(
    runs: dict[str, Outcome[FakeHetznerApi]],
) -> None:
    fake = runs["sigterm"].fake
    rc, err = runs["sigterm"].proc.returncode, runs["sigterm"].proc.stderr
    assert rc == 143, err
    assert fake.labelled(BAKE_LABEL) == {"servers": [], "images": []}
    assert "DELETE /images/{id}" in fake.calls


def test_wait_stopped_times_out_and_cleans_up(runs: dict[str, Outcome[FakeHetznerApi]]) -> None:
    fake, proc = runs["timeout"].fake, runs["timeout"].proc
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert "gave up after" in last and "still running" in last and "Hetzner Console" in last
    assert fake.labelled(BAKE_LABEL) == {"servers": [], "images": []}
