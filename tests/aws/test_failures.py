"""Failures injected on the wire (AWS error responses from a proxy in front of moto), timeouts, throttling
and SIGKILL: nothing tagged with the bake id may survive a failed bake."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from tests.aws.conftest import REGION, Fault, FaultProxy, Guest, bake_args, ec2, tagged
from tests.cloudkit import FACTORY, interrupt_when, run_factory

pytestmark = pytest.mark.cloud
EMPTY = {"instances": [], "images": [], "snapshots": [], "volumes": []}

# (action, calls to let through first): one fault per step of the bake
STEP_FAULTS = [
    ("GetCallerIdentity", 0),  # preflight: identity
    ("DescribeImages", 0),  # preflight: --source-ami exists (then the name in 2 regions)
    ("DescribeImages", 3),  # source-ami step
    ("RunInstances", 0),  # launch-builder
    ("DescribeInstances", 1),  # wait-running / wait-stopped
    ("CreateImage", 0),  # create-image
    ("DescribeImages", 4),  # wait-image
    ("CreateTags", 0),  # snapshot tags
    ("TerminateInstances", 0),  # terminate-builder
    ("CopyImage", 0),  # copy-regions
    ("ModifyImageAttribute", 0),  # share
    ("ModifySnapshotAttribute", 0),  # share snapshots
    ("CreateTags", 2),  # finish: mark complete
]


@pytest.mark.parametrize(("action", "after"), STEP_FAULTS, ids=[f"{a}-{n}" for a, n in STEP_FAULTS])
def test_fault_at_every_step_leaves_nothing(
    aws: FaultProxy, guest: Guest, factory_env: dict[str, str], tmp_path: Path, action: str, after: int
) -> None:
    aws.faults[action] = Fault("UnauthorizedOperation", 403, times=1, after=after)
    args = bake_args(
        tmp_path, "--name", "k3os-fault", "--copy-to-regions", "eu-west-1", "--share-with", "210987654321"
    )
    proc = run_factory(args, factory_env)
    assert aws.faults[action].hits == 1, aws.seen
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("factory bake aws: ")
    assert tagged() == EMPTY
    assert tagged(region="eu-west-1") == EMPTY
    assert not (tmp_path / "manifest.json").exists()


def test_throttling_is_retried_by_botocore(
    aws: FaultProxy, guest: Guest, factory_env: dict[str, str], tmp_path: Path
) -> None:
    for action in ("RunInstances", "CreateImage"):
        aws.faults[action] = Fault("RequestLimitExceeded", 503, times=1)
    proc = run_factory(bake_args(tmp_path, "--name", "k3os-throttled", "--json"), factory_env)
    assert proc.returncode == 0, proc.stderr
    assert all(f.hits == 1 for f in aws.faults.values())
    assert len(json.loads(proc.stdout)["artifacts"]) == 1
    assert len(ec2().describe_instances()["Reservations"]) == 1  # throttled RunInstances did not run twice


def test_throttling_while_polling_is_retried_by_our_loop(
    aws: FaultProxy, guest: Guest, factory_env: dict[str, str], tmp_path: Path
) -> None:
    # botocore gives up at once, so only the poll loop's own retry can carry the bake through
    env = {**factory_env, "AWS_MAX_ATTEMPTS": "1"}
    aws.faults["DescribeInstances"] = Fault("RequestLimitExceeded", 503, times=3)
    proc = run_factory(bake_args(tmp_path, "--name", "k3os-throttled-poll", "--json"), env)
    assert proc.returncode == 0, proc.stderr
    assert aws.faults["DescribeInstances"].hits == 3
    assert proc.stderr.count("transient error, will retry") == 3
    assert len(json.loads(proc.stdout)["artifacts"]) == 1


def test_wait_stopped_timeout_cleans_up_and_says_why(
    aws: FaultProxy, factory_env: dict[str, str], tmp_path: Path
) -> None:
    proc = run_factory(bake_args(tmp_path, "--phase-timeout", "wait-stopped=0.01"), factory_env)
    assert proc.returncode == 1
    assert "gave up after" in proc.stderr and "to stop" in proc.stderr
    assert "console" in proc.stderr
    assert "removing instance" in proc.stderr
    assert tagged() == EMPTY


def test_builder_terminated_behind_our_back_fails_with_reason(
    aws: FaultProxy, factory_env: dict[str, str], tmp_path: Path
) -> None:
    killer = Guest(terminate=True)
    killer.start()
    try:
        proc = run_factory(bake_args(tmp_path), factory_env)
    finally:
        killer.done.set()
    assert proc.returncode == 1
    assert "was terminated" in proc.stderr.splitlines()[-1]
    assert tagged() == EMPTY


def test_sigkill_leaves_a_journal_and_gc_cleans(
    aws: FaultProxy, factory_env: dict[str, str], tmp_path: Path
) -> None:
    rc, _, _ = interrupt_when(bake_args(tmp_path), factory_env, "wait-stopped: waiting", signal.SIGKILL)
    assert rc == -signal.SIGKILL
    assert len(tagged()["instances"]) == 1
    journals = list((tmp_path / "state" / "journal").glob("*.jsonl"))
    assert len(journals) == 1 and '"created"' in journals[0].read_text()
    proc = run_factory([FACTORY, "gc", "aws"], factory_env)
    assert proc.returncode == 0, proc.stderr
    assert tagged() == EMPTY
    assert (
        ec2(REGION).describe_instances()["Reservations"][0]["Instances"][0]["State"]["Name"] == "terminated"
    )
