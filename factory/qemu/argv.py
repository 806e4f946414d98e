"""QEMU command lines as argv lists (never shell strings): machine, disks, user network, DMI.

Everything here is pure: it builds lists of strings from dataclasses, so tests can check the exact
arguments without starting a VM.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

QEMU_BINARY = "qemu-system-x86_64"

#: The metadata address most clouds use; reachable in the guest only with a 169.254.0.0/16 user net.
LINK_LOCAL_METADATA_IP = "169.254.169.254"


@dataclass(frozen=True)
class GuestForward:
    """A ``guestfwd`` rule: TCP connections from the guest to ``guest_ip:guest_port`` reach
    ``host_ip:host_port`` on the host.

    With ``relay`` (the default) QEMU spawns ``python -m factory.qemu.relay`` for every guest
    connection; the plain ``-tcp:HOST:PORT`` form connects once at start-up and serves only one
    guest connection, which breaks any client making more than one request."""

    guest_ip: str
    guest_port: int
    host_port: int
    host_ip: str = "127.0.0.1"
    relay: bool = True

    def option(self) -> str:
        """The ``guestfwd=...`` value for ``-netdev user`` (commas in the command doubled)."""
        rule = f"guestfwd=tcp:{self.guest_ip}:{self.guest_port}-"
        if not self.relay:
            return rule + f"tcp:{self.host_ip}:{self.host_port}"
        command = f"{sys.executable} -m factory.qemu.relay {self.host_ip} {self.host_port}"
        return rule + "cmd:" + command.replace(",", ",,")


@dataclass(frozen=True)
class UserNet:
    """QEMU's user-mode (slirp) network. With ``link_local`` the guest network is 169.254.0.0/16
    (gateway 169.254.0.2, DNS 169.254.0.3, DHCP from 169.254.0.15), which QEMU requires before it
    accepts a guest forward to 169.254.169.254. Otherwise the default 10.0.2.0/24 applies and the
    host's loopback is reachable at 10.0.2.2."""

    forwards: tuple[GuestForward, ...] = ()
    link_local: bool = False
    netdev_id: str = "n0"

    @property
    def host_address(self) -> str:
        """The address at which the guest reaches the host's 127.0.0.1."""
        return "169.254.0.2" if self.link_local else "10.0.2.2"

    def netdev_value(self) -> str:
        """The ``-netdev`` value."""
        parts = ["user", f"id={self.netdev_id}"]
        if self.link_local:
            parts += ["net=169.254.0.0/16", "host=169.254.0.2", "dns=169.254.0.3", "dhcpstart=169.254.0.15"]
        parts += [fwd.option() for fwd in self.forwards]
        return ",".join(parts)

    def args(self) -> list[str]:
        """``-netdev`` and the virtio NIC using it."""
        return ["-netdev", self.netdev_value(), "-device", f"virtio-net-pci,netdev={self.netdev_id}"]


@dataclass(frozen=True)
class Smbios:
    """SMBIOS type 1 (system) fields, which the guest sees in ``/sys/class/dmi/id``."""

    manufacturer: str = ""
    product: str = ""
    serial: str = ""
    uuid: str = ""

    def args(self) -> list[str]:
        """``-smbios type=1,...``, or nothing when no field is set. Commas in values are doubled, as
        QEMU's option parser expects."""
        fields = [
            ("manufacturer", self.manufacturer),
            ("product", self.product),
            ("serial", self.serial),
            ("uuid", self.uuid),
        ]
        values = [f"{key}={value.replace(',', ',,')}" for key, value in fields if value]
        if not values:
            return []
        return ["-smbios", ",".join(["type=1", *values])]


@dataclass(frozen=True)
class DirectKernel:
    """Boot a kernel directly (``-kernel/-initrd/-append``) instead of through the disk's loader."""

    kernel: Path
    initrd: Path | None = None
    append: str = ""

    def args(self) -> list[str]:
        """The ``-kernel``, ``-initrd`` and ``-append`` arguments."""
        out = ["-kernel", str(self.kernel)]
        if self.initrd is not None:
            out += ["-initrd", str(self.initrd)]
        if self.append:
            out += ["-append", self.append]
        return out


@dataclass(frozen=True)
class VmSpec:
    """One virtual machine: what :func:`qemu_argv` turns into a command line."""

    serial_log: Path
    accel: str = "tcg"
    disks: tuple[Path, ...] = ()
    disk_format: str = "qcow2"
    raw_drives: tuple[Path, ...] = ()
    cdroms: tuple[Path, ...] = ()
    net: UserNet | None = None
    smbios: Smbios = field(default_factory=Smbios)
    kernel: DirectKernel | None = None
    memory_mb: int = 1024
    cpus: int = 2
    no_reboot: bool = False
    paused: bool = False
    binary: str = QEMU_BINARY


def accel_args(accel: str) -> list[str]:
    """Accelerator and CPU model. TCG uses one host thread per vCPU and ``-cpu max`` (all features
    TCG can emulate); KVM passes the host CPU through."""
    if accel == "kvm":
        return ["-accel", "kvm", "-cpu", "host"]
    if accel == "tcg":
        return ["-accel", "tcg,thread=multi", "-cpu", "max"]
    raise ValueError(f"unknown accelerator {accel!r} (expected kvm or tcg)")


def drive_value(path: Path, *, fmt: str, interface: str = "virtio", media: str = "") -> str:
    """A ``-drive`` value. Commas in the path are doubled so QEMU reads the path as one value."""
    value = f"file={str(path).replace(',', ',,')},format={fmt},if={interface}"
    if media:
        value += f",media={media}"
    return value


def qemu_argv(spec: VmSpec) -> list[str]:
    """The full QEMU command line for ``spec``: headless, serial console to ``spec.serial_log``,
    disks on virtio, CD-ROMs on the IDE bus (where Linux sees them as ``/dev/sr*``)."""
    argv: list[str] = [spec.binary, *accel_args(spec.accel)]
    argv += ["-m", str(spec.memory_mb), "-smp", str(spec.cpus)]
    argv += ["-display", "none", "-nodefaults", "-no-user-config", "-vga", "none"]
    argv += ["-serial", f"file:{spec.serial_log}"]
    argv += ["-monitor", "none"]
    for disk in spec.disks:
        argv += ["-drive", drive_value(disk, fmt=spec.disk_format)]
    for raw in spec.raw_drives:
        argv += ["-drive", drive_value(raw, fmt="raw")]
    for cdrom in spec.cdroms:
        argv += ["-drive", drive_value(cdrom, fmt="raw", interface="ide", media="cdrom")]
    if spec.net is None:
        argv += ["-nic", "none"]
    else:
        argv += spec.net.args()
    argv += spec.smbios.args()
    if spec.kernel is not None:
        argv += spec.kernel.args()
    if spec.no_reboot:
        argv.append("-no-reboot")
    if spec.paused:
        argv.append("-S")
    return argv


def join_for_display(argv: Sequence[str]) -> str:
    """A copy-pasteable rendering of ``argv`` for logs and docs (never executed)."""
    import shlex

    return shlex.join(argv)
