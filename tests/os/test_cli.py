"""``factory iso build`` as a real subprocess: usage errors, and reuse of a cached ISO."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from image_base.os import inputs

FACTORY = str(Path(sys.executable).with_name("factory"))


def factory(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the ``factory`` console script."""
    return subprocess.run([FACTORY, *args], capture_output=True, text=True, check=False, timeout=120)


def test_k3s_url_without_checksum_is_a_usage_error(tmp_path: Path) -> None:
    result = factory("iso", "build", "--cache-dir", str(tmp_path), "--k3s-url", "http://127.0.0.1:9/k3s")
    assert result.returncode == 2
    assert result.stderr.strip() == "factory iso build: --k3s-url needs --k3s-sha256"


def test_bad_checksum_and_missing_k3s_file_are_usage_errors(tmp_path: Path) -> None:
    bad = factory(
        "iso", "build", "--cache-dir", str(tmp_path), "--k3s-url", "http://x/k3s", "--k3s-sha256", "zz"
    )
    assert bad.returncode == 2 and "64 hex digits" in bad.stderr
    missing = factory("iso", "build", "--cache-dir", str(tmp_path), "--k3s", str(tmp_path / "nope"))
    assert missing.returncode == 2 and "no such file" in missing.stderr
    assert "Traceback" not in missing.stderr + bad.stderr


def test_invalid_config_is_a_usage_error_before_anything_is_built(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("- just\n- a list\n")
    result = factory("iso", "build", "--cache-dir", str(tmp_path / "cache"), "--config", str(config))
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "cache").exists()


def test_same_inputs_reuse_the_cached_iso(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("hostname: cached-node\n")
    cache = tmp_path / "cache"
    cache.mkdir()
    key = inputs.iso_key(config.read_bytes(), None)
    (cache / f"k3os-{key}.iso").write_bytes(b"previous iso")
    output = tmp_path / "out" / "k3os.iso"
    result = factory(
        "iso", "build", "--cache-dir", str(cache), "--config", str(config), "--output", str(output), "--json"
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["cached"] is True and report["key"] == key and report["path"] == str(output)
    assert output.read_bytes() == b"previous iso"
    assert "built without Kubernetes (no k3s binary given)" in result.stderr
    assert "MiB in" in result.stderr
