"""The cdrom provider through its plugin hook, on real images and on devices that fail."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from datasources.model import Dmi, FetchContext, Metadata, NotDetected, ProviderError
from datasources.providers import cdrom
from datasources.providers._cdrom_scan import candidate_devices
from tests.cdrom import images

Fetch = Callable[..., Metadata]


class Run:
    """Calls ``datasources_fetch("cdrom", ctx)`` with DATASOURCES_CDROM_DEVICES in ``ctx.env``."""

    def __init__(self) -> None:
        self.log: list[str] = []

    def __call__(self, *devices: str | Path, deadline: float = 5.0) -> Metadata:
        env = {"DATASOURCES_CDROM_DEVICES": ":".join(str(d) for d in devices)}
        ctx = FetchContext("cdrom", "", time.monotonic() + deadline, Dmi(), env, self.log.append)
        result = cdrom.datasources_fetch("cdrom", ctx)
        assert result is not None
        return result


@pytest.fixture
def run() -> Run:
    return Run()


def _nocloud_expected(metadata: Metadata) -> None:
    assert metadata.provider == "cdrom"
    assert metadata.userdata == images.NOCLOUD_FILES["user-data"]
    assert metadata.instance_id == "iid-local01"
    assert metadata.local_hostname == "node-1"
    assert metadata.hostname == "node-1.example.org"
    assert metadata.ssh_keys == ["ssh-ed25519 AAAAC3Nza-one one@example", "ssh-rsa AAAAB3Nza-two two@example"]


def _config_drive_expected(metadata: Metadata) -> None:
    assert metadata.userdata == images.CONFIG_DRIVE_FILES["openstack/latest/user_data"]
    assert metadata.instance_id == "83679162-1378-4288-a2d4-70e13ec132aa"
    assert metadata.hostname == metadata.local_hostname == "cfg2.novalocal"
    assert metadata.zone == "nova"
    assert metadata.ssh_keys == ["ssh-ed25519 AAAAC3Nza-cfg cfg@example"]


@pytest.mark.parametrize("label", ["cidata", "CIDATA"])
def test_nocloud_iso_genisoimage_and_xorriso(tmp_path: Path, run: Run, label: str) -> None:
    _nocloud_expected(run(images.genisoimage(tmp_path, images.NOCLOUD_FILES, label, "-J", "-R")))
    _nocloud_expected(run(images.xorriso(tmp_path, images.NOCLOUD_FILES, label, "-J", "-R", name="x.iso")))


@pytest.mark.parametrize(("bits", "label"), [(12, "CIDATA"), (16, "cidata"), (32, "CIDATA")])
def test_nocloud_vfat(tmp_path: Path, run: Run, bits: int, label: str) -> None:
    _nocloud_expected(run(images.vfat(tmp_path, images.NOCLOUD_FILES, label, bits)))


@pytest.mark.parametrize("label", ["config-2", "CONFIG-2"])
def test_config_drive_iso_and_vfat(tmp_path: Path, run: Run, label: str) -> None:
    _config_drive_expected(run(images.genisoimage(tmp_path, images.CONFIG_DRIVE_FILES, label, "-J", "-R")))
    _config_drive_expected(run(images.vfat(tmp_path, images.CONFIG_DRIVE_FILES, label, 16)))


def test_pycdlib_level1_nocloud_iso(tmp_path: Path, run: Run) -> None:
    _nocloud_expected(run(images.pycdlib_iso(tmp_path, images.NOCLOUD_FILES, "cidata", level=1)))


def test_legacy_config_file_and_key_shapes(tmp_path: Path, run: Run) -> None:
    meta = b"instance-id: 42\nlocal-hostname: n\npublic-keys:\n  a: ssh-rsa AAA a\n  b: [ssh-ed25519 BBB b]\n"
    image = images.genisoimage(tmp_path, {"config": b"#!/bin/sh\n", "meta-data": meta}, "cidata", "-R")
    metadata = run(image)
    assert metadata.userdata == b"#!/bin/sh\n"
    assert metadata.instance_id == "42"
    assert metadata.hostname == metadata.local_hostname == "n"
    assert metadata.ssh_keys == ["ssh-rsa AAA a", "ssh-ed25519 BBB b"]


def test_keys_as_a_multiline_string_and_no_userdata(tmp_path: Path, run: Run) -> None:
    meta = b"instance-id: i\npublic-keys: |\n  ssh-rsa AAA one\n  # comment\n\n  ssh-rsa BBB two\n"
    metadata = run(images.vfat(tmp_path, {"meta-data": meta}, "CIDATA", 12))
    assert metadata.userdata is None
    assert metadata.ssh_keys == ["ssh-rsa AAA one", "ssh-rsa BBB two"]


def test_empty_user_data_counts_as_none(tmp_path: Path, run: Run) -> None:
    metadata = run(images.genisoimage(tmp_path, {"user-data": b"", "meta-data": b""}, "cidata", "-J", "-R"))
    assert metadata.userdata is None
    assert metadata.instance_id is None


@pytest.mark.parametrize(
    "meta",
    [
        b"instance-id: [unclosed\n",
        b"- a list\n- not a mapping\n",
        b"\xff\xfe\x00garbage",
        b"instance-id: {a: 1}\n",
    ],
)
def test_garbage_meta_data_is_a_provider_error(tmp_path: Path, run: Run, meta: bytes) -> None:
    image = images.genisoimage(tmp_path, {"user-data": b"x", "meta-data": meta}, "cidata", "-J", "-R")
    with pytest.raises(ProviderError, match="meta-data"):
        run(image)


@pytest.mark.parametrize("meta", [b"{not json", b"[1, 2]", b'{"public_keys": 5}'])
def test_garbage_config_drive_json_is_a_provider_error(tmp_path: Path, run: Run, meta: bytes) -> None:
    image = images.vfat(tmp_path, {"openstack/latest/meta_data.json": meta}, "CONFIG-2", 12)
    with pytest.raises(ProviderError, match="meta_data.json"):
        run(image)


def test_labelled_but_empty_volumes_are_provider_errors(tmp_path: Path, run: Run) -> None:
    with pytest.raises(ProviderError, match="neither user-data nor meta-data"):
        run(images.genisoimage(tmp_path, {"other": b"x"}, "cidata", "-J", "-R"))
    with pytest.raises(ProviderError, match="no openstack/latest/meta_data.json"):
        run(images.vfat(tmp_path, {"openstack/latest/user_data": b"x"}, "config-2", 12))


def test_corrupt_labelled_iso_is_a_provider_error(tmp_path: Path, run: Run) -> None:
    image = images.genisoimage(tmp_path, images.NOCLOUD_FILES, "cidata", "-J", "-R")
    data = bytearray(image.read_bytes())
    root_extent = 16 * 2048 + 156 + 2  # the PVD's root directory record: point it past the end
    data[root_extent : root_extent + 4] = (10**6).to_bytes(4, "little")
    image.write_bytes(bytes(data))
    with pytest.raises(ProviderError, match="corrupt filesystem"):
        run(image)


def test_user_data_over_16_mib_is_a_provider_error(tmp_path: Path, run: Run) -> None:
    files = {"user-data": b"u" * ((16 << 20) + 1), "meta-data": b"instance-id: big\n"}
    with pytest.raises(ProviderError, match="exceeds the limit"):
        run(images.genisoimage(tmp_path, files, "cidata", "-J", "-R"))


def _bad_devices(tmp_path: Path) -> list[str]:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    short = tmp_path / "short.img"
    short.write_bytes(b"\xeb\x3c\x90too short")
    blank = tmp_path / "blank.img"
    blank.write_bytes(bytes(1 << 16))
    return [
        str(tmp_path / "does-not-exist"),
        str(tmp_path),  # a directory
        str(fifo),  # would block a naive open()
        "/dev/null",  # a character device
        "/proc/self/mem",  # a regular file whose reads fail with EIO
        str(short),
        str(blank),  # readable, but neither iso9660 nor FAT
    ]


def test_unreadable_devices_are_logged_and_skipped(tmp_path: Path, run: Run) -> None:
    bad = _bad_devices(tmp_path)
    good = images.vfat(tmp_path, images.NOCLOUD_FILES, "CIDATA", 12)
    started = time.monotonic()
    _nocloud_expected(run(*bad, good))
    assert time.monotonic() - started < 2
    logged = "\n".join(run.log)
    for path in bad[:6]:
        assert path in logged
    assert "Input/output error" in logged


def test_only_bad_devices_is_not_detected(tmp_path: Path, run: Run) -> None:
    with pytest.raises(NotDetected, match="among 7 devices"):
        run(*_bad_devices(tmp_path))


def test_nocloud_wins_over_an_earlier_config_drive(tmp_path: Path, run: Run) -> None:
    config2 = images.genisoimage(tmp_path, images.CONFIG_DRIVE_FILES, "config-2", "-J", "-R", name="c.iso")
    second = images.genisoimage(tmp_path, {"user-data": b"second"}, "cidata", "-J", "-R", name="n2.iso")
    first = images.vfat(tmp_path, images.NOCLOUD_FILES, "CIDATA", 12)
    _nocloud_expected(run(config2, first, second))
    assert run(config2, second, first).userdata == b"second"


def test_broken_nocloud_falls_back_to_the_next_labelled_volume(tmp_path: Path, run: Run) -> None:
    broken = images.genisoimage(tmp_path, {"meta-data": b"a: [b"}, "cidata", "-J", "-R", name="b.iso")
    config2 = images.vfat(tmp_path, images.CONFIG_DRIVE_FILES, "CONFIG-2", 12)
    _config_drive_expected(run(broken, config2))
    assert any(str(broken) in line and "meta-data" in line for line in run.log)


def test_reads_ctx_env_not_the_process_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    image = images.genisoimage(tmp_path, images.NOCLOUD_FILES, "cidata", "-J", "-R")
    monkeypatch.setenv("DATASOURCES_CDROM_DEVICES", str(image))
    with pytest.raises(NotDetected, match="among 0 devices"):
        Run()()


def test_passed_deadline_stops_probing(tmp_path: Path, run: Run) -> None:
    image = images.genisoimage(tmp_path, images.NOCLOUD_FILES, "cidata", "-J", "-R")
    with pytest.raises(NotDetected):
        run(image, deadline=-1)
    assert "deadline" in run.log[0]


def test_other_providers_are_not_ours() -> None:
    ctx = FetchContext("aws", "", time.monotonic() + 1, Dmi(), {}, print)
    assert cdrom.datasources_fetch("aws", ctx) is None
    (info,) = cdrom.datasources_providers()
    assert (info.name, info.cloud, info.order) == ("cdrom", None, 90)
    assert cdrom.datasources_base_url("cdrom") is None
    assert cdrom.datasources_dmi_claims(Dmi(sys_vendor="Amazon EC2")) is None


def test_discovery_order_from_sysfs(tmp_path: Path) -> None:
    sys_block, dev = tmp_path / "sys", tmp_path / "dev"
    sizes = {"sr10": "2048", "sda1": "100", "sda": "100", "loop0": "8", "ram0": "8", "zram0": "8"}
    sizes |= {"vdb": "8", "sr0": "0", "sr2": "2048", "nvme0n1p2": "8"}
    for name, size in sizes.items():
        (sys_block / name).mkdir(parents=True)
        (sys_block / name / "size").write_text(size + "\n")
    dev.mkdir()
    for name in ("sr0", "sr1", "sr2", "sr10", "sda", "srx"):
        (dev / name).touch()
    found = candidate_devices({}, sys_block=str(sys_block), dev_dir=str(dev))
    names = [os.path.basename(path) for path in found]
    # sysfs entries in natural order (sr0 has no medium), then /dev/sr* that sysfs does not list.
    assert names == ["nvme0n1p2", "sda", "sda1", "sr2", "sr10", "vdb", "sr1"]
    assert candidate_devices({"DATASOURCES_CDROM_DEVICES": "/a::/b:/a"}) == ["/a", "/b"]


def test_real_sysfs_scan_skips_loop_and_ram_devices() -> None:
    found = candidate_devices({})
    assert all(path.startswith("/dev/") for path in found)
    assert not [p for p in found if os.path.basename(p).startswith(("loop", "ram", "zram"))]
