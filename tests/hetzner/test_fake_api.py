"""The fake Hetzner Cloud API answers as the real one does: auth, error shapes, pagination, label
selectors, locks, validation and async actions, checked with the real SDK and raw HTTP on loopback."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from typing import Any

import pytest
from hcloud import APIException, Client
from hcloud.images import Image
from hcloud.server_types import ServerType
from hcloud.servers import Server

from factory.fakes.hetzner_api import FakeHetznerApi
from factory.fakes.hetzner_state import World, label_problem, matches_selector
from tests.hetzner.conftest import TOKEN


def raw(
    fake: FakeHetznerApi, method: str, path: str, token: str = TOKEN, body: Any = None
) -> tuple[int, Any]:
    """One HTTP request without the SDK: (status, JSON or None)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(fake.url + path, data=data, method=method)
    req.add_header("Authorization", f"Bearer {token}")
    req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            text = resp.read()
            return resp.status, json.loads(text) if text else None
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_wrong_token_is_401_unauthorized_in_the_api_error_shape(fake: FakeHetznerApi) -> None:
    status, body = raw(fake, "GET", "/servers", token="nope")
    assert status == 401
    assert body == {"error": {"code": "unauthorized", "message": "unable to authenticate", "details": {}}}


def test_not_found_and_unknown_routes(fake: FakeHetznerApi) -> None:
    status, body = raw(fake, "GET", "/servers/999")
    assert status == 404 and body["error"]["code"] == "not_found"
    assert raw(fake, "GET", "/volumes")[0] == 404


def test_sdk_pages_through_lists(fake: FakeHetznerApi) -> None:
    client = Client(TOKEN, api_endpoint=fake.url)
    for n in range(51):
        client.servers.create(
            f"s{n}", server_type=ServerType(name="cx22"), image=Image(id=100), labels={"n": str(n)}
        )
    assert len(client.servers.get_all()) == 51
    status, body = raw(fake, "GET", "/servers?per_page=50&page=2")
    assert status == 200 and len(body["servers"]) == 1
    assert body["meta"]["pagination"] == {"page": 2, "per_page": 50, "previous_page": 1, "next_page": None,
                                          "last_page": 2, "total_entries": 51}  # fmt: skip
    assert [s.name for s in client.servers.get_all(label_selector="n in (3,44)")] == ["s3", "s44"]


def test_create_validates_like_the_api(fake: FakeHetznerApi) -> None:
    client = Client(TOKEN, api_endpoint=fake.url)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"name": "bad_name!"}, "invalid_input"),
        ({"server_type": "cx999"}, "invalid_input"),
        ({"labels": {"k3os-factory:bake-id": "x"}}, "invalid_input"),
        ({"user_data": "x" * (32 * 1024 + 1)}, "invalid_input"),
        ({"image": "ubuntu-99.04"}, "invalid_input"),
    ]
    for override, code in cases:
        args: dict[str, Any] = {"name": "ok", "server_type": ServerType(name="cx22"), "image": Image(id=100)}
        for key, value in override.items():
            args[key] = (
                ServerType(name=value)
                if key == "server_type"
                else Image(name=value)
                if key == "image"
                else value
            )
        with pytest.raises(APIException) as err:
            client.servers.create(**args)
        assert err.value.code == code, override
    client.servers.create("dup", server_type=ServerType(name="cx22"), image=Image(id=100))
    with pytest.raises(APIException) as err:
        client.servers.create("dup", server_type=ServerType(name="cx22"), image=Image(id=100))
    assert err.value.code == "uniqueness_error"


def test_actions_finish_after_polls_and_lock_the_server(fake: FakeHetznerApi) -> None:
    fake.world.action_polls = 3
    client = Client(TOKEN, api_endpoint=fake.url, poll_interval=0.01)
    made = client.servers.create("b", server_type=ServerType(name="cx22"), image=Image(id=100))
    assert made.server.status == "initializing" and made.root_password  # no ssh key: a root password
    with pytest.raises(APIException) as err:
        client.servers.create_image(Server(id=made.server.id), description="x")
    assert err.value.code == "locked"
    statuses = [client.actions.get_by_id(made.action.id or 0).status for _ in range(3)]
    assert statuses == ["running", "running", "success"]
    image = client.servers.create_image(Server(id=made.server.id), description="snap", labels={"a": "b"})
    assert image.image.status == "creating" and image.image.type == "snapshot"
    image.action.wait_until_finished()
    assert client.images.get_by_id(image.image.id or 0).status == "available"
    client.servers.delete(Server(id=made.server.id)).wait_until_finished()
    with pytest.raises(APIException):
        client.servers.get_by_id(made.server.id or 0)


def test_the_guest_powers_off_only_a_builder() -> None:
    world = World(action_polls=1, guest_polls=2)
    from factory.fakes.hetzner_server import create_server

    base = {"server_type": "cx22", "image": 100}
    _, builder = create_server(
        world, {**base, "name": "b", "user_data": "install --takeover --poweroff --no-format"}
    )
    _, other = create_server(world, {**base, "name": "o", "user_data": "#cloud-config\n"})
    for _ in range(4):
        world.tick()
    assert world.servers[builder["server"]["id"]]["status"] == "off"
    assert world.servers[other["server"]["id"]]["status"] == "running"


@pytest.mark.parametrize(
    ("labels", "selector", "expected"),
    [
        ({"a": "1"}, "a", True),
        ({"a": "1"}, "!a", False),
        ({"a": "1"}, "a=1", True),
        ({"a": "1"}, "a==2", False),
        ({"a": "1"}, "b!=1", True),
        ({"a": "1", "b": "2"}, "a=1,b!=2", False),
        ({"a": "1"}, "a notin (2,3)", True),
        ({"k3os-factory/bake-id": "x"}, "k3os-factory/bake-id,k3os-factory/state!=complete", True),
    ],
)
def test_label_selectors(labels: dict[str, str], selector: str, expected: bool) -> None:
    assert matches_selector(labels, selector) is expected


def test_label_rules() -> None:
    assert label_problem({"k3os-factory/bake-id": "0b4c7e2a-1111", "team": ""}) is None
    assert label_problem({"k3os-factory:bake-id": "x"})
    assert label_problem({"a": "2024-01-01T00:00:00Z"})
    assert label_problem({"hetzner.cloud/x": "y"})


def test_module_main_serves_and_injects_faults() -> None:
    argv = [sys.executable, "-m", "factory.fakes.hetzner_api", "--token", TOKEN]
    proc = subprocess.Popen([*argv, "--fail", "POST /servers=forbidden"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().split()[-1]
        client = Client(TOKEN, api_endpoint=url)
        assert [loc.name for loc in client.locations.get_all()][:1] == ["fsn1"]
        with pytest.raises(APIException) as err:
            client.servers.create("x", server_type=ServerType(name="cx22"), image=Image(id=100))
        assert err.value.code == "forbidden"
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
