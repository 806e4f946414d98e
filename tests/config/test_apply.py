"""apply() on a fake root: every key lands in the right file with the right mode; commands in order."""

from __future__ import annotations

import os
import shlex
import stat
import subprocess
from pathlib import Path

import pytest

from image_base.config import ApplyError, RecordingRunner, SubprocessRunner, apply, parse, parse_config_text
from image_base.config.shacrypt import sha512_crypt

from .conftest import FULL_CONFIG, write

IS_ROOT = os.geteuid() == 0


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_boot_phase_applies_every_boot_key(fake_root: Path) -> None:
    cfg = parse_config_text(FULL_CONFIG, "config.yaml")
    runner = RecordingRunner()
    actions = apply(cfg, "boot", fake_root, runner)
    etc = fake_root / "etc"

    assert (etc / "hostname").read_text() == "node-1\n"
    assert "127.0.1.1\tnode-1" in (etc / "hosts").read_text().splitlines()
    assert "127.0.0.1\tlocalhost" in (etc / "hosts").read_text()

    keys = fake_root / "home/rancher/.ssh/authorized_keys"
    assert keys.read_text() == "ssh-ed25519 AAAAC3Nza system-key\n"  # github: skipped without a fetcher
    assert mode(keys) == 0o600 and mode(keys.parent) == 0o700
    if IS_ROOT:
        assert (keys.stat().st_uid, keys.stat().st_gid) == (1100, 1100)
    assert any("skipped github:octocat" in a for a in actions)

    assert (etc / "plain.txt").read_text() == "plain text\n" and mode(etc / "plain.txt") == 0o640
    assert (fake_root / "opt/app/b64.bin").read_bytes() == b"hello b64\n"
    assert mode(fake_root / "opt/app/b64.bin") == 0o600
    assert (fake_root / "opt/app/gzb64.txt").read_bytes() == b"gzipped and base64\n"
    assert mode(fake_root / "opt/app/gzb64.txt") == 0o644  # default mode
    tool = fake_root / "usr/local/bin/tool"
    assert tool.read_bytes() == b"#!/bin/sh\necho tool\n" and mode(tool) == 0o755
    if IS_ROOT:
        assert tool.stat().st_uid == 1100

    assert (etc / "sysctl.d/90-k3os.conf").read_text().splitlines()[1:] == [
        "kernel.printk = 4 4 1 7",
        "kernel.kptr_restrict = 1",
    ]
    assert (etc / "modules-load.d/k3os.conf").read_text().splitlines()[1:] == ["kvm", "nvme"]
    assert (etc / "environment").read_text() == "http_proxy=http://proxy:3128\nNO_PROXY=localhost,127.0.0.1\n"
    assert (etc / "resolv.conf").read_text().splitlines()[1:] == ["nameserver 8.8.8.8", "nameserver 1.1.1.1"]
    timesync = (etc / "systemd/timesyncd.conf.d/k3os.conf").read_text()
    assert "[Time]\nFallbackNTP=0.pool.ntp.org 1.pool.ntp.org\n" in timesync

    wifi = etc / "wpa_supplicant/wpa_supplicant-k3os.conf"
    assert mode(wifi) == 0o600
    text = wifi.read_text()
    assert f"ssid={b'home'.hex()}" in text and 'psk="mypassword"' in text
    assert f"ssid={b'cafe'.hex()}" in text and "key_mgmt=NONE" in text

    shadow = (etc / "shadow").read_text().splitlines()
    assert shadow[0] == "root:*:19000:0:99999:7:::"
    user, hashed, *_ = shadow[1].split(":")
    assert user == "rancher" and hashed.startswith("$6$")
    assert hashed == sha512_crypt("supersecure", hashed.split("$")[2])
    assert mode(etc / "shadow") == 0o640

    k3s_env = etc / "rancher/k3s/k3os.env"
    assert mode(k3s_env) == 0o600
    env = dict(line.split("=", 1) for line in k3s_env.read_text().splitlines() if not line.startswith("#"))
    (k3s_args,) = shlex.split(env["K3OS_K3S_ARGS"])  # one shell word holding the joined argv
    assert shlex.split(k3s_args) == [
        "agent",
        "--kubelet-arg=max-pods=50",
        "--node-label",
        "region=us-west-1",
        "--node-label",
        "tier=edge",
        "--node-taint",
        "dedicated=edge:NoSchedule",
    ]
    assert shlex.split(env["K3S_URL"]) == ["https://server:6443"]
    assert shlex.split(env["K3S_TOKEN"]) == ["K10abc::node:secret-token"]
    assert shlex.split(env["http_proxy"]) == ["http://proxy:3128"]

    assert (etc / "k3os/data_sources").read_text() == "aws\ncdrom\n"
    assert runner.commands == [["touch", "/tmp/booted"]]  # boot_cmd only, recorded, not run
    assert "skipped (root is not /): sysctl -p /etc/sysctl.d/90-k3os.conf" in actions
    assert "skipped (root is not /): modprobe -a kvm nvme" in actions
    assert "skipped (root is not /): hostname node-1" in actions
    for secret in ("supersecure", "secret-token", "mypassword"):
        assert not any(secret in a for a in actions)


def test_initrd_phase_applies_only_initrd_keys(fake_root: Path) -> None:
    cfg = parse_config_text(FULL_CONFIG, "config.yaml")
    runner = RecordingRunner()
    apply(cfg, "initrd", fake_root, runner)
    assert runner.commands == [["/bin/sh", "-c", "echo init"]]
    assert (fake_root / "etc/hostname").exists() and (fake_root / "etc/sysctl.d/90-k3os.conf").exists()
    assert (fake_root / "etc/plain.txt").exists() and (fake_root / "etc/environment").exists()
    assert not (fake_root / "home/rancher").exists()
    assert not (fake_root / "etc/rancher").exists()
    assert not (fake_root / "etc/resolv.conf").exists()
    assert "rancher:!:" in (fake_root / "etc/shadow").read_text()


def test_runtime_commands_run_after_files_in_order(fake_root: Path) -> None:
    cfg = parse_config_text(FULL_CONFIG, "config.yaml")
    runner = RecordingRunner()
    actions = apply(cfg, "runtime", fake_root, runner)
    assert runner.commands == [["/bin/sh", "-c", "echo run one"], ["/bin/true", "two"]]
    assert actions.index("run_cmd[0]: /bin/sh -c 'echo run one'") > max(
        i for i, a in enumerate(actions) if a.startswith("write_files:")
    )
    assert not (fake_root / "etc/k3os/data_sources").exists()  # data_sources is a boot key


def test_pre_hashed_password_is_kept_and_plain_matches_openssl(fake_root: Path) -> None:
    pre = "$1$tYtghCfK$QHa51MS6MVAcfUKuOzNKt0"
    apply(parse({"k3os": {"password": pre}}, "c"), "boot", fake_root, RecordingRunner())
    assert f"rancher:{pre}:" in (fake_root / "etc/shadow").read_text()
    openssl = subprocess.run(
        ["openssl", "passwd", "-6", "-salt", "abcdefgh12345678", "-stdin"],
        input=b"p@ss word",
        capture_output=True,
        check=True,
    )
    assert sha512_crypt("p@ss word", "abcdefgh12345678") == openssl.stdout.decode().strip()


def test_shadow_created_when_missing(tmp_path: Path) -> None:
    apply(parse({"k3os": {"password": "longpassword"}}, "c"), "boot", tmp_path, RecordingRunner())
    line = (tmp_path / "etc/shadow").read_text().strip()
    assert line.startswith("rancher:$6$") and line.endswith(":0:99999:7:::")


def test_github_keys_use_the_pluggable_fetcher(fake_root: Path) -> None:
    cfg = parse({"ssh_authorized_keys": ["k-local", "github:octocat", "github:broken"]}, "c")
    asked: list[str] = []

    def fetch(user: str) -> list[str]:
        asked.append(user)
        if user == "broken":
            raise OSError("network unreachable")
        return ["ssh-ed25519 AAAA octo1", "", "ssh-ed25519 AAAA octo2"]

    actions = apply(cfg, "runtime", fake_root, RecordingRunner(), fetch_keys=fetch)
    assert asked == ["octocat", "broken"]
    keys = (fake_root / "home/rancher/.ssh/authorized_keys").read_text().splitlines()
    assert keys == ["k-local", "ssh-ed25519 AAAA octo1", "ssh-ed25519 AAAA octo2"]
    assert any("could not fetch github:broken: network unreachable" in a for a in actions)


def test_apply_twice_is_idempotent(fake_root: Path) -> None:
    cfg = parse_config_text(FULL_CONFIG, "config.yaml")
    apply(cfg, "boot", fake_root, RecordingRunner())
    first = {p: p.read_bytes() for p in fake_root.rglob("*") if p.is_file() and p.name != "shadow"}
    apply(cfg, "boot", fake_root, RecordingRunner())
    second = {p: p.read_bytes() for p in fake_root.rglob("*") if p.is_file() and p.name != "shadow"}
    assert first == second


def test_existing_files_keep_unrelated_lines(fake_root: Path) -> None:
    write(fake_root / "etc/environment", "LANG=C.UTF-8\nhttp_proxy=old\n")
    write(fake_root / "etc/resolv.conf", "nameserver 10.0.0.1\nsearch example.internal\n")
    write(fake_root / "etc/hosts", "127.0.0.1 localhost\n127.0.1.1 old-name\n")
    write(fake_root / "home/rancher/.ssh/authorized_keys", "existing-key\n")
    cfg = parse_config_text(FULL_CONFIG, "config.yaml")
    apply(cfg, "boot", fake_root, RecordingRunner())
    assert (fake_root / "etc/environment").read_text().splitlines()[:2] == [
        "LANG=C.UTF-8",
        "http_proxy=http://proxy:3128",
    ]
    resolv = (fake_root / "etc/resolv.conf").read_text()
    assert "10.0.0.1" not in resolv and "search example.internal" in resolv
    assert (fake_root / "etc/hosts").read_text() == "127.0.0.1 localhost\n127.0.1.1\tnode-1\n"
    keys = (fake_root / "home/rancher/.ssh/authorized_keys").read_text().splitlines()
    assert keys == ["existing-key", "ssh-ed25519 AAAAC3Nza system-key"]


def test_failures_do_not_stop_other_steps(fake_root: Path) -> None:
    cfg = parse(
        {
            "hostname": "h1",
            "write_files": [
                {"path": "/a", "owner": "nobody-here", "content": "x"},
                {"path": "/b", "content": "y"},
            ],
        },
        "c",
    )
    with pytest.raises(ApplyError) as info:
        apply(cfg, "boot", fake_root, RecordingRunner())
    assert info.value.failures == ["write_files[0] /a: unknown user 'nobody-here'"]
    assert (fake_root / "b").read_text() == "y" and not (fake_root / "a").exists()
    assert (fake_root / "etc/hostname").read_text() == "h1\n"


def test_real_runner_runs_commands_and_reports_failures(fake_root: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    cfg = parse(
        {
            "run_cmd": [f"echo $http_proxy > {marker}", ["false"]],
            "k3os": {"environment": {"http_proxy": "p"}},
        },
        "c",
    )
    with pytest.raises(ApplyError) as info:
        apply(cfg, "runtime", fake_root, SubprocessRunner(timeout=30))
    assert marker.read_text() == "p\n"
    assert info.value.failures == ["run_cmd[1] exited 1: false"]
    assert info.value.actions[-1].startswith("run_cmd[0]: /bin/sh -c")


def test_secrets_in_commands_are_masked_in_the_report(fake_root: Path) -> None:
    cfg = parse({"run_cmd": ["echo s3cretpassword"], "k3os": {"password": "s3cretpassword"}}, "c")
    actions = apply(cfg, "runtime", fake_root, RecordingRunner())
    assert "run_cmd[0]: /bin/sh -c 'echo ********'" in actions


def test_symlink_out_of_the_root_is_refused(fake_root: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (fake_root / "opt").symlink_to(outside)
    cfg = parse({"write_files": [{"path": "/opt/evil", "content": "x"}]}, "c")
    with pytest.raises(ApplyError, match="leaves the root"):
        apply(cfg, "boot", fake_root, RecordingRunner())
    assert not (outside / "evil").exists()


def test_unknown_phase_is_refused(fake_root: Path) -> None:
    with pytest.raises(ValueError, match="unknown phase 'later'"):
        apply(parse({}, "c"), "later", fake_root, RecordingRunner())


def test_userdata_script_is_written_0700(fake_root: Path) -> None:
    write(fake_root / "run/config/userdata", "#!/bin/sh\necho from userdata\n")
    from image_base.config import load_merged

    runner = RecordingRunner()
    apply(load_merged(fake_root, cmdline=""), "runtime", fake_root, runner)
    script = fake_root / "run/k3os/userdata"
    assert script.read_text() == "#!/bin/sh\necho from userdata\n" and mode(script) == 0o700
    assert runner.commands == [["/bin/sh", "-c", "/run/k3os/userdata"]]
