"""Corrupted seed volumes: the provider answers NotDetected or ProviderError, never anything else."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from datasources.model import Dmi, FetchContext, NotDetected, ProviderError
from datasources.providers import cdrom
from tests.cdrom import images

FILES = {**images.NOCLOUD_FILES, "openstack/latest/meta_data.json": b"{}"}


@pytest.mark.parametrize("kind", ["iso-rr", "iso-joliet", "iso-plain", "fat12", "fat16"])
def test_random_corruption_of_filesystem_structures(tmp_path: Path, kind: str) -> None:
    if kind.startswith("iso"):
        flags = {"iso-rr": ("-R",), "iso-joliet": ("-J",), "iso-plain": ()}[kind]
        pristine = images.genisoimage(tmp_path, FILES, "cidata", *flags).read_bytes()
        region = range(16 * 2048, min(len(pristine), 48 * 2048))  # descriptors, path tables, directories
    else:
        pristine = images.vfat(tmp_path, FILES, "CIDATA", int(kind[3:])).read_bytes()
        region = range(0, 40_000)  # boot sector, FATs, root directory, first clusters
    structure = [pos for pos in region if pristine[pos]]
    rng = random.Random(f"cdrom-{kind}")
    target = tmp_path / "mutated.img"
    target.write_bytes(pristine)
    env = {"DATASOURCES_CDROM_DEVICES": str(target)}
    outcomes: dict[str, int] = {}
    for _ in range(150):
        positions = {rng.choice(structure) for _ in range(rng.randint(1, 6))}
        with target.open("r+b") as handle:  # patch in place, restore afterwards: no 8 MiB rewrites
            for pos in positions:
                handle.seek(pos)
                handle.write(bytes([rng.randrange(256)]))
        ctx = FetchContext("cdrom", "", time.monotonic() + 5, Dmi(), env, lambda line: None)
        started = time.monotonic()
        try:
            cdrom.datasources_fetch("cdrom", ctx)
            outcome = "read"
        except (NotDetected, ProviderError) as exc:
            outcome = type(exc).__name__
        assert time.monotonic() - started < 1
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
        with target.open("r+b") as handle:
            for pos in positions:
                handle.seek(pos)
                handle.write(pristine[pos : pos + 1])
    assert outcomes.get("read", 0) < 150, "the mutations never touched anything that matters"


@pytest.mark.parametrize(
    "meta_data",
    [b"[" * 5000 + b"]" * 5000, b"{a: " * 3000 + b"1" + b"}" * 3000, b"- a\n", b"key: [unclosed\n"],
)
def test_hostile_meta_data_is_a_provider_error(meta_data: bytes) -> None:
    # Deep nesting must end as a ProviderError, never as RecursionError (a "bug" outcome).
    from datasources.providers._seeds import nocloud_metadata

    with pytest.raises(ProviderError, match="meta-data"):
        nocloud_metadata("cdrom", meta_data, b"#cloud-config\n")


def test_deeply_nested_config_drive_json_is_a_provider_error() -> None:
    from datasources.providers._seeds import config_drive_metadata

    with pytest.raises(ProviderError, match="meta_data.json"):
        config_drive_metadata("cdrom", b"[" * 100_000, None)
