"""The console scripts: usage errors are one line with exit 2; a dry run creates nothing."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

FACTORY = [sys.executable, "-m", "factory.cli"]


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*FACTORY, *args], capture_output=True, text=True, timeout=120, cwd=cwd)


def test_verify_usage_errors(tmp_path: Path) -> None:
    res = _run("verify", "qemu", str(tmp_path / "missing.qcow2"))
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        f"factory verify qemu: {tmp_path / 'missing.qcow2'}: no such file"
    ]
    image = tmp_path / "i.qcow2"
    image.write_bytes(b"x")
    userdata = tmp_path / "ud.yaml"
    userdata.write_text("write_files: []\n")
    res = _run("verify", "qemu", str(image), "--userdata", str(userdata))
    assert res.returncode == 2 and "sets no hostname" in res.stderr
    res = _run("verify", "qemu", str(image), "--provider", "nosuchcloud")
    assert res.returncode == 2


def test_base_build_rejects_tiny_size(tmp_path: Path) -> None:
    res = _run("base", "build", "--size", "10", "--cache-dir", str(tmp_path))
    assert res.returncode == 2 and "--size" in res.stderr


def test_bake_qemu_dry_run_plans_without_creating(tmp_path: Path) -> None:
    iso = tmp_path / "k3os.iso"
    iso.write_bytes(b"not really an iso")
    base = tmp_path / "base.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "64M"], check=True)
    out = tmp_path / "out"
    res = _run(
        "bake", "qemu", "--iso", str(iso), "--base-image", str(base), "--output", str(out),
        "--manifest", str(tmp_path / "m.json"), "--dry-run",
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "prepare" in res.stdout and "HTTP server on 127.0.0.1" in res.stdout
    assert not out.exists() and not (tmp_path / "m.json").exists()


def test_bake_qemu_usage_errors(tmp_path: Path) -> None:
    base = tmp_path / "base.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(base), "64M"], check=True)
    iso = tmp_path / "k3os.iso"
    iso.write_bytes(b"abc")
    res = _run(
        "bake", "qemu", "--iso", str(iso), "--base-image", str(base), "--iso-sha256", "0" * 64, "--dry-run"
    )
    assert res.returncode == 2 and "does not match" in res.stderr
    res = _run("bake", "qemu", "--iso", str(iso), "--base-image", str(tmp_path / "nope"), "--dry-run")
    assert res.returncode == 2 and "--base-image" in res.stderr
    res = _run("bake", "qemu", "--base-image", str(base), "--dry-run")
    assert res.returncode == 2 and "--iso" in res.stderr
