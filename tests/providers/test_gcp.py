"""GCP: the Metadata-Flavor handshake, attribute semantics and the emulator's fidelity."""

from __future__ import annotations

import base64
import json

from datasources import http
from datasources.emulator.base import Emulator, Reply, Request
from datasources.model import NotDetected, ProviderError
from datasources.providers import gcp
from tests.providers.conftest import KEYS, USERDATA, StartEmulator, emulator_config, fetch, fetch_ok

FLAVOR = {"Metadata-Flavor": "Google"}


def get(emu: Emulator, path: str, headers: dict[str, str] | None = None) -> http.Response:
    import time

    return http.request("GET", emu.url + path, deadline=time.monotonic() + 2, headers=headers or {})


class NoFlavorServer(Emulator):
    """Answers like GCE, but without the Metadata-Flavor response header."""

    def route(self, req: Request) -> Reply:
        return Reply(200, json.dumps({"instance": {"hostname": "impostor"}}).encode(), {})


def test_every_request_sends_metadata_flavor(emulator: StartEmulator) -> None:
    emu = emulator("gcp", userdata=USERDATA)
    fetch_ok("gcp", emu.url)
    assert emu.requests and all(r.headers.get("metadata-flavor") == "Google" for r in emu.requests)
    assert len(emu.requests) == 1, "one recursive request is enough"


def test_answer_without_the_flavor_header_is_not_gcp() -> None:
    with NoFlavorServer(emulator_config()) as server:
        got = fetch("gcp", server.url)
    assert isinstance(got.error, NotDetected)
    assert "Metadata-Flavor" in str(got.error)


def test_emulator_refuses_requests_without_the_header(emulator: StartEmulator) -> None:
    emu = emulator("gcp")
    denied = get(emu, "/computeMetadata/v1/instance/hostname")
    assert denied.status == 403
    assert denied.headers["metadata-flavor"] == "Google"
    forwarded = get(emu, "/computeMetadata/v1/instance/hostname", {**FLAVOR, "X-Forwarded-For": "1.2.3.4"})
    assert forwarded.status == 403


def test_emulator_paths_listings_and_missing_keys(emulator: StartEmulator) -> None:
    emu = emulator("gcp", userdata=USERDATA)
    assert get(emu, "/computeMetadata/v1/instance/hostname", FLAVOR).body == b"node-7.c.k3os-factory.internal"
    assert get(emu, "/computeMetadata/v1/instance/zone", FLAVOR).body.endswith(b"/zones/europe-west1-b")
    listing = get(emu, "/computeMetadata/v1/instance/", FLAVOR).text().splitlines()
    assert "attributes/" in listing and "hostname" in listing and "network-interfaces/" in listing
    ip = get(emu, "/computeMetadata/v1/instance/network-interfaces/0/access-configs/0/external-ip", FLAVOR)
    assert ip.body == b"203.0.113.7"
    missing = get(emu, "/computeMetadata/v1/instance/attributes/nope", FLAVOR)
    assert missing.status == 404 and missing.headers["metadata-flavor"] == "Google"
    attrs = get(emu, "/computeMetadata/v1/instance/attributes/?recursive=True", FLAVOR)
    assert json.loads(attrs.body)["user-data"] == USERDATA.decode()
    tree = json.loads(get(emu, "/computeMetadata/v1/instance/?recursive=true", FLAVOR).body)
    assert tree["networkInterfaces"][0]["accessConfigs"][0]["externalIp"] == "203.0.113.7"
    assert get(emu, "/computeMetadata/v1/instance/id?alt=json", FLAVOR).body == b"4242"


def test_zone_region_and_short_hostname(emulator: StartEmulator) -> None:
    md = fetch_ok("gcp", emulator("gcp").url)
    assert (md.zone, md.region) == ("europe-west1-b", "europe-west1")
    assert (md.hostname, md.local_hostname) == ("node-7.c.k3os-factory.internal", "node-7")
    assert md.instance_id == "4242"


def test_base64_encoded_userdata_is_decoded(emulator: StartEmulator) -> None:
    emu = emulator("gcp", userdata=USERDATA, user_data_encoding="base64")
    attr = get(emu, "/computeMetadata/v1/instance/attributes/user-data", FLAVOR).body
    assert attr == base64.b64encode(USERDATA)
    assert fetch_ok("gcp", emu.url).userdata == USERDATA


def test_base64_looking_userdata_without_the_marker_stays_as_is(emulator: StartEmulator) -> None:
    encoded = base64.b64encode(USERDATA)
    assert fetch_ok("gcp", emulator("gcp", userdata=encoded).url).userdata == encoded


def test_bad_base64_is_an_error() -> None:
    try:
        gcp.decode_userdata({"user-data": "!!!not base64", "user-data-encoding": "base64"}, print)
    except ProviderError as exc:
        assert "base64" in str(exc)
    else:
        raise AssertionError("expected ProviderError")


def test_unknown_encoding_is_logged_and_ignored() -> None:
    log: list[str] = []
    assert gcp.decode_userdata({"user-data": "abc", "user-data-encoding": "rot13"}, log.append) == b"abc"
    assert log and "rot13" in log[0]


def test_project_keys_are_added(emulator: StartEmulator) -> None:
    emu = emulator("gcp", project_ssh_keys="ssh-rsa PROJECTKEY1 ops;ssh-ed25519 PROJECTKEY2 ci")
    assert fetch_ok("gcp", emu.url).ssh_keys == [
        *KEYS,
        "ssh-rsa PROJECTKEY1 ops",
        "ssh-ed25519 PROJECTKEY2 ci",
    ]


def test_block_project_ssh_keys_keeps_only_instance_keys(emulator: StartEmulator) -> None:
    emu = emulator("gcp", project_ssh_keys="ssh-rsa PROJECTKEY1 ops", block_project_ssh_keys="TRUE")
    assert fetch_ok("gcp", emu.url).ssh_keys == KEYS


def test_legacy_sshkeys_attribute_is_read(emulator: StartEmulator) -> None:
    assert fetch_ok("gcp", emulator("gcp", legacy_ssh_keys="1").url).ssh_keys == KEYS


def test_key_lines_drop_users_and_expired_google_ssh_keys() -> None:
    assert gcp.key_of_line("alice:ssh-rsa AAAA alice") == "ssh-rsa AAAA alice"
    assert gcp.key_of_line("ssh-rsa AAAA comment:with:colons") == "ssh-rsa AAAA comment:with:colons"
    assert gcp.key_of_line("bob:") is None
    expired = 'bob:ssh-rsa AAAA google-ssh {"userName":"bob","expireOn":"2001-01-01T00:00:00+0000"}'
    assert gcp.key_of_line(expired) is None
    valid = 'bob:ssh-rsa AAAA google-ssh {"userName":"bob","expireOn":"2999-01-01T00:00:00Z"}'
    assert gcp.key_of_line(valid) == valid.split(":", 1)[1]
    assert gcp.key_of_line("bob:ssh-rsa AAAA google-ssh {broken") == "ssh-rsa AAAA google-ssh {broken"


def test_http_404_with_flavor_is_an_error_not_absence(emulator: StartEmulator) -> None:
    """A GCE server that 404s the tree is GCE failing (the flavor header proves where we are)."""

    class Broken(Emulator):
        def route(self, req: Request) -> Reply:
            return Reply(404, b"not found", dict(FLAVOR))

    with Broken(emulator_config()) as server:
        got = fetch("gcp", server.url)
    assert isinstance(got.error, ProviderError)
