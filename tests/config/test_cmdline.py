"""The kernel cmdline parser: dotted keys, repeats, maps, quotes, bare keys, foreign args ignored."""

from __future__ import annotations

import pytest

from image_base.config import ConfigError, parse, parse_cmdline


def test_dotted_keys_nest() -> None:
    assert parse_cmdline("k3os.token=T k3os.install.device=/dev/vda") == {
        "k3os": {"token": "T", "install": {"device": "/dev/vda"}}
    }


def test_repeated_keys_build_lists() -> None:
    data = parse_cmdline(
        "k3os.dns_nameserver=1.1.1.1 k3os.dns_nameserver=8.8.8.8 k3os.dns_nameserver=9.9.9.9"
    )
    assert data == {"k3os": {"dns_nameserver": ["1.1.1.1", "8.8.8.8", "9.9.9.9"]}}
    assert parse(data, "cmdline").k3os.dns_nameservers == ["1.1.1.1", "8.8.8.8", "9.9.9.9"]


def test_single_value_of_a_list_key_is_a_list() -> None:
    assert parse(parse_cmdline("k3os.module=kvm"), "cmdline").k3os.modules == ["kvm"]


def test_map_entries_with_brackets_and_quotes() -> None:
    data = parse_cmdline('k3os.sysctl[kernel.printk]="4 4 1 7" k3os.labels[region]=eu k3os.labels[tier]=edge')
    assert data == {
        "k3os": {"sysctl": {"kernel.printk": "4 4 1 7"}, "labels": {"region": "eu", "tier": "edge"}}
    }
    cfg = parse(data, "cmdline")
    assert cfg.k3os.sysctl == {"kernel.printk": "4 4 1 7"}
    assert cfg.k3os.labels == {"region": "eu", "tier": "edge"}


def test_quoted_values_keep_spaces() -> None:
    assert parse_cmdline('k3os.environment.FOO="a b  c" "run_cmd=echo hi"') == {
        "k3os": {"environment": {"FOO": "a b  c"}},
        "run_cmd": "echo hi",
    }


def test_bare_key_means_true() -> None:
    data = parse_cmdline("k3os.install.silent k3os.install.force_efi=false k3os.install.power_off=true")
    install = parse(data, "cmdline").k3os.install
    assert (install.silent, install.force_efi, install.power_off) == (True, False, True)


def test_foreign_arguments_are_ignored_and_top_level_keys_read() -> None:
    text = "BOOT_IMAGE=/vmlinuz root=/dev/vda1 console=ttyS0 quiet ro k3os. hostname=node-7 "
    text += "ssh_authorized_key=k1"
    assert parse_cmdline(text) == {"hostname": "node-7", "ssh_authorized_key": "k1"}
    cfg = parse(parse_cmdline(text), "cmdline")
    assert (cfg.hostname, cfg.ssh_authorized_keys) == ("node-7", ["k1"])


def test_mode_keys_from_cmdline() -> None:
    cfg = parse(parse_cmdline("k3os.mode=install k3os.fallback_mode=install"), "cmdline")
    assert (cfg.k3os.mode, cfg.k3os.fallback_mode) == ("install", "install")


def test_errors_from_cmdline_name_the_source() -> None:
    with pytest.raises(
        ConfigError, match=r"^kernel cmdline: k3os.tokn: unknown key \(did you mean 'token'\?\)"
    ):
        parse(parse_cmdline("k3os.tokn=x"), "kernel cmdline")
    with pytest.raises(ConfigError, match="kernel cmdline: k3os.password: expected a string, got list"):
        parse(parse_cmdline("k3os.password=a k3os.password=b"), "kernel cmdline")


def test_empty_and_unterminated_quote() -> None:
    assert parse_cmdline("") == {}
    assert parse_cmdline('k3os.token="abc def') == {"k3os": {"token": "abc def"}}
