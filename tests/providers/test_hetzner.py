"""Hetzner: native routes only (no EC2 tree since 2026-08-01), YAML metadata, empty userdata."""

from __future__ import annotations

import json

import pytest
import yaml

from datasources.model import ProviderError
from datasources.providers._documents import parse_yaml_mapping
from tests.providers._raw import get
from tests.providers.conftest import KEYS, USERDATA, StartEmulator, fetch_ok


@pytest.mark.parametrize(
    "path",
    ["/latest/meta-data/hostname", "/latest/user-data", "/2009-04-04/meta-data/instance-id", "/latest/"],
)
def test_emulator_has_no_ec2_routes(path: str, emulator: StartEmulator) -> None:
    assert get(emulator("hetzner", userdata=USERDATA), path).status == 404


def test_only_native_paths_are_asked(emulator: StartEmulator) -> None:
    emu = emulator("hetzner", userdata=USERDATA)
    fetch_ok("hetzner", emu.url)
    assert [r.path for r in emu.requests] == ["/hetzner/v1/metadata", "/hetzner/v1/userdata"]


@pytest.mark.parametrize("empty", ["200", "204"])
def test_empty_userdata_is_none(empty: str, emulator: StartEmulator) -> None:
    emu = emulator("hetzner", empty_userdata=empty)
    assert get(emu, "/hetzner/v1/userdata").status == int(empty)
    assert fetch_ok("hetzner", emu.url).userdata is None


def test_metadata_yaml_and_leaves(emulator: StartEmulator) -> None:
    emu = emulator("hetzner")
    doc = yaml.safe_load(get(emu, "/hetzner/v1/metadata").body)
    assert doc["instance-id"] == 4242 and doc["public-keys"] == KEYS
    assert get(emu, "/hetzner/v1/metadata/hostname").body == b"node-7"
    assert json.loads(get(emu, "/hetzner/v1/metadata/public-keys").body) == KEYS
    assert yaml.safe_load(get(emu, "/hetzner/v1/metadata/private-networks").body)[0]["ip"] == "10.1.2.3"
    md = fetch_ok("hetzner", emu.url)
    assert (md.instance_id, md.region, md.zone) == ("4242", "eu-central", "europe-west1-b")


@pytest.mark.parametrize("body", [b"- a list\n", b"key: [unclosed\n", b"\x00\xff", b"[" * 5000, b""])
def test_bad_yaml_is_an_error(body: bytes) -> None:
    with pytest.raises(ProviderError):
        parse_yaml_mapping(body, "metadata")


def test_yaml_is_not_imported_by_loading_the_plugin() -> None:
    import subprocess
    import sys

    code = "import sys, datasources.providers.hetzner; print('yaml' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
