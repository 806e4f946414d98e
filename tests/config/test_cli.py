"""The ``k3os`` console script, run as a real subprocess."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import FULL_CONFIG, GROUP, PASSWD, write

K3OS = str(Path(sys.executable).parent / "k3os")


def k3os(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([K3OS, *args], capture_output=True, text=True, timeout=60, check=False)


def test_validate_ok_exits_0(tmp_path: Path) -> None:
    path = write(tmp_path / "config.yaml", FULL_CONFIG)
    result = k3os("config", "--validate", str(path))
    assert result.returncode == 0, result.stderr
    assert result.stderr == f"{path}: ok\n" and result.stdout == ""


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("k3os:\n  labels:\n    region: [a, b]\n", "k3os.labels.region: expected a string, got list"),
        ("hostnam: x\n", "hostnam: unknown key (did you mean 'hostname'?)"),
        (
            "write_files:\n- path: /x\n  encoding: b64\n  content: '!!'\n",
            "write_files[0].content: not valid base64",
        ),
        ("a: [\n", "invalid YAML at line 2"),
    ],
)
def test_validate_bad_config_exits_2_with_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "config.yaml", text)
    result = k3os("config", "--validate", str(path))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"k3os: {path}: ") and message in result.stderr


def test_validate_missing_file_exits_2(tmp_path: Path) -> None:
    result = k3os("config", "--validate", str(tmp_path / "nope.yaml"))
    assert result.returncode == 2 and "no such file" in result.stderr


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["config"],
        ["config", "--apply"],
        ["config", "--apply", "--phase", "later"],
        ["config", "--dump", "--validate", "x"],
        ["config", "--dump", "--bogus"],
        ["nothing"],
    ],
)
def test_usage_errors_exit_2_with_one_line(args: list[str]) -> None:
    result = k3os(*args)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("k3os")


def test_help_explains() -> None:
    result = k3os("config", "--help")
    assert result.returncode == 0
    for word in ("--dump", "--validate", "--apply", "--phase", "--root", "--run-commands", "exit codes"):
        assert word in result.stdout


def test_dump_merges_root_and_cmdline_and_masks(tmp_path: Path) -> None:
    write(tmp_path / "k3os/system/config.yaml", FULL_CONFIG)
    result = k3os(
        "config", "--dump", "--root", str(tmp_path), "--cmdline", "hostname=from-cmd k3os.token=cmdtoken"
    )
    assert result.returncode == 0, result.stderr
    for secret in ("supersecure", "cmdtoken", "mypassword", "secret-token"):
        assert secret not in result.stdout
    data = yaml.safe_load(result.stdout)
    assert data["hostname"] == "from-cmd" and data["k3os"]["token"] == "********"


def test_dump_phase_filter(tmp_path: Path) -> None:
    write(tmp_path / "k3os/system/config.yaml", FULL_CONFIG)
    result = k3os("config", "--dump", "--phase", "initrd", "--root", str(tmp_path), "--cmdline", "")
    assert set(yaml.safe_load(result.stdout)) == {"hostname", "write_files", "init_cmd", "k3os"}


def test_dump_with_bad_source_exits_2(tmp_path: Path) -> None:
    write(tmp_path / "var/lib/rancher/k3os/config.d/50-bad.yaml", "k3os: {modules: {a: b}}\n")
    result = k3os("config", "--dump", "--root", str(tmp_path), "--cmdline", "")
    assert result.returncode == 2
    assert "50-bad.yaml: k3os.modules: expected a list of strings, got map" in result.stderr


def test_apply_json_on_fake_root_records_commands(tmp_path: Path) -> None:
    write(tmp_path / "k3os/system/config.yaml", FULL_CONFIG)
    write(tmp_path / "etc/passwd", PASSWD)
    write(tmp_path / "etc/group", GROUP)
    result = k3os(
        "config", "--apply", "--phase", "runtime", "--root", str(tmp_path), "--cmdline", "", "--json"
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["phase"] == "runtime" and report["failures"] == []
    assert report["recorded_commands"] == [["/bin/sh", "-c", "echo run one"], ["/bin/true", "two"]]
    assert (tmp_path / "etc/hostname").read_text() == "node-1\n"
    assert "supersecure" not in result.stdout


def test_apply_run_commands_really_runs_and_failure_exits_1(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    write(tmp_path / "k3os/system/config.yaml", f"run_cmd:\n- touch {marker}\n- [sh, -c, 'exit 3']\n")
    result = k3os(
        "config", "--apply", "--phase", "runtime", "--root", str(tmp_path), "--cmdline", "", "--run-commands"
    )
    assert result.returncode == 1
    assert marker.exists()
    assert "k3os: failed: run_cmd[1] exited 3" in result.stderr


def test_import_stays_cheap() -> None:
    code = "import sys, image_base.config; print(sorted(m.split('.')[0] for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    for heavy in ("datasources", "requests", "boto3", "pluggy", "pycdlib", "factory"):
        assert f"'{heavy}'" not in out
