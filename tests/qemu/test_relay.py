"""The guestfwd relay carries several HTTP requests, each over its own spawned relay process."""

from __future__ import annotations

import subprocess
import sys

from datasources.emulator.aws import EMULATOR
from datasources.emulator.base import EmulatorConfig


def test_each_connection_gets_its_own_relay_to_the_emulator() -> None:
    emu = EMULATOR(EmulatorConfig(userdata=b"hello", instance_id="i-relay")).start()
    try:
        for path in ("/latest/meta-data/instance-id", "/latest/user-data"):
            request = f"GET {path} HTTP/1.1\r\nHost: 169.254.169.254\r\nConnection: close\r\n\r\n".encode()
            out = subprocess.run(
                [sys.executable, "-m", "factory.qemu.relay", "127.0.0.1", str(emu.port)],
                input=request,
                capture_output=True,
                timeout=20,
            )
            assert out.returncode == 0 and out.stderr == b""
            assert out.stdout.startswith(b"HTTP/1.1 200")
        assert out.stdout.endswith(b"hello")
    finally:
        emu.stop()


def test_relay_exits_nonzero_when_nothing_listens() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "factory.qemu.relay", "127.0.0.1", "1"], capture_output=True, timeout=20
    )
    assert out.returncode == 1
