"""Fixtures for the datasources tests: loopback emulators, a hermetic environment, the real CLI."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

from datasources.emulator.__main__ import load_emulator_class
from datasources.emulator.base import Emulator, EmulatorConfig
from datasources.plugins import DEFAULT_PLUGINS

DATASOURCES = str(Path(sys.executable).parent / "datasources")
BUILTIN = [m.rsplit(".", 1)[1] for m in DEFAULT_PLUGINS]


def refused_url() -> str:
    """A loopback URL where nothing listens (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def url_env(provider: str) -> str:
    """The environment variable that replaces ``provider``'s base URL."""
    return f"DATASOURCES_{provider.upper()}_URL"


StartEmulator = Callable[..., Emulator]


@pytest.fixture
def emulators() -> Iterator[StartEmulator]:
    """Start emulators by provider name; all are stopped after the test.

    ``start("aws", userdata=b"...", fail="hang", imds="required")``: keyword arguments other
    than the EmulatorConfig fields become ``--option`` values.
    """
    started: list[Emulator] = []
    fields = set(EmulatorConfig.__dataclass_fields__)

    def start(provider: str, **kw: object) -> Emulator:
        try:
            cls = load_emulator_class(provider)
        except LookupError:
            pytest.skip(f"no {provider} emulator yet")
        config = EmulatorConfig(
            hostname=f"{provider}-node", ssh_keys=[f"ssh-ed25519 AAAA{provider} k@{provider}"]
        )
        for key, value in kw.items():
            if key in fields:
                setattr(config, key, value)
            else:
                config.options[key] = str(value)
        emu = cls(config).start()
        started.append(emu)
        return emu

    yield start
    # stop() waits for the serve loop's 0.5 s poll: stop them all at once.
    stoppers = [threading.Thread(target=emu.stop) for emu in started]
    for t in stoppers:
        t.start()
    for t in stoppers:
        t.join(5)


@pytest.fixture
def base_env(tmp_path: Path) -> dict[str, str]:
    """Process environment with no DATASOURCES_* leaking in, silent DMI, every provider refused."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATASOURCES_")}
    dmi = tmp_path / "dmi"
    dmi.mkdir()
    env["DATASOURCES_DMI_DIR"] = str(dmi)
    env["DATASOURCES_CDROM_DEVICES"] = str(tmp_path / "no-such-device")
    env["DATASOURCES_ROOT"] = str(tmp_path / "root")
    for name in BUILTIN:
        env[url_env(name)] = refused_url()
    return env


@dataclass
class CliRun:
    """A finished run of the ``datasources`` console script."""

    returncode: int
    stdout: str
    stderr: str
    wall: float


def run_cli(*args: str, env: Mapping[str, str], timeout: float = 30) -> CliRun:
    """Run the real ``datasources`` console script in a subprocess."""
    start = time.monotonic()
    proc = subprocess.run(
        [DATASOURCES, *args], env=dict(env), capture_output=True, text=True, timeout=timeout, check=False
    )
    return CliRun(proc.returncode, proc.stdout, proc.stderr, time.monotonic() - start)


# Runs in a small helper interpreter: Linux charges a child the peak RSS of the process it was
# forked/vforked from as its own ru_maxrss, so measured from pytest itself every child would
# look at least as big as pytest.
_PEAK_RSS_HELPER = """
import os, sys
null = os.open(os.devnull, os.O_WRONLY)
pid = os.posix_spawn(sys.argv[1], sys.argv[1:], os.environ, file_actions=[(os.POSIX_SPAWN_DUP2, null, 1)])
_, status, usage = os.wait4(pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)
"""


def exit_code_and_peak_rss(argv: list[str], env: Mapping[str, str]) -> tuple[int, int]:
    """Run ``argv``; its exit code and its own peak RSS in KiB."""
    helper = [sys.executable, "-S", "-c", _PEAK_RSS_HELPER, *argv]
    done = subprocess.run(helper, env=dict(env), capture_output=True, text=True, check=True, timeout=60)
    code, peak = done.stdout.split()
    return int(code), int(peak)
