"""Contract checks of the real ``datasources`` console script found by adversarial QA.

Each test pins a behaviour that once failed: the whole process within ``--timeout``, nested
gzip, log prefixes, unknown names in the k3OS config, failed writes, the help text.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from .conftest import StartEmulator, run_cli, url_env

pytestmark = pytest.mark.cloud


@pytest.mark.parametrize("timeout", [1, 2])
def test_whole_process_stays_within_the_timeout(
    timeout: int, emulators: StartEmulator, base_env: dict[str, str], tmp_path: Path
) -> None:
    # Interpreter start-up, the probes and writing the files all count: the deadline runs
    # from process start, and the walk stops early enough to write and exit in time.
    hang_aws = emulators("aws", fail="hang")
    hang_gcp = emulators("gcp", fail="hang")
    vultr = emulators("vultr", userdata=b"from-vultr")
    env = {
        **base_env,
        url_env("aws"): hang_aws.url,
        url_env("gcp"): hang_gcp.url,
        url_env("vultr"): vultr.url,
    }
    out = tmp_path / "o"
    run = run_cli(
        "fetch", "aws", "gcp", "vultr", "--timeout", str(timeout), "--output", str(out), "--json", env=env
    )
    assert run.returncode == 0, run.stderr
    assert run.wall < timeout + 0.1, f"{run.wall:.3f} s for --timeout {timeout}"
    doc = json.loads(run.stdout)
    assert [a["outcome"] for a in doc["attempts"]] == ["absent", "absent", "userdata"]
    assert all(a["elapsed_ms"] <= timeout * 1000 for a in doc["attempts"])
    assert (out / "userdata").read_bytes() == b"from-vultr"


def test_nothing_answering_in_time_still_exits_within_the_timeout(
    emulators: StartEmulator, base_env: dict[str, str], tmp_path: Path
) -> None:
    hangs = {p: emulators(p, fail="hang") for p in ("aws", "gcp", "openstack", "hetzner")}
    env = {**base_env, **{url_env(p): e.url for p, e in hangs.items()}}
    start = time.monotonic()
    run = run_cli("fetch", *hangs, "--timeout", "1", "--output", str(tmp_path / "o"), env=env)
    assert run.returncode == 1
    assert time.monotonic() - start < 1.1
