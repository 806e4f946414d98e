"""``factory packer render|build`` through the real console entry: paths printed, no secrets
printed, one-line usage errors with exit 2, a missing packer named, and a real Packer failure
reported as exit 1."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from factory.commands.packer import PACKER_MISSING, packer_build_argv, packer_env
from tests.packer.conftest import DUMMY_ISO_URL, DUMMY_SHA256, FACTORY, REPO

SECRET = "hunter2-never-print-me"


def _run(*args: str, env: dict[str, str] | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*FACTORY, "packer", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300
    )


def _iso_args() -> list[str]:
    return ["--iso-url", DUMMY_ISO_URL, "--iso-sha256", DUMMY_SHA256]


def test_render_prints_the_paths_and_no_secret(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(f"k3os:\n  password: {SECRET}\n  token: {SECRET}-token\n")
    res = _run("render", "aws", *_iso_args(), "--config", str(config), "--output-dir", str(tmp_path / "o"),
               "--var", "region=eu-central-1", "--var", "tags=team=infra")  # fmt: skip
    assert res.returncode == 0, res.stderr
    lines = dict(line.split(": ", 1) for line in res.stdout.splitlines())
    assert Path(lines["userdata"]).is_file()
    var_file = Path(lines["var-file"])
    assert var_file.name == "aws.auto.pkrvars.hcl"
    text = var_file.read_text()
    assert 'region = "eu-central-1"' in text and '"team" = "infra"' in text
    assert SECRET not in res.stdout + res.stderr
    assert SECRET not in text  # the config lives in the userdata file only (mode 0600)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["render", "azure"], "unknown cloud 'azure'"),
        (["render", "aws", "--var", "novalue"], "expected KEY=VALUE"),
        (["render", "aws", "--var", "bogus=1"], "no such variable"),
        (["render", "aws", "--var", "timeout_minutes=soon"], "expected a number"),
        (["render", "aws", "--var", "region=a", "--var", "region=b"], "given twice"),
        (["render", "aws", "--iso-url", DUMMY_ISO_URL], "iso_sha256 is required"),
        (["build", "azure"], "unknown cloud"),
    ],
)
def test_usage_errors_are_one_line_exit_2(args: list[str], message: str, tmp_path: Path) -> None:
    res = _run(*args, *([] if "--iso-url" in args else _iso_args()), "--output-dir", str(tmp_path))
    assert res.returncode == 2, res.stderr
    assert message in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    assert "Traceback" not in res.stderr


def test_build_without_packer_exits_2_and_says_how_to_install(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    env = {**os.environ, "PATH": str(bin_dir)}
    res = _run("build", "aws", *_iso_args(), "--output-dir", str(tmp_path / "o"), env=env)
    assert res.returncode == 2
    assert res.stderr.strip() == f"factory packer build: {PACKER_MISSING}"
    assert not (tmp_path / "o").exists()  # nothing rendered


def test_build_argv_is_a_list_with_the_var_file_and_template() -> None:
    argv = packer_build_argv(
        "/usr/bin/packer", Path("/o/a b.hcl"), Path("/t/aws"), force=True, on_error="abort"
    )
    assert argv == ["/usr/bin/packer", "build", "-var-file=/o/a b.hcl", "-on-error=abort", "-force", "/t/aws"]


def test_build_runs_real_packer_and_reports_its_failure(tmp_path: Path) -> None:
    """hcloud pointed at a closed loopback port: Packer starts, fails at the API, cleans up: exit 1."""
    if shutil.which("packer") is None:
        pytest.skip("packer is not installed (make apt)")
    with __import__("socket").socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "HCLOUD_TOKEN": "dummy", "HCLOUD_ENDPOINT": f"http://127.0.0.1:{port}/v1",
           "CHECKPOINT_DISABLE": "1", "HOME": str(tmp_path)}  # fmt: skip
    res = _run("build", "hetzner", *_iso_args(), "--output-dir", str(tmp_path / "o"),
               "--var", f"manifest_output={tmp_path / 'm.json'}", env=env, cwd=tmp_path)  # fmt: skip
    assert res.returncode == 1, res.stdout + res.stderr
    assert "packer build exited with 1" in res.stderr
    assert "-var-file=" in res.stderr and str(REPO / "packer" / "hetzner") in res.stderr
    assert "127.0.0.1" in res.stdout + res.stderr  # Packer really tried the (fake) endpoint
    assert not (tmp_path / "m.json").exists()


def test_packer_cache_goes_under_the_factory_cache_unless_set(tmp_path: Path) -> None:
    env = packer_env({"FACTORY_CACHE_DIR": str(tmp_path / "c")})
    assert env["PACKER_CACHE_DIR"] == str(tmp_path / "c" / "packer")  # not ./packer_cache in the cwd
    assert packer_env({"PACKER_CACHE_DIR": "/mine"})["PACKER_CACHE_DIR"] == "/mine"
