"""An API error injected at every step of ``factory bake openstack``: exit 1 with a one-line reason
naming the error, and nothing labelled with the bake id survives. The bakes run concurrently (each
against its own fake cloud) to keep the suite fast; each case is still its own test."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from factory.fakes.openstack_api import FakeOpenStackApi
from tests.cloudkit import Outcome, Run, runs_fixture
from tests.openstack.conftest import BAKE_KEY, bake_args, new_fake, os_environment

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


def _fault(route: str, after: int, status: int) -> Callable[[FakeOpenStackApi], object]:
    return lambda fake: fake.fail(route, status, times=1, after=after)


def _failing_cleanup(fake: FakeOpenStackApi) -> None:
    fake.fail("POST /v2.1/servers/{id}/action:createImage", 409)
    fake.fail("DELETE /v2.1/servers/{id}", 403)


def _transient(fake: FakeOpenStackApi) -> None:
    fake.fail("GET /v2.1/servers/{id}", 503, times=2, after=1)
    fake.fail("GET /v2/images/{id}", 500, times=1)


def _never_stops(fake: FakeOpenStackApi) -> None:
    fake.world.guest_powers_off = False


def _args(extra: tuple[str, ...]) -> Callable[[Path], list[str]]:
    return lambda tmp: bake_args(tmp, *extra)


RUNS: dict[str, Run[FakeOpenStackApi]] = {
    **{
        case: Run(_args(extra), _fault(route, after, status))
        for case, (route, after, status, extra) in zip(IDS, FAULTS, strict=True)
    },
    "failing-cleanup": Run(bake_args, _failing_cleanup),
    "transient": Run(_args(("--json",)), _transient),
    "timeout": Run(_args(("--phase-timeout", "wait-stopped=0.01")), _never_stops),
}


outcomes = runs_fixture(RUNS, new_fake, os_environment, name="outcomes")


@pytest.mark.parametrize(("route", "after", "status", "extra"), FAULTS, ids=IDS)
def test_api_error_at_each_step_leaves_nothing_labelled(
    outcomes: dict[str, Outcome[FakeOpenStackApi]],
    route: str,
    after: int,
    status: int,
    extra: tuple[str, ...],
) -> None:
    out = outcomes[f"{route} after {after}"]
    calls = list(out.fake.calls)
    assert out.fake.faults[route].hits == 1, calls
    assert out.proc.returncode == 1, out.proc.stderr
    last = out.proc.stderr.strip().splitlines()[-1]
    assert last.startswith("factory bake openstack: bake "), last
    assert f"HTTP {status}" in last or (status == 404 and "disappeared" in last), last
    assert "Traceback" not in out.proc.stderr
    assert out.fake.labelled(BAKE_KEY) == {"servers": [], "images": []}
    assert not (out.tmp / "manifest.json").exists() and out.proc.stdout == ""
    if "POST /v2.1/servers" in calls and route != "POST /v2.1/servers":
        assert "DELETE /v2.1/servers/{id}" in calls
    if any("createImage" in c for c in calls) and route != "POST /v2.1/servers/{id}/action:createImage":
        assert "DELETE /v2/images/{id}" in calls


def test_a_failing_cleanup_is_named_in_the_error(outcomes: dict[str, Outcome[FakeOpenStackApi]]) -> None:
    fake, proc = outcomes["failing-cleanup"].fake, outcomes["failing-cleanup"].proc
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    (server,) = fake.labelled(BAKE_KEY)["servers"]
    assert f"could not remove: server {server}" in last and "factory gc openstack" in last


def test_transient_errors_while_polling_are_retried(outcomes: dict[str, Outcome[FakeOpenStackApi]]) -> None:
    fake, proc = outcomes["transient"].fake, outcomes["transient"].proc
    servers, images = fake.faults["GET /v2.1/servers/{id}"], fake.faults["GET /v2/images/{id}"]
    assert proc.returncode == 0, proc.stderr
    assert servers.hits == 2 and images.hits == 1
    assert proc.stderr.count("transient error, will retry") == 3


def test_wait_stopped_timeout_shows_the_console_and_cleans_up(
    outcomes: dict[str, Outcome[FakeOpenStackApi]],
) -> None:
    fake, proc = outcomes["timeout"].fake, outcomes["timeout"].proc
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert "wait-stopped: gave up after" in last and "is still ACTIVE" in last
    assert "downloading the ISO" in last  # the console log tail
    assert "POST /v2.1/servers/{id}/action:os-getConsoleOutput" in fake.calls
    assert fake.labelled(BAKE_KEY) == {"servers": [], "images": []}
