"""``factory gc/images/whoami openstack`` against the fake cloud, with leftovers made by a real bake
that was SIGKILLed (no cleanup ran, the journal stays with a dead pid)."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest

from factory.fakes.openstack_api import FakeOpenStackApi
from factory.fakes.openstack_state import now_iso
from tests.cloudkit import run_together
from tests.openstack.conftest import BAKE_KEY, FACTORY, STATE_KEY, bake_args, run_factory

pytestmark = pytest.mark.cloud


def _killed_bake_after_image(fake: FakeOpenStackApi, env: dict[str, str], tmp_path: Path) -> str:
    """Start a bake whose image never becomes active, SIGKILL it once the image exists; its bake id."""
    fake.world.action_polls = 10_000  # the snapshot stays queued, the builder stays BUILD...
    proc = subprocess.Popen(
        bake_args(tmp_path), env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True
    )
    assert proc.stderr is not None
    deadline = time.monotonic() + 20
    for line in proc.stderr:
        if "wait-running: waiting" in line:
            with fake.world.lock:  # ...until the test lets it run and stop, so an image gets made
                for state in fake.world.servers.values():
                    state.doc["status"] = "SHUTOFF"
                    state.doc["OS-EXT-STS:task_state"] = None
        if "wait-image: waiting" in line or time.monotonic() > deadline:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    fake.world.action_polls = 1
    labelled = fake.labelled(BAKE_KEY)
    assert len(labelled["servers"]) == 1 and len(labelled["images"]) == 1, fake.calls
    return str(fake.world.images[labelled["images"][0]][BAKE_KEY])


def test_gc_dry_run_then_gc_removes_the_leftovers_of_a_killed_bake(
    fake: FakeOpenStackApi, os_env: dict[str, str], tmp_path: Path
) -> None:
    bake_id = _killed_bake_after_image(fake, os_env, tmp_path)
    dry, young = run_together(  # both only look
        ([FACTORY, "gc", "openstack", "--dry-run"], os_env),
        ([FACTORY, "gc", "openstack", "--older-than", "1h"], os_env),
    )
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.count("\nwould remove  ") == 2 and bake_id in dry.stdout
    assert len(fake.labelled(BAKE_KEY)["servers"]) == 1
    assert not [c for c in fake.calls if c.startswith("DELETE")]
    assert young.returncode == 0 and "nothing to remove" in young.stderr
    proc = run_factory([FACTORY, "gc", "openstack"], os_env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("removed") == 2
    assert fake.labelled(BAKE_KEY) == {"servers": [], "images": []}


def test_gc_never_touches_finished_images(
    fake: FakeOpenStackApi, os_env: dict[str, str], tmp_path: Path
) -> None:
    done = run_factory(bake_args(tmp_path, "--json"), os_env)
    assert done.returncode == 0, done.stderr
    image_id = json.loads(done.stdout)["artifacts"][0]["image_id"]
    proc = run_factory([FACTORY, "gc", "openstack"], os_env)
    assert proc.returncode == 0 and "nothing to remove" in proc.stderr
    assert fake.world.images[image_id][STATE_KEY] == "complete"


NAMES = ("k3os-a-1", "k3os-a-2", "other-1")


def test_images_list_and_prune(fake: FakeOpenStackApi, os_env: dict[str, str], tmp_path: Path) -> None:
    procs = run_together(*[(bake_args(tmp_path / name, "--name", name, "--json"), os_env) for name in NAMES])
    made = []
    for age, proc in zip((300, 200, 100), procs, strict=True):
        assert proc.returncode == 0, proc.stderr
        made.append(json.loads(proc.stdout)["artifacts"][0]["image_id"])
        with fake.world.lock:  # Glance times have second resolution: make the order certain
            fake.world.images[made[-1]]["created_at"] = now_iso(-age)
    prune = [FACTORY, "images", "openstack", "prune", "--keep", "1", "--name-prefix", "k3os-a-"]
    listed, dry = run_together(  # both only look
        ([FACTORY, "images", "openstack", "list", "--json"], os_env),
        ([*prune, "--dry-run"], os_env),
    )
    rows = json.loads(listed.stdout)
    assert [r["name"] for r in rows] == ["other-1", "k3os-a-2", "k3os-a-1"]
    assert all(r["region"] == "RegionOne" for r in rows)  # and never the Ubuntu source images
    assert dry.returncode == 0 and made[0] in dry.stdout and made[0] in fake.world.images
    proc = run_factory(prune, os_env)
    assert proc.returncode == 0, proc.stderr
    assert made[0] not in fake.world.images and made[1] in fake.world.images and made[2] in fake.world.images


def test_whoami_with_password_and_with_an_application_credential(
    fake: FakeOpenStackApi, os_env: dict[str, str]
) -> None:
    project = fake.world.project
    env = {
        k: v for k, v in os_env.items() if not k.startswith("OS_") or k in ("OS_AUTH_URL", "OS_REGION_NAME")
    }
    env.update(
        OS_AUTH_TYPE="v3applicationcredential",
        OS_APPLICATION_CREDENTIAL_ID=project.app_cred_id,
        OS_APPLICATION_CREDENTIAL_SECRET=project.app_cred_secret,
    )
    whoami = [FACTORY, "whoami", "openstack", "--json"]
    proc, by_app_cred = run_together((whoami, os_env), (whoami, env))
    assert proc.returncode == 0, proc.stderr
    who = json.loads(proc.stdout)
    assert who["project"] == project.name and who["project_id"] == project.id
    assert who["user"] == f"{project.user_name} ({project.user_id})" and who["region"] == "RegionOne"
    proc = by_app_cred
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["project_id"] == project.id
    assert project.app_cred_secret not in proc.stdout + proc.stderr


def test_whoami_with_clouds_yaml(fake: FakeOpenStackApi, os_env: dict[str, str], tmp_path: Path) -> None:
    project = fake.world.project
    config = tmp_path / "clouds.yaml"
    config.write_text(
        "clouds:\n  fakecloud:\n    region_name: RegionOne\n    auth:\n"
        f"      auth_url: {fake.auth_url}\n      username: {project.user_name}\n"
        f"      password: {project.password}\n      project_name: {project.name}\n"
        "      user_domain_name: Default\n      project_domain_name: Default\n"
    )
    env = {k: v for k, v in os_env.items() if not k.startswith("OS_")}
    env["OS_CLIENT_CONFIG_FILE"] = str(config)
    proc, missing = run_together(
        ([FACTORY, "whoami", "openstack", "--os-cloud", "fakecloud", "--json"], env),
        ([FACTORY, "whoami", "openstack", "--os-cloud", "nope"], env),
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["project"] == project.name
    assert missing.returncode == 2 and "nope" in missing.stderr and missing.stderr.count("\n") == 1


@pytest.mark.parametrize("drop", ["all", "password"])
def test_whoami_without_usable_credentials_is_exit_2_one_line(os_env: dict[str, str], drop: str) -> None:
    env = {k: v for k, v in os_env.items() if not k.startswith("OS_")} if drop == "all" else dict(os_env)
    if drop == "password":
        env["OS_PASSWORD"] = "not-the-password"
    proc = run_factory([FACTORY, "whoami", "openstack"], env)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("factory whoami openstack: ")
    assert "not-the-password" not in proc.stderr and "Traceback" not in proc.stderr
