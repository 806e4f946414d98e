"""Boot a baked image against an emulated cloud and check that it took its userdata.

One throwaway overlay of the image boots with BIOS from its first disk. The provider's metadata
emulator runs in this process on 127.0.0.1 and QEMU forwards the provider's real address to it
(``guestfwd``: 169.254.169.254:80, which QEMU accepts only on a 169.254.0.0/16 user network); DMI
(``-smbios type=1``) says which cloud this is. For ``cdrom`` a NoCloud ``cidata`` ISO is attached as a
CD-ROM instead. The node prints ``k3os-factory: ready provider=P userdata=yes|no hostname=H`` when it
is ready; the default userdata also has a ``write_files`` entry and a ``run_cmd`` that prints the
written file's content to the console, so all three (provider, hostname, file) are checked.
"""

from __future__ import annotations

import re
import secrets
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from factory.qemu.argv import LINK_LOCAL_METADATA_IP, GuestForward, Smbios, UserNet, VmSpec, qemu_argv
from factory.qemu.process import QemuProcess
from factory.qemu.serial import SerialWatcher, watch

READY = re.compile(r"k3os-factory: ready provider=(\S*) userdata=(\S*) hostname=(\S*)")
VERIFY_FILE_LINE = "k3os-factory-verify: file"
DEFAULT_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class ProviderSetup:
    """How one provider looks from inside the guest: its emulator, DMI and instance id."""

    name: str
    smbios: Smbios
    instance_id: str
    emulator: bool = True


PROVIDERS: dict[str, ProviderSetup] = {
    "aws": ProviderSetup(
        "aws",
        Smbios(
            "Amazon EC2",
            "t3.small",
            "ec2a1b2c-3d4e-5f60-7182-93a4b5c6d7e8",
            "ec2a1b2c-3d4e-5f60-7182-93a4b5c6d7e8",
        ),
        "i-0123456789abcdef0",
    ),
    "gcp": ProviderSetup(
        "gcp", Smbios("Google", "Google Compute Engine", "GoogleCloud-1234567890"), "1234567890"
    ),
    "openstack": ProviderSetup(
        "openstack", Smbios("OpenStack Foundation", "OpenStack Nova"), "6c3b1d9e-1f6b-4c43-9d1a-6c0e5b8f4a21"
    ),
    "hetzner": ProviderSetup("hetzner", Smbios("Hetzner", "vServer", "4711001"), "4711001"),
    "vultr": ProviderSetup(
        "vultr", Smbios("Vultr", "VC2", "84f2a1c0-0000-4000-8000-000000000001"), "84f2a1c0"
    ),
    "digitalocean": ProviderSetup("digitalocean", Smbios("DigitalOcean", "Droplet", "3164444"), "3164444"),
    "cdrom": ProviderSetup("cdrom", Smbios(), "iid-k3os-factory-verify", emulator=False),
}


@dataclass(frozen=True)
class Expectation:
    """What the node must show: the hostname from the userdata and, when set, the file token."""

    hostname: str
    file_token: str | None


@dataclass
class VerifyReport:
    """The outcome of one verification."""

    ok: bool
    provider: str
    checks: dict[str, bool] = field(default_factory=dict)
    ready_line: str = ""
    message: str = ""
    serial_log: Path | None = None
    seconds: float = 0.0


def default_userdata(provider: str) -> tuple[bytes, Expectation]:
    """A k3OS config with a hostname, one ``write_files`` entry and a ``run_cmd`` printing it."""
    token = secrets.token_hex(6)
    hostname = f"verify-{provider}-{token[:4]}"
    path = f"/var/lib/k3os-factory-verify/{token}.txt"
    doc = {
        "hostname": hostname,
        "write_files": [{"path": path, "content": f"{token}\n", "permissions": "0644"}],
        "run_cmd": [f'echo "{VERIFY_FILE_LINE} {path} $(cat {path})" > /dev/console'],
    }
    text = "#cloud-config\n" + yaml.safe_dump(doc, sort_keys=False)
    return text.encode(), Expectation(hostname, token)


def expectation_from_userdata(data: bytes) -> Expectation:
    """What a user-supplied userdata promises: its ``hostname`` (required) and no file token."""
    try:
        doc = yaml.safe_load(data.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"userdata is not a YAML k3OS config: {exc}") from None
    hostname = doc.get("hostname") if isinstance(doc, dict) else None
    if not isinstance(hostname, str) or not hostname:
        raise ValueError("userdata sets no hostname (verify needs one to check)")
    return Expectation(hostname, None)


def _start_emulator(setup: ProviderSetup, userdata: bytes, hostname: str) -> object:
    from datasources.emulator.__main__ import load_emulator_class
    from datasources.emulator.base import EmulatorConfig

    cls = load_emulator_class(setup.name)
    config = EmulatorConfig(userdata=userdata, hostname=hostname, instance_id=setup.instance_id)
    return cls(config).start()


def vm_spec_for(
    setup: ProviderSetup,
    disk: Path,
    serial_log: Path,
    *,
    accel: str,
    emulator_port: int | None,
    seed: Path | None,
) -> VmSpec:
    """The VM for one provider: link-local net with the metadata forward, or a cidata CD-ROM."""
    if emulator_port is not None:
        net = UserNet(forwards=(GuestForward(LINK_LOCAL_METADATA_IP, 80, emulator_port),), link_local=True)
    else:
        net = UserNet(link_local=True)
    return VmSpec(
        serial_log=serial_log,
        accel=accel,
        disks=(disk,),
        cdroms=(seed,) if seed is not None else (),
        net=net,
        smbios=setup.smbios,
    )


def check_lines(lines: list[str], provider: str, expect: Expectation) -> tuple[dict[str, bool], str]:
    """The checks against what the console showed; also returns the ready line."""
    ready = ""
    for line in lines:
        if READY.search(line):
            ready = line
    checks = {"ready": bool(ready)}
    found = READY.search(ready) if ready else None
    checks["provider"] = bool(found and found.group(1) == provider)
    checks["userdata"] = bool(found and found.group(2) == "yes")
    checks["hostname"] = bool(found and found.group(3) == expect.hostname)
    if expect.file_token is not None:
        wanted = f" {expect.file_token}"
        checks["write_files"] = any(VERIFY_FILE_LINE in line and line.endswith(wanted) for line in lines)
    return checks, ready


def verify_image(
    image: Path,
    *,
    provider: str,
    userdata: bytes | None,
    accel: str,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    keep_log: Path | None = None,
    emit: Callable[[str], None] | None = None,
    stop_emulator_first: bool = False,
    verbose: bool = False,
) -> VerifyReport:
    """Boot ``image`` as ``provider`` with ``userdata`` (default: :func:`default_userdata`) and check
    the node's ready line. ``stop_emulator_first`` stops the emulator before the boot (a test of the
    failure path: the userdata cannot arrive)."""
    setup = PROVIDERS[provider]
    if userdata is None:
        userdata, expect = default_userdata(provider)
    else:
        expect = expectation_from_userdata(userdata)
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="k3os-verify-"))
    serial_log = keep_log or work / "serial.log"
    serial_log.parent.mkdir(parents=True, exist_ok=True)
    serial_log.unlink(missing_ok=True)
    overlay = work / "overlay.qcow2"
    subprocess.run(
        [
            "qemu-img",
            "create",
            "-q",
            "-f",
            "qcow2",
            "-b",
            str(image.resolve()),
            "-F",
            _format(image),
            str(overlay),
        ],
        check=True,
        capture_output=True,
    )
    emulator = None
    report = VerifyReport(False, provider, serial_log=serial_log)
    try:
        seed = None
        port = None
        if setup.emulator:
            emulator = _start_emulator(setup, userdata, expect.hostname)
            port = int(getattr(emulator, "port"))  # noqa: B009 - Emulator is imported lazily
            if stop_emulator_first:
                getattr(emulator, "stop")()  # noqa: B009
        else:
            from factory.qemu.seed import write_seed_iso

            seed = write_seed_iso(
                work / "cidata.iso",
                user_data=userdata,
                instance_id=setup.instance_id,
                hostname=expect.hostname,
            )
        spec = vm_spec_for(setup, overlay, serial_log, accel=accel, emulator_port=port, seed=seed)
        watcher = SerialWatcher(serial_log, emit=emit, verbose=verbose)
        with QemuProcess(qemu_argv(spec), work / "qemu.log") as proc:
            result = watch(proc, watcher, deadline=time.monotonic() + timeout_s, wanted=[READY])
            if result.outcome == "matched" and expect.file_token is not None:
                # run_cmd output may trail the ready line by a moment; allow a short grace.
                watch(proc, watcher, deadline=time.monotonic() + 5, wanted=[re.compile(VERIFY_FILE_LINE)])
            stderr = proc.stderr_text()
        checks, ready = check_lines(watcher.lines, provider, expect)
        report.checks, report.ready_line = checks, ready
        report.ok = all(checks.values())
        if result.outcome == "timeout":
            report.message = f"no ready line within {timeout_s:.0f}s"
        elif result.outcome == "exited":
            report.message = (
                f"QEMU exited ({result.exit_code}) before the ready line: {stderr.strip()[-200:]}"
            )
        elif not report.ok:
            failed = ", ".join(name for name, ok in checks.items() if not ok)
            report.message = f"failed checks: {failed}"
        else:
            report.message = "all checks passed"
    finally:
        if emulator is not None:
            getattr(emulator, "stop")()  # noqa: B009
        report.seconds = time.monotonic() - started
        overlay.unlink(missing_ok=True)
        if report.ok and keep_log is None:
            serial_log.unlink(missing_ok=True)
        _remove_work(work, keep=serial_log if not report.ok else None)
    return report


def _format(image: Path) -> str:
    out = subprocess.run(["qemu-img", "info", "--output=json", str(image)], capture_output=True, text=True)
    import json

    try:
        return str(json.loads(out.stdout).get("format") or "raw")
    except ValueError:
        return "raw"


def _remove_work(work: Path, keep: Path | None) -> None:
    for item in work.iterdir():
        if keep is not None and item == keep:
            continue
        item.unlink(missing_ok=True)
    if keep is None or keep.parent != work:
        work.rmdir()
