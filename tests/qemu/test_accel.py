"""Accelerator choice: TCG when /dev/kvm is missing or a real KVM test boot fails; cached per machine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from factory.qemu.accel import detect_accel, probe_kvm

HAVE_KVM = os.access("/dev/kvm", os.R_OK | os.W_OK)


def test_missing_kvm_device_means_tcg(tmp_path: Path) -> None:
    choice = detect_accel("auto", cache_dir=tmp_path, kvm_device=tmp_path / "no-such-kvm")
    assert choice.accel == "tcg"
    assert "does not exist" in choice.reason
    assert not (tmp_path / "accel.json").exists()  # nothing to cache: no probe ran


def test_detector_in_a_subprocess_with_the_device_env_pointing_nowhere(tmp_path: Path) -> None:
    env = {**os.environ, "FACTORY_KVM_DEVICE": str(tmp_path / "kvm")}
    code = "from factory.qemu.accel import detect_accel; c = detect_accel(); print(c.accel, c.reason)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.startswith("tcg ")


def test_explicit_choice_is_respected_and_unknown_rejected(tmp_path: Path) -> None:
    assert detect_accel("kvm", kvm_device=tmp_path / "none").accel == "kvm"
    assert detect_accel("tcg").accel == "tcg"
    with pytest.raises(ValueError):
        detect_accel("whpx")


@pytest.mark.skipif(not HAVE_KVM, reason="needs a /dev/kvm to probe")
def test_probe_that_cannot_boot_falls_back_to_tcg_and_is_cached(tmp_path: Path) -> None:
    # Not a kernel: QEMU under KVM refuses to load it and exits, exactly like a failed boot.
    bogus = tmp_path / "vmlinuz"
    bogus.write_bytes(b"not a kernel")
    choice = detect_accel("auto", cache_dir=tmp_path, probe_kernel=bogus, timeout_s=15)
    assert choice.accel == "tcg" and not choice.cached
    assert "KVM probe" in choice.reason
    cached = json.loads((tmp_path / "accel.json").read_text())
    assert [entry["accel"] for entry in cached.values()] == ["tcg"]
    again = detect_accel("auto", cache_dir=tmp_path, probe_kernel=bogus)
    assert again.cached and again.accel == "tcg"


@pytest.mark.skipif(not HAVE_KVM, reason="needs a /dev/kvm to probe")
def test_probe_reports_why(tmp_path: Path) -> None:
    choice = probe_kvm(tmp_path / "missing-kernel", timeout_s=10)
    assert choice.accel == "tcg"
    assert choice.reason
