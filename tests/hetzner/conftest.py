"""Fixtures for the Hetzner tests: the shipped fake Hetzner Cloud API on loopback, and a runner for the
real ``factory`` console script pointed at it through ``HCLOUD_ENDPOINT`` / ``HCLOUD_TOKEN`` (the
cloud-independent helpers are in :mod:`tests.cloudkit`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from factory.fakes.hetzner_api import FakeHetznerApi
from factory.fakes.hetzner_state import World
from tests import cloudkit
from tests.cloudkit import FACTORY as FACTORY
from tests.cloudkit import SECRETS as SECRETS
from tests.cloudkit import run_factory as run_factory

BAKE_LABEL = "k3os-factory/bake-id"
STATE_LABEL = "k3os-factory/state"
TOKEN = "hz-T0KEN-sEcReT-0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRS"


def new_fake(action_polls: int = 2, guest_polls: int = 2) -> FakeHetznerApi:
    """A started fake API: actions take ``action_polls`` polls, the builder guest powers off
    ``guest_polls`` polls after running."""
    api = FakeHetznerApi(token=TOKEN, world=World(action_polls=action_polls, guest_polls=guest_polls))
    api.start()
    return api


def hz_environment(api: FakeHetznerApi, directory: Path) -> dict[str, str]:
    """Environment for a ``factory`` subprocess: the fake's endpoint and token, own state dir."""
    return cloudkit.factory_env(directory, ("HCLOUD_",), HCLOUD_TOKEN=TOKEN, HCLOUD_ENDPOINT=api.url)


@pytest.fixture
def fake() -> Iterator[FakeHetznerApi]:
    """A fresh fake API: actions take 2 polls, the builder guest powers off 2 polls after running."""
    api = new_fake()
    yield api
    api.stop()


@pytest.fixture
def hz_env(fake: FakeHetznerApi, tmp_path: Path) -> dict[str, str]:
    """The environment for the ``factory`` subprocess against :func:`fake`."""
    return hz_environment(fake, tmp_path)


def bake_args(tmp_path: Path, *extra: str) -> list[str]:
    """A ``factory bake hetzner`` command line with the ISO options and a per-test manifest."""
    return cloudkit.bake_args("hetzner", tmp_path, *extra)
