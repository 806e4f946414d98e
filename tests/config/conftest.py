"""Shared fixtures for the k3OS config tests: a config using every key and a fake node root."""

from __future__ import annotations

import base64
import gzip
from pathlib import Path

import pytest

GZ_B64 = base64.b64encode(gzip.compress(b"gzipped and base64\n")).decode()

#: A config that sets every key of k3OS's configuration reference.
FULL_CONFIG = f"""\
ssh_authorized_keys:
- ssh-ed25519 AAAAC3Nza system-key
- github:octocat
write_files:
- path: /etc/plain.txt
  content: |
    plain text
  owner: root:root
  permissions: '0640'
- path: /opt/app/b64.bin
  encoding: b64
  content: aGVsbG8gYjY0Cg==
  permissions: '0600'
- path: /opt/app/gzb64.txt
  encoding: gzip+base64
  content: {GZ_B64}
- path: /usr/local/bin/tool
  content: !!binary |
    IyEvYmluL3NoCmVjaG8gdG9vbAo=
  permissions: '0755'
  owner: rancher:rancher
hostname: node-1
init_cmd:
- echo init
boot_cmd:
- [touch, /tmp/booted]
run_cmd:
- echo run one
- [/bin/true, two]
k3os:
  data_sources: [aws, cdrom]
  modules: [kvm, nvme]
  sysctl:
    kernel.printk: 4 4 1 7
    kernel.kptr_restrict: "1"
  ntp_servers: [0.pool.ntp.org, 1.pool.ntp.org]
  dns_nameservers: [8.8.8.8, 1.1.1.1]
  wifi:
  - name: home
    passphrase: mypassword
  - name: cafe
  password: supersecure
  server_url: https://server:6443
  token: K10abc::node:secret-token
  labels:
    region: us-west-1
    tier: edge
  k3s_args: [agent, --kubelet-arg=max-pods=50]
  environment:
    http_proxy: http://proxy:3128
    NO_PROXY: "localhost,127.0.0.1"
  taints: ["dedicated=edge:NoSchedule"]
  mode: disk
  fallback_mode: install
  install:
    force_efi: true
    device: /dev/vda
    config_url: https://example.invalid/config.yaml
    silent: true
    iso_url: https://example.invalid/k3os.iso
    power_off: true
    no_format: false
    debug: true
    tty: ttyS0
"""

PASSWD = "root:x:0:0:root:/root:/bin/sh\nrancher:x:1100:1100::/home/rancher:/bin/sh\n"
GROUP = "root:x:0:\nshadow:x:42:\nrancher:x:1100:\n"


@pytest.fixture
def fake_root(tmp_path: Path) -> Path:
    """An empty node root with the users apply needs (root, rancher) and an /etc/shadow."""
    root = tmp_path / "root"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text(PASSWD)
    (root / "etc" / "group").write_text(GROUP)
    (root / "etc" / "shadow").write_text("root:*:19000:0:99999:7:::\nrancher:!:19000:0:99999:7:::\n")
    (root / "etc" / "shadow").chmod(0o640)
    return root


def write(path: Path, text: str | bytes) -> Path:
    """Create ``path`` (and parents) with ``text``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path
