"""The real ``datasources`` console script against loopback emulators: exit codes, files, --json."""

from __future__ import annotations

import functools
import json
import stat
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from .conftest import DATASOURCES, StartEmulator, exit_code_and_peak_rss, run_cli, url_env

pytestmark = pytest.mark.cloud
META_KEYS = "provider instance_id hostname region zone public_ipv4 local_ipv4 ssh_keys has_userdata"
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIcli k@cli"


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_fetch_writes_files_modes_and_json(
    emulators: StartEmulator, base_env: dict[str, str], tmp_path: Path
) -> None:
    emu = emulators(
        "aws", userdata=b"#cloud-config\nhostname: x\n", ssh_keys=[KEY, KEY + "2"], imds="required"
    )
    out = tmp_path / "out"
    env = {**base_env, url_env("aws"): emu.url}
    run = run_cli("fetch", "aws", "--output", str(out), "--json", env=env)
    assert run.returncode == 0, run.stderr
    doc = json.loads(run.stdout)
    assert set(doc) == {"provider", "userdata", "files", "attempts"}
    assert doc["provider"] == "aws" and doc["userdata"] is True
    assert sorted(doc["files"]) == sorted(
        [
            "provider",
            "userdata",
            "local_hostname",
            "hostname",
            "ssh/authorized_keys",
            "instance_id",
            "metadata.json",
        ]
    )
    [attempt] = doc["attempts"]
    assert set(attempt) == {"provider", "outcome", "detail", "elapsed_ms"}
    assert attempt["provider"] == "aws" and attempt["outcome"] == "userdata"
    assert isinstance(attempt["elapsed_ms"], int)
    assert (out / "provider").read_text() == "aws\n"
    assert (out / "userdata").read_bytes() == b"#cloud-config\nhostname: x\n"
    assert (out / "local_hostname").read_text() == "aws-node\n"
    assert (out / "instance_id").read_text() == "i-0123456789abcdef0\n"
    assert (out / "ssh" / "authorized_keys").read_text() == f"{KEY}\n{KEY}2\n"
    assert mode(out / "userdata") == 0o600
    assert mode(out / "ssh") == 0o700
    assert mode(out / "ssh" / "authorized_keys") == 0o600
    meta = json.loads((out / "metadata.json").read_text())
    assert (
        meta["has_userdata"] is True
        and meta["region"] == "us-east-1"
        and meta["ssh_keys"] == [KEY, KEY + "2"]
    )
    assert set(meta) == set(META_KEYS.split())
    assert not list(out.rglob(".*")), "temporary files left behind"
    assert "aws: userdata" in run.stderr


def test_stale_files_are_removed_and_others_untouched(
    emulators: StartEmulator, base_env: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    full = emulators("aws", userdata=b"ud", ssh_keys=[KEY])
    bare = emulators("aws", ssh_keys=[])
    (out / "ssh").mkdir(parents=True)
    (out / "mine.txt").write_text("keep")
    (out / "ssh" / "other_keys").write_text("keep")
    assert (
        run_cli("fetch", "aws", "--output", str(out), env={**base_env, url_env("aws"): full.url}).returncode
        == 0
    )
    assert (out / "userdata").exists() and (out / "ssh" / "authorized_keys").exists()
    run = run_cli("fetch", "aws", "--output", str(out), env={**base_env, url_env("aws"): bare.url})
    assert run.returncode == 0
    assert not (out / "userdata").exists() and not (out / "ssh" / "authorized_keys").exists()
    assert (out / "provider").exists() and (out / "metadata.json").exists()
    assert json.loads((out / "metadata.json").read_text())["has_userdata"] is False
    run = run_cli("fetch", "aws", "--output", str(out), "--json", env=base_env)
    assert run.returncode == 1
    assert json.loads(run.stdout) == {
        "provider": None,
        "userdata": False,
        "files": [],
        "attempts": [json.loads(run.stdout)["attempts"][0]],
    }
    assert json.loads(run.stdout)["attempts"][0]["outcome"] == "absent"
    left = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert left == ["mine.txt", "ssh/other_keys"]


def test_nothing_detected_leaves_no_empty_ssh_dir(
    emulators: StartEmulator, base_env: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    emu = emulators("aws", userdata=b"ud", ssh_keys=[KEY])
    assert (
        run_cli("fetch", "aws", "--output", str(out), env={**base_env, url_env("aws"): emu.url}).returncode
        == 0
    )
    assert (out / "ssh" / "authorized_keys").exists()
    assert run_cli("fetch", "aws", "--output", str(out), env=base_env).returncode == 1
    assert sorted(p.name for p in out.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["fetch", "aws", "azure"], "unknown provider 'azure'"),
        (["fetch", "--bogus"], "unrecognized arguments"),
        (["fetch", "aws", "--timeout", "-1"], "positive"),
        (["fetch", "aws", "--timeout", "soon"], "not a number"),
        (["fetch", "aws", "--timeout", "1e300"], "at most 86400"),
        (["fetch", "aws", "--timeout", "inf"], "at most 86400"),
        (["fetch", "aws", "--timeout", "nan"], "positive"),
        (["fetch", "aws", "--timeout", "0"], "positive"),
        (["frobnicate"], "invalid choice"),
        ([], "required"),
    ],
)
def test_usage_errors_exit_2_with_one_line(args: list[str], needle: str, base_env: dict[str, str]) -> None:
    run = run_cli(*args, env=base_env)
    assert run.returncode == 2
    assert len(run.stderr.strip().splitlines()) == 1, run.stderr
    assert needle in run.stderr and "Traceback" not in run.stderr


def test_help_explains(base_env: dict[str, str]) -> None:
    run = run_cli("--help", env=base_env)
    assert run.returncode == 0
    assert "fetch" in run.stdout and "Exit codes" in run.stdout and "DATASOURCES_<PROVIDER>_URL" in run.stdout
    run = run_cli("fetch", "--help", env=base_env)
    assert run.returncode == 0 and "--timeout" in run.stdout and "examples" in run.stdout


def test_python_dash_m_and_list(base_env: dict[str, str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "datasources", "list"],
        env=base_env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0
    names = [line.split("\t")[0] for line in proc.stdout.splitlines()]
    assert names[0] == "aws" and "gcp" in names


def test_refused_everywhere_costs_milliseconds(base_env: dict[str, str], tmp_path: Path) -> None:
    run = run_cli("fetch", "aws", "gcp", "openstack", "--output", str(tmp_path / "o"), "--json", env=base_env)
    assert run.returncode == 1
    assert run.wall < 1.0
    attempts = json.loads(run.stdout)["attempts"]
    assert [a["outcome"] for a in attempts] == ["absent"] * 3
    assert all(a["elapsed_ms"] < 200 for a in attempts)
    assert "absent (not this cloud:" in run.stderr


def test_hanging_server_never_passes_the_timeout(
    emulators: StartEmulator, base_env: dict[str, str], tmp_path: Path
) -> None:
    hang = emulators("aws", fail="hang")
    env = {**base_env, url_env("aws"): hang.url}
    run = run_cli("fetch", "aws", "--timeout", "2", "--output", str(tmp_path / "o"), env=env)
    assert run.returncode == 1
    assert run.wall < 3.0


def test_error_is_logged_as_this_cloud_but(
    emulators: StartEmulator, base_env: dict[str, str], tmp_path: Path
) -> None:
    emu = emulators("aws", imds="disabled")
    run = run_cli("fetch", "aws", "--output", str(tmp_path / "o"), env={**base_env, url_env("aws"): emu.url})
    assert run.returncode == 1
    assert "aws: error (this cloud, but: IMDS endpoint disabled" in run.stderr


@functools.cache
def gzip_bomb() -> bytes:
    """1 GiB of zeros, gzipped (about 1 MiB)."""
    co = zlib.compressobj(9, zlib.DEFLATED, 31)
    zeros = b"\0" * (1 << 20)
    return b"".join(co.compress(zeros) for _ in range(1024)) + co.flush()


def test_gzip_bomb_is_an_error_and_the_search_goes_on(
    emulators: StartEmulator, base_env: dict[str, str], tmp_path: Path
) -> None:
    aws = emulators("aws", userdata=gzip_bomb())
    gcp = emulators("gcp", userdata=b"from-gcp")
    env = {**base_env, url_env("aws"): aws.url, url_env("gcp"): gcp.url}
    out = tmp_path / "o"
    run = run_cli("fetch", "aws", "gcp", "--output", str(out), "--json", env=env)
    assert run.returncode == 0
    assert [a["outcome"] for a in json.loads(run.stdout)["attempts"]] == ["error", "userdata"]
    assert (out / "userdata").read_bytes() == b"from-gcp"


def test_gzip_bomb_peak_memory(emulators: StartEmulator, base_env: dict[str, str], tmp_path: Path) -> None:
    aws = emulators("aws", userdata=gzip_bomb())
    env = {**base_env, url_env("aws"): aws.url}
    code, peak_kib = exit_code_and_peak_rss(
        [DATASOURCES, "fetch", "aws", "--output", str(tmp_path / "o")], env
    )
    assert code == 1
    assert not (tmp_path / "o" / "userdata").exists()
    # 1 GiB once decompressed; the size is checked while discarding the output
    assert peak_kib < 32 * 1024, f"peak {peak_kib} KiB"


def test_trace_logs_every_hook_call(
    emulators: StartEmulator, base_env: dict[str, str], tmp_path: Path
) -> None:
    emu = emulators("aws")
    env = {**base_env, url_env("aws"): emu.url, "DATASOURCES_TRACE": "1"}
    run = run_cli("fetch", "aws", "--output", str(tmp_path / "o"), env=env)
    assert run.returncode == 0
    trace = [line for line in run.stderr.splitlines() if "trace:" in line]
    assert any("datasources_fetch(provider='aws'" in line and " ms" in line for line in trace)
    assert any("datasources_providers(" in line for line in trace)
    quiet = run_cli("fetch", "aws", "--output", str(tmp_path / "o"), env={**env, "DATASOURCES_TRACE": ""})
    assert "trace:" not in quiet.stderr


def test_order_from_the_k3os_config(
    emulators: StartEmulator, base_env: dict[str, str], tmp_path: Path
) -> None:
    pytest.importorskip("image_base.config")
    root = Path(base_env["DATASOURCES_ROOT"])
    (root / "k3os" / "system").mkdir(parents=True)
    (root / "proc").mkdir()
    (root / "proc" / "cmdline").write_text("console=ttyS0\n")
    (root / "k3os" / "system" / "config.yaml").write_text("k3os:\n  data_sources: [gcp, aws]\n")
    aws = emulators("aws", userdata=b"from-aws")
    gcp = emulators("gcp", userdata=b"from-gcp")
    env = {**base_env, url_env("aws"): aws.url, url_env("gcp"): gcp.url}
    run = run_cli("fetch", "--output", str(tmp_path / "o"), "--json", env=env)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["provider"] == "gcp"
    assert [a["provider"] for a in json.loads(run.stdout)["attempts"]] == ["gcp"]


def test_default_order_without_config(base_env: dict[str, str], tmp_path: Path) -> None:
    run = run_cli("fetch", "--output", str(tmp_path / "o"), "--json", "--timeout", "3", env=base_env)
    assert run.returncode == 1
    listed = [line.split("\t")[0] for line in run_cli("list", env=base_env).stdout.splitlines()]
    assert [a["provider"] for a in json.loads(run.stdout)["attempts"]] == listed


def test_emulator_main_serves_and_fetch_uses_it(base_env: dict[str, str], tmp_path: Path) -> None:
    ud = tmp_path / "ud"
    ud.write_bytes(b"#cloud-config\n")
    emu = subprocess.Popen(
        [sys.executable, "-m", "datasources.emulator", "aws", "--port", "0", "--userdata", str(ud),
         "--ssh-key", KEY, "--hostname", "emu-host", "--option", "imds=required"],
        env=base_env, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert emu.stdout is not None
        line = emu.stdout.readline().strip()
        assert line.startswith("listening on http://127.0.0.1:")
        url = line.removeprefix("listening on ")
        out = tmp_path / "o"
        run = run_cli("fetch", "aws", "--output", str(out), env={**base_env, url_env("aws"): url})
        assert run.returncode == 0, run.stderr
        assert (out / "local_hostname").read_text() == "emu-host\n"
        assert (out / "userdata").read_bytes() == b"#cloud-config\n"
    finally:
        emu.terminate()
        assert emu.wait(5) == 0


def test_emulator_main_rejects_unknown_provider(base_env: dict[str, str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "datasources.emulator", "azure"], env=base_env, capture_output=True, text=True
    )
    assert proc.returncode == 2 and "no emulator named 'azure'" in proc.stderr
