"""The fake OpenStack API answers like the real services on the wire (stdlib HTTP, no SDK): auth is
checked, errors have each service's shape, Nova negotiates microversions and validates requests."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from factory.fakes.openstack_api import FakeOpenStackApi
from factory.fakes.openstack_state import NETWORK_ID, UBUNTU_IMAGE_ID, World


@pytest.fixture
def api() -> Iterator[FakeOpenStackApi]:
    """A fake cloud on loopback."""
    fake = FakeOpenStackApi(world=World(action_polls=1))
    fake.start()
    yield fake
    fake.stop()


def _call(
    api: FakeOpenStackApi, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(api.base_url + path, data=data, method=method, headers=headers or {})
    if data is not None and "Content-Type" not in (headers or {}):
        req.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def _token(api: FakeOpenStackApi) -> str:
    p = api.world.project
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": p.user_name, "domain": {"name": "Default"}, "password": p.password}}},
        "scope": {"project": {"name": p.name, "domain": {"name": "Default"}}}}}  # fmt: skip
    status, headers, raw = _call(api, "POST", "/v3/auth/tokens", body)
    assert status == 201
    catalog = {s["type"]: s["endpoints"][0]["url"] for s in json.loads(raw)["token"]["catalog"]}
    assert (
        catalog["compute"] == f"{api.base_url}/compute/v2.1" and catalog["image"] == f"{api.base_url}/image"
    )
    return headers["X-Subject-Token"]


def test_wrong_password_and_missing_token_are_401_in_keystones_shape(api: FakeOpenStackApi) -> None:
    body = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "baker", "domain": {"name": "Default"}, "password": "nope"}}}}}  # fmt: skip
    status, headers, raw = _call(api, "POST", "/v3/auth/tokens", body)
    assert status == 401 and json.loads(raw)["error"]["title"] == "Unauthorized"
    status, headers, raw = _call(api, "GET", "/compute/v2.1/servers")
    assert status == 401 and headers["WWW-Authenticate"].startswith("Keystone uri=")


def test_nova_errors_microversions_and_user_data_validation(api: FakeOpenStackApi) -> None:
    auth = {"X-Auth-Token": _token(api)}
    status, _, raw = _call(api, "GET", "/compute/v2.1/servers/nope", headers=auth)
    assert status == 404 and json.loads(raw)["itemNotFound"]["code"] == 404
    status, _, raw = _call(
        api, "GET", "/compute/v2.1/servers", headers={**auth, "OpenStack-API-Version": "compute 2.200"}
    )
    assert status == 406
    server = {"name": "b", "imageRef": UBUNTU_IMAGE_ID, "flavorRef": "2", "user_data": "not base64!"}
    v279 = {**auth, "OpenStack-API-Version": "compute 2.79"}
    status, _, raw = _call(api, "POST", "/compute/v2.1/servers", {"server": server}, v279)
    assert status == 400 and "'networks' is a required property" in json.loads(raw)["badRequest"]["message"]
    server["networks"] = [{"uuid": NETWORK_ID}]
    status, _, raw = _call(api, "POST", "/compute/v2.1/servers", {"server": server}, v279)
    assert status == 400 and "base64" in raw.decode()
    server["user_data"] = base64.b64encode(b"#!/bin/sh\n").decode()
    status, headers, raw = _call(api, "POST", "/compute/v2.1/servers", {"server": server}, v279)
    assert status == 202 and headers["OpenStack-API-Version"] == "compute 2.79"
    sid = json.loads(raw)["server"]["id"]
    for _ in range(2):
        _call(api, "GET", f"/compute/v2.1/servers/{sid}", headers=auth)
    # before 2.45 createImage answers the image in a Location header, with no body
    status, headers, raw = _call(
        api, "POST", f"/compute/v2.1/servers/{sid}/action", {"createImage": {"name": "s"}}, auth
    )
    assert status == 202 and raw == b"" and "/image/v2/images/" in headers["Location"]
    status, _, raw = _call(
        api, "POST", f"/compute/v2.1/servers/{sid}/action", {"createImage": {"name": "t"}}, auth
    )
    assert status == 409 and "task_state image_uploading" in json.loads(raw)["conflictingRequest"]["message"]


def test_glance_errors_are_html_and_members_need_a_shared_image(api: FakeOpenStackApi) -> None:
    auth = {"X-Auth-Token": _token(api)}
    status, headers, raw = _call(api, "GET", "/image/v2/images/nope", headers=auth)
    assert status == 404 and headers["Content-Type"].startswith("text/html") and b"404 Not Found" in raw
    status, _, _ = _call(api, "DELETE", f"/image/v2/images/{UBUNTU_IMAGE_ID}", headers=auth)
    assert status == 403  # a public image of another project
    api.world.images["mine"] = dict(api.world.images[UBUNTU_IMAGE_ID], id="mine", owner=api.world.project.id,
                                     visibility="private")  # fmt: skip
    status, _, raw = _call(api, "POST", "/image/v2/images/mine/members", {"member": "p2"}, auth)
    assert status == 403 and b"Only shared images have members" in raw
    patch = [{"op": "replace", "path": "/visibility", "value": "shared"}]
    status, _, _ = _call(api, "PATCH", "/image/v2/images/mine", patch, auth)
    assert status == 415  # JSON patch needs Glance's media type
    ctype = {**auth, "Content-Type": "application/openstack-images-v2.1-json-patch"}
    status, _, raw = _call(api, "PATCH", "/image/v2/images/mine", patch, ctype)
    assert status == 200 and json.loads(raw)["visibility"] == "shared"
    status, _, _ = _call(
        api, "PATCH", "/image/v2/images/mine", [{"op": "add", "path": "/status", "value": "x"}], ctype
    )
    assert status == 403


def test_neutron_error_shape(api: FakeOpenStackApi) -> None:
    auth = {"X-Auth-Token": _token(api)}
    status, _, raw = _call(api, "GET", "/networking/v2.0/networks/nope", headers=auth)
    assert status == 404 and json.loads(raw)["NeutronError"]["type"] == "NetworkNotFound"
