"""Builder spec validation, user-data size and encoding, shellcheck of both scripts."""

from __future__ import annotations

import gzip
import os
import random
import shutil
import string
import subprocess
from pathlib import Path

import pytest

from image_base.builder import (
    USERDATA_LIMIT,
    BuilderSpec,
    BuilderSpecError,
    render_builder_script,
    render_builder_userdata,
)
from tests.installer.conftest import INSTALL_SH

SHA = "ab" * 32
URL = "https://example.invalid/k3os-amd64.iso"

REALISTIC_CONFIG = (
    """\
hostname: k3os-node
ssh_authorized_keys:
- github:someone
- ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGqK0bL2m3f0TQ2V4X8mQ2m0yWk2r8s9w3KxVd5c0b1e ops@example.org
- ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABgQC3"""
    + "x" * 500
    + """ ci@example.org
write_files:
- path: /var/lib/connman/default.config
  owner: root
  permissions: "0644"
  content: |-
    [service_eth0]
    Type=ethernet
    IPv4=dhcp
    IPv6=auto
- path: /etc/motd
  content: "baked by k3os-factory"
run_cmd:
- "echo hello > /tmp/hello"
boot_cmd:
- "ln -sf /usr/share/zoneinfo/UTC /etc/localtime"
k3os:
  data_sources: [aws]
  modules: [kvm, nvme]
  sysctl:
    kernel.printk: "4 4 1 7"
    net.ipv4.ip_forward: "1"
  dns_nameservers: [8.8.8.8, 1.1.1.1]
  ntp_servers: [0.us.pool.ntp.org, 1.us.pool.ntp.org]
  password: rancher-secret
  token: K10abcdef0123456789::server:0123456789abcdef
  k3s_args:
  - server
  - "--disable=traefik"
  - "--node-label=role=edge"
  environment:
    http_proxy: http://proxy.internal:3128
  labels:
    region: eu-west-1
  taints:
  - "key1=value1:NoSchedule"
"""
)


def test_spec_requires_checksum_unless_skipped() -> None:
    with pytest.raises(BuilderSpecError, match="iso_sha256 is required"):
        BuilderSpec(iso_url=URL, iso_sha256=None, config_yaml="")
    with pytest.raises(BuilderSpecError, match="64 hexadecimal"):
        BuilderSpec(iso_url=URL, iso_sha256="xyz" + SHA[3:], config_yaml="")
    with pytest.raises(BuilderSpecError, match="64 hexadecimal"):
        BuilderSpec(iso_url=URL, iso_sha256=SHA + "00", config_yaml="")
    assert BuilderSpec(iso_url=URL, iso_sha256=None, config_yaml="", insecure_skip_checksum=True)


@pytest.mark.parametrize("url", ["ftp://x/k3os.iso", "/local/k3os.iso", "http://", "http://a b/c", ""])
def test_spec_rejects_bad_urls(url: str) -> None:
    with pytest.raises(BuilderSpecError, match="iso_url"):
        BuilderSpec(iso_url=url, iso_sha256=SHA, config_yaml="")


@pytest.mark.parametrize("tty", ["", "ttyS0 console=x", "ttyS0;reboot", "$(id)", "/dev/ttyS0"])
def test_spec_rejects_bad_ttys(tty: str) -> None:
    with pytest.raises(BuilderSpecError, match="tty"):
        BuilderSpec(iso_url=URL, iso_sha256=SHA, config_yaml="", tty=tty)


def test_spec_error_is_a_value_error() -> None:
    assert issubclass(BuilderSpecError, ValueError)


def test_realistic_config_fits_uncompressed() -> None:
    data = render_builder_userdata(BuilderSpec(iso_url=URL, iso_sha256=SHA, config_yaml=REALISTIC_CONFIG))
    assert len(REALISTIC_CONFIG) > 1500
    assert data.startswith(b"#!/bin/bash\n")
    assert len(data) <= USERDATA_LIMIT


def config_with_certificate(size: int) -> str:
    """A config carrying a PEM-like blob of ``size`` random base64 characters (compresses poorly)."""
    rng = random.Random(size)
    alphabet = string.ascii_letters + string.digits + "+/"
    blob = "".join(rng.choice(alphabet) for _ in range(size))
    lines = "\n".join(f"    {blob[i : i + 64]}" for i in range(0, size, 64))
    return (
        REALISTIC_CONFIG
        + "write_files:\n- path: /etc/ssl/private/ca.pem\n  content: |\n    -----BEGIN CERTIFICATE-----\n"
        + lines
        + "\n    -----END CERTIFICATE-----\n"
    )


def test_big_config_is_gzipped_below_the_limit() -> None:
    big = config_with_certificate(6000)
    spec = BuilderSpec(iso_url=URL, iso_sha256=SHA, config_yaml=big)
    script = render_builder_script(spec).encode()
    assert len(script) > USERDATA_LIMIT
    data = render_builder_userdata(spec)
    assert data[:2] == b"\x1f\x8b"
    assert len(data) <= USERDATA_LIMIT
    assert gzip.decompress(data) == script


def test_incompressible_huge_config_is_refused() -> None:
    rng = random.Random(7)
    noise = "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(30000))
    spec = BuilderSpec(iso_url=URL, iso_sha256=SHA, config_yaml=f"hostname: x\n# {noise}\n")
    with pytest.raises(BuilderSpecError, match="over the 16384-byte limit"):
        render_builder_userdata(spec)


def test_rendering_is_deterministic() -> None:
    spec = BuilderSpec(iso_url=URL, iso_sha256=SHA, config_yaml=REALISTIC_CONFIG * 8)
    assert render_builder_userdata(spec) == render_builder_userdata(spec)


CLOUD_INIT_PYTHON = "/usr/bin/python3"
CLOUD_INIT_PROBE = """
import sys
from cloudinit import helpers, user_data
msg = user_data.UserDataProcessor(helpers.Paths({})).process(sys.stdin.buffer.read())
parts = [p for p in msg.walk() if p.get_content_type() == "text/x-shellscript"]
sys.stdout.buffer.write(parts[0].get_payload(decode=True))
"""


@pytest.mark.parametrize("gzipped", [False, True])
def test_cloud_init_reads_the_userdata_as_a_shell_script(gzipped: bool) -> None:
    probe = subprocess.run([CLOUD_INIT_PYTHON, "-c", "import cloudinit"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip("cloud-init is not importable by /usr/bin/python3 (make apt)")
    config = config_with_certificate(6000) if gzipped else REALISTIC_CONFIG
    spec = BuilderSpec(iso_url=URL, iso_sha256=SHA, config_yaml=config)
    data = render_builder_userdata(spec)
    assert (data[:2] == b"\x1f\x8b") is gzipped
    out = subprocess.run(
        [CLOUD_INIT_PYTHON, "-c", CLOUD_INIT_PROBE], input=data, capture_output=True, check=True, timeout=60
    )
    assert out.stdout == render_builder_script(spec).encode()


def _shellcheck(path: Path) -> subprocess.CompletedProcess[str]:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed (make apt)")
    return subprocess.run(["shellcheck", "--shell=bash", str(path)], capture_output=True, text=True)


def test_install_sh_is_shellcheck_clean() -> None:
    result = _shellcheck(INSTALL_SH)
    assert result.returncode == 0, result.stdout
    assert os.access(INSTALL_SH, os.X_OK)


@pytest.mark.parametrize("debug", [False, True])
def test_rendered_builder_script_is_shellcheck_clean(tmp_path: Path, debug: bool) -> None:
    script = tmp_path / "builder.sh"
    spec = BuilderSpec(iso_url=URL + "?a='b'&c=$d", iso_sha256=SHA, config_yaml=REALISTIC_CONFIG, debug=debug)
    script.write_text(render_builder_script(spec))
    result = _shellcheck(script)
    assert result.returncode == 0, result.stdout
