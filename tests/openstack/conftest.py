"""Fixtures for the OpenStack tests: the shipped fake OpenStack API (Keystone + Nova + Glance + Neutron)
on loopback, and a runner for the real ``factory`` console script pointed at it through ``OS_AUTH_URL``
and the standard ``OS_*`` password credentials (the cloud-independent helpers are in
:mod:`tests.cloudkit`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from factory.fakes.openstack_api import FakeOpenStackApi
from factory.fakes.openstack_state import World
from tests import cloudkit
from tests.cloudkit import FACTORY as FACTORY
from tests.cloudkit import SECRETS as SECRETS
from tests.cloudkit import run_factory as run_factory

BAKE_KEY = "k3os-factory:bake-id"
STATE_KEY = "k3os-factory:state"


def new_fake(action_polls: int = 1, guest_polls: int = 2) -> FakeOpenStackApi:
    """A started fake cloud: BUILD for ``action_polls`` reads, the builder guest powers off
    ``guest_polls`` reads after ACTIVE."""
    api = FakeOpenStackApi(world=World(action_polls=action_polls, guest_polls=guest_polls))
    api.start()
    return api


def os_environment(api: FakeOpenStackApi, tmp_path: Path) -> dict[str, str]:
    """Environment for a ``factory`` subprocess: password credentials of the fake, own state dir."""
    project = api.world.project
    return cloudkit.factory_env(
        tmp_path,
        ("OS_",),
        OS_AUTH_URL=api.auth_url,
        OS_USERNAME=project.user_name,
        OS_PASSWORD=project.password,
        OS_PROJECT_NAME=project.name,
        OS_USER_DOMAIN_NAME=project.domain_name,
        OS_PROJECT_DOMAIN_NAME=project.domain_name,
        OS_REGION_NAME=project.region,
    )


@pytest.fixture
def fake() -> Iterator[FakeOpenStackApi]:
    """A fresh fake cloud: BUILD for 1 read, the builder guest powers off 2 reads after ACTIVE."""
    api = new_fake()
    yield api
    api.stop()


@pytest.fixture
def os_env(fake: FakeOpenStackApi, tmp_path: Path) -> dict[str, str]:
    """The environment for the ``factory`` subprocess against :func:`fake`."""
    return os_environment(fake, tmp_path)


def bake_args(tmp_path: Path, *extra: str) -> list[str]:
    """A ``factory bake openstack`` command line with the ISO options and a per-test manifest."""
    return cloudkit.bake_args("openstack", tmp_path, *extra)
