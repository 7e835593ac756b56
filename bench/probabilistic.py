"""What does judging the forecast distribution cost? The same small sweep with and without it.

Each round runs one sweep command twice as whole processes (order alternating between rounds):
as shipped, and with `--point-only` (no quantiles stored, no distribution metrics, no GARCH fits,
no calibration). Then, on each side's results, `analysis/report.py` again with the sweep's loss
caches removed: the analysis share (reading forecasts, GARCH fits, calibration, verdicts).
Prints each wall, and last `ratio=<with distribution / point only>` (goal ≤ 1.10, issue 23).

    python bench/probabilistic.py [--model tft|chronos2] [--rounds 2] [--folds 2] [--seeds 1]
"""

from __future__ import annotations

import argparse
import glob
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

SWEEPS = {
    "tft": ["sweeps/tft.py", "--mode", "quick", "--max-runs", "2"],
    "chronos2": [
        "sweeps/chronos2.py",
        "--config",
        "sweeps/examples/chronos2_tiny.json",
        "--mode",
        "grid",
        "--init",
        "scratch",
        "--size",
        "tiny",
    ],  # fmt: skip
}
CACHES = ("sweep_losses.parquet", "sweep_bands.parquet", "sweep_garch.parquet")


def _timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"error: {' '.join(cmd)} exited {out.returncode}: {out.stderr.strip().splitlines()[-1:]}")
    return time.perf_counter() - start


def one_side(args, storage: str, point_only: bool) -> tuple[float, float]:
    """(sweep wall, report-again wall) of one side in fresh processes."""
    name = "point" if point_only else "dist"
    cmd = [sys.executable, *SWEEPS[args.model], "--folds", str(args.folds), "--seeds", str(args.seeds)]
    cmd += ["--storage", storage, "--name", name, "--overwrite", "--gpus-per-trial", "0"]
    sweep = _timed(cmd + (["--point-only"] if point_only else []))
    path = os.path.join(storage, name)
    for cache in CACHES:
        for f in glob.glob(os.path.join(path, cache)):
            os.remove(f)
    report = _timed([sys.executable, "analysis/report.py", path])
    return sweep, report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--model", choices=sorted(SWEEPS), default="tft", help="which small sweep (default tft)")
    p.add_argument("--rounds", type=int, default=2, help="rounds, each running both sides (order alternating)")
    p.add_argument("--folds", type=int, default=2)
    p.add_argument("--seeds", type=int, default=1)
    args = p.parse_args(argv)
    walls: dict[bool, list[float]] = {True: [], False: []}
    reports: dict[bool, list[float]] = {True: [], False: []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for point_only in (False, True) if r % 2 == 0 else (True, False):
                sweep, report = one_side(args, os.path.join(tmp, f"r{r}"), point_only)
                walls[point_only].append(sweep)
                reports[point_only].append(report)
                side = "point only" if point_only else "with distribution"
                print(f"round {r + 1}: {side:<17}  sweep {sweep:6.1f} s   report again {report:5.1f} s", flush=True)
    dist, point = statistics.median(walls[False]), statistics.median(walls[True])
    print(
        f"median sweep wall: with distribution {dist:.1f} s, point only {point:.1f} s; "
        f"report again (no caches): {statistics.median(reports[False]):.1f} s vs {statistics.median(reports[True]):.1f} s"
    )
    print(f"ratio={dist / point:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
