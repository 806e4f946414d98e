"""Benchmark ``datasources fetch`` against cloud-init's Ec2 datasource (process start to exit, peak RSS).

Jobs:

1. right cloud: ``datasources fetch aws`` against the AWS emulator;
2. last of 8, others refuse: seven providers refuse connections, the eighth (aws) answers;
3. last of 8, some hang: four refuse, three accept and never answer, aws answers
   (``--timeout 3``: the hanging ones cost the deadline by the ordered rule);
4. the peer: cloud-init's Ec2 datasource (Debian package, ``/usr/bin/python3``) with its
   ``metadata_urls`` pointed at the same emulator, and at a refusing address (its default waits;
   capped at ``PEER_CAP`` seconds, skipped with ``BENCH_QUICK=1``).

Every run is a fresh process; wall time from spawn to reap, peak RSS from ``wait4`` (taken in a
small helper interpreter, see ``_SPAWNER``).
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from datasources.emulator.aws import AwsEmulator
from datasources.emulator.base import EmulatorConfig
from datasources.plugins import get_plugin_manager, provider_table

RUNS = int(os.environ.get("BENCH_RUNS", "15"))
PEER_CAP = float(os.environ.get("BENCH_PEER_CAP", "150"))
DATASOURCES = str(Path(sys.executable).parent / "datasources")
PEER_PYTHON = "/usr/bin/python3"
PEER_DRIVER = str(Path(__file__).resolve().parent / "cloudinit_ec2.py")
USERDATA = b"#cloud-config\nhostname: bench\nssh_authorized_keys:\n  - ssh-ed25519 AAAA bench\n"


@dataclass
class Sample:
    """One process run."""

    wall: float
    maxrss_mib: float
    exit_code: int
    cpu: float = 0.0


@dataclass
class Row:
    """Median figures of one job."""

    job: str
    wall: float | None
    rss: float | None
    runs: int
    note: str = ""
    cpu: float | None = None


# Spawns the measured process and reports its figures. It runs in a small helper interpreter
# because Linux charges a child spawned with vfork (posix_spawn) the *parent's* peak RSS as its
# own ru_maxrss at exec: measured from this (large) process, every job looked at least as big
# as the benchmark itself (about 24 MiB, whatever the job used).
_SPAWNER = """
import os, sys, time
cap = float(sys.argv[1]) or None
argv = sys.argv[2:]
devnull = os.open(os.devnull, os.O_WRONLY)
start = time.perf_counter()
pid = os.posix_spawn(argv[0], argv, os.environ,
                     file_actions=[(os.POSIX_SPAWN_DUP2, devnull, 1), (os.POSIX_SPAWN_DUP2, devnull, 2)])
while True:
    reaped, status, usage = os.wait4(pid, os.WNOHANG if cap else 0)
    if reaped:
        break
    if cap is not None and time.perf_counter() - start > cap:
        os.kill(pid, 9)
        reaped, status, usage = os.wait4(pid, 0)
        break
    time.sleep(0.002)
wall = time.perf_counter() - start
print(wall, usage.ru_maxrss, os.waitstatus_to_exitcode(status), usage.ru_utime + usage.ru_stime)
"""


def run_once(argv: list[str], env: dict[str, str], cap: float | None = None) -> Sample:
    """Run ``argv`` once (killed after ``cap`` seconds): wall time spawn to reap, peak RSS, CPU.

    The figures come from :data:`_SPAWNER` in a small helper interpreter (see there why).
    """
    helper = [sys.executable, "-S", "-c", _SPAWNER, str(cap or 0), *argv]
    done = subprocess.run(helper, env=env, capture_output=True, text=True, check=True)
    wall, maxrss_kib, exit_code, cpu = done.stdout.split()
    return Sample(float(wall), int(maxrss_kib) / 1024, int(exit_code), float(cpu))


def median_row(job: str, argv: list[str], env: dict[str, str], runs: int, want_exit: int = 0) -> Row:
    """Run ``argv`` ``runs`` times; the median wall time and peak RSS."""
    samples = [run_once(argv, env) for _ in range(runs)]
    bad = [s.exit_code for s in samples if s.exit_code != want_exit]
    note = f"unexpected exit codes {sorted(set(bad))}" if bad else ""
    return Row(
        job,
        statistics.median(s.wall for s in samples),
        statistics.median(s.maxrss_mib for s in samples),
        runs,
        note,
        statistics.median(s.cpu for s in samples),
    )


def refused_url() -> str:
    """A loopback URL where nothing listens."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def base_env(tmp: str) -> dict[str, str]:
    """A hermetic environment: silent DMI, no cdrom devices, no stray overrides."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DATASOURCES_")}
    os.makedirs(os.path.join(tmp, "dmi"), exist_ok=True)
    env["DATASOURCES_DMI_DIR"] = os.path.join(tmp, "dmi")
    env["DATASOURCES_CDROM_DEVICES"] = os.path.join(tmp, "no-device")
    return env


def eight_providers() -> list[str]:
    """Eight providers ending with aws (fewer if fewer are built in yet)."""
    names = [n for n in provider_table(get_plugin_manager(load_entrypoints=False)).names() if n != "aws"]
    return [*names[:7], "aws"]


def ours(tmp: str, aws_url: str, hang_urls: list[str]) -> list[Row]:
    """Our three jobs."""
    env = {**base_env(tmp), "DATASOURCES_AWS_URL": aws_url}
    out = os.path.join(tmp, "out")
    rows = [median_row("right cloud: fetch aws", [DATASOURCES, "fetch", "aws", "--output", out], env, RUNS)]
    order = eight_providers()
    others = [p for p in order if p != "aws"]
    refused = {f"DATASOURCES_{p.upper()}_URL": refused_url() for p in others}
    argv = [DATASOURCES, "fetch", *order, "--output", out]
    rows.append(median_row(f"last of {len(order)}, others refuse", argv, {**env, **refused}, RUNS))
    hanging = dict(refused)
    for p, url in zip(others[:3], hang_urls, strict=False):
        hanging[f"DATASOURCES_{p.upper()}_URL"] = url
    rows.append(
        median_row(
            f"last of {len(order)}, 3 hang (--timeout 3)",
            [*argv, "--timeout", "3"],
            {**env, **hanging},
            max(3, RUNS // 5),
        )
    )
    return rows


def peer(tmp: str, aws_url: str) -> list[Row]:
    """cloud-init's Ec2 datasource on the same jobs."""
    if not os.path.exists(PEER_PYTHON):
        return [Row("cloud-init Ec2", None, None, 0, "no /usr/bin/python3")]
    env = base_env(tmp)
    rows = [median_row("right cloud: cloud-init Ec2", [PEER_PYTHON, PEER_DRIVER, aws_url], env, RUNS)]
    if os.environ.get("BENCH_QUICK", "") not in ("", "0"):
        rows.append(Row("address refuses: cloud-init Ec2", None, None, 0, "skipped (BENCH_QUICK=1)"))
        return rows
    sample = run_once([PEER_PYTHON, PEER_DRIVER, refused_url()], env, cap=PEER_CAP)
    capped = sample.wall >= PEER_CAP
    note = f"killed at the {PEER_CAP:.0f} s cap" if capped else f"exit {sample.exit_code}"
    rows.append(Row("address refuses: cloud-init Ec2", sample.wall, sample.maxrss_mib, 1, note, sample.cpu))
    return rows


def fmt(value: float | None, unit: str) -> str:
    return "-" if value is None else f"{value:.3f} {unit}" if unit == "s" else f"{value:.1f} {unit}"


def ratio(a: float | None, b: float | None) -> str:
    return "-" if a is None or b is None or a == 0 else f"{b / a:.1f}x"


def run() -> None:
    """Run the jobs and print the table with ratios (cloud-init / ours)."""
    aws = AwsEmulator(EmulatorConfig(userdata=USERDATA, ssh_keys=["ssh-ed25519 AAAA bench"])).start()
    hangs = [AwsEmulator(EmulatorConfig(fail="hang")).start() for _ in range(3)]
    try:
        # /run/config is a tmpfs on a node: write to one here too when there is one
        scratch = "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None
        with tempfile.TemporaryDirectory(dir=scratch) as tmp:
            mine = ours(tmp, aws.url, [h.url for h in hangs])
            theirs = peer(tmp, aws.url)
    finally:
        for emu in [aws, *hangs]:
            emu.stop()
    print(f"{'job':44} {'median wall':>12} {'CPU':>9} {'peak RSS':>10} {'runs':>5}  note")
    for row in [*mine, *theirs]:
        print(
            f"{row.job:44} {fmt(row.wall, 's'):>12} {fmt(row.cpu, 's'):>9} {fmt(row.rss, 'MiB'):>10} "
            f"{row.runs:>5}  {row.note}"
        )
    right, last = mine[0], mine[1]
    peer_right, peer_refused = theirs[0], theirs[-1]
    print()
    print(
        f"right cloud: cloud-init / ours = {ratio(right.wall, peer_right.wall)} time, "
        f"{ratio(right.cpu, peer_right.cpu)} CPU, "
        f"{ratio(right.rss, peer_right.rss)} memory"
    )
    print(
        f"nothing at the EC2 address: cloud-init Ec2 ({fmt(peer_refused.wall, 's')}) / ours last-of-8 "
        f"({fmt(last.wall, 's')}) = {ratio(last.wall, peer_refused.wall)}"
    )
    goals = [
        ("fetch aws < 0.12 s", right.wall is not None and right.wall < 0.12),
        ("fetch aws < 25 MiB", right.rss is not None and right.rss < 25),
        ("last of 8 < 1 s", last.wall is not None and last.wall < 1.0),
    ]
    print("goals: " + ", ".join(f"{name}: {'met' if ok else 'MISSED'}" for name, ok in goals))
