"""Choose the QEMU accelerator by what really works on this machine.

``/dev/kvm`` existing and QEMU saying "KVM enabled" is not enough: on nested-PVM hosts KVM initialises
and the guest then dies (``KVM internal error``). So ``auto`` boots a real kernel under KVM for a few
seconds (``-kernel K -append panic=-1 -no-reboot``, no root filesystem: a working kernel runs until it
panics for lack of a root and QEMU exits) and uses KVM only when that kernel reached its panic line. The
answer is cached per machine (host name, host kernel, QEMU version) in ``<cache>/accel.json``.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from factory.qemu.argv import DirectKernel, VmSpec, qemu_argv
from factory.qemu.process import QemuError, QemuProcess

ACCEL_CHOICES = ("auto", "kvm", "tcg")
KVM_DEVICE_ENV = "FACTORY_KVM_DEVICE"
PROBE_TIMEOUT_S = 20.0
PROBE_MARKERS = ("Kernel panic", "VFS: Unable to mount root")
KVM_FAILURE_MARKERS = (
    "KVM internal error",
    "emulation failure",
    "failed to initialize kvm",
    "Could not access KVM",
)


@dataclass(frozen=True)
class AccelChoice:
    """The accelerator to use and why (for the progress log)."""

    accel: str
    reason: str
    cached: bool = False


def kvm_device_path() -> Path:
    """``$FACTORY_KVM_DEVICE`` (tests point it at a missing file), else ``/dev/kvm``."""
    return Path(os.environ.get(KVM_DEVICE_ENV) or "/dev/kvm")


def qemu_version(binary: str = "qemu-system-x86_64") -> str:
    """The first line of ``qemu-system-x86_64 --version`` ("" if QEMU is missing)."""
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=10)
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.splitlines()[0] if out.stdout else ""


def machine_key(kvm_device: Path, binary: str = "qemu-system-x86_64") -> str:
    """What the cached answer depends on: host name, host kernel, QEMU version, KVM device."""
    return "|".join([socket.gethostname(), platform.release(), qemu_version(binary), str(kvm_device)])


def _read_cache(cache_file: Path) -> dict[str, dict[str, str]]:
    try:
        data = json.loads(cache_file.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_cache(cache_file: Path, key: str, choice: AccelChoice) -> None:
    data = _read_cache(cache_file)
    data[key] = {"accel": choice.accel, "reason": choice.reason, "time": str(int(time.time()))}
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache_file.with_name(f".{cache_file.name}.{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(cache_file)


def probe_kvm(
    kernel: Path, *, timeout_s: float = PROBE_TIMEOUT_S, binary: str = "qemu-system-x86_64"
) -> AccelChoice:
    """Boot ``kernel`` under KVM with no root filesystem; KVM works if the kernel reaches its panic."""
    with tempfile.TemporaryDirectory(prefix="kvm-probe-") as tmp:
        serial = Path(tmp) / "serial.log"
        spec = VmSpec(
            serial_log=serial,
            accel="kvm",
            memory_mb=256,
            cpus=1,
            kernel=DirectKernel(kernel, None, "console=ttyS0 panic=-1 root=/dev/k3os-factory-probe"),
            no_reboot=True,
            binary=binary,
        )
        proc = QemuProcess(qemu_argv(spec), Path(tmp) / "qemu.log")
        started = time.monotonic()
        try:
            with proc.start():
                while time.monotonic() - started < timeout_s:
                    console = serial.read_text(errors="replace") if serial.exists() else ""
                    stderr = proc.stderr_text()
                    if any(marker in stderr for marker in KVM_FAILURE_MARKERS):
                        return AccelChoice("tcg", f"KVM probe failed: {_first_line(stderr)}")
                    if any(marker in console for marker in PROBE_MARKERS):
                        took = time.monotonic() - started
                        return AccelChoice("kvm", f"KVM probe booted a kernel in {took:.1f}s")
                    code = proc.poll()
                    if code is not None:
                        return AccelChoice("tcg", f"KVM probe: QEMU exited {code}: {_first_line(stderr)}")
                    time.sleep(0.1)
        except QemuError as exc:
            return AccelChoice("tcg", f"KVM probe could not start QEMU: {exc}")
    return AccelChoice("tcg", f"KVM probe did not boot a kernel within {timeout_s:.0f}s")


def _first_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[0][:160] if lines else "(no message)"


def detect_accel(
    requested: str = "auto",
    *,
    cache_dir: Path | None = None,
    probe_kernel: Path | None = None,
    kvm_device: Path | None = None,
    binary: str = "qemu-system-x86_64",
    timeout_s: float = PROBE_TIMEOUT_S,
) -> AccelChoice:
    """Resolve ``requested`` (auto|kvm|tcg) to kvm or tcg. ``auto``: TCG when the KVM device is
    missing or not usable, else the (cached) result of :func:`probe_kvm`; without a probe kernel,
    TCG when the host is nested PVM (``/sys/module/kvm_pvm``), else KVM unverified (not cached)."""
    if requested not in ACCEL_CHOICES:
        raise ValueError(f"unknown accelerator {requested!r} (choose from {', '.join(ACCEL_CHOICES)})")
    if requested != "auto":
        return AccelChoice(requested, f"--accel {requested}")
    device = kvm_device or kvm_device_path()
    if not device.exists():
        return AccelChoice("tcg", f"{device} does not exist")
    if not os.access(device, os.R_OK | os.W_OK):
        return AccelChoice("tcg", f"{device} is not readable and writable by this user")
    key = machine_key(device, binary)
    cache_file = cache_dir / "accel.json" if cache_dir is not None else None
    if cache_file is not None:
        entry = _read_cache(cache_file).get(key)
        if entry and entry.get("accel") in ("kvm", "tcg"):
            return AccelChoice(entry["accel"], entry.get("reason", ""), cached=True)
    if probe_kernel is None or not probe_kernel.is_file():
        if Path("/sys/module/kvm_pvm").exists():
            return AccelChoice(
                "tcg", "host KVM is nested PVM (kvm_pvm loaded), which cannot run stock kernels"
            )
        return AccelChoice("kvm", "/dev/kvm present (not probed: no kernel to boot)")
    choice = probe_kvm(probe_kernel, timeout_s=timeout_s, binary=binary)
    if cache_file is not None:
        _write_cache(cache_file, key, choice)
    return choice
