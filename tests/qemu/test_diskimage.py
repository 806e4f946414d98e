"""The bake's host-side disk work on a real (small) disk image: find the K3OS_STATE partition, list its
top level, and trim it: journal replayed, the deleted base OS's blocks become holes, the kept files and
the boot code in front of the partition unchanged."""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest

from factory.qemu import diskimage

pytestmark = pytest.mark.skipif(
    any(shutil.which(t) is None for t in ("mke2fs", "debugfs", "e2fsck", "sfdisk", "qemu-img")),
    reason="needs e2fsprogs, fdisk and qemu-utils",
)

OFFSET = 1 << 20


def _allocated_kib(path: Path) -> int:
    return path.stat().st_blocks // 2


def _dirty_state_disk(tmp_path: Path) -> Path:
    """A 64 MiB MBR disk: boot code bytes, K3OS_STATE ext4 at 1 MiB with ``k3os/keep``, an 8 MiB
    ``usr/junk`` deleted again (its blocks still hold the data) and a journal needing recovery."""
    tree = tmp_path / "tree"
    (tree / "k3os").mkdir(parents=True)
    (tree / "usr").mkdir()
    (tree / "k3os" / "keep").write_text("kept across the trim\n")
    (tree / "usr" / "junk").write_bytes(bytes(range(256)) * (8 * 4096))
    raw = tmp_path / "disk.raw"
    with open(raw, "wb") as fh:
        fh.truncate(64 << 20)
    subprocess.run(["sfdisk", "-q", str(raw)], input=b"label: dos\nstart=2048, type=83\n", check=True)
    with open(raw, "r+b") as fh:
        fh.seek(512)
        fh.write(b"core.img stand-in" * 16)
    subprocess.run(
        ["mke2fs", "-q", "-F", "-t", "ext4", "-L", diskimage.STATE_LABEL, "-E", f"offset={OFFSET}",
         "-d", str(tree), str(raw), "63M"],
        check=True,
    )  # fmt: skip
    spec = f"{raw}?offset={OFFSET}"
    subprocess.run(["debugfs", "-w", "-R", "rm /usr/junk", spec], check=True, capture_output=True)
    # Leave a committed but unreplayed transaction, as a guest powering off right after a write may.
    subprocess.run(
        ["debugfs", "-w", "-f", "-", spec], input=b"jo\njw -b 300 /dev/null\njc\n", check=True,
        capture_output=True,
    )  # fmt: skip
    return raw


def _features(raw: Path) -> str:
    out = subprocess.run(
        ["dumpe2fs", "-h", f"{raw}?offset={OFFSET}"], capture_output=True, text=True, check=True
    )
    return next(line for line in out.stdout.splitlines() if line.startswith("Filesystem features:"))


def test_state_partition_and_top_level(tmp_path: Path) -> None:
    raw = _dirty_state_disk(tmp_path)
    part = diskimage.state_partition(raw)
    assert part == diskimage.Partition(OFFSET, 63 << 20, diskimage.STATE_LABEL)
    assert sorted(diskimage.root_entries(raw, part)) == ["k3os", "lost+found", "usr"]
    assert diskimage.read_file(raw, part, "/k3os/keep") == "kept across the trim\n"


def test_no_state_partition_on_a_disk_without_one(tmp_path: Path) -> None:
    raw = tmp_path / "blank.raw"
    with open(raw, "wb") as fh:
        fh.truncate(8 << 20)
    subprocess.run(["sfdisk", "-q", str(raw)], input=b"label: dos\nstart=2048, type=83\n", check=True)
    assert diskimage.state_partition(raw) is None


def test_trim_replays_the_journal_and_punches_out_free_blocks(tmp_path: Path) -> None:
    raw = _dirty_state_disk(tmp_path)
    assert "needs_recovery" in _features(raw)
    before = raw.read_bytes()[:OFFSET]
    allocated = _allocated_kib(raw)
    assert allocated > 8 * 1024  # the deleted file's data is still on the disk
    part = diskimage.state_partition(raw)
    assert part is not None
    work = tmp_path / "work"
    work.mkdir()

    started = time.monotonic()
    summary = diskimage.trim_state_filesystem(raw, part, work)
    elapsed = time.monotonic() - started

    assert summary.startswith(f"{diskimage.STATE_LABEL}: ")
    assert "needs_recovery" not in _features(raw)
    assert _allocated_kib(raw) < allocated - 7 * 1024, (allocated, _allocated_kib(raw))
    assert raw.stat().st_size == 64 << 20
    assert raw.read_bytes()[:OFFSET] == before
    assert diskimage.read_file(raw, part, "/k3os/keep") == "kept across the trim\n"
    check = subprocess.run(["e2fsck", "-f", "-n", f"{raw}?offset={OFFSET}"], capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert list(work.iterdir()) == []  # the partition copy is gone
    assert elapsed < 10


def test_trim_reports_a_filesystem_e2fsck_cannot_repair(tmp_path: Path) -> None:
    raw = tmp_path / "garbage.raw"
    with open(raw, "wb") as fh:
        fh.truncate(8 << 20)
        fh.seek(OFFSET)
        fh.write(b"\xff" * 4096)
    work = tmp_path / "work"
    work.mkdir()
    with pytest.raises(RuntimeError, match="e2fsck failed"):
        diskimage.trim_state_filesystem(raw, diskimage.Partition(OFFSET, 7 << 20, "x"), work)
    assert list(work.iterdir()) == []
