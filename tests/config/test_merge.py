"""Loading from a fake root with all five sources, in k3OS order; userdata script vs YAML."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from image_base.config import ConfigError, load_merged
from image_base.config.encoding import decode_content
from image_base.config.load import config_sources

from .conftest import write


@pytest.fixture
def all_sources(tmp_path: Path) -> Path:
    root = tmp_path / "node"
    write(
        root / "k3os/system/config.yaml",
        "hostname: from-system\nssh_authorized_keys: [key-system]\n"
        "k3os:\n  token: system-token\n  labels: {a: system, b: system}\n  k3s_args: [server]\n"
        "  data_sources: [aws]\n  modules: [kvm]\n  install: {device: /dev/vda, debug: true}\n"
        "run_cmd: [echo system]\n",
    )
    write(
        root / "proc/cmdline", "console=ttyS0 hostname=from-cmdline k3os.labels[b]=cmdline k3os.module=kvm\n"
    )
    write(
        root / "var/lib/rancher/k3os/config.yaml",
        "hostname: from-local\nk3os:\n  k3s_args: [agent]\n  install: {debug: false}\n  modules: [nvme]\n",
    )
    write(root / "run/config/local_hostname", "from-metadata\n")
    write(root / "run/config/ssh/authorized_keys", "key-meta-1\n\n  key-meta-2  \nkey-system\n")
    write(root / "run/config/userdata", "#cloud-config\nhostname: from-userdata\nrun_cmd: [echo userdata]\n")
    write(root / "var/lib/rancher/k3os/config.d/20-second.yaml", "k3os:\n  token: second-token\n")
    write(
        root / "var/lib/rancher/k3os/config.d/10-first.yaml",
        "hostname: from-config-d\nk3os: {token: first}\n",
    )
    return root


def test_sources_are_read_in_k3os_order(all_sources: Path) -> None:
    names = [name for name, _ in config_sources(all_sources)]
    assert names == [
        str(all_sources / "k3os/system/config.yaml"),
        "kernel cmdline",
        str(all_sources / "var/lib/rancher/k3os/config.yaml"),
        str(all_sources / "run/config"),
        str(all_sources / "run/config/userdata"),
        str(all_sources / "var/lib/rancher/k3os/config.d/10-first.yaml"),
        str(all_sources / "var/lib/rancher/k3os/config.d/20-second.yaml"),
    ]


def test_merge_semantics(all_sources: Path) -> None:
    cfg = load_merged(all_sources)
    assert cfg.hostname == "from-config-d"  # scalars: the last source wins
    assert cfg.k3os.token == "second-token"  # config.d sorted by name
    assert cfg.ssh_authorized_keys == ["key-system", "key-meta-1", "key-meta-2"]  # appended, no duplicates
    assert cfg.k3os.labels == {"a": "system", "b": "cmdline"}  # maps merge per key
    assert cfg.k3os.k3s_args == ["agent"]  # k3s_args replaced as a whole
    assert cfg.k3os.data_sources == ["aws"]
    assert cfg.k3os.modules == ["kvm", "nvme"]
    assert cfg.k3os.install.device == "/dev/vda" and cfg.k3os.install.debug is False
    assert cfg.run_cmd == ["echo system", "echo userdata"]  # commands append in source order


def test_each_layer_overrides_the_one_before(all_sources: Path) -> None:
    expected = [
        "from-config-d",
        "from-userdata",
        "from-metadata",
        "from-local",
        "from-cmdline",
        "from-system",
    ]
    files = [
        all_sources / "var/lib/rancher/k3os/config.d/10-first.yaml",
        all_sources / "run/config/userdata",
        all_sources / "run/config/local_hostname",
        all_sources / "var/lib/rancher/k3os/config.yaml",
        all_sources / "proc/cmdline",
    ]
    for path, hostname in zip([None, *files], expected, strict=True):
        if path is not None:
            path.unlink()
        assert load_merged(all_sources).hostname == hostname


def test_cmdline_argument_replaces_proc_cmdline(all_sources: Path) -> None:
    (all_sources / "var/lib/rancher/k3os/config.yaml").unlink()
    for path in (all_sources / "var/lib/rancher/k3os/config.d").iterdir():
        path.unlink()
    (all_sources / "run/config/userdata").unlink()
    (all_sources / "run/config/local_hostname").unlink()
    assert load_merged(all_sources, cmdline="hostname=given").hostname == "given"
    assert load_merged(all_sources, cmdline="").hostname == "from-system"


def test_shebang_userdata_is_a_runtime_script(tmp_path: Path) -> None:
    write(tmp_path / "run/config/userdata", "#!/bin/sh\necho hello\n")
    cfg = load_merged(tmp_path, cmdline="")
    assert cfg.run_cmd == ["/run/k3os/userdata"]
    (script,) = cfg.write_files
    assert (script.path, script.permissions, script.owner) == ("/run/k3os/userdata", "0700", "root")
    assert decode_content(script.content, script.encoding) == b"#!/bin/sh\necho hello\n"


def test_userdata_with_nul_is_a_binary_script(tmp_path: Path) -> None:
    payload = b"\x7fELF\x00\x01binary"
    write(tmp_path / "run/config/userdata", payload)
    cfg = load_merged(tmp_path, cmdline="")
    (script,) = cfg.write_files
    assert script.encoding == "b64" and base64.b64decode(script.content) == payload
    assert cfg.run_cmd == ["/run/k3os/userdata"]


def test_yaml_userdata_errors_name_the_file(tmp_path: Path) -> None:
    write(tmp_path / "run/config/userdata", "k3os:\n  labels:\n    region: [x]\n")
    with pytest.raises(
        ConfigError, match=r"run/config/userdata: k3os.labels.region: expected a string, got list"
    ):
        load_merged(tmp_path, cmdline="")


def test_bad_metadata_hostname_is_ignored_not_fatal(tmp_path: Path) -> None:
    write(tmp_path / "run/config/local_hostname", "not a hostname!\n")
    assert load_merged(tmp_path, cmdline="").hostname is None


def test_empty_root_gives_empty_config(tmp_path: Path) -> None:
    cfg = load_merged(tmp_path)
    assert cfg.hostname is None and cfg.write_files == [] and cfg.k3os.labels == {}
