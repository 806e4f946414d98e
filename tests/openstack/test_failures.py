"""An API error injected at every step of ``factory bake openstack``: exit 1 with a one-line reason
naming the error, and nothing labelled with the bake id survives. The bakes run concurrently (each
against its own fake cloud) to keep the suite fast; each case is still its own test."""

from __future__ import annotations

import functools
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from factory.fakes.openstack_api import FakeOpenStackApi
from tests.cloudkit import run_concurrently
from tests.openstack.conftest import BAKE_KEY, bake_args, new_fake, os_environment, run_factory

pytestmark = pytest.mark.cloud

# Each row: the call that fails, how many calls of it succeed first, the HTTP status, extra bake flags.
FAULTS: list[tuple[str, int, int, tuple[str, ...]]] = [
    ("POST /v2.1/servers", 0, 403, ()),
    ("GET /v2.1/servers/{id}", 0, 403, ()),
    ("GET /v2.1/servers/{id}", 3, 404, ()),
    ("POST /v2.1/servers/{id}/action:createImage", 0, 409, ()),
    ("GET /v2/images/{id}", 1, 403, ()),
    ("DELETE /v2.1/servers/{id}", 0, 403, ()),
    ("PUT /v2/images/{id}/tags/{tag}", 0, 400, ()),
    ("PATCH /v2/images/{id}", 0, 403, ()),
    ("POST /v2/images/{id}/members", 0, 409, ("--share-with", "proj-x")),
]
IDS = [f"{route} after {after}" for route, after, _, _ in FAULTS]


@dataclass
class Outcome:
    """What one faulty bake left behind."""

    proc: subprocess.CompletedProcess[str]
    hits: int
    leftovers: dict[str, list[str]]
    calls: list[str]
    manifest: bool


def _bake_with_fault(tmp: Path, route: str, after: int, status: int, extra: tuple[str, ...]) -> Outcome:
    api = new_fake(action_polls=1, guest_polls=2)
    try:
        fault = api.fail(route, status, times=1, after=after)
        proc = run_factory(bake_args(tmp, *extra), os_environment(api, tmp))
        return Outcome(
            proc, fault.hits, api.labelled(BAKE_KEY), list(api.calls), (tmp / "manifest.json").exists()
        )
    finally:
        api.stop()


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    """Run every faulty bake at once; map case id -> outcome."""
    jobs = {
        case: functools.partial(_bake_with_fault, tmp_path_factory.mktemp("fault"), *row)
        for case, row in zip(IDS, FAULTS, strict=True)
    }
    return run_concurrently(jobs)


@pytest.mark.parametrize(("route", "after", "status", "extra"), FAULTS, ids=IDS)
def test_api_error_at_each_step_leaves_nothing_labelled(
    outcomes: dict[str, Outcome], route: str, after: int, status: int, extra: tuple[str, ...]
) -> None:
    out = outcomes[f"{route} after {after}"]
    assert out.hits == 1, out.calls
    assert out.proc.returncode == 1, out.proc.stderr
    last = out.proc.stderr.strip().splitlines()[-1]
    assert last.startswith("factory bake openstack: bake "), last
    assert f"HTTP {status}" in last or (status == 404 and "disappeared" in last), last
    assert "Traceback" not in out.proc.stderr
    assert out.leftovers == {"servers": [], "images": []}
    assert not out.manifest and out.proc.stdout == ""
    if "POST /v2.1/servers" in out.calls and route != "POST /v2.1/servers":
        assert "DELETE /v2.1/servers/{id}" in out.calls
    if any("createImage" in c for c in out.calls) and route != "POST /v2.1/servers/{id}/action:createImage":
        assert "DELETE /v2/images/{id}" in out.calls


def test_a_failing_cleanup_is_named_in_the_error(
    fake: FakeOpenStackApi, os_env: dict[str, str], tmp_path: Path
) -> None:
    fake.fail("POST /v2.1/servers/{id}/action:createImage", 409)
    fake.fail("DELETE /v2.1/servers/{id}", 403)
    proc = run_factory(bake_args(tmp_path), os_env)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    (server,) = fake.labelled(BAKE_KEY)["servers"]
    assert f"could not remove: server {server}" in last and "factory gc openstack" in last


def test_transient_errors_while_polling_are_retried(
    fake: FakeOpenStackApi, os_env: dict[str, str], tmp_path: Path
) -> None:
    servers = fake.fail("GET /v2.1/servers/{id}", 503, times=2, after=1)
    images = fake.fail("GET /v2/images/{id}", 500, times=1)
    proc = run_factory(bake_args(tmp_path, "--json"), os_env)
    assert proc.returncode == 0, proc.stderr
    assert servers.hits == 2 and images.hits == 1
    assert proc.stderr.count("transient error, will retry") == 3


def test_wait_stopped_timeout_shows_the_console_and_cleans_up(
    fake: FakeOpenStackApi, os_env: dict[str, str], tmp_path: Path
) -> None:
    fake.world.guest_powers_off = False
    proc = run_factory(bake_args(tmp_path, "--phase-timeout", "wait-stopped=0.01"), os_env)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert "wait-stopped: gave up after" in last and "is still ACTIVE" in last
    assert "downloading the ISO" in last  # the console log tail
    assert "POST /v2.1/servers/{id}/action:os-getConsoleOutput" in fake.calls
    assert fake.labelled(BAKE_KEY) == {"servers": [], "images": []}
