"""QEMU command lines are argv lists with the exact options the local bake and verify rely on."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from factory.qemu.argv import DirectKernel, GuestForward, Smbios, UserNet, VmSpec, accel_args, qemu_argv
from factory.qemu.verify import PROVIDERS, vm_spec_for


def _pairs(argv: list[str], flag: str) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg == flag]


def test_argv_is_a_list_of_separate_strings_even_with_spaces_and_commas(tmp_path: Path) -> None:
    disk = tmp_path / "my disk,v1.qcow2"
    argv = qemu_argv(VmSpec(serial_log=tmp_path / "con sole.log", disks=(disk,), net=UserNet()))
    assert all(isinstance(a, str) for a in argv)
    assert argv[0] == "qemu-system-x86_64"
    assert f"file:{tmp_path / 'con sole.log'}" in _pairs(argv, "-serial")
    # A comma in a path is doubled so QEMU does not read the rest as another option.
    assert _pairs(argv, "-drive") == [f"file={tmp_path}/my disk,,v1.qcow2,format=qcow2,if=virtio"]


def test_tcg_uses_multithreading_and_cpu_max_kvm_uses_host() -> None:
    assert accel_args("tcg") == ["-accel", "tcg,thread=multi", "-cpu", "max"]
    assert accel_args("kvm") == ["-accel", "kvm", "-cpu", "host"]
    with pytest.raises(ValueError):
        accel_args("hvf")


def test_bake_vm_reboots_normally_and_verify_net_is_link_local(tmp_path: Path) -> None:
    bake = qemu_argv(VmSpec(serial_log=tmp_path / "s", disks=(tmp_path / "d",), net=UserNet()))
    assert "-no-reboot" not in bake  # the builder's forced reboot must reboot into k3OS
    assert _pairs(bake, "-netdev") == ["user,id=n0"]
    spec = vm_spec_for(
        PROVIDERS["aws"], tmp_path / "d", tmp_path / "s", accel="tcg", emulator_port=8169, seed=None
    )
    argv = qemu_argv(spec)
    netdev = _pairs(argv, "-netdev")[0]
    assert "net=169.254.0.0/16" in netdev  # QEMU rejects a 169.254.169.254 guestfwd without it
    relay = f"guestfwd=tcp:169.254.169.254:80-cmd:{sys.executable} -m factory.qemu.relay 127.0.0.1 8169"
    assert relay in netdev  # one relay per guest connection
    assert _pairs(argv, "-smbios") == [
        "type=1,manufacturer=Amazon EC2,product=t3.small,serial=ec2a1b2c-3d4e-5f60-7182-93a4b5c6d7e8,"
        "uuid=ec2a1b2c-3d4e-5f60-7182-93a4b5c6d7e8"
    ]


def test_hetzner_dmi_serial_is_the_instance_id_and_cdrom_gets_a_cdrom(tmp_path: Path) -> None:
    hetzner = PROVIDERS["hetzner"]
    assert hetzner.smbios.serial == hetzner.instance_id
    seed = tmp_path / "cidata.iso"
    argv = qemu_argv(
        vm_spec_for(
            PROVIDERS["cdrom"], tmp_path / "d", tmp_path / "s", accel="tcg", emulator_port=None, seed=seed
        )
    )
    assert f"file={seed},format=raw,if=ide,media=cdrom" in _pairs(argv, "-drive")
    assert "-smbios" not in argv
    assert "guestfwd" not in _pairs(argv, "-netdev")[0]


def test_smbios_escapes_commas_and_direct_kernel_args(tmp_path: Path) -> None:
    assert Smbios(manufacturer="A,B").args() == ["-smbios", "type=1,manufacturer=A,,B"]
    assert Smbios().args() == []
    kernel = DirectKernel(tmp_path / "vmlinuz", None, "console=ttyS0 panic=-1")
    argv = qemu_argv(VmSpec(serial_log=tmp_path / "s", kernel=kernel, no_reboot=True, paused=True))
    assert _pairs(argv, "-append") == ["console=ttyS0 panic=-1"]
    assert "-no-reboot" in argv and "-S" in argv
    assert _pairs(argv, "-nic") == ["none"]


def test_guest_forward_option() -> None:
    once = GuestForward("10.0.2.100", 80, 8080, relay=False)
    assert once.option() == "guestfwd=tcp:10.0.2.100:80-tcp:127.0.0.1:8080"
    assert UserNet(link_local=True).host_address == "169.254.0.2"
    assert UserNet().host_address == "10.0.2.2"
