"""Scaleway: userdata only from a source port below 1024, and the clear error when that is not allowed."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from datasources.providers import scaleway
from tests.providers._raw import get
from tests.providers.conftest import USERDATA, StartEmulator, fetch_ok

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="binding source ports below 1024 needs root")


@needs_root
def test_userdata_comes_from_a_privileged_source_port(emulator: StartEmulator) -> None:
    emu = emulator("scaleway", userdata=USERDATA)
    md = fetch_ok("scaleway", emu.url)
    assert md.userdata == USERDATA
    userdata_requests = [r for r in emu.requests if r.path == "/user_data/cloud-init"]
    assert userdata_requests and all(0 < r.client_port < 1024 for r in userdata_requests)


@needs_root
def test_metadata_fields(emulator: StartEmulator) -> None:
    md = fetch_ok("scaleway", emulator("scaleway").url)
    assert (md.zone, md.region, md.instance_id) == ("europe-west1-b", "europe-west1", "4242")


def test_emulator_refuses_unprivileged_ports_with_an_explanation(emulator: StartEmulator) -> None:
    emu = emulator("scaleway", userdata=USERDATA)
    refused = get(emu, "/user_data/cloud-init")
    assert refused.status == 403
    assert b"below 1024" in refused.body
    assert (
        get(emulator("scaleway", userdata=USERDATA, privileged_port="0"), "/user_data/cloud-init").body
        == USERDATA
    )


def test_emulator_legacy_conf_and_listing(emulator: StartEmulator) -> None:
    emu = emulator("scaleway", userdata=USERDATA, privileged_port="0")
    legacy = get(emu, "/conf").text().splitlines()
    assert "HOSTNAME=node-7" in legacy and "SSH_PUBLIC_KEYS=2" in legacy
    assert json.loads(get(emu, "/user_data").body) == {"user_data": ["cloud-init"]}
    assert get(emu, "/vendor_data/cloud-init").status == 404


def test_tag_keys_are_read() -> None:
    conf = {"ssh_public_keys": [{"key": "ssh-rsa A a"}, "junk"], "tags": ["AUTHORIZED_KEY=ssh-rsa_B_b", 7]}
    assert scaleway.ssh_keys(conf) == ["ssh-rsa A a", "ssh-rsa B b"]


CHILD = """
import encodings.idna, json, os, sys, time
from datasources.model import Dmi, FetchContext
from datasources.providers import scaleway
ctx = FetchContext("scaleway", sys.argv[1], time.monotonic() + 3, Dmi(), {}, print)
os.setgroups([])
os.setgid(65534)
os.setuid(65534)
try:
    scaleway.datasources_fetch(provider="scaleway", ctx=ctx)
    print("no error")
except Exception as exc:
    print(type(exc).__name__, exc)
"""


@needs_root
def test_unprivileged_process_gets_a_clear_error(emulator: StartEmulator) -> None:
    """Drop root in a child process (after imports) so binding a port below 1024 really fails."""
    with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
        if int(f.read()) < 1024:
            pytest.skip("this kernel lets unprivileged processes bind ports below 1024")
    emu = emulator("scaleway", userdata=USERDATA)
    child = subprocess.run(
        [sys.executable, "-c", CHILD, emu.url], capture_output=True, text=True, timeout=30, check=False
    )
    assert child.returncode == 0, child.stderr
    assert child.stdout.strip() == f"ProviderError {scaleway.NOT_PERMITTED}"
    assert not [r for r in emu.requests if r.path == "/user_data/cloud-init"]
