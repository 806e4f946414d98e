"""Vultr: /v1.json with its empty-userdata spellings, and the emulator's path API."""

from __future__ import annotations

import json

import pytest

from datasources.model import ProviderError
from datasources.providers import vultr
from tests.providers._raw import get
from tests.providers.conftest import USERDATA, StartEmulator, fetch_ok


@pytest.mark.parametrize("spelling", ["list", "string"])
def test_empty_userdata_spellings_mean_none(spelling: str, emulator: StartEmulator) -> None:
    emu = emulator("vultr", empty_userdata=spelling)
    assert json.loads(get(emu, "/v1.json").body)["user-data"] == ([] if spelling == "list" else "")
    assert fetch_ok("vultr", emu.url).userdata is None


def test_instance_id_prefers_v2_and_region_is_lower_case(emulator: StartEmulator) -> None:
    md = fetch_ok("vultr", emulator("vultr", instance_v2_id="a1b2c3d4-0000-4000-8000-00000000beef").url)
    assert md.instance_id == "a1b2c3d4-0000-4000-8000-00000000beef"
    assert md.region == "eu-central"
    assert vultr.metadata_from_document({"instanceid": 99}).instance_id == "99"


def test_odd_userdata_type_is_an_error() -> None:
    with pytest.raises(ProviderError):
        vultr.userdata({"not": "a string"})
    assert vultr.userdata("") is None and vultr.userdata([]) is None and vultr.userdata(None) is None


def test_emulator_path_api(emulator: StartEmulator) -> None:
    emu = emulator("vultr", userdata=USERDATA)
    assert get(emu, "/v1/hostname").body == b"node-7"
    assert get(emu, "/v1/region/regioncode").body == b"EU-CENTRAL"
    assert get(emu, "/v1/interfaces/0/ipv4/address").body == b"203.0.113.7"
    assert len(get(emu, "/v1/public-keys").text().splitlines()) == 2
    assert get(emu, "/user-data/user-data").body == USERDATA
    assert get(emu, "/latest/meta-data/hostname").status == 404
    assert get(emulator("vultr", ec2="1"), "/latest/meta-data/hostname").body == b"node-7"
