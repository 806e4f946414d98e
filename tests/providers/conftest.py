"""Fixtures for the network-provider tests: emulators on loopback and a direct fetch helper."""

from __future__ import annotations

import importlib
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import pytest

from datasources.emulator.base import Emulator, EmulatorConfig
from datasources.model import Dmi, FetchContext, Metadata

NETWORK_PROVIDERS = ("gcp", "openstack", "packet", "scaleway", "vultr", "hetzner", "digitalocean")
KEYS = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKey1 alice@laptop", "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABKey2 bob"]
USERDATA = b"#cloud-config\nhostname: from-userdata\n"


def refused_url() -> str:
    """A loopback URL where nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def emulator_config(**kw: object) -> EmulatorConfig:
    """An EmulatorConfig with test defaults; unknown keywords become ``--option`` values."""
    config = EmulatorConfig(
        hostname="node-7",
        ssh_keys=list(KEYS),
        instance_id="4242",
        region="eu-central",
        zone="europe-west1-b",
        public_ipv4="203.0.113.7",
        local_ipv4="10.1.2.3",
    )
    fields = set(EmulatorConfig.__dataclass_fields__)
    for key, value in kw.items():
        if key in fields:
            setattr(config, key, value)
        else:
            config.options[key] = str(value)
    return config


StartEmulator = Callable[..., Emulator]


@pytest.fixture
def emulator() -> Iterator[StartEmulator]:
    """``emulator("gcp", userdata=b"...", fail="hang", some_option="x")`` starts one; all stop after."""
    started: list[Emulator] = []

    def start(provider: str, **kw: object) -> Emulator:
        cls = importlib.import_module(f"datasources.emulator.{provider}").EMULATOR
        emu: Emulator = cls(emulator_config(**kw)).start()
        started.append(emu)
        return emu

    yield start
    for emu in started:
        stop_in_background(emu)


def stop_in_background(emu: Emulator) -> None:
    """Stop an emulator without waiting for it.

    stop() waits up to 0.5 s for the serve loop's poll; every emulator has its own port, so the
    tests need not wait for that.
    """
    emu.stopping.set()  # release hanging handlers now
    threading.Thread(target=emu.stop, daemon=True).start()


@dataclass
class Fetched:
    """What a direct fetch gave: the metadata or the exception, the log, the time taken."""

    metadata: Metadata | None
    error: BaseException | None
    log: list[str] = field(default_factory=list)
    elapsed: float = 0.0


def fetch(provider: str, base_url: str, *, timeout: float = 3.0, dmi: Dmi | None = None) -> Fetched:
    """Call the provider plugin's ``datasources_fetch`` directly, catching what it raises."""
    module = importlib.import_module(f"datasources.providers.{provider}")
    log: list[str] = []
    start = time.monotonic()
    ctx = FetchContext(provider, base_url, start + timeout, dmi or Dmi(), {}, log.append)
    try:
        result = module.datasources_fetch(provider=provider, ctx=ctx)
    except Exception as exc:  # the tests assert on the exact type
        return Fetched(None, exc, log, time.monotonic() - start)
    return Fetched(result, None, log, time.monotonic() - start)


def fetch_ok(provider: str, base_url: str, **kw: object) -> Metadata:
    """A fetch that must succeed."""
    got = fetch(provider, base_url, **kw)  # type: ignore[arg-type]
    assert got.error is None, f"{type(got.error).__name__}: {got.error}"
    assert got.metadata is not None
    return got.metadata
