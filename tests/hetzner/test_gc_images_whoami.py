"""``factory gc|images|whoami hetzner`` through the real console script against the fake API; leftovers
are made with the real SDK (or by a SIGKILLed bake)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from hcloud import Client
from hcloud.images import Image
from hcloud.server_types import ServerType
from hcloud.servers import Server

from factory.fakes.hetzner_api import FakeHetznerApi
from factory.journal import Journal, Resource
from tests.cloudkit import kill_when, run_together
from tests.hetzner.conftest import BAKE_LABEL, FACTORY, STATE_LABEL, TOKEN, bake_args, run_factory

pytestmark = pytest.mark.cloud
BAKE = "0b4c7e2a-1111-4222-8333-444455556666"


def sdk(fake: FakeHetznerApi) -> Client:
    """The real SDK, in this process, pointed at the fake."""
    return Client(TOKEN, api_endpoint=fake.url, poll_interval=0.01)


def make_server(client: Client, name: str, labels: dict[str, str]) -> int:
    """A running server (no builder user data, so it never powers itself off)."""
    made = client.servers.create(
        name, server_type=ServerType(name="cx22"), image=Image(id=100), labels=labels
    )
    made.action.wait_until_finished()
    return int(made.server.id or 0)


def make_snapshot(client: Client, server_id: int, description: str, labels: dict[str, str]) -> int:
    """A snapshot of ``server_id`` with ``labels``, waited until available."""
    made = client.servers.create_image(Server(id=server_id), description=description, labels=labels)
    made.action.wait_until_finished()
    return int(made.image.id or 0)


@pytest.fixture
def leftovers(fake: FakeHetznerApi) -> dict[str, int]:
    """A labelled server and a pending snapshot (leftovers), a finished snapshot and an unlabelled server."""
    client = sdk(fake)
    left = make_server(client, "k3os-builder-0b4c7e2a", {BAKE_LABEL: BAKE})
    pending = make_snapshot(client, left, "k3os-half", {BAKE_LABEL: BAKE, STATE_LABEL: "pending"})
    done = make_snapshot(client, left, "k3os-done", {BAKE_LABEL: BAKE, STATE_LABEL: "complete"})
    other = make_server(client, "someone-elses", {"team": "db"})
    return {"server": left, "pending": pending, "done": done, "other": other}


def test_gc_dry_run_deletes_nothing_then_gc_removes_the_leftovers(
    fake: FakeHetznerApi, hz_env: dict[str, str], leftovers: dict[str, int]
) -> None:
    before = fake.labelled(BAKE_LABEL)
    seeded = len(fake.calls)
    dry, young = run_together(  # both only look
        ([FACTORY, "gc", "hetzner", "--dry-run"], hz_env),
        ([FACTORY, "gc", "hetzner", "--older-than", "1h"], hz_env),
    )
    assert dry.returncode == 0, dry.stderr
    assert f"would remove  server {leftovers['server']} (fsn1) bake {BAKE}" in dry.stdout
    assert (
        f"image {leftovers['pending']} (global)" in dry.stdout
        and f"image {leftovers['done']}" not in dry.stdout
    )
    assert fake.labelled(BAKE_LABEL) == before
    assert not [c for c in fake.calls[seeded:] if c.startswith(("DELETE", "POST", "PUT"))]
    assert young.returncode == 0 and "nothing to remove" in young.stderr
    assert fake.labelled(BAKE_LABEL) == before
    proc = run_factory([FACTORY, "gc", "hetzner"], hz_env)
    assert proc.returncode == 0, proc.stderr
    assert f"removed  server {leftovers['server']}" in proc.stdout
    assert fake.labelled(BAKE_LABEL) == {"servers": [], "images": [leftovers["done"]]}
    assert leftovers["other"] in fake.world.servers


def test_gc_cleans_up_after_a_sigkilled_bake(
    fake: FakeHetznerApi, hz_env: dict[str, str], tmp_path: Path
) -> None:
    fake.world.guest_poweroff = False
    kill_when(bake_args(tmp_path), hz_env, "wait-stopped: waiting")
    assert len(fake.labelled(BAKE_LABEL)["servers"]) == 1
    journals = list((tmp_path / "state" / "journal").glob("*.jsonl"))
    assert len(journals) == 1 and '"event": "created"' in journals[0].read_text()
    gc = run_factory([FACTORY, "gc", "hetzner"], hz_env)
    assert gc.returncode == 0, gc.stderr
    assert fake.labelled(BAKE_LABEL) == {"servers": [], "images": []}


def test_images_list_and_prune(fake: FakeHetznerApi, hz_env: dict[str, str]) -> None:
    client = sdk(fake)
    server = make_server(client, "src", {})
    ids = [make_snapshot(client, server, d, {STATE_LABEL: "complete", BAKE_LABEL: BAKE})
           for d in ("k3os-a", "k3os-b", "k3os-c", "other-x")]  # fmt: skip
    make_snapshot(client, server, "k3os-pending", {STATE_LABEL: "pending", BAKE_LABEL: BAKE})
    prune_args = [FACTORY, "images", "hetzner", "prune", "--keep", "1", "--name-prefix", "k3os-"]
    listed, dry = run_together(  # both only look
        ([FACTORY, "images", "hetzner", "list", "--json"], hz_env), ([*prune_args, "--dry-run"], hz_env)
    )
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [r["name"] for r in rows] == ["other-x", "k3os-c", "k3os-b", "k3os-a"]
    assert dry.returncode == 0 and dry.stdout.count("would delete") == 2
    assert all(i in fake.world.images for i in ids)
    prune = run_factory(
        [FACTORY, "images", "hetzner", "prune", "--keep", "1", "--name-prefix", "k3os-"], hz_env
    )
    assert prune.returncode == 0, prune.stderr
    assert [i in fake.world.images for i in ids] == [False, False, True, True]


def test_whoami(fake: FakeHetznerApi, hz_env: dict[str, str]) -> None:
    proc = run_factory([FACTORY, "whoami", "hetzner", "--json"], hz_env)
    assert proc.returncode == 0, proc.stderr
    who = json.loads(proc.stdout)
    assert who["endpoint"] == fake.url and who["locations"] == "fsn1,nbg1,hel1,ash"
    assert TOKEN not in proc.stdout + proc.stderr
    started = time.monotonic()
    missing = run_factory(
        [FACTORY, "whoami", "hetzner"], {k: v for k, v in hz_env.items() if k != "HCLOUD_TOKEN"}
    )
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "HCLOUD_TOKEN" in missing.stderr
    assert time.monotonic() - started < 10


def test_gc_skips_a_bake_still_running_on_this_host(
    fake: FakeHetznerApi, hz_env: dict[str, str], leftovers: dict[str, int], tmp_path: Path
) -> None:
    journal = Journal(
        BAKE, "hetzner", "k3os-live", directory=tmp_path / "state" / "journal"
    )  # our pid: alive
    journal.created(Resource("server", str(leftovers["server"]), "fsn1"))
    proc = run_factory([FACTORY, "gc", "hetzner"], hz_env)
    assert proc.returncode == 0 and "nothing to remove" in proc.stderr
    assert leftovers["server"] in fake.world.servers and leftovers["pending"] in fake.world.images
