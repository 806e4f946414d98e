"""NoCloud seed ISOs are real ISO 9660 images labelled cidata with user-data and meta-data."""

from __future__ import annotations

import io
from pathlib import Path

import pycdlib
import pytest
import yaml

from factory.qemu import seed as seed_mod
from factory.qemu.seed import write_seed_iso


def _read(iso_path: Path, name: str) -> bytes:
    iso = pycdlib.PyCdlib()
    iso.open(str(iso_path))
    try:
        buf = io.BytesIO()
        iso.get_file_from_iso_fp(buf, rr_path=f"/{name}")
        return buf.getvalue()
    finally:
        iso.close()


def test_seed_iso_contents_read_back_with_pycdlib(tmp_path: Path) -> None:
    userdata = b"#!/bin/bash\necho builder \xe2\x9c\x93\n"
    out = write_seed_iso(
        tmp_path / "seed.iso",
        user_data=userdata,
        instance_id="k3os-factory-abc",
        hostname="k3os-builder",
        network_config=b"version: 2\n",
    )
    iso = pycdlib.PyCdlib()
    iso.open(str(out))
    try:
        assert iso.pvd.volume_identifier.decode().strip() == "cidata"
    finally:
        iso.close()
    assert _read(out, "user-data") == userdata
    meta = yaml.safe_load(_read(out, "meta-data"))
    assert meta == {"instance-id": "k3os-factory-abc", "local-hostname": "k3os-builder"}
    assert _read(out, "network-config") == b"version: 2\n"


def test_xorriso_fallback_argv(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # Without genisoimage on PATH the xorriso mkisofs emulation is used, with the same options.
    monkeypatch.setenv("PATH", str(tmp_path))
    (tmp_path / "xorriso").write_text("#!/bin/sh\n")
    (tmp_path / "xorriso").chmod(0o755)
    argv = seed_mod.iso_tool_argv(tmp_path / "o.iso", tmp_path)
    assert argv[:3] == ["xorriso", "-as", "mkisofs"]
    assert "-volid" in argv and argv[argv.index("-volid") + 1] == "cidata"
    (tmp_path / "xorriso").unlink()
    with pytest.raises(seed_mod.SeedError):
        seed_mod.iso_tool_argv(tmp_path / "o.iso", tmp_path)
