"""The probe engine: ordered semantics, deadline, DMI fast path, hostile input (real emulators)."""

from __future__ import annotations

import gzip
import itertools
import threading
import time
from collections.abc import Iterator

import pytest

from datasources import engine, hookimpl
from datasources.emulator.__main__ import load_emulator_class
from datasources.emulator.base import Emulator, EmulatorConfig
from datasources.model import Dmi, FetchContext, Metadata, ProviderInfo
from datasources.plugins import get_plugin_manager

from .conftest import StartEmulator, refused_url, url_env

PROVIDERS = ("aws", "gcp", "openstack")
STATES = ("refused", "bare", "userdata", "error")


@pytest.fixture(scope="module")
def fleet() -> Iterator[dict[tuple[str, str], str]]:
    """One emulator per (provider, state); the URL to use for each."""
    urls: dict[tuple[str, str], str] = {}
    running: list[Emulator] = []
    for provider in PROVIDERS:
        try:
            cls = load_emulator_class(provider)
        except LookupError:
            continue
        urls[(provider, "refused")] = refused_url()
        for state, config in {
            "bare": EmulatorConfig(hostname=f"{provider}-bare"),
            "userdata": EmulatorConfig(hostname=f"{provider}-ud", userdata=f"{provider}-ud".encode()),
            "error": EmulatorConfig(fail="garbage", userdata=b"x"),
        }.items():
            emu = cls(config).start()
            running.append(emu)
            urls[(provider, state)] = emu.url
    yield urls
    stoppers = [threading.Thread(target=emu.stop) for emu in running]
    for t in stoppers:
        t.start()
    for t in stoppers:
        t.join(5)


def expected(order: tuple[str, ...], states: dict[str, str]) -> tuple[str | None, list[str]]:
    """The ordered rule written out plainly: (winner, outcomes of the attempts made)."""
    outcome_of = {"refused": "absent", "bare": "detected", "userdata": "userdata", "error": "error"}
    outcomes: list[str] = []
    first_detected = None
    for provider in order:
        outcome = outcome_of[states[provider]]
        outcomes.append(outcome)
        if outcome == "userdata":
            return provider, outcomes
        if outcome == "detected" and first_detected is None:
            first_detected = provider
    return first_detected, outcomes


def all_combinations() -> Iterator[tuple[tuple[str, ...], dict[str, str]]]:
    for order in [PROVIDERS, tuple(reversed(PROVIDERS))]:
        # only aws is given the "error" state: its garbage handling is this area's to guarantee
        for aws, gcp, ops in itertools.product(STATES, STATES[:3], STATES[:3]):
            yield order, {"aws": aws, "gcp": gcp, "openstack": ops}


def test_ordered_rule_holds_in_every_combination(
    fleet: dict[tuple[str, str], str], base_env: dict[str, str]
) -> None:
    if len({p for p, _ in fleet}) < len(PROVIDERS):
        pytest.skip("gcp/openstack emulators not there yet")
    pm = get_plugin_manager(load_entrypoints=False)
    failures = []
    for order, states in all_combinations():
        env = {**base_env, **{url_env(p): fleet[(p, s)] for p, s in states.items()}}
        result = engine.fetch(list(order), 5, env, Dmi(), pm=pm, log=lambda _line: None)
        winner, outcomes = expected(order, states)
        got = (result.provider, [a.outcome for a in result.attempts])
        if got != (winner, outcomes):
            failures.append((order, states, got, (winner, outcomes)))
            continue
        if winner is not None:
            assert result.metadata is not None
            want_ud = f"{winner}-ud".encode() if states[winner] == "userdata" else None
            assert result.metadata.userdata == want_ud
            assert result.metadata.provider == winner
    assert not failures, failures[:5]


def test_later_hanging_provider_is_not_waited_for(emulators: StartEmulator, base_env: dict[str, str]) -> None:
    first = emulators("gcp", userdata=b"from-gcp")
    hang = emulators("aws", fail="hang")
    env = {**base_env, url_env("gcp"): first.url, url_env("aws"): hang.url}
    start = time.monotonic()
    result = engine.fetch(["gcp", "aws"], 8, env, Dmi(), log=lambda _l: None)
    assert time.monotonic() - start < 1.0
    assert result.provider == "gcp" and [a.provider for a in result.attempts] == ["gcp"]


def test_earlier_hanging_provider_costs_at_most_the_timeout(
    emulators: StartEmulator, base_env: dict[str, str]
) -> None:
    hang = emulators("aws", fail="hang")
    later = emulators("gcp", userdata=b"from-gcp")
    env = {**base_env, url_env("gcp"): later.url, url_env("aws"): hang.url}
    start = time.monotonic()
    result = engine.fetch(["aws", "gcp"], 2, env, Dmi(), log=lambda _l: None)
    wall = time.monotonic() - start
    assert 1.5 < wall < 2.6
    assert result.provider == "gcp"
    assert [a.outcome for a in result.attempts] == ["absent", "userdata"]


def test_dmi_naming_a_cloud_means_other_clouds_see_no_request(
    emulators: StartEmulator, base_env: dict[str, str]
) -> None:
    aws = emulators("aws", userdata=b"from-aws")
    gcp = emulators("gcp", userdata=b"from-gcp")
    ops = emulators("openstack", userdata=b"from-openstack")
    env = {**base_env, url_env("aws"): aws.url, url_env("gcp"): gcp.url, url_env("openstack"): ops.url}
    result = engine.fetch(
        ["gcp", "openstack", "aws"], 5, env, Dmi(sys_vendor="Amazon EC2"), log=lambda _l: None
    )
    assert result.provider == "aws"
    assert gcp.requests == [] and ops.requests == []
    assert [a.detail for a in result.attempts[:2]] == ["skipped: DMI names aws"] * 2
    before = len(aws.requests)
    result = engine.fetch(
        ["aws", "openstack", "gcp"], 5, env, Dmi(product_name="Google Compute Engine"), log=lambda _l: None
    )
    assert result.provider == "gcp"
    assert len(aws.requests) == before and ops.requests == []


def test_silent_dmi_probes_everyone(emulators: StartEmulator, base_env: dict[str, str]) -> None:
    aws = emulators("aws")
    gcp = emulators("gcp", userdata=b"from-gcp")
    env = {**base_env, url_env("aws"): aws.url, url_env("gcp"): gcp.url}
    result = engine.fetch(["aws", "gcp"], 5, env, Dmi(sys_vendor="QEMU"), log=lambda _l: None)
    assert result.provider == "gcp" and aws.requests and gcp.requests


def test_gzip_userdata_is_decompressed(emulators: StartEmulator, base_env: dict[str, str]) -> None:
    emu = emulators("aws", userdata=gzip.compress(b"#cloud-config\nhostname: z\n"))
    result = engine.fetch(["aws"], 5, {**base_env, url_env("aws"): emu.url}, Dmi(), log=lambda _l: None)
    assert result.metadata is not None and result.metadata.userdata == b"#cloud-config\nhostname: z\n"


def test_gzip_bomb_is_an_error_and_the_search_goes_on(
    emulators: StartEmulator, base_env: dict[str, str]
) -> None:
    bomb = gzip.compress(b"\0" * (64 << 20), compresslevel=9)
    aws = emulators("aws", userdata=bomb)
    gcp = emulators("gcp", userdata=b"from-gcp")
    env = {**base_env, url_env("aws"): aws.url, url_env("gcp"): gcp.url}
    result = engine.fetch(["aws", "gcp"], 5, env, Dmi(), log=lambda _l: None)
    assert [a.outcome for a in result.attempts] == ["error", "userdata"]
    assert "16777216" in result.attempts[0].detail
    assert result.provider == "gcp"


def test_unknown_provider_is_a_usage_error(base_env: dict[str, str]) -> None:
    with pytest.raises(engine.UsageError, match="unknown provider 'azure'"):
        engine.fetch(["aws", "azure"], 5, base_env, Dmi())
    with pytest.raises(engine.UsageError):
        engine.fetch(["aws"], 0, base_env, Dmi())


def test_alias_resolves_to_packet() -> None:
    pm = get_plugin_manager(load_entrypoints=False)
    from datasources.plugins import provider_table

    table = provider_table(pm)
    if "packet" not in table.names():
        pytest.skip("packet provider not there yet")
    assert engine.resolve_providers(["equinixmetal", "packet", "aws"], table) == ["packet", "aws"]


class _BuggyPlugin:
    """A plugin whose fetch raises something other than NotDetected/ProviderError."""

    @hookimpl
    def datasources_providers(self) -> list[ProviderInfo]:
        return [ProviderInfo("buggy", None, 1)]

    @hookimpl
    def datasources_fetch(self, provider: str, ctx: FetchContext) -> Metadata | None:
        if provider != "buggy":
            return None
        raise KeyError("oops")


def test_a_provider_bug_is_an_error_outcome_and_the_search_goes_on(
    emulators: StartEmulator, base_env: dict[str, str]
) -> None:
    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(_BuggyPlugin(), "buggy")
    aws = emulators("aws", userdata=b"ud")
    result = engine.fetch(["buggy", "aws"], 5, {**base_env, url_env("aws"): aws.url}, Dmi(), pm=pm)
    assert [a.outcome for a in result.attempts] == ["error", "userdata"]
    assert result.attempts[0].detail.startswith("bug: KeyError")


class _DeadlineIgnoringPlugin:
    """A third-party-style provider that ignores ctx.deadline (sleeps past it)."""

    @hookimpl
    def datasources_providers(self) -> list[ProviderInfo]:
        return [ProviderInfo("sleepy", "sleepycloud", 1)]

    @hookimpl
    def datasources_dmi_claims(self, dmi: Dmi) -> list[str] | None:
        return ["sleepycloud"] if dmi.sys_vendor == "Sleepy" else None

    @hookimpl
    def datasources_fetch(self, provider: str, ctx: FetchContext) -> Metadata | None:
        if provider != "sleepy":
            return None
        time.sleep(3)
        return Metadata(provider, userdata=b"too late")


@pytest.mark.parametrize(("vendor", "outcome"), [("", "absent"), ("Sleepy", "error")])
def test_a_provider_that_ignores_the_deadline_is_left_behind(
    vendor: str, outcome: str, base_env: dict[str, str]
) -> None:
    pm = get_plugin_manager(load_entrypoints=False)
    pm.register(_DeadlineIgnoringPlugin(), "sleepy")
    start = time.monotonic()
    result = engine.fetch(["sleepy"], 1, base_env, Dmi(sys_vendor=vendor), pm=pm, log=lambda _l: None)
    assert time.monotonic() - start < 1.0
    assert result.metadata is None
    assert [a.outcome for a in result.attempts] == [outcome]
