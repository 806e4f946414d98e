"""NoCloud seed ISOs: ``user-data``, ``meta-data`` (and optionally ``network-config``) on an ISO 9660
filesystem labelled ``cidata``, which cloud-init (and our ``cdrom`` provider) find by label."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import yaml

SEED_LABEL = "cidata"


class SeedError(RuntimeError):
    """The seed ISO could not be written."""


def meta_data(instance_id: str, hostname: str | None = None) -> bytes:
    """NoCloud ``meta-data``: the instance id (a new one makes cloud-init run again) and a hostname."""
    data: dict[str, str] = {"instance-id": instance_id}
    if hostname:
        data["local-hostname"] = hostname
    return yaml.safe_dump(data, sort_keys=False).encode()


def iso_tool_argv(output: Path, source_dir: Path, label: str = SEED_LABEL) -> list[str]:
    """genisoimage when installed, else xorriso's mkisofs emulation (Joliet + Rock Ridge)."""
    base = ["-output", str(output), "-volid", label, "-joliet", "-rock", "-quiet", str(source_dir)]
    if shutil.which("genisoimage"):
        return ["genisoimage", *base]
    if shutil.which("xorriso"):
        return ["xorriso", "-as", "mkisofs", *base]
    raise SeedError("neither genisoimage nor xorriso is installed (run `make apt`)")


def write_seed_iso(
    output: Path,
    *,
    user_data: bytes,
    instance_id: str,
    hostname: str | None = None,
    network_config: bytes | None = None,
    label: str = SEED_LABEL,
) -> Path:
    """Write a NoCloud seed ISO to ``output`` and return its path."""
    with tempfile.TemporaryDirectory(prefix="seed-") as tmp:
        src = Path(tmp)
        (src / "user-data").write_bytes(user_data)
        (src / "meta-data").write_bytes(meta_data(instance_id, hostname))
        if network_config is not None:
            (src / "network-config").write_bytes(network_config)
        output.parent.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(iso_tool_argv(output, src, label), capture_output=True, text=True)
        if result.returncode != 0:
            raise SeedError(f"could not write {output}: {result.stderr.strip()[-300:]}")
    return output
