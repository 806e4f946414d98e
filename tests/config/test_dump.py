"""Dumping the merged config: secrets masked, phases filter keys, the dump parses back."""

from __future__ import annotations

import yaml

from image_base.config import PHASES, dump_yaml, parse_config_text, secret_values

from .conftest import FULL_CONFIG


def test_dump_masks_every_secret() -> None:
    cfg = parse_config_text(FULL_CONFIG + "  \n", "c.yaml")
    cfg.k3os.environment["K3S_TOKEN"] = "env-token-value"
    text = dump_yaml(cfg)
    for secret in ("supersecure", "K10abc::node:secret-token", "mypassword", "env-token-value"):
        assert secret not in text
    data = yaml.safe_load(text)
    assert data["k3os"]["password"] == "********"
    assert data["k3os"]["token"] == "********"
    assert data["k3os"]["wifi"][0]["passphrase"] == "********"
    assert "passphrase" not in data["k3os"]["wifi"][1]
    assert data["k3os"]["environment"]["K3S_TOKEN"] == "********"
    assert data["k3os"]["environment"]["http_proxy"] == "http://proxy:3128"


def test_secret_values_lists_what_to_redact() -> None:
    cfg = parse_config_text(FULL_CONFIG, "c.yaml")
    assert sorted(secret_values(cfg)) == sorted(["supersecure", "K10abc::node:secret-token", "mypassword"])


def test_unmasked_dump_round_trips() -> None:
    cfg = parse_config_text(FULL_CONFIG, "c.yaml")
    assert parse_config_text(dump_yaml(cfg, mask_secrets=False), "dump") == cfg


def test_phase_filter_keeps_only_that_phase() -> None:
    cfg = parse_config_text(FULL_CONFIG, "c.yaml")
    initrd = yaml.safe_load(dump_yaml(cfg, keys=PHASES["initrd"].keys))
    assert set(initrd) == {"hostname", "write_files", "init_cmd", "k3os"}
    assert set(initrd["k3os"]) == {"modules", "sysctl", "environment"}
    runtime = yaml.safe_load(dump_yaml(cfg, keys=PHASES["runtime"].keys))
    assert "run_cmd" in runtime and "boot_cmd" not in runtime and "data_sources" not in runtime["k3os"]
