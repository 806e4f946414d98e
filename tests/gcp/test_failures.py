"""A failure injected at every step of ``factory bake gcp`` (an API error answered by the fake for one
call, or an operation that ends in error): exit 1, one line naming the step, and nothing labelled with
the bake id survives. The scenarios run concurrently (one fake and one console script each) to keep
the suite fast; each is then checked by its own test."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from factory.fakes.gcp_api import FakeGcp
from tests.gcp.conftest import (
    FACTORY,
    NOTHING,
    Outcome,
    Run,
    bake_args,
    gcp_runs,
    labelled,
    run_factory,
)

pytestmark = pytest.mark.cloud


@dataclass(frozen=True)
class Scenario:
    """Break one call; expect the bake to fail in ``step`` with ``detail`` in the message."""

    step: str
    inject: Callable[[FakeGcp], None]
    detail: str


SCENARIOS = {
    "source-image": Scenario(
        "source-image", lambda f: f.fail("images.getFromFamily", 403, "forbidden", times=-1), "Injected"
    ),
    "insert-refused": Scenario(
        "launch-builder", lambda f: f.fail("instances.insert", 400, "invalid", times=-1), "Injected"
    ),
    "insert-operation-error": Scenario(
        "wait-running",
        lambda f: f.fail_operation("instances.insert", "ZONE_RESOURCE_POOL_EXHAUSTED", http_status=503),
        "ZONE_RESOURCE_POOL_EXHAUSTED",
    ),
    "poll-operation": Scenario(
        "wait-running", lambda f: f.fail("zoneOperations.get", 400, "invalid", times=1), "Injected"
    ),
    "poll-instance": Scenario(
        "wait-stopped", lambda f: f.fail("instances.get", 403, "forbidden", times=1, after=1), "Injected"
    ),
    "image-refused": Scenario(
        "create-image", lambda f: f.fail("images.insert", 400, "invalid", times=-1), "Injected"
    ),
    "image-operation-error": Scenario(
        "wait-image", lambda f: f.fail_operation("images.insert", "QUOTA_EXCEEDED"), "QUOTA_EXCEEDED"
    ),
    "poll-image-operation": Scenario(
        "wait-image", lambda f: f.fail("globalOperations.get", 400, "invalid", times=1), "Injected"
    ),
    "delete-builder": Scenario(
        "delete-builder", lambda f: f.fail("instances.delete", 400, "invalid", times=1), "Injected"
    ),
    "label-image": Scenario(
        "finish", lambda f: f.fail("images.setLabels", 412, "conditionNotMet", times=1), "Injected"
    ),
}


outcomes = gcp_runs(
    {
        name: Run(lambda tmp: bake_args(tmp, "--name", "k3os-fail"), prepare=scenario.inject)
        for name, scenario in SCENARIOS.items()
    },
    name="outcomes",
)


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_failure_cleans_up_everything(outcomes: dict[str, Outcome], name: str) -> None:
    fake, proc = outcomes[name].fake, outcomes[name].proc
    scenario = SCENARIOS[name]
    assert proc.returncode == 1, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("factory bake gcp: bake ") and f"{scenario.step} failed" in last, last
    assert scenario.detail in last and "Traceback" not in proc.stderr
    assert labelled(fake) == NOTHING, proc.stderr
    assert "all temporary resources removed" in proc.stderr
    with fake.model.lock:
        assert not fake.model.instances and not fake.model.disks


def test_cleanup_that_fails_is_named_and_gc_finishes_it(
    fake: FakeGcp, factory_env: dict[str, str], tmp_path: Path
) -> None:
    fake.fail("instances.delete", 400, "invalid", times=-1)
    fake.fail("images.insert", 400, "invalid", times=-1)
    proc = run_factory(bake_args(tmp_path), factory_env)
    assert proc.returncode == 1
    last = proc.stderr.strip().splitlines()[-1]
    assert "could not remove: instance k3os-builder-" in last and "factory gc gcp" in last
    left = labelled(fake)
    assert len(left["instances"]) == 1 and left["images"] == []
    journals = list((tmp_path / "state" / "journal").glob("*.jsonl"))
    assert len(journals) == 1  # kept for gc
    fake.faults.clear()
    done = run_factory([FACTORY, "gc", "gcp"], factory_env)
    assert done.returncode == 0, done.stderr
    assert labelled(fake) == NOTHING
