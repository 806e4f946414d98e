"""Packet / Equinix Metal: Accept handling, #!ipxe userdata, the service's error field, the alias."""

from __future__ import annotations

from datasources.model import Dmi, NotDetected, ProviderError
from datasources.providers import packet
from tests.providers._raw import get
from tests.providers.conftest import USERDATA, StartEmulator, fetch, fetch_ok


def test_requests_accept_anything(emulator: StartEmulator) -> None:
    emu = emulator("packet", userdata=USERDATA)
    fetch_ok("packet", emu.url)
    assert [r.path for r in emu.requests] == ["/metadata", "/userdata"]
    assert all(r.headers.get("accept") == "*/*" for r in emu.requests)


def test_emulator_answers_406_to_a_narrow_accept(emulator: StartEmulator) -> None:
    emu = emulator("packet", userdata=USERDATA)
    assert get(emu, "/metadata", {"Accept": "application/vnd.coreos.ignition+json"}).status == 406
    assert get(emu, "/metadata", {"Accept": "application/json"}).status == 200
    assert get(emu, "/userdata", {"Accept": "text/*"}).status == 200


def test_ipxe_userdata_is_ignored_and_logged(emulator: StartEmulator) -> None:
    emu = emulator("packet", userdata=b"#!ipxe\nchain http://boot.example/k3os.ipxe\n")
    got = fetch("packet", emu.url)
    assert got.metadata is not None and got.metadata.userdata is None
    assert any("ipxe" in line for line in got.log)
    assert "chain" not in " ".join(got.log)


def test_metadata_fields(emulator: StartEmulator) -> None:
    md = fetch_ok("packet", emulator("packet").url)
    assert (md.region, md.zone, md.instance_id) == ("eu-central", "europe-west1-b", "4242")


def test_error_field_in_a_success_answer_is_an_error(emulator: StartEmulator) -> None:
    got = fetch("packet", emulator("packet", error="metadata temporarily unavailable").url)
    assert isinstance(got.error, ProviderError)
    assert "temporarily unavailable" in str(got.error)


def test_error_answer_with_a_client_status_is_not_detected(emulator: StartEmulator) -> None:
    got = fetch("packet", emulator("packet", error="Not found", error_status="404").url)
    assert isinstance(got.error, NotDetected)
    assert "Not found" in str(got.error)


def test_alias_equinixmetal_fetches_as_packet(emulator: StartEmulator) -> None:
    emu = emulator("packet", userdata=USERDATA)
    md = packet.datasources_fetch(provider="equinixmetal", ctx=_ctx(emu.url))
    assert md is not None and md.provider == "packet" and md.userdata == USERDATA
    assert packet.datasources_providers()[0].aliases == ("equinixmetal",)


def test_never_claimed_by_dmi() -> None:
    assert packet.datasources_dmi_claims(dmi=Dmi(sys_vendor="Equinix", product_name="c3.small.x86")) is None


def test_addresses_prefer_management_ipv4() -> None:
    network = {
        "addresses": [
            {"address_family": 6, "public": True, "address": "2001:db8::1"},
            {"address_family": 4, "public": True, "management": False, "address": "198.51.100.9"},
            {"address_family": 4, "public": True, "management": True, "address": "198.51.100.1"},
            {"address_family": 4, "public": False, "address": "10.0.0.5", "enabled": False},
            {"address_family": 4, "public": False, "address": "10.0.0.6"},
            "junk",
        ]
    }
    assert packet.addresses(network) == ("198.51.100.1", "10.0.0.6")
    assert packet.addresses("junk") == (None, None)


def _ctx(url: str) -> object:
    import time

    from datasources.model import FetchContext

    return FetchContext("equinixmetal", url, time.monotonic() + 3, Dmi(), {}, lambda line: None)
