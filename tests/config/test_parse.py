"""Parsing and validation: every key of the reference, type errors naming the key path, encodings."""

from __future__ import annotations

import base64
import gzip

import pytest

from image_base.config import ConfigError, parse, parse_config_text
from image_base.config.encoding import decode_content
from image_base.config.model import Install, Wifi

from .conftest import FULL_CONFIG


def test_every_key_of_the_reference_is_parsed() -> None:
    cfg = parse_config_text(FULL_CONFIG, "config.yaml")
    assert cfg.ssh_authorized_keys == ["ssh-ed25519 AAAAC3Nza system-key", "github:octocat"]
    assert [f.path for f in cfg.write_files] == [
        "/etc/plain.txt",
        "/opt/app/b64.bin",
        "/opt/app/gzb64.txt",
        "/usr/local/bin/tool",
    ]
    assert cfg.write_files[0].owner == "root:root" and cfg.write_files[0].permissions == "0640"
    assert isinstance(cfg.write_files[3].content, bytes)
    assert cfg.hostname == "node-1"
    assert cfg.init_cmd == ["echo init"]
    assert cfg.boot_cmd == [["touch", "/tmp/booted"]]
    assert cfg.run_cmd == ["echo run one", ["/bin/true", "two"]]
    k = cfg.k3os
    assert k.data_sources == ["aws", "cdrom"]
    assert k.modules == ["kvm", "nvme"]
    assert k.sysctl == {"kernel.printk": "4 4 1 7", "kernel.kptr_restrict": "1"}
    assert k.ntp_servers == ["0.pool.ntp.org", "1.pool.ntp.org"]
    assert k.dns_nameservers == ["8.8.8.8", "1.1.1.1"]
    assert k.wifi == [Wifi("home", "mypassword"), Wifi("cafe", None)]
    assert k.password == "supersecure"
    assert k.server_url == "https://server:6443"
    assert k.token == "K10abc::node:secret-token"
    assert k.labels == {"region": "us-west-1", "tier": "edge"}
    assert k.k3s_args == ["agent", "--kubelet-arg=max-pods=50"]
    assert k.environment == {"http_proxy": "http://proxy:3128", "NO_PROXY": "localhost,127.0.0.1"}
    assert k.taints == ["dedicated=edge:NoSchedule"]
    assert (k.mode, k.fallback_mode) == ("disk", "install")
    assert k.install == Install(
        force_efi=True,
        device="/dev/vda",
        config_url="https://example.invalid/config.yaml",
        silent=True,
        iso_url="https://example.invalid/k3os.iso",
        power_off=True,
        no_format=False,
        debug=True,
        tty="ttyS0",
    )


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (
            {"k3os": {"labels": {"region": ["a"]}}},
            "config.yaml: k3os.labels.region: expected a string, got list",
        ),
        ({"hostname": ["a"]}, "config.yaml: hostname: expected a string, got list"),
        ({"hostname": "bad name"}, "config.yaml: hostname: expected a hostname"),
        (
            {"ssh_authorized_keys": {"a": 1}},
            "config.yaml: ssh_authorized_keys: expected a list of strings, got map",
        ),
        ({"write_files": [{"content": "x"}]}, "config.yaml: write_files[0].path: required"),
        ({"write_files": [{"path": "rel"}]}, "config.yaml: write_files[0].path: expected an absolute path"),
        (
            {"write_files": [{"path": "/a/../b"}]},
            "config.yaml: write_files[0].path: path must not contain '..'",
        ),
        (
            {"write_files": [{"path": "/a", "permissions": "0x9"}]},
            "write_files[0].permissions: expected an octal",
        ),
        (
            {"write_files": [{"path": "/a", "owner": "a b"}]},
            "write_files[0].owner: expected user or user:group",
        ),
        (
            {"write_files": [{"path": "/a", "encoding": "rot13"}]},
            "write_files[0].encoding: unknown encoding 'rot13'",
        ),
        ({"write_files": [{"path": "/a", "encoding": "b64", "content": "@@"}]}, "content: not valid base64"),
        ({"write_files": [{"path": "/a", "encoding": "gz+b64", "content": "aGk="}]}, "not valid gzip data"),
        (
            {"write_files": [{"path": "/a", "content": 5}]},
            "write_files[0].content: expected a string or !!binary",
        ),
        ({"init_cmd": [{"a": 1}]}, "config.yaml: init_cmd[0]: expected a string, got map"),
        ({"run_cmd": [[]]}, "config.yaml: run_cmd[0]: expected a non-empty command"),
        ({"k3os": []}, "config.yaml: k3os: expected a map, got list"),
        ({"k3os": {"modules": [["x"]]}}, "config.yaml: k3os.modules[0]: expected a string, got list"),
        ({"k3os": {"sysctl": ["a"]}}, "config.yaml: k3os.sysctl: expected a map of strings, got list"),
        ({"k3os": {"dns_nameservers": ["dns.example"]}}, "k3os.dns_nameservers[0]: expected an IP address"),
        ({"k3os": {"wifi": [{"passphrase": "12345678"}]}}, "config.yaml: k3os.wifi[0].name: required"),
        (
            {"k3os": {"wifi": [{"name": "n", "passphrase": "short"}]}},
            "k3os.wifi[0].passphrase: expected 8 to 63",
        ),
        ({"k3os": {"password": {"x": 1}}}, "config.yaml: k3os.password: expected a string, got map"),
        ({"k3os": {"token": True}}, "config.yaml: k3os.token: expected a string, got boolean"),
        ({"k3os": {"environment": {"BAD-NAME": "x"}}}, "k3os.environment.BAD-NAME: invalid name"),
        ({"k3os": {"k3s_args": "server"}, "hostname": "-lead"}, "hostname: expected a hostname"),
        (
            {"k3os": {"install": {"silent": "maybe"}}},
            "k3os.install.silent: expected true or false, got string",
        ),
        ({"k3os": {"install": {"device": 1.5, "tty": []}}}, "k3os.install.tty: expected a string, got list"),
    ],
)
def test_bad_values_name_the_key_path(data: object, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse(data, "config.yaml")
    assert message in str(info.value)
    assert str(info.value).startswith("config.yaml: ")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"hostnme": "x"}, "config.yaml: hostnme: unknown key (did you mean 'hostname'?)"),
        ({"runcmd": ["x"]}, "config.yaml: runcmd: unknown key (did you mean 'run_cmd'?)"),
        ({"k3os": {"sysctrl": {}}}, "config.yaml: k3os.sysctrl: unknown key (did you mean 'sysctl'?)"),
        ({"k3os": {"install": {"devise": "x"}}}, "k3os.install.devise: unknown key (did you mean 'device'?)"),
        ({"k3os": {"zzz": 1}}, "config.yaml: k3os.zzz: unknown key"),
    ],
)
def test_unknown_keys_get_a_hint(data: object, message: str) -> None:
    with pytest.raises(ConfigError, match="unknown key") as info:
        parse(data, "config.yaml")
    assert str(info.value) == message or message in str(info.value)


@pytest.mark.parametrize(
    ("singular", "plural", "value", "expected"),
    [
        ("sysctls", "sysctl", {"a.b": "1"}, {"a.b": "1"}),
        ("label", "labels", {"a": "b"}, {"a": "b"}),
        ("taint", "taints", ["t=1:NoSchedule"], ["t=1:NoSchedule"]),
        ("data_source", "data_sources", ["aws"], ["aws"]),
        ("module", "modules", ["kvm"], ["kvm"]),
        ("ntp_server", "ntp_servers", ["ntp.example"], ["ntp.example"]),
        ("dns_nameserver", "dns_nameservers", ["1.1.1.1"], ["1.1.1.1"]),
        ("k3s_arg", "k3s_args", ["server"], ["server"]),
    ],
)
def test_singular_and_plural_names(singular: str, plural: str, value: object, expected: object) -> None:
    canonical = "sysctl" if plural == "sysctl" else plural
    assert getattr(parse({"k3os": {singular: value}}, "x").k3os, canonical) == expected
    assert getattr(parse({"k3os": {plural: value}}, "x").k3os, canonical) == expected


def test_both_spellings_in_one_document_are_combined() -> None:
    cfg = parse({"k3os": {"module": "kvm", "modules": ["nvme"]}, "ssh_authorized_key": "k1"}, "x")
    assert cfg.k3os.modules == ["kvm", "nvme"]
    assert cfg.ssh_authorized_keys == ["k1"]


def test_aliases_and_spellings() -> None:
    cfg = parse(
        {"sshAuthorizedKeys": ["k"], "k3os": {"install": {"poweroff": "true"}, "wifi": [{"ssid": "s"}]}}, "x"
    )
    assert cfg.ssh_authorized_keys == ["k"]
    assert cfg.k3os.install.power_off is True
    assert cfg.k3os.wifi == [Wifi("s", None)]


def test_unquoted_yaml_octal_permissions() -> None:
    cfg = parse_config_text("write_files:\n- path: /a\n  permissions: 0755\n", "c.yaml")
    assert cfg.write_files[0].permissions == "0755"


def test_invalid_yaml_names_file_and_line() -> None:
    with pytest.raises(ConfigError, match=r"^c.yaml: invalid YAML at line 2"):
        parse_config_text("hostname: a\n  - b: [\n", "c.yaml")
    with pytest.raises(ConfigError, match="expected a map of config keys"):
        parse_config_text("- a\n", "c.yaml")


def test_empty_document_is_an_empty_config() -> None:
    assert parse_config_text("", "c.yaml") == parse(None, "c.yaml")


PAYLOAD = b"line one\nline \xe2\x9c\x93 two\n"


@pytest.mark.parametrize(
    ("encoding", "content"),
    [
        ("", PAYLOAD.decode()),
        ("b64", base64.b64encode(PAYLOAD).decode()),
        ("base64", base64.b64encode(PAYLOAD).decode()),
        ("gz", gzip.compress(PAYLOAD)),
        ("gzip", gzip.compress(PAYLOAD)),
        ("gz+b64", base64.b64encode(gzip.compress(PAYLOAD)).decode()),
        ("gzip+base64", base64.b64encode(gzip.compress(PAYLOAD)).decode()),
    ],
)
def test_every_write_files_encoding_decodes(encoding: str, content: str | bytes) -> None:
    cfg = parse({"write_files": [{"path": "/f", "encoding": encoding, "content": content}]}, "x")
    entry = cfg.write_files[0]
    assert decode_content(entry.content, entry.encoding) == PAYLOAD


def test_yaml_binary_content_decodes() -> None:
    text = f"write_files:\n- path: /f\n  content: !!binary |\n    {base64.b64encode(PAYLOAD).decode()}\n"
    entry = parse_config_text(text, "x").write_files[0]
    assert entry.content == PAYLOAD
    assert decode_content(entry.content, entry.encoding) == PAYLOAD


def test_gzip_bomb_is_refused() -> None:
    bomb = base64.b64encode(gzip.compress(b"\0" * (65 * 1024 * 1024))).decode()
    with pytest.raises(ConfigError, match="write_files\\[0\\].content: decompresses to more than"):
        parse({"write_files": [{"path": "/f", "encoding": "gz+b64", "content": bomb}]}, "x")
