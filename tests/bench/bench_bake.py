"""Benchmark ``factory bake qemu`` against ``packer build`` of ``packer/qemu`` doing the same bake.

Both start from the same base disk and ISO (built or taken from the cache beforehand, not timed), use
the same builder userdata (``factory packer build qemu`` renders it with the bake's own renderer),
run under TCG with 2 vCPUs and 1536 MiB, and end with a standalone compressed qcow2. The accelerator
probe is cached beforehand too, so neither run pays for it.

Timed, each as a fresh process (wall time from spawn to exit, CPU = user+sys of it and its children,
which includes QEMU; CPU is far less sensitive than wall time to other load on a shared machine):

1. ours: ``factory bake qemu`` (boot, builder, install, takeover, poweroff, takeover check, trim,
   compress);
2. ours: ``factory verify qemu IMAGE --provider aws`` (boot the result, fetch and apply userdata),
   which Packer does not do at all;
3. peer: ``factory packer build qemu`` = render (userdata, var file, base disk checksum) +
   ``packer build`` (Debian's packer; it checksums and copies the base disk, waits for the poweroff,
   converts with compression).

``BENCH_RUNS`` (default 1; each run takes minutes) repeats the pair, alternating, and the medians are
shown. ``BENCH_QUICK=1`` skips the Packer run. Needs root (the base disk build) and, for the peer, packer.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FACTORY = [sys.executable, "-m", "factory.cli"]
RUNS = max(1, int(os.environ.get("BENCH_BAKE_RUNS") or os.environ.get("BENCH_RUNS") or "1"))
QUICK = os.environ.get("BENCH_QUICK") == "1"
TIMEOUT = 45 * 60.0


@dataclass
class Sample:
    """One timed process."""

    wall: float
    cpu: float


def timed(argv: list[str], log: Path) -> Sample:
    """Run ``argv`` from the repository (output appended to ``log``); RuntimeError unless it exits 0."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    with open(log, "ab") as out:
        code = subprocess.run(argv, cwd=REPO, stdout=out, stderr=out, timeout=TIMEOUT).returncode
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if code != 0:
        raise RuntimeError(f"{' '.join(argv[2:5])} exited {code}; see {log}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Sample(wall, cpu)


def prepare_inputs(work: Path, log: Path) -> tuple[Path, Path]:
    """Base disk and ISO (from the cache when warm) and a cached accelerator choice; not timed."""
    base, iso = work / "base.qcow2", work / "k3os.iso"
    timed([*FACTORY, "base", "build", "--output", str(base)], log)
    timed([*FACTORY, "iso", "build", "--output", str(iso)], log)
    from factory.journal import state_dir
    from factory.qemu.accel import detect_accel
    from image_base.base_disk import cache_dir_from_env, probe_kernel

    detect_accel("auto", cache_dir=state_dir(), probe_kernel=probe_kernel(cache_dir_from_env()))
    return base, iso


def ours(base: Path, iso: Path, out: Path, log: Path) -> tuple[Sample, Sample, Path]:
    """``factory bake qemu`` then ``factory verify qemu``; the image."""
    manifest = out / "manifest.json"
    bake = timed(
        [*FACTORY, "bake", "qemu", "--iso", str(iso), "--base-image", str(base), "--output", str(out),
         "--manifest", str(manifest), "--name", "bench-ours"],
        log,
    )  # fmt: skip
    image = Path(json.loads(manifest.read_text())["builds"][-1]["files"][0]["name"])
    verify = timed([*FACTORY, "verify", "qemu", str(image), "--provider", "aws"], log)
    return bake, verify, image


def packer(base: Path, iso: Path, out: Path, log: Path) -> tuple[Sample, Path]:
    """``factory packer build qemu`` with the template's defaults (full copy of the base disk)."""
    manifest = out / "manifest.json"
    sample = timed(
        [*FACTORY, "packer", "build", "qemu", "--iso", str(iso), "--output-dir", str(out / "render"),
         "--var", f"base_image={base}", "--var", f"output_directory={out / 'images'}",
         "--var", f"manifest_output={manifest}", "--var", "image_name=bench-packer",
         "--var", "accelerator=tcg"],
        log,
    )  # fmt: skip
    image = Path(json.loads(manifest.read_text())["builds"][-1]["files"][0]["name"])
    if not image.is_absolute():
        image = REPO / image
    return sample, image


def _median(samples: list[Sample]) -> Sample:
    return Sample(statistics.median(s.wall for s in samples), statistics.median(s.cpu for s in samples))


def _mib(path: Path) -> str:
    return f"{path.stat().st_size / 2**20:.0f} MiB"


def _row(job: str, sample: Sample | None, runs: int, note: str = "") -> str:
    if sample is None:
        return f"{job:34} {'-':>10} {'-':>10} {runs:>5}  {note}"
    return f"{job:34} {sample.wall:>9.1f}s {sample.cpu:>9.1f}s {runs:>5}  {note}"


def run() -> None:
    """Prepare the inputs, time the bakes, print the table and the ratios (ours / packer)."""
    if os.geteuid() != 0:
        print("skipped: the base disk build needs root")
        return
    has_packer = shutil.which("packer") is not None and not QUICK
    with tempfile.TemporaryDirectory(prefix="bench-bake-") as tmp:
        work = Path(tmp)
        log = work / "bench.log"
        base, iso = prepare_inputs(work, log)
        bakes: list[Sample] = []
        verifies: list[Sample] = []
        packers: list[Sample] = []
        sizes: dict[str, str] = {}
        for index in range(RUNS):
            if has_packer:
                out = work / f"packer-{index}"
                sample, image = packer(base, iso, out, log)
                packers.append(sample)
                sizes["packer"] = _mib(image)
                shutil.rmtree(out, ignore_errors=True)
            out = work / f"ours-{index}"
            bake, verify, image = ours(base, iso, out, log)
            bakes.append(bake)
            verifies.append(verify)
            sizes["ours"] = _mib(image)
            shutil.rmtree(out, ignore_errors=True)
        load = os.getloadavg()[0]
    bake_m, verify_m = _median(bakes), _median(verifies)
    both = Sample(bake_m.wall + verify_m.wall, bake_m.cpu + verify_m.cpu)
    packer_m = _median(packers) if packers else None
    print(f"{'job':34} {'wall':>10} {'CPU':>10} {'runs':>5}  note")
    print(_row("factory bake qemu", bake_m, RUNS, f"image {sizes['ours']} (trimmed, compressed)"))
    print(_row("factory verify qemu --provider aws", verify_m, RUNS, "boot + userdata check"))
    print(_row("ours: bake + verify", both, RUNS))
    note = f"image {sizes['packer']} (compressed)" if packer_m else "skipped (BENCH_QUICK or no packer)"
    print(_row("packer build (factory packer build)", packer_m, len(packers), note))
    if packer_m is not None:
        bake_ratio = f"bake {bake_m.wall / packer_m.wall:.2f} (CPU {bake_m.cpu / packer_m.cpu:.2f})"
        both_ratio = f"bake+verify {both.wall / packer_m.wall:.2f} (CPU {both.cpu / packer_m.cpu:.2f})"
        print(f"ratio ours/packer: {bake_ratio}, {both_ratio}")
    print(f"load average (1 min) at the end: {load:.1f} on {os.cpu_count()} CPUs")
