"""An API error injected at every step of ``factory bake hetzner``: exit 1 with a one-line reason naming
the error, and nothing labelled with the bake id survives. The bakes run concurrently (each against its
own fake API) to keep the suite fast; each case is still its own test."""

from __future__ import annotations

import functools
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from factory.fakes.hetzner_api import FakeHetznerApi
from tests.cloudkit import run_concurrently
from tests.hetzner.conftest import (
    BAKE_LABEL,
    STATE_LABEL,
    bake_args,
    hz_environment,
    new_fake,
    run_factory,
)

pytestmark = pytest.mark.cloud

# Each row: the call that fails, how many calls of it succeed first, the Hetzner error code.
FAULTS = [
    ("GET /server_types", 0, "forbidden"),
    ("GET /images", 0, "service_error"),
    ("POST /servers", 0, "resource_limit_exceeded"),
    ("GET /actions/{id}", 0, "forbidden"),
    ("GET /servers/{id}", 2, "forbidden"),
    ("POST /servers/{id}/actions/create_image", 0, "invalid_input"),
    ("GET /images/{id}", 0, "forbidden"),
    ("DELETE /servers/{id}", 0, "forbidden"),
    ("PUT /images/{id}", 0, "invalid_input"),
]


@dataclass
class Outcome:
    """What one faulty bake left behind."""

    proc: subprocess.CompletedProcess[str]
    hits: int
    leftovers: dict[str, list[int]]
    calls: list[str]
    manifest: bool
    servers_created: int


def _bake_with_fault(tmp: Path, route: str, after: int, code: str) -> Outcome:
    api = new_fake(action_polls=2, guest_polls=3)
    try:
        fault = api.fail(route, code, times=1, after=after)
        proc = run_factory(bake_args(tmp), hz_environment(api, tmp))
        return Outcome(
            proc,
            fault.hits,
            api.labelled(BAKE_LABEL),
            list(api.calls),
            (tmp / "manifest.json").exists(),
            len(api.world.create_requests),
        )
    finally:
        api.stop()


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """Run every faulty bake at once; map route -> outcome."""
    jobs = {
        route: functools.partial(_bake_with_fault, tmp_path_factory.mktemp("fault"), route, after, code)
        for route, after, code in FAULTS
    }
    return run_concurrently(jobs)


@pytest.mark.parametrize(("route", "after", "code"), FAULTS, ids=[f[0] for f in FAULTS])
def test_api_error_at_each_step_leaves_nothing_labelled(
    outcomes: dict[str, Outcome], route: str, after: int, code: str
) -> None:
    out = outcomes[route]
    assert out.hits == 1, out.calls
    assert out.proc.returncode == 1, out.proc.stderr
    last = out.proc.stderr.strip().splitlines()[-1]
    assert last.startswith("factory bake hetzner: bake ") and code in last, last
    assert "Traceback" not in out.proc.stderr
    assert out.leftovers == {"servers": [], "images": []}
    assert not out.manifest
    if out.servers_created:  # a builder existed: it was deleted (by cleanup or the bake)
        assert "DELETE /servers/{id}" in out.calls
    else:
        assert "DELETE /servers/{id}" not in out.calls


def test_a_failing_cleanup_is_named_in_the_error(
    fake: FakeHetznerApi, hz_env: dict[str, str], tmp_path: Path
) -> None:
    fake.fail("POST /servers/{id}/actions/create_image", "invalid_input")
    fake.fail("DELETE /servers/{id}", "forbidden")
    proc = run_factory(bake_args(tmp_path), hz_env)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    server = fake.labelled(BAKE_LABEL)["servers"]
    assert len(server) == 1 and f"could not remove: server {server[0]}" in last
    assert "factory gc hetzner" in last


def test_locked_create_image_is_retried(fake: FakeHetznerApi, hz_env: dict[str, str], tmp_path: Path) -> None:
    fault = fake.fail("POST /servers/{id}/actions/create_image", "locked", times=2)
    proc = run_factory(bake_args(tmp_path, "--json"), hz_env)
    assert proc.returncode == 0, proc.stderr
    assert fault.hits == 2 and proc.stderr.count("trying again") == 2
    assert len([i for i in fake.world.images.values() if i["type"] == "snapshot"]) == 1


def test_a_snapshot_made_despite_an_error_is_adopted_not_duplicated(
    fake: FakeHetznerApi, hz_env: dict[str, str], tmp_path: Path
) -> None:
    fault = fake.fail("POST /servers/{id}/actions/create_image", "service_error", times=1, done_anyway=True)
    proc = run_factory(bake_args(tmp_path, "--json"), hz_env)
    assert proc.returncode == 0, proc.stderr
    assert fault.hits == 1 and "but snapshot" in proc.stderr
    snapshots = [i for i in fake.world.images.values() if i["type"] == "snapshot"]
    assert len(snapshots) == 1 and snapshots[0]["labels"][STATE_LABEL] == "complete"
    assert json.loads(proc.stdout)["artifacts"][0]["image_id"] == str(snapshots[0]["id"])
