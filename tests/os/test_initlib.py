"""The initrd's shell functions (mode fallback, takeover, factory reset, data seeding, cmdline),
run under busybox sh against a temp directory standing for the state filesystem."""

from __future__ import annotations

import os
import shutil
import subprocess
from importlib import resources
from pathlib import Path

import pytest

BUSYBOX = shutil.which("busybox")
pytestmark = pytest.mark.skipif(BUSYBOX is None, reason="needs busybox (busybox-static)")
INITLIB = resources.files("image_base.os").joinpath("files", "initrd", "lib", "k3os", "initlib.sh")


def run_lib(script: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """Source initlib.sh in busybox sh and run ``script``; power actions only leave files behind."""
    env = {
        "PATH": os.environ["PATH"],
        "K3OS_CONSOLE": str(tmp_path / "console"),
        "K3OS_POWEROFF": f"touch {tmp_path}/powered-off",
        "K3OS_REBOOT": f"touch {tmp_path}/rebooted",
    }
    with resources.as_file(INITLIB) as lib:
        return subprocess.run(
            [str(BUSYBOX), "sh", "-c", f". {lib}\n{script}"],
            env=env,
            capture_output=True,
            text=True,
            check=False,
            timeout=30,
        )


@pytest.mark.parametrize(
    ("given", "state", "medium", "expected"),
    [
        ("live", "/dev/vda1", "/dev/sr0", "live"),
        ("install", "", "/dev/sr0", "install"),
        ("shell", "/dev/vda1", "", "shell"),
        ("disk", "", "", "disk"),
        ("", "/dev/vda1", "/dev/sr0", "disk"),
        ("", "", "/dev/sr0", "live"),
        ("", "", "", "shell"),
        ("bogus", "/dev/vda1", "", "shell"),
    ],
)
def test_choose_mode_follows_k3os_fallback(
    given: str, state: str, medium: str, expected: str, tmp_path: Path
) -> None:
    result = run_lib(f'choose_mode "{given}" "{state}" "{medium}"', tmp_path)
    assert result.stdout.strip() == expected


def test_parse_cmdline_reads_k3os_keys(tmp_path: Path) -> None:
    cmdline = tmp_path / "cmdline"
    cmdline.write_text(
        "BOOT_IMAGE=/k3os/vmlinuz k3os.mode=install k3os.state_label=MYSTATE console=ttyS0 "
        "k3os.install.device=/dev/vda k3os.install.poweroff=true k3os.growpart=false\n"
    )
    script = f'parse_cmdline {cmdline}; echo "$K3OS_MODE|$K3OS_STATE_LABEL|$K3OS_GROWPART|$K3OS_INSTALL_ARGS"'
    assert run_lib(script, tmp_path).stdout.strip() == "install|MYSTATE|false| device=/dev/vda poweroff=true"
    cmdline.write_text("console=ttyS0\n")
    assert run_lib(script, tmp_path).stdout.strip() == "|K3OS_STATE|true|"


def _old_os(state: Path) -> None:
    for directory in ("usr/bin", "etc", "var/lib", "boot/grub", "k3os/system/kernel", "lost+found"):
        (state / directory).mkdir(parents=True, exist_ok=True)
    (state / "usr/bin/ls").write_text("old")
    (state / "etc/passwd").write_text("old")
    (state / ".hidden").write_text("old")
    (state / "boot/grub/grub.cfg").write_text("menuentry k3OS {}")
    (state / "k3os/system/config.yaml").write_text("{}")
    (state / "lib").symlink_to("usr/lib")
    (state / "k3os/system/takeover").touch()


def test_takeover_keeps_boot_k3os_and_powers_off_when_asked(tmp_path: Path) -> None:
    state = tmp_path / "state"
    _old_os(state)
    (state / "sbin").mkdir()
    (state / "sbin/init").write_text("keep")
    (state / "sbin/fsck").write_text("old")
    (state / "k3os/system/poweroff").touch()
    result = run_lib(f"takeover {state}; echo rc=$?", tmp_path)
    assert "rc=0" in result.stdout
    assert sorted(p.name for p in state.iterdir()) == ["boot", "k3os", "lost+found", "sbin"]
    assert [p.name for p in (state / "sbin").iterdir()] == ["init"]
    assert (state / "boot/grub/grub.cfg").is_file() and (state / "k3os/system/config.yaml").is_file()
    assert not (state / "k3os/system/takeover").exists()
    assert not (state / "k3os/system/poweroff").exists()
    assert (state / "k3os/system/factory-reset").exists()
    assert (tmp_path / "powered-off").exists() and not (tmp_path / "rebooted").exists()
    assert "k3os-init: takeover done, powering off" in (tmp_path / "console").read_text()


def test_takeover_reboots_without_poweroff_marker_and_drops_symlinked_sbin(tmp_path: Path) -> None:
    state = tmp_path / "state"
    _old_os(state)
    (state / "sbin").symlink_to("usr/sbin")
    run_lib(f"takeover {state}", tmp_path)
    assert sorted(p.name for p in state.iterdir()) == ["boot", "k3os", "lost+found"]
    assert (tmp_path / "rebooted").exists() and not (tmp_path / "powered-off").exists()


def test_no_takeover_marker_means_nothing_is_touched(tmp_path: Path) -> None:
    state = tmp_path / "state"
    _old_os(state)
    (state / "k3os/system/takeover").unlink()
    result = run_lib(f"takeover {state}; echo rc=$?", tmp_path)
    assert "rc=1" in result.stdout
    assert (state / "usr/bin/ls").exists() and (state / "etc/passwd").exists()
    assert not (tmp_path / "rebooted").exists() and not (tmp_path / "powered-off").exists()


def test_factory_reset_clears_data_then_seed_data_recreates_it(tmp_path: Path) -> None:
    state, root = tmp_path / "state", tmp_path / "root"
    (state / "k3os/system").mkdir(parents=True)
    (state / "k3os/data/var").mkdir(parents=True)
    (state / "k3os/data/var/stale").write_text("old node")
    (state / "k3os/system/factory-reset").touch()
    for directory in ("var/lib/dpkg", "home/rancher", "opt", "usr/local/bin"):
        (root / directory).mkdir(parents=True)
    (root / "home/rancher/.profile").write_text("profile")
    result = run_lib(f"factory_reset {state} && seed_data {state} {root}; echo rc=$?", tmp_path)
    assert "rc=0" in result.stdout
    assert not (state / "k3os/system/factory-reset").exists()
    data = state / "k3os/data"
    assert sorted(p.name for p in data.iterdir()) == ["home", "opt", "usr-local", "var"]
    assert not (data / "var/stale").exists()
    assert (data / "var/lib/dpkg").is_dir() and (data / "usr-local/bin").is_dir()
    assert (data / "home/rancher/.profile").read_text() == "profile"
    # Second boot: existing data is kept, not re-seeded.
    (data / "home/rancher/.profile").write_text("changed by the user")
    run_lib(f"factory_reset {state}; seed_data {state} {root}", tmp_path)
    assert (data / "home/rancher/.profile").read_text() == "changed by the user"


@pytest.mark.skipif(shutil.which("shellcheck") is None, reason="needs shellcheck")
def test_init_and_boot_scripts_pass_shellcheck() -> None:
    files = resources.files("image_base.os").joinpath("files")
    with resources.as_file(files) as base:
        scripts = [base / "initrd/init", base / "initrd/lib/k3os/initlib.sh"]
        scripts += sorted(p for p in (base / "rootfs/usr/lib/k3os").iterdir())
        result = subprocess.run(
            ["shellcheck", "-x", "-s", "sh", *map(str, scripts)],
            cwd=base.parent.parent.parent,
            capture_output=True,
            text=True,
            check=False,
        )
    assert result.returncode == 0, result.stdout
