"""Hostile answers never crash a provider: it returns metadata or raises NotDetected/ProviderError."""

from __future__ import annotations

import json

import pytest

from datasources.emulator.base import Emulator, Reply, Request
from datasources.model import Metadata, NotDetected, ProviderError
from tests.providers.conftest import (
    NETWORK_PROVIDERS,
    StartEmulator,
    emulator_config,
    fetch,
    stop_in_background,
)

WRONG_TYPES = {
    "hostname": ["x"],
    "instance": [],
    "project": "p",
    "id": {"a": 1},
    "uuid": 3.5,
    "droplet_id": True,
    "instance-id": None,
    "public_keys": "ssh-rsa NOTALIST",
    "public-keys": {"a": "b"},
    "ssh_keys": 7,
    "ssh_public_keys": [None, 1, {"key": 2}],
    "interfaces": "eth0",
    "network": [],
    "location": "par",
    "public_ip": "1.2.3.4",
    "region": 12,
    "metro": {"code": ["x"]},
    "availability_zone": {},
    "private-networks": {"ip": 1},
}
BODIES = {
    "wrong-types": json.dumps(WRONG_TYPES).encode(),
    "list": b"[1, 2, 3]",
    "string": b'"hello"',
    "number": b"42",
    "deep": b"[" * 100_000,
    "invalid-utf8": b'{"hostname": "\xff\xfe"}',
    "surrogates": b'{"hostname": "\\udcff", "user-data": "\\ud800", "user_data": "\\ud800"}',
    "empty": b"",
    "yaml-bomb": b"a: &a [x, x, x]\nb: &b [*a, *a, *a]\nc: [*b, *b, *b]\n",
}


class Hostile(Emulator):
    """Answers every request with the same body (and the GCE flavor header)."""

    body = b""

    def route(self, req: Request) -> Reply:
        return Reply(200, self.body, {"Metadata-Flavor": "Google"})


@pytest.mark.parametrize("provider", NETWORK_PROVIDERS)
@pytest.mark.parametrize("body", sorted(BODIES))
def test_hostile_body_never_crashes(provider: str, body: str) -> None:
    server = Hostile(emulator_config())
    server.body = BODIES[body]
    server.start()
    try:
        got = fetch(provider, server.url, timeout=2.0)
    finally:
        stop_in_background(server)
    assert got.error is None or isinstance(got.error, NotDetected | ProviderError), repr(got.error)
    if got.metadata is not None:
        assert isinstance(got.metadata, Metadata)
        assert all(isinstance(k, str) for k in got.metadata.ssh_keys)
        for value in (
            got.metadata.hostname,
            got.metadata.instance_id,
            got.metadata.region,
            got.metadata.zone,
        ):
            assert value is None or isinstance(value, str)


@pytest.mark.parametrize("provider", ["hetzner", "packet", "openstack"])
def test_userdata_above_the_cap_is_an_error(provider: str, emulator: StartEmulator) -> None:
    from datasources import http

    emu = emulator(provider, userdata=b"#" * (http.DEFAULT_MAX_BYTES + 1))
    got = fetch(provider, emu.url, timeout=5.0)
    assert isinstance(got.error, ProviderError), got.error
    assert "larger than" in str(got.error)
