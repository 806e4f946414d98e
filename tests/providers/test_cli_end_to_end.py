"""End to end: the real ``datasources fetch`` console script against the emulators over loopback."""

from __future__ import annotations

import gzip
import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.providers.conftest import KEYS, NETWORK_PROVIDERS, USERDATA, StartEmulator, refused_url

pytestmark = pytest.mark.cloud

DATASOURCES = str(Path(sys.executable).parent / "datasources")
ALL_PROVIDERS = ("aws", "gcp", "openstack", "packet", "scaleway", "vultr", "hetzner", "digitalocean", "cdrom")


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A hermetic environment: silent DMI, no cdrom, every provider refused unless a test says otherwise."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATASOURCES_")}
    (tmp_path / "dmi").mkdir()
    env["DATASOURCES_DMI_DIR"] = str(tmp_path / "dmi")
    env["DATASOURCES_CDROM_DEVICES"] = str(tmp_path / "no-such-device")
    env["DATASOURCES_ROOT"] = str(tmp_path / "root")
    for name in ALL_PROVIDERS:
        env[f"DATASOURCES_{name.upper()}_URL"] = refused_url()
    return env


def run(
    env: dict[str, str], out: Path, *providers: str, timeout: str = "5"
) -> tuple[int, dict[str, object], str]:
    """``datasources fetch PROVIDERS --output OUT --json``: exit code, the JSON document, stderr."""
    proc = subprocess.run(
        [DATASOURCES, "fetch", *providers, "--output", str(out), "--json", "--timeout", timeout],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return proc.returncode, json.loads(proc.stdout or "{}"), proc.stderr


@pytest.mark.parametrize("provider", NETWORK_PROVIDERS)
def test_fetch_writes_the_files(
    provider: str, emulator: StartEmulator, env: dict[str, str], tmp_path: Path
) -> None:
    if provider == "scaleway" and os.geteuid() != 0:
        pytest.skip("scaleway userdata needs a source port below 1024 (root)")
    emu = emulator(provider, userdata=USERDATA)
    env[f"DATASOURCES_{provider.upper()}_URL"] = emu.url
    out = tmp_path / "out"
    code, doc, stderr = run(env, out, provider)
    assert code == 0, stderr
    assert doc["provider"] == provider and doc["userdata"] is True
    assert (out / "userdata").read_bytes() == USERDATA
    assert stat.S_IMODE((out / "userdata").stat().st_mode) == 0o600
    assert (out / "local_hostname").read_text() == "node-7\n"
    assert (out / "ssh" / "authorized_keys").read_text().splitlines() == KEYS
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["provider"] == provider and meta["has_userdata"] is True
    assert meta["public_ipv4"] == "203.0.113.7"


def test_first_with_userdata_wins_over_detected_and_absent(
    emulator: StartEmulator, env: dict[str, str], tmp_path: Path
) -> None:
    env["DATASOURCES_DIGITALOCEAN_URL"] = emulator("digitalocean", userdata=None).url
    env["DATASOURCES_VULTR_URL"] = emulator("vultr", userdata=USERDATA).url
    code, doc, stderr = run(env, tmp_path / "out", "hetzner", "digitalocean", "vultr")
    assert code == 0, stderr
    assert doc["provider"] == "vultr"
    outcomes = {a["provider"]: a["outcome"] for a in doc["attempts"]}  # type: ignore[index, union-attr]
    assert outcomes == {"hetzner": "absent", "digitalocean": "detected", "vultr": "userdata"}


def test_failing_cloud_is_an_error_and_the_search_goes_on(
    emulator: StartEmulator, env: dict[str, str], tmp_path: Path
) -> None:
    env["DATASOURCES_GCP_URL"] = emulator("gcp", fail="garbage").url
    env["DATASOURCES_HETZNER_URL"] = emulator("hetzner", userdata=USERDATA).url
    code, doc, stderr = run(env, tmp_path / "out", "gcp", "hetzner")
    assert code == 0, stderr
    assert doc["provider"] == "hetzner"
    outcomes = {a["provider"]: a["outcome"] for a in doc["attempts"]}  # type: ignore[index, union-attr]
    assert outcomes["gcp"] == "error"


def test_dmi_naming_a_cloud_skips_the_others(
    emulator: StartEmulator, env: dict[str, str], tmp_path: Path
) -> None:
    do = emulator("digitalocean", userdata=USERDATA)
    env["DATASOURCES_DIGITALOCEAN_URL"] = do.url
    env["DATASOURCES_HETZNER_URL"] = emulator("hetzner", userdata=None).url
    Path(env["DATASOURCES_DMI_DIR"], "sys_vendor").write_text("Hetzner\n")
    code, doc, stderr = run(env, tmp_path / "out", "digitalocean", "hetzner")
    assert code == 0, stderr
    assert doc["provider"] == "hetzner" and doc["userdata"] is False
    assert do.requests == [], "DigitalOcean must not be contacted when DMI says Hetzner"


def test_gzipped_base64_gcp_userdata_is_decoded_and_decompressed(
    emulator: StartEmulator, env: dict[str, str], tmp_path: Path
) -> None:
    env["DATASOURCES_GCP_URL"] = emulator(
        "gcp", userdata=gzip.compress(USERDATA), user_data_encoding="base64"
    ).url
    code, doc, stderr = run(env, tmp_path / "out", "gcp")
    assert code == 0, stderr
    assert (tmp_path / "out" / "userdata").read_bytes() == USERDATA


def test_hanging_packet_service_does_not_hold_boot(
    emulator: StartEmulator, env: dict[str, str], tmp_path: Path
) -> None:
    env["DATASOURCES_PACKET_URL"] = emulator("packet", fail="hang").url
    code, doc, stderr = run(env, tmp_path / "out", "packet", timeout="1")
    assert code == 1, stderr
    assert doc["attempts"][0]["outcome"] == "absent"  # type: ignore[index]


def test_emulator_command_line(env: dict[str, str], tmp_path: Path) -> None:
    """``python -m datasources.emulator hetzner`` serves what ``datasources fetch hetzner`` reads."""
    userdata = tmp_path / "userdata.yaml"
    userdata.write_bytes(USERDATA)
    server = subprocess.Popen(
        [sys.executable, "-m", "datasources.emulator", "hetzner", "--port", "0", "--userdata", str(userdata)]
        + ["--hostname", "cli-node", "--ssh-key", KEYS[0]],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        assert line.startswith("listening on http://127.0.0.1:")
        env["DATASOURCES_HETZNER_URL"] = line.split()[-1]
        code, doc, stderr = run(env, tmp_path / "out", "hetzner")
        assert code == 0, stderr
        assert (tmp_path / "out" / "hostname").read_text() == "cli-node\n"
        assert (tmp_path / "out" / "userdata").read_bytes() == USERDATA
    finally:
        server.terminate()
        server.wait(10)
