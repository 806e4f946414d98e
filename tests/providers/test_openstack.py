"""OpenStack: version negotiation on the native tree, and the EC2-compatible tree the emulator also serves."""

from __future__ import annotations

import json

from datasources.model import Dmi
from datasources.providers import openstack
from tests.providers._raw import get
from tests.providers.conftest import USERDATA, StartEmulator, fetch_ok


def fetched_paths(emu: object) -> list[str]:
    return [r.path for r in emu.requests]  # type: ignore[attr-defined]


def test_newest_known_version_is_used(emulator: StartEmulator) -> None:
    emu = emulator("openstack", userdata=USERDATA)
    md = fetch_ok("openstack", emu.url)
    assert md.userdata == USERDATA
    assert "/openstack/2018-08-27/meta_data.json" in fetched_paths(emu)
    assert (md.instance_id, md.zone) == ("4242", "europe-west1-b")


def test_older_cloud_gets_its_newest_version(emulator: StartEmulator) -> None:
    emu = emulator("openstack", versions="2012-08-10,2013-04-04,2015-10-15")
    fetch_ok("openstack", emu.url)
    assert "/openstack/2015-10-15/meta_data.json" in fetched_paths(emu)


def test_unknown_versions_fall_back_to_latest(emulator: StartEmulator) -> None:
    emu = emulator("openstack", versions="2031-01-01", userdata=USERDATA)
    assert fetch_ok("openstack", emu.url).userdata == USERDATA
    assert "/openstack/latest/meta_data.json" in fetched_paths(emu)


def test_choose_version_reads_the_listing() -> None:
    assert openstack.choose_version(b"2012-08-10\n2016-06-30\nlatest\n") == "2016-06-30"
    assert openstack.choose_version(b"\xff\xfe garbage") == "latest"


def test_user_data_404_means_none(emulator: StartEmulator) -> None:
    emu = emulator("openstack")
    assert get(emu, "/openstack/2018-08-27/user_data").status == 404
    assert fetch_ok("openstack", emu.url).userdata is None


def test_emulator_also_serves_the_ec2_tree_and_no_token_route(emulator: StartEmulator) -> None:
    emu = emulator("openstack", userdata=USERDATA)
    assert get(emu, "/latest/meta-data/hostname").body == b"node-7"
    assert get(emu, "/latest/meta-data/public-keys").text().splitlines() == ["0=key-0", "1=key-1"]
    assert get(emu, "/latest/meta-data/public-keys/0/openssh-key").text().startswith("ssh-ed25519 ")
    assert get(emu, "/latest/user-data").body == USERDATA
    assert get(emu, "/openstack").text().splitlines()[-1] == "latest"
    assert "openstack" in get(emu, "/").text().splitlines()
    import time

    from datasources import http

    put = http.request(
        "PUT",
        emu.url + "/latest/api/token",
        deadline=time.monotonic() + 2,
        headers={"X-aws-ec2-metadata-token-ttl-seconds": "21600"},
    )
    assert put.status in (404, 405)
    meta = json.loads(get(emu, "/openstack/latest/meta_data.json").body)
    assert meta["uuid"] == "4242" and len(meta["public_keys"]) == 2


def test_addresses_are_optional(emulator: StartEmulator) -> None:
    md = fetch_ok("openstack", emulator("openstack", ec2="0").url)
    assert (md.public_ipv4, md.local_ipv4) == (None, None)
    assert md.hostname == "node-7"


def test_keys_fall_back_to_the_keys_list() -> None:
    assert openstack.public_keys({"keys": [{"data": "ssh-rsa X a\n"}, {"data": 5}, "junk"]}) == [
        "ssh-rsa X a"
    ]


def test_dmi_table() -> None:
    assert openstack.dmi_names_openstack(Dmi(product_name="OpenStack Compute"))
    assert openstack.dmi_names_openstack(Dmi(chassis_asset_tag="HUAWEICLOUD"))
    assert openstack.dmi_names_openstack(Dmi(chassis_asset_tag="OpenTelekomCloud"))
    assert not openstack.dmi_names_openstack(Dmi(sys_vendor="OpenStack Foundation", product_name="KVM"))
