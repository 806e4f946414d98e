"""An API error injected at every step of ``factory bake hetzner``: exit 1 with a one-line reason naming
the error, and nothing labelled with the bake id survives. The bakes run concurrently (each against its
own fake API) to keep the suite fast; each case is still its own test."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from factory.fakes.hetzner_api import FakeHetznerApi
from tests.cloudkit import Outcome, Run, runs_fixture
from tests.hetzner.conftest import BAKE_LABEL, STATE_LABEL, bake_args, hz_environment, new_fake

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
CREATE_IMAGE = "POST /servers/{id}/actions/create_image"


def _fault(route: str, after: int, code: str) -> Callable[[FakeHetznerApi], None]:
    def inject(fake: FakeHetznerApi) -> None:
        fake.world.guest_polls = 3
        fake.fail(route, code, times=1, after=after)

    return inject


def _failing_cleanup(fake: FakeHetznerApi) -> None:
    fake.fail(CREATE_IMAGE, "invalid_input")
    fake.fail("DELETE /servers/{id}", "forbidden")


RUNS: dict[str, Run[FakeHetznerApi]] = {
    **{route: Run(bake_args, _fault(route, after, code)) for route, after, code in FAULTS},
    "failing-cleanup": Run(bake_args, _failing_cleanup),
    "locked": Run(
        lambda tmp: bake_args(tmp, "--json"), lambda fake: fake.fail(CREATE_IMAGE, "locked", times=2)
    ),
    "done-anyway": Run(
        lambda tmp: bake_args(tmp, "--json"),
        lambda fake: fake.fail(CREATE_IMAGE, "service_error", times=1, done_anyway=True),
    ),
}


outcomes = runs_fixture(RUNS, new_fake, hz_environment, name="outcomes")


@pytest.mark.parametrize(("route", "after", "code"), FAULTS, ids=[f[0] for f in FAULTS])
def test_api_error_at_each_step_leaves_nothing_labelled(
    outcomes: dict[str, Outcome[FakeHetznerApi]], route: str, after: int, code: str
) -> None:
    fake, proc = outcomes[route].fake, outcomes[route].proc
    calls = list(fake.calls)
    assert fake.faults[route].hits == 1, calls
    assert proc.returncode == 1, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("factory bake hetzner: bake ") and code in last, last
    assert "Traceback" not in proc.stderr
    assert fake.labelled(BAKE_LABEL) == {"servers": [], "images": []}
    assert not (outcomes[route].tmp / "manifest.json").exists()
    if fake.world.create_requests:  # a builder existed: it was deleted (by cleanup or the bake)
        assert "DELETE /servers/{id}" in calls
    else:
        assert "DELETE /servers/{id}" not in calls


def test_a_failing_cleanup_is_named_in_the_error(outcomes: dict[str, Outcome[FakeHetznerApi]]) -> None:
    fake, proc = outcomes["failing-cleanup"].fake, outcomes["failing-cleanup"].proc
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    server = fake.labelled(BAKE_LABEL)["servers"]
    assert len(server) == 1 and f"could not remove: server {server[0]}" in last
    assert "factory gc hetzner" in last


def test_locked_create_image_is_retried(outcomes: dict[str, Outcome[FakeHetznerApi]]) -> None:
    fake, proc = outcomes["locked"].fake, outcomes["locked"].proc
    assert proc.returncode == 0, proc.stderr
    assert fake.faults[CREATE_IMAGE].hits == 2 and proc.stderr.count("trying again") == 2
    assert len([i for i in fake.world.images.values() if i["type"] == "snapshot"]) == 1


def test_a_snapshot_made_despite_an_error_is_adopted_not_duplicated(
    outcomes: dict[str, Outcome[FakeHetznerApi]],
) -> None:
    fake, proc = outcomes["done-anyway"].fake, outcomes["done-anyway"].proc
    assert proc.returncode == 0, proc.stderr
    assert fake.faults[CREATE_IMAGE].hits == 1 and "but snapshot" in proc.stderr
    snapshots = [i for i in fake.world.images.values() if i["type"] == "snapshot"]
    assert len(snapshots) == 1 and snapshots[0]["labels"][STATE_LABEL] == "complete"
    assert json.loads(proc.stdout)["artifacts"][0]["image_id"] == str(snapshots[0]["id"])
