"""``factory gc gcp``, ``factory images gcp list|prune`` and ``factory whoami gcp`` against the fake."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from factory.fakes.gcp_api import FakeGcp
from factory.fakes.gcp_auth import write_service_account_file
from factory.journal import Journal
from tests.cloudkit import run_together
from tests.gcp.conftest import (
    BAKE_LABEL,
    FACTORY,
    PROJECT,
    STATE_LABEL,
    Outcome,
    Run,
    bake_args,
    gcp_runs,
    labelled,
    run_factory,
)

pytestmark = pytest.mark.cloud
ZONE = "us-central1-b"


def seed_bake(
    fake: FakeGcp, bake_id: str, age_s: float, image: str | None = None, state: str = "pending"
) -> None:
    """What a bake leaves behind: a stopped labelled builder with its disk, optionally an image."""
    m = fake.model
    labels = {BAKE_LABEL: bake_id, "k3os-factory-created": str(int(time.time() - age_s))}
    name = f"k3os-builder-{bake_id}"
    with m.lock:
        polls, m.op_polls = m.op_polls, 0
        body = {
            "name": name,
            "machineType": f"zones/{ZONE}/machineTypes/e2-small",
            "labels": labels,
            "disks": [
                {
                    "boot": True,
                    "autoDelete": True,
                    "initializeParams": {
                        "sourceImage": "projects/ubuntu-os-cloud/global/images/family/ubuntu-2404-lts-amd64",
                        "labels": labels,
                    },
                }
            ],
        }
        m.insert_instance(ZONE, body, None)
        m.instances[(ZONE, name)]["status"] = "TERMINATED"
        if image:
            image_labels = {**labels, STATE_LABEL: state}
            m.insert_image(
                {"name": image, "sourceDisk": f"zones/{ZONE}/disks/{name}", "labels": image_labels},
                None,
                False,
            )
        m.op_polls = polls


def test_gc_removes_leftovers_by_age_and_spares_products(fake: FakeGcp, factory_env: dict[str, str]) -> None:
    old, new, done = (
        "0b1d0000-0000-4000-8000-000000000001",
        "0b1d0000-0000-4000-8000-000000000002",
        "0b1d0000-0000-4000-8000-000000000003",
    )
    seed_bake(fake, old, age_s=7200, image="k3os-half-made")
    seed_bake(fake, new, age_s=60)
    seed_bake(fake, done, age_s=7200, image="k3os-finished", state="complete")
    live = "0b1d0000-0000-4000-8000-000000000004"  # a bake still running on this host (live pid)
    seed_bake(fake, live, age_s=7200)
    Journal(live, "gcp", "k3os-live", directory=Path(factory_env["FACTORY_STATE_DIR"]) / "journal")
    with fake.model.lock:  # the finished bake's builder is gone; an unrelated VM stays untouched
        fake.model.instances.pop((ZONE, f"k3os-builder-{done}"))
        fake.model.disks[(ZONE, f"k3os-builder-{done}")]["users"] = []
        fake.model.disks[(ZONE, f"k3os-builder-{done}")]["labels"] = {}
    before = labelled(fake)
    dry = run_factory([FACTORY, "gc", "gcp", "--dry-run"], factory_env)
    assert dry.returncode == 0, dry.stderr
    for needle in (
        f"instance k3os-builder-{old}",
        f"disk k3os-builder-{new}",
        "image k3os-half-made (global)",
    ):
        assert needle in dry.stdout
    assert "k3os-finished" not in dry.stdout
    assert labelled(fake) == before and not [c for c in fake.calls if c.endswith(".delete")]

    aged = run_factory([FACTORY, "gc", "gcp", "--older-than", "1h"], factory_env)
    assert aged.returncode == 0, aged.stderr
    left = labelled(fake)
    assert sorted(left["instances"]) == [f"k3os-builder-{new}", f"k3os-builder-{live}"]
    assert left["images"] == ["k3os-finished"]

    rest = run_factory([FACTORY, "gc", "gcp"], factory_env)
    assert rest.returncode == 0, rest.stderr
    assert f"removed  instance k3os-builder-{new}" in rest.stdout
    alive = [f"k3os-builder-{live}"]
    assert labelled(fake) == {"instances": alive, "disks": alive, "images": ["k3os-finished"]}


def test_images_list_and_prune(fake: FakeGcp, factory_env: dict[str, str]) -> None:
    names = ["k3os-v1", "k3os-v2", "k3os-v3", "other-v1"]
    for i, name in enumerate(names):
        seed_bake(fake, f"0b1d0000-0000-4000-8000-00000000010{i}", 0, image=name, state="complete")
        with fake.model.lock:
            fake.model.images[(PROJECT, name)]["creationTimestamp"] = f"2025-01-0{i + 1}T00:00:00.000-08:00"
    prune = [FACTORY, "images", "gcp", "prune", "--keep", "1", "--name-prefix", "k3os-"]
    listed, dry = run_together(  # both only look
        ([FACTORY, "images", "gcp", "list", "--json"], factory_env), ([*prune, "--dry-run"], factory_env)
    )
    assert listed.returncode == 0, listed.stderr
    assert [row["name"] for row in json.loads(listed.stdout)] == ["other-v1", "k3os-v3", "k3os-v2", "k3os-v1"]
    assert dry.returncode == 0 and "would delete global k3os-v2" in dry.stdout
    assert "images.delete" not in fake.calls
    pruned = run_factory(prune, factory_env)
    assert pruned.returncode == 0, pruned.stderr
    with fake.model.lock:
        assert sorted(n for p, n in fake.model.images if p == PROJECT) == ["k3os-v3", "other-v1"]


def _without_credentials(env: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in env.items() if k != "GOOGLE_APPLICATION_CREDENTIALS"}


def _untrusted_key(env: dict[str, str]) -> dict[str, str]:
    stranger = Path(env["HOME"]) / "stranger.json"
    write_service_account_file(stranger, None, PROJECT)  # a fresh key the fake does not trust
    return {**env, "GOOGLE_APPLICATION_CREDENTIALS": str(stranger)}


RUNS = {
    "whoami": Run(lambda tmp: [FACTORY, "whoami", "gcp", "--json"]),
    "no-credentials": Run(lambda tmp: [FACTORY, "whoami", "gcp"], env=_without_credentials),
    "no-credentials-bake": Run(bake_args, env=_without_credentials),
    "rejected": Run(bake_args, env=_untrusted_key),
}


runs = gcp_runs(RUNS)


def test_whoami(runs: dict[str, Outcome]) -> None:
    fake, proc = runs["whoami"].fake, runs["whoami"].proc
    assert proc.returncode == 0, proc.stderr
    who = json.loads(proc.stdout)
    assert who["project"] == PROJECT and who["principal"] == f"baker@{PROJECT}.iam.gserviceaccount.com"
    assert fake.calls == ["projects.get"]


@pytest.mark.parametrize("name", ["no-credentials", "no-credentials-bake"])
def test_missing_credentials_exit_2(runs: dict[str, Outcome], name: str) -> None:
    fake, proc = runs[name].fake, runs[name].proc
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "no GCP credentials found" in proc.stderr
    assert fake.calls == []


def test_rejected_credentials_exit_2(runs: dict[str, Outcome]) -> None:
    fake, proc = runs["rejected"].fake, runs["rejected"].proc
    assert proc.returncode == 2, proc.stderr
    assert "credentials rejected (401)" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert set(fake.calls) == {"projects.get"}  # google-auth refreshes and retries a 401 twice
    assert "BEGIN PRIVATE KEY" not in proc.stderr
