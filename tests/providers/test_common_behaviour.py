"""Behaviour every network provider shares, each against its own emulator over loopback HTTP."""

from __future__ import annotations

import importlib

import pytest

from datasources.model import Dmi, NotDetected, ProviderError
from tests.providers.conftest import (
    KEYS,
    NETWORK_PROVIDERS,
    USERDATA,
    StartEmulator,
    fetch,
    fetch_ok,
    refused_url,
)

# DMI that names each provider's cloud (packet has no DMI signal).
CLAIMING_DMI = {
    "gcp": Dmi(product_name="Google Compute Engine"),
    "openstack": Dmi(product_name="OpenStack Nova"),
    "scaleway": Dmi(sys_vendor="Scaleway"),
    "vultr": Dmi(sys_vendor="Vultr"),
    "hetzner": Dmi(sys_vendor="Hetzner"),
    "digitalocean": Dmi(sys_vendor="DigitalOcean"),
}
BASE_URLS = {
    "gcp": "http://metadata.google.internal",
    "openstack": "http://169.254.169.254",
    "packet": "https://metadata.platformequinix.com",
    "scaleway": "http://169.254.42.42",
    "vultr": "http://169.254.169.254",
    "hetzner": "http://169.254.169.254",
    "digitalocean": "http://169.254.169.254",
}
ORDERS = {
    "gcp": 20,
    "openstack": 30,
    "hetzner": 40,
    "scaleway": 50,
    "vultr": 60,
    "digitalocean": 70,
    "packet": 80,
}

all_providers = pytest.mark.parametrize("provider", NETWORK_PROVIDERS)


@all_providers
def test_happy_path_gives_userdata_hostname_keys_and_ids(provider: str, emulator: StartEmulator) -> None:
    emu = emulator(provider, userdata=USERDATA)
    md = fetch_ok(provider, emu.url)
    assert md.provider == provider
    assert md.userdata == USERDATA
    assert md.hostname is not None and md.hostname.split(".")[0] == "node-7"
    assert md.local_hostname == "node-7"
    assert md.ssh_keys == KEYS
    assert md.instance_id
    assert md.public_ipv4 == "203.0.113.7"
    assert md.local_ipv4 == "10.1.2.3"
    assert md.region or md.zone


@all_providers
def test_no_userdata_is_detected_without_userdata(provider: str, emulator: StartEmulator) -> None:
    emu = emulator(provider, userdata=None)
    md = fetch_ok(provider, emu.url)
    assert md.userdata is None
    assert md.hostname is not None


@all_providers
def test_binary_userdata_arrives_byte_for_byte(provider: str, emulator: StartEmulator) -> None:
    import gzip

    payload = gzip.compress(USERDATA) + bytes(range(256))
    emu = emulator(provider, userdata=payload)
    assert fetch_ok(provider, emu.url).userdata == payload


@all_providers
def test_server_errors_become_an_error_within_the_deadline(provider: str, emulator: StartEmulator) -> None:
    emu = emulator(provider, fail="500")
    got = fetch(provider, emu.url, timeout=1.0)
    assert isinstance(got.error, ProviderError), got.error
    assert "500" in str(got.error)
    assert got.elapsed < 1.2
    assert len(emu.requests) >= 2, "5xx answers are retried"


@all_providers
def test_garbage_is_an_error_not_a_crash(provider: str, emulator: StartEmulator) -> None:
    emu = emulator(provider, fail="garbage")
    got = fetch(provider, emu.url)
    assert isinstance(got.error, ProviderError), got.error


@all_providers
def test_truncated_body_is_an_error(provider: str, emulator: StartEmulator) -> None:
    emu = emulator(provider, fail="truncated")
    got = fetch(provider, emu.url)
    assert isinstance(got.error, ProviderError), got.error
    assert "truncated" in str(got.error)


@all_providers
def test_hanging_service_returns_by_the_deadline_as_not_detected(
    provider: str, emulator: StartEmulator
) -> None:
    emu = emulator(provider, fail="hang")
    got = fetch(provider, emu.url, timeout=0.4)
    assert isinstance(got.error, NotDetected), got.error
    assert "no answer before deadline" in str(got.error)
    assert got.elapsed < 0.6


@pytest.mark.parametrize("provider", sorted(CLAIMING_DMI))
def test_hanging_service_is_an_error_when_dmi_names_the_cloud(provider: str, emulator: StartEmulator) -> None:
    emu = emulator(provider, fail="hang")
    got = fetch(provider, emu.url, timeout=0.4, dmi=CLAIMING_DMI[provider])
    assert isinstance(got.error, ProviderError), got.error
    assert got.elapsed < 0.6


@all_providers
def test_slow_service_within_the_deadline_still_answers(provider: str, emulator: StartEmulator) -> None:
    emu = emulator(provider, fail="slow", slow_seconds=0.05, userdata=USERDATA)
    assert fetch_ok(provider, emu.url).userdata == USERDATA


@all_providers
def test_refused_connection_is_not_detected_in_milliseconds(provider: str) -> None:
    got = fetch(provider, refused_url())
    assert isinstance(got.error, NotDetected), got.error
    assert "refused" in str(got.error)
    assert got.elapsed < 0.1


@all_providers
def test_another_clouds_service_is_not_detected(provider: str, emulator: StartEmulator) -> None:
    """Each provider asks for its native path only: a different cloud's service is not mistaken for it."""
    other = "hetzner" if provider != "hetzner" else "digitalocean"
    emu = emulator(other, userdata=USERDATA)
    got = fetch(provider, emu.url)
    assert isinstance(got.error, NotDetected), got.error


@all_providers
def test_plugin_hooks_announce_name_order_base_url(provider: str) -> None:
    module = importlib.import_module(f"datasources.providers.{provider}")
    (info,) = module.datasources_providers()
    assert (info.name, info.cloud, info.order) == (provider, provider, ORDERS[provider])
    assert module.datasources_base_url(provider=provider) == BASE_URLS[provider]
    assert module.datasources_base_url(provider="aws") is None
    assert module.datasources_fetch(provider="aws", ctx=None) is None


@all_providers
def test_dmi_claims_only_its_own_cloud(provider: str) -> None:
    module = importlib.import_module(f"datasources.providers.{provider}")
    assert not module.datasources_dmi_claims(dmi=Dmi())
    assert not module.datasources_dmi_claims(
        dmi=Dmi(sys_vendor="QEMU", product_name="Standard PC (Q35 + ICH9, 2009)")
    )
    for cloud, dmi in CLAIMING_DMI.items():
        claims = module.datasources_dmi_claims(dmi=dmi) or []
        assert claims == ([provider] if cloud == provider else []), (cloud, claims)
