"""The aws provider against its emulator, in every IMDS mode, over loopback HTTP."""

from __future__ import annotations

import time

import pytest

from datasources import engine
from datasources.emulator.aws import AwsEmulator
from datasources.emulator.base import EmulatorConfig
from datasources.http import request
from datasources.model import Dmi
from datasources.providers.aws import claims_aws

from .conftest import StartEmulator

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIaws k@aws"


def fetch_aws(
    url: str, base_env: dict[str, str], timeout: float = 5, dmi: Dmi | None = None
) -> engine.FetchResult:
    env = {**base_env, "DATASOURCES_AWS_URL": url}
    lines: list[str] = []
    result = engine.fetch(["aws"], timeout, env, dmi or Dmi(), log=lines.append)
    result.log = lines  # type: ignore[attr-defined]
    return result


@pytest.mark.parametrize("mode", ["optional", "required", "v1", "v1-404", "hop-limit"])
def test_aws_reads_everything_in_each_working_mode(
    mode: str, emulators: StartEmulator, base_env: dict[str, str]
) -> None:
    emu = emulators("aws", userdata=b"#cloud-config\nhostname: a\n", ssh_keys=[KEY, KEY + "2"], imds=mode)
    result = fetch_aws(emu.url, base_env)
    md = result.metadata
    assert md is not None, result.attempts
    assert result.attempts[0].outcome == "userdata"
    assert md.userdata == b"#cloud-config\nhostname: a\n"
    assert md.instance_id == "i-0123456789abcdef0"
    assert md.local_hostname == "aws-node"
    assert md.hostname == "ip-10-0-0-10.us-east-1.compute.internal"
    assert (md.local_ipv4, md.public_ipv4) == ("10.0.0.10", "203.0.113.10")
    assert (md.region, md.zone) == ("us-east-1", "us-east-1a")
    assert md.ssh_keys == [KEY, KEY + "2"]
    puts = [r for r in emu.requests if r.method == "PUT"]
    gets = [r for r in emu.requests if r.method == "GET"]
    assert puts and puts[0].headers["x-aws-ec2-metadata-token-ttl-seconds"] == "21600"
    if mode in ("optional", "required"):
        assert all("x-aws-ec2-metadata-token" in r.headers for r in gets), "token on every GET"
    else:
        assert not any("x-aws-ec2-metadata-token" in r.headers for r in gets)


def test_hop_limit_costs_about_one_second_and_logs_a_hint(
    emulators: StartEmulator, base_env: dict[str, str]
) -> None:
    emu = emulators("aws", imds="hop-limit")
    start = time.monotonic()
    result = fetch_aws(emu.url, base_env)
    assert 0.9 < time.monotonic() - start < 2.0
    assert result.attempts[0].outcome == "detected"
    assert any("HopLimit" in line for line in result.log)  # type: ignore[attr-defined]


def test_disabled_endpoint_is_an_error_and_never_v1(
    emulators: StartEmulator, base_env: dict[str, str]
) -> None:
    emu = emulators("aws", imds="disabled", userdata=b"x")
    result = fetch_aws(emu.url, base_env)
    assert result.metadata is None
    assert result.attempts[0].outcome == "error"
    assert "disabled" in result.attempts[0].detail
    assert [r.method for r in emu.requests] == ["PUT"]


def test_token_is_refreshed_when_it_expires(emulators: StartEmulator, base_env: dict[str, str]) -> None:
    emu = emulators("aws", imds="required", rotate=3, userdata=b"ud", ssh_keys=[KEY])
    result = fetch_aws(emu.url, base_env)
    assert result.has_userdata, result.attempts
    assert emu.tokens_issued >= 3  # type: ignore[attr-defined]


def test_a_refreshed_token_that_is_refused_again_is_an_error_not_a_loop(
    emulators: StartEmulator, base_env: dict[str, str]
) -> None:
    emu = emulators("aws", imds="required", reject_tokens=1, userdata=b"ud")
    start = time.monotonic()
    result = fetch_aws(emu.url, base_env)
    assert time.monotonic() - start < 1.0
    assert result.metadata is None
    assert result.attempts[0].outcome == "error" and "401" in result.attempts[0].detail
    assert emu.tokens_issued == 2, "the first token, then exactly one refresh"  # type: ignore[attr-defined]


def test_openstack_ec2_tree_is_not_taken_for_aws(emulators: StartEmulator, base_env: dict[str, str]) -> None:
    emu = emulators("aws", openstack=1, userdata=b"ud")
    result = fetch_aws(emu.url, base_env)
    assert result.metadata is None
    assert result.attempts[0].outcome == "absent"
    assert "OpenStack" in result.attempts[0].detail


def test_real_openstack_emulator_is_not_taken_for_aws(
    emulators: StartEmulator, base_env: dict[str, str]
) -> None:
    emu = emulators("openstack", userdata=b"ud")
    result = fetch_aws(emu.url, base_env)
    assert result.attempts[0].outcome == "absent", result.attempts


def test_missing_userdata_and_public_ip_are_fine(emulators: StartEmulator, base_env: dict[str, str]) -> None:
    emu = emulators("aws", public_ipv4="")
    result = fetch_aws(emu.url, base_env)
    assert result.attempts[0].outcome == "detected"
    assert result.metadata is not None
    assert result.metadata.userdata is None and result.metadata.public_ipv4 is None
    assert result.metadata.ssh_keys == ["ssh-ed25519 AAAAaws k@aws"]


def test_refused_is_absent_in_milliseconds(base_env: dict[str, str]) -> None:
    start = time.monotonic()
    result = fetch_aws(base_env["DATASOURCES_AWS_URL"], base_env)
    assert time.monotonic() - start < 0.3
    assert result.attempts[0].outcome == "absent"


@pytest.mark.parametrize("fail", ["garbage", "truncated", "500"])
def test_hostile_answers_are_errors(fail: str, emulators: StartEmulator, base_env: dict[str, str]) -> None:
    emu = emulators("aws", fail=fail, userdata=b"ud")
    start = time.monotonic()
    result = fetch_aws(emu.url, base_env, timeout=1.5)
    assert time.monotonic() - start < 2.0
    assert result.metadata is None
    assert result.attempts[0].outcome == "error", result.attempts


def test_hang_is_absent_unless_dmi_names_aws(emulators: StartEmulator, base_env: dict[str, str]) -> None:
    emu = emulators("aws", fail="hang")
    start = time.monotonic()
    result = fetch_aws(emu.url, base_env, timeout=1.5)
    assert time.monotonic() - start < 2.0
    assert result.attempts[0].outcome == "absent"
    result = fetch_aws(emu.url, base_env, timeout=1.5, dmi=Dmi(sys_vendor="Amazon EC2"))
    assert result.attempts[0].outcome == "error"


@pytest.mark.parametrize(
    ("dmi", "claimed"),
    [
        (Dmi(sys_vendor="Amazon EC2"), True),
        (Dmi(product_uuid="EC2E1916-9099-7CAF-FD21-012345678901"), True),
        (Dmi(product_uuid="45E12AEC-DCD1-B213-94ED-012345678ABC"), True),
        (Dmi(sys_vendor="QEMU", product_uuid="5b4f0c2e-0000-0000-0000-000000000000"), False),
        (Dmi(), False),
    ],
)
def test_dmi_claims(dmi: Dmi, claimed: bool) -> None:
    assert claims_aws(dmi) is claimed


def test_emulator_token_protocol(emulators: StartEmulator) -> None:
    emu = emulators("aws", imds="required")
    deadline = time.monotonic() + 5
    put = f"{emu.url}/latest/api/token"
    assert request("PUT", put, deadline=deadline).status == 400
    ttl = {"X-aws-ec2-metadata-token-ttl-seconds": "1"}
    assert request("PUT", put, deadline=deadline, headers={**ttl, "X-Forwarded-For": "1.2.3.4"}).status == 403
    token = request("PUT", put, deadline=deadline, headers=ttl).text()
    leaf = f"{emu.url}/latest/meta-data/instance-id"
    assert request("GET", leaf, deadline=deadline).status == 401
    assert request("GET", leaf, deadline=deadline, headers={"X-aws-ec2-metadata-token": token}).status == 200
    time.sleep(1.05)
    assert request("GET", leaf, deadline=deadline, headers={"X-aws-ec2-metadata-token": token}).status == 401


def test_emulator_listings(emulators: StartEmulator) -> None:
    emu = emulators("aws", ssh_keys=[KEY])
    deadline = time.monotonic() + 5

    def get(path: str) -> tuple[int, str]:
        resp = request("GET", emu.url + path, deadline=deadline)
        return resp.status, resp.text()

    assert "latest" in get("/")[1].splitlines()
    assert get("/latest/meta-data/public-keys/") == (200, "0=key-0")
    assert get("/latest/meta-data/public-keys/0/") == (200, "openssh-key")
    assert "placement/" in get("/latest/meta-data/")[1].splitlines()
    assert get("/2009-04-04/meta-data/instance-id") == (200, "i-0123456789abcdef0")
    assert get("/latest/user-data")[0] == 404
    assert '"region": "us-east-1"' in get("/latest/dynamic/instance-identity/document")[1]


class _HostileDocumentEmulator(AwsEmulator):
    """IMDS whose identity document is JSON nested far too deeply."""

    def _leaves(self) -> dict[str, str]:
        leaves = super()._leaves()
        leaves["dynamic/instance-identity/document"] = "[" * 100_000
        return leaves


def test_hostile_identity_document_only_costs_the_region_from_it(base_env: dict[str, str]) -> None:
    emu = _HostileDocumentEmulator(EmulatorConfig(userdata=b"ud", zone="eu-west-1b")).start()
    try:
        result = fetch_aws(emu.url, base_env)
    finally:
        emu.stop()
    assert result.attempts[0].outcome == "userdata", result.attempts
    assert result.metadata is not None and result.metadata.region == "eu-west-1"
