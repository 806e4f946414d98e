"""Output files (atomic, modes, stale removal) and central userdata decoding."""

from __future__ import annotations

import gzip
import json
import stat
from pathlib import Path

import pytest

from datasources.dmi import read_dmi
from datasources.model import Dmi, Metadata
from datasources.output import KNOWN_FILES, write_output
from datasources.userdata import MAX_USERDATA, UserdataError, decode_userdata


def test_only_given_files_are_written(tmp_path: Path) -> None:
    md = Metadata("aws", hostname="h.example", ssh_keys=[" k1 ", "", "k2"])
    written = write_output(str(tmp_path), md)
    assert written == ["provider", "local_hostname", "hostname", "ssh/authorized_keys", "metadata.json"]
    assert (tmp_path / "local_hostname").read_text() == "h.example\n"
    assert (tmp_path / "ssh" / "authorized_keys").read_text() == "k1\nk2\n"
    assert json.loads((tmp_path / "metadata.json").read_text())["has_userdata"] is False
    assert stat.S_IMODE((tmp_path / "hostname").stat().st_mode) == 0o644


def test_local_hostname_prefers_the_clouds_own(tmp_path: Path) -> None:
    write_output(str(tmp_path), Metadata("aws", hostname="fqdn.example", local_hostname="short"))
    assert (tmp_path / "local_hostname").read_text() == "short\n"
    assert (tmp_path / "hostname").read_text() == "fqdn.example\n"


def test_nothing_detected_removes_all_our_files_only(tmp_path: Path) -> None:
    write_output(str(tmp_path), Metadata("aws", instance_id="i", hostname="h", ssh_keys=["k"], userdata=b"u"))
    assert {p for p in KNOWN_FILES if (tmp_path / p).exists()} == set(KNOWN_FILES)
    (tmp_path / "foreign").write_text("x")
    assert write_output(str(tmp_path), None) == []
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == ["foreign"]  # ssh/ too


def test_userdata_bytes_are_kept_exactly(tmp_path: Path) -> None:
    data = bytes(range(256)) * 10
    write_output(str(tmp_path), Metadata("cdrom", userdata=data))
    assert (tmp_path / "userdata").read_bytes() == data
    assert stat.S_IMODE((tmp_path / "userdata").stat().st_mode) == 0o600


def test_unwritable_output_raises(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OSError):
        write_output(str(blocker / "sub"), Metadata("aws"))


def test_decode_userdata() -> None:
    assert decode_userdata(None) is None
    assert decode_userdata(b"") is None
    assert decode_userdata(gzip.compress(b"")) is None
    assert decode_userdata(b"#!/bin/sh\n") == b"#!/bin/sh\n"
    assert decode_userdata(gzip.compress(b"a") + gzip.compress(b"b")) == b"ab"
    assert decode_userdata(gzip.compress(b"x" * MAX_USERDATA)) == b"x" * MAX_USERDATA
    with pytest.raises(UserdataError, match="decompressed"):
        decode_userdata(gzip.compress(b"x" * (MAX_USERDATA + 1)))
    with pytest.raises(UserdataError, match="corrupt"):
        decode_userdata(gzip.compress(b"hello world")[:12])
    with pytest.raises(UserdataError, match="corrupt"):
        decode_userdata(b"\x1f\x8b not gzip at all")


def test_read_dmi_from_override_dir(tmp_path: Path) -> None:
    (tmp_path / "sys_vendor").write_text("Amazon EC2\n")
    (tmp_path / "hypervisor_uuid").write_text("ec2abcd\n")
    dmi = read_dmi({"DATASOURCES_DMI_DIR": str(tmp_path)})
    assert dmi == Dmi(sys_vendor="Amazon EC2", product_uuid="ec2abcd")


def test_temporaries_of_a_killed_run_are_removed(tmp_path: Path) -> None:
    (tmp_path / "ssh").mkdir()
    leftovers = [tmp_path / ".userdata.tmp-4242", tmp_path / "ssh" / ".authorized_keys.tmp-17"]
    for path in leftovers:
        path.write_bytes(b"secret from a killed run")
    foreign = [tmp_path / ".other.tmp-1", tmp_path / ".userdata.tmp-x", tmp_path / "notes.tmp-3"]
    for path in foreign:
        path.write_bytes(b"not ours")
    write_output(str(tmp_path), Metadata("aws", hostname="h"))
    assert not any(p.exists() for p in leftovers)
    assert all(p.exists() for p in foreign)
    write_output(str(tmp_path), None)
    assert all(p.exists() for p in foreign)
