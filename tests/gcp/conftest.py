"""Fixtures for the gcp tests: the fake Compute Engine API (:mod:`factory.fakes.gcp_api`) on loopback,
a service-account key file trusted by it (real ADC flow: the SDK signs JWTs, the fake verifies them),
and a runner for the real ``factory`` console script."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from factory.fakes.gcp_api import FakeGcp
from factory.fakes.gcp_auth import write_service_account_file
from factory.fakes.gcp_model import Model
from tests import cloudkit
from tests.cloudkit import FACTORY as FACTORY
from tests.cloudkit import SECRETS as SECRETS
from tests.cloudkit import Outcome as Outcome
from tests.cloudkit import Run as Run
from tests.cloudkit import run_factory as run_factory

BAKE_LABEL = "k3os-factory-bake-id"
STATE_LABEL = "k3os-factory-state"
PROJECT = "fake-project"


@functools.cache
def session_key() -> bytes:
    """One throwaway RSA key (PEM) for the session's service-account files (keygen is slow)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.fixture(scope="session")
def sa_key() -> bytes:
    """The :func:`session_key`."""
    return session_key()


def make_env(fake: FakeGcp, directory: Path, key_pem: bytes) -> dict[str, str]:
    """Environment for a ``factory`` subprocess: ADC from a key file the fake trusts, its endpoint."""
    directory.mkdir(parents=True, exist_ok=True)
    key = directory / "sa.json"
    write_service_account_file(key, fake, PROJECT, private_key_pem=key_pem)
    return cloudkit.factory_env(
        directory,
        ("GOOGLE_", "CLOUDSDK_", "GCE_"),
        drop=("NO_GCE_CHECK",),
        GOOGLE_APPLICATION_CREDENTIALS=str(key),
        FACTORY_GCP_ENDPOINT=fake.url,
        NO_GCE_CHECK="true",
        CLOUDSDK_CONFIG=str(directory / "gcloud"),
    )


def new_fake() -> FakeGcp:
    """A started fake: operations finish after 2 polls, the builder powers off after 3 GETs."""
    return FakeGcp(model=Model(project=PROJECT, op_polls=2, poweroff_after=3)).start()


@pytest.fixture
def fake() -> Iterator[FakeGcp]:
    """A fresh fake API for one test."""
    api = new_fake()
    yield api
    api.stop()


@pytest.fixture
def factory_env(fake: FakeGcp, tmp_path: Path, sa_key: bytes) -> dict[str, str]:
    """The environment of :func:`make_env` for the test's fake."""
    return make_env(fake, tmp_path, sa_key)


def bake_args(tmp_path: Path, *extra: str) -> list[str]:
    """A ``factory bake gcp`` command line with the ISO options and a per-test manifest."""
    return cloudkit.bake_args("gcp", tmp_path, *extra)


def labelled(fake: FakeGcp, bake_id: str | None = None) -> dict[str, list[str]]:
    """Resources of the fake project carrying the bake-id label (any bake, or the given one)."""

    def hit(labels: dict[str, str]) -> bool:
        return BAKE_LABEL in labels and (bake_id is None or labels[BAKE_LABEL] == bake_id)

    m = fake.model
    with m.lock:
        return {
            "instances": [n for (_, n), r in m.instances.items() if hit(r["labels"])],
            "disks": [n for (_, n), r in m.disks.items() if hit(r["labels"])],
            "images": [n for (p, n), r in m.images.items() if p == PROJECT and hit(r["labels"])],
        }


NOTHING: dict[str, list[str]] = {"instances": [], "disks": [], "images": []}


def gcp_env(fake: FakeGcp, directory: Path) -> dict[str, str]:
    """:func:`make_env` with the :func:`session_key`."""
    return make_env(fake, directory, session_key())


def gcp_runs(runs: dict[str, Run[FakeGcp]], name: str = "runs") -> Any:
    """A module fixture ``name`` with the outcomes of ``runs``, each against its own fake, 4 at a time
    (the SDK import dominates each run's CPU time); see :func:`tests.cloudkit.runs_fixture`."""
    return cloudkit.runs_fixture(runs, new_fake, gcp_env, name=name, workers=4)
