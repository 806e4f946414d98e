"""The rendered builder script, run under bash with stub system tools and a loopback HTTP server."""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from image_base.builder import BuilderSpec, install_sh_text, render_builder_script
from tests.installer.conftest import FileServer, Stubs

SECRET = "pa55-w0rd-never-logged"
CONFIG = f"k3os:\n  password: {SECRET}\n  data_sources: [aws]\nhostname: builder-test\n"
ROOT_DEV = "/dev/vda1"
# Real tools the script uses come from /usr/bin and /bin; /usr/sbin (parted, mkfs.vfat) is left out
# so the script sees dosfstools and parted as missing unless a test adds them.
SYSTEM_PATH = "/usr/bin:/bin"


@dataclass
class BuilderRun:
    """The outcome of one builder run."""

    proc: subprocess.CompletedProcess[str]
    workdir: Path
    console: Path

    @property
    def console_text(self) -> str:
        """What the script wrote to the (stand-in) serial console."""
        return self.console.read_text() if self.console.exists() else ""


def standard_stubs(stubs: Stubs) -> None:
    """findmnt answers the root device; installer, systemctl, reboot and apt-get only log."""
    stubs.add("findmnt", stdout=ROOT_DEV)
    stubs.add(
        "fake-install.sh",
        script='cfg=""; while (($#)); do [[ $1 == --config ]] && cfg=$2; shift; done\n'
        f'stat -c "config-mode %a" "$cfg" >> {stubs.log}.extra',
    )
    stubs.add("systemctl")
    stubs.add("reboot")
    stubs.add("apt-get")


def run_builder(
    tmp_path: Path,
    stubs: Stubs,
    spec: BuilderSpec,
    extra_path: str = "",
    env: dict[str, str] | None = None,
) -> BuilderRun:
    """Render ``spec`` and run it with bash, stubs first on PATH, test hooks pointing into tmp_path."""
    script = tmp_path / "builder.sh"
    script.write_text(render_builder_script(spec))
    workdir = tmp_path / "work"
    console = tmp_path / "console.log"
    run_env = {
        "PATH": f"{stubs.bin}:{extra_path + ':' if extra_path else ''}{SYSTEM_PATH}",
        "HOME": str(tmp_path),
        "K3OS_BUILDER_WORKDIR": str(workdir),
        "K3OS_BUILDER_CONSOLE": str(console),
        "K3OS_BUILDER_INSTALLER": str(stubs.bin / "fake-install.sh"),
        "K3OS_BUILDER_RETRY_DELAY": "0",
        "K3OS_BUILDER_RETRIES": "3",
    }
    run_env.update(env or {})
    proc = subprocess.run(["/bin/bash", str(script)], env=run_env, capture_output=True, text=True, timeout=60)
    return BuilderRun(proc=proc, workdir=workdir, console=console)


@pytest.fixture
def iso_on_server(file_server: FileServer) -> tuple[str, str]:
    """(url, sha256) of a small fake ISO served over loopback HTTP."""
    payload = os.urandom(64 * 1024)
    (file_server.root / "k3os.iso").write_bytes(payload)
    return file_server.url("k3os.iso"), hashlib.sha256(payload).hexdigest()


def test_checksum_mismatch_stops_before_install(
    tmp_path: Path, stubs: Stubs, iso_on_server: tuple[str, str]
) -> None:
    url, _ = iso_on_server
    standard_stubs(stubs)
    spec = BuilderSpec(iso_url=url, iso_sha256="0" * 64, config_yaml=CONFIG)
    run = run_builder(tmp_path, stubs, spec)
    assert run.proc.returncode != 0
    assert "fake-install.sh" not in stubs.names()
    assert "systemctl" not in stubs.names() and "reboot" not in stubs.names()
    assert "k3os-factory-builder: ERROR: ISO CHECKSUM MISMATCH" in run.console_text
    assert "FAILED at step 'checksum'" in run.console_text


def test_good_checksum_runs_install_then_reboots(
    tmp_path: Path, stubs: Stubs, iso_on_server: tuple[str, str]
) -> None:
    url, sha = iso_on_server
    standard_stubs(stubs)
    spec = BuilderSpec(iso_url=url, iso_sha256=sha.upper(), config_yaml=CONFIG)
    run = run_builder(tmp_path, stubs, spec)
    assert run.proc.returncode == 0, run.proc.stderr
    calls = stubs.calls()
    installs = [c for c in calls if c[0] == "fake-install.sh"]
    cfg = str(run.workdir / "config.yaml")
    iso = str(run.workdir / "k3os.iso")
    assert installs == [
        [
            "fake-install.sh",
            "--takeover",
            "--poweroff",
            "--no-format",
            "--tty",
            "ttyS0",
            "--config",
            cfg,
            ROOT_DEV,
            iso,
        ]
    ]
    names = [c[0] for c in calls]
    assert names.index("systemctl") > names.index("fake-install.sh")
    assert ["systemctl", "reboot", "--force", "--force"] in calls
    assert "reboot" not in names  # the first way to reboot worked
    # The config was in place, 0600, when install.sh ran, and holds exactly the given text.
    assert Path(f"{stubs.log}.extra").read_text().strip() == "config-mode 600"
    assert (run.workdir / "config.yaml").read_text() == CONFIG
    assert stat.S_IMODE((run.workdir / "config.yaml").stat().st_mode) == 0o600
    # The embedded installer is byte-for-byte image_base/install.sh.
    assert (run.workdir / "install.sh").read_text() == install_sh_text()
    for text in (run.console_text, run.proc.stdout, run.proc.stderr, stubs.log.read_text()):
        assert SECRET not in text
    for step in ("deps", "download", "checksum", "config", "install", "reboot"):
        assert f"k3os-factory-builder: {step}" in run.console_text


def test_secret_not_traced_in_debug_mode(
    tmp_path: Path, stubs: Stubs, iso_on_server: tuple[str, str]
) -> None:
    url, sha = iso_on_server
    standard_stubs(stubs)
    spec = BuilderSpec(iso_url=url, iso_sha256=sha, config_yaml=CONFIG, debug=True)
    run = run_builder(tmp_path, stubs, spec)
    assert run.proc.returncode == 0, run.proc.stderr
    assert "+ " in run.proc.stderr  # set -x really was on
    assert SECRET not in run.proc.stderr + run.proc.stdout + run.console_text
    install = next(c for c in stubs.calls() if c[0] == "fake-install.sh")
    assert "--debug" in install


def test_apt_get_only_when_tools_are_missing(
    tmp_path: Path, stubs: Stubs, iso_on_server: tuple[str, str]
) -> None:
    url, sha = iso_on_server
    standard_stubs(stubs)
    spec = BuilderSpec(iso_url=url, iso_sha256=sha, config_yaml=CONFIG)
    run = run_builder(tmp_path, stubs, spec)  # /usr/sbin not on PATH: parted, mkfs.vfat missing
    assert run.proc.returncode == 0, run.proc.stderr
    apt = [c for c in stubs.calls() if c[0] == "apt-get"]
    assert apt and apt[-1][-2:] == ["dosfstools", "parted"]

    stubs.log.unlink()
    stubs.add("parted")
    stubs.add("mkfs.vfat")
    run = run_builder(tmp_path, stubs, spec)
    assert run.proc.returncode == 0, run.proc.stderr
    assert "apt-get" not in stubs.names()
    assert "already installed" in run.console_text


def test_failed_apt_get_is_not_fatal(tmp_path: Path, stubs: Stubs, iso_on_server: tuple[str, str]) -> None:
    url, sha = iso_on_server
    standard_stubs(stubs)
    stubs.add("apt-get", exit_code=100)
    run = run_builder(tmp_path, stubs, BuilderSpec(iso_url=url, iso_sha256=sha, config_yaml=CONFIG))
    assert run.proc.returncode == 0, run.proc.stderr
    assert "WARNING: apt-get could not install" in run.console_text
    assert "fake-install.sh" in stubs.names()


def test_download_is_retried(
    tmp_path: Path, stubs: Stubs, file_server: FileServer, iso_on_server: tuple[str, str]
) -> None:
    url, sha = iso_on_server
    file_server.fail_first["/k3os.iso"] = 2
    standard_stubs(stubs)
    run = run_builder(tmp_path, stubs, BuilderSpec(iso_url=url, iso_sha256=sha, config_yaml=CONFIG))
    assert run.proc.returncode == 0, run.proc.stderr
    assert file_server.requests.count("/k3os.iso") == 3
    assert run.console_text.count("download attempt") == 2


def test_download_gives_up_after_retries(
    tmp_path: Path, stubs: Stubs, file_server: FileServer, iso_on_server: tuple[str, str]
) -> None:
    url, sha = iso_on_server
    file_server.fail_first["/k3os.iso"] = 99
    standard_stubs(stubs)
    run = run_builder(tmp_path, stubs, BuilderSpec(iso_url=url, iso_sha256=sha, config_yaml=CONFIG))
    assert run.proc.returncode != 0
    assert file_server.requests.count("/k3os.iso") == 3
    assert "ISO download failed after 3 attempts" in run.console_text
    assert "fake-install.sh" not in stubs.names()


def test_installer_failure_is_reported_and_no_reboot(
    tmp_path: Path, stubs: Stubs, iso_on_server: tuple[str, str]
) -> None:
    url, sha = iso_on_server
    standard_stubs(stubs)
    stubs.add("fake-install.sh", stdout="install.sh: error: missing tools: tune2fs", exit_code=1)
    run = run_builder(tmp_path, stubs, BuilderSpec(iso_url=url, iso_sha256=sha, config_yaml=CONFIG))
    assert run.proc.returncode == 1
    assert "k3os-factory-builder: install.sh: install.sh: error: missing tools: tune2fs" in run.console_text
    assert "ERROR: install.sh failed with exit 1" in run.console_text
    assert "systemctl" not in stubs.names()


def test_reboot_falls_back_and_honours_hook(
    tmp_path: Path, stubs: Stubs, iso_on_server: tuple[str, str]
) -> None:
    url, sha = iso_on_server
    standard_stubs(stubs)
    stubs.add("systemctl", exit_code=1)
    spec = BuilderSpec(iso_url=url, iso_sha256=sha, config_yaml=CONFIG)
    run = run_builder(tmp_path, stubs, spec)
    assert run.proc.returncode == 0, run.proc.stderr
    assert stubs.names()[-2:] == ["systemctl", "reboot"]
    assert stubs.calls()[-1] == ["reboot", "-f"]

    stubs.log.unlink()
    hook = stubs.add("my-reboot")
    run = run_builder(tmp_path, stubs, spec, env={"K3OS_BUILDER_REBOOT_CMD": str(hook)})
    assert run.proc.returncode == 0, run.proc.stderr
    assert stubs.names()[-1] == "my-reboot"
    assert "systemctl" not in stubs.names()


def test_hostile_values_stay_data(tmp_path: Path, stubs: Stubs, file_server: FileServer) -> None:
    marker = tmp_path / "pwned"
    payload = b"iso bytes"
    name = "k3os.iso"
    (file_server.root / name).write_bytes(payload)
    url = file_server.url(name) + f"?x=$(touch${{IFS}}{marker})&y=`touch${{IFS}}{marker}`'\""
    standard_stubs(stubs)
    config = f'k3os:\n  password: "$(touch {marker})"\n\'K3OS_FACTORY_CONFIG\nK3OS_FACTORY_CONFIG\n'
    spec = BuilderSpec(iso_url=url, iso_sha256=hashlib.sha256(payload).hexdigest(), config_yaml=config)
    run = run_builder(tmp_path, stubs, spec)
    assert run.proc.returncode == 0, run.proc.stderr
    assert not marker.exists()
    assert (run.workdir / "config.yaml").read_text() == config


def test_skip_checksum_warns(tmp_path: Path, stubs: Stubs, iso_on_server: tuple[str, str]) -> None:
    url, _ = iso_on_server
    standard_stubs(stubs)
    spec = BuilderSpec(iso_url=url, iso_sha256=None, config_yaml=CONFIG, insecure_skip_checksum=True)
    run = run_builder(tmp_path, stubs, spec)
    assert run.proc.returncode == 0, run.proc.stderr
    assert "WARNING: checksum not verified" in run.console_text
    assert "fake-install.sh" in stubs.names()


@pytest.mark.usefixtures("needs_loop")
def test_builder_with_the_real_installer_on_a_filesystem_image(
    tmp_path: Path, stubs: Stubs, file_server: FileServer, fake_iso: Path
) -> None:
    """End to end on the host: the embedded install.sh takes over an ext4 image, then the reboot hook."""
    fs = tmp_path / "root.img"
    subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "cloudimg-rootfs", str(fs), "64M"], check=True)
    (file_server.root / "k3os.iso").write_bytes(fake_iso.read_bytes())
    sha = hashlib.sha256(fake_iso.read_bytes()).hexdigest()
    stubs.add("findmnt", stdout=str(fs))
    reboot = stubs.add("reboot-hook")
    spec = BuilderSpec(iso_url=file_server.url("k3os.iso"), iso_sha256=sha, config_yaml=CONFIG)
    run = run_builder(
        tmp_path,
        stubs,
        spec,
        extra_path="/usr/sbin:/sbin",
        env={"K3OS_BUILDER_INSTALLER": "", "K3OS_BUILDER_REBOOT_CMD": str(reboot)},
    )
    assert run.proc.returncode == 0, run.console_text
    assert stubs.names()[-1] == "reboot-hook"
    assert "k3os-factory-builder: install.sh: install.sh: done" in run.console_text

    def debugfs(request: str) -> str:
        return subprocess.run(["debugfs", "-R", request, str(fs)], capture_output=True, text=True).stdout

    assert "Filesystem volume name:   K3OS_STATE" in debugfs("stats")
    assert debugfs("cat /k3os/system/config.yaml") == CONFIG
    assert "Type: regular" in debugfs("stat /k3os/system/takeover")
    assert "Type: regular" in debugfs("stat /k3os/system/poweroff")
    assert "console=ttyS0,115200n8" in debugfs("cat /boot/grub/grub.cfg")
    assert SECRET not in run.console_text + run.proc.stdout + run.proc.stderr
