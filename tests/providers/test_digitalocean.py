"""DigitalOcean: /metadata/v1.json and the emulator's path API."""

from __future__ import annotations

import pytest

from datasources.model import ProviderError
from datasources.providers import digitalocean
from tests.providers._raw import get
from tests.providers.conftest import USERDATA, StartEmulator, fetch_ok


def test_fields(emulator: StartEmulator) -> None:
    md = fetch_ok("digitalocean", emulator("digitalocean", userdata=USERDATA).url)
    assert (md.instance_id, md.region, md.userdata) == ("4242", "eu-central", USERDATA)


def test_emulator_path_api(emulator: StartEmulator) -> None:
    emu = emulator("digitalocean", userdata=USERDATA)
    assert get(emu, "/metadata/v1/hostname").body == b"node-7"
    assert get(emu, "/metadata/v1/id").body == b"4242"
    assert get(emu, "/metadata/v1/user-data").body == USERDATA
    assert get(emu, "/metadata/v1/interfaces/public/0/ipv4/address").body == b"203.0.113.7"
    assert "hostname" in get(emu, "/metadata/v1/").text().splitlines()
    assert get(emulator("digitalocean"), "/metadata/v1/user-data").status == 404


def test_odd_user_data_type_is_an_error() -> None:
    with pytest.raises(ProviderError):
        digitalocean.metadata_from_document({"user_data": ["x"]})
    assert digitalocean.metadata_from_document({"user_data": None}).userdata is None
