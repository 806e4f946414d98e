"""``python -m tests.bench.run`` (``make bench``): run every ``tests/bench/bench_*.py``.

Each bench module exposes ``run() -> None`` and prints its own table. ``BENCH_ONLY=name,name``
runs a subset (module names without the ``bench_`` prefix); ``BENCH_QUICK=1`` asks the benches
to skip their slow peer runs.
"""

from __future__ import annotations

import importlib
import os
import sys
import time
import traceback
from pathlib import Path


def discover() -> list[str]:
    """Module names of the bench modules, sorted."""
    here = Path(__file__).resolve().parent
    return sorted(f"tests.bench.{p.stem}" for p in here.glob("bench_*.py"))


def main() -> int:
    """Run the benches; 1 when one of them raised."""
    only = {n.strip() for n in os.environ.get("BENCH_ONLY", "").split(",") if n.strip()}
    failed = []
    for name in discover():
        short = name.rsplit(".", 1)[1].removeprefix("bench_")
        if only and short not in only:
            continue
        print(f"== {short} ==", flush=True)
        start = time.monotonic()
        try:
            importlib.import_module(name).run()
        except Exception:
            traceback.print_exc()
            failed.append(short)
        print(f"== {short}: {time.monotonic() - start:.1f} s ==\n", flush=True)
    if failed:
        print(f"failed benches: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
