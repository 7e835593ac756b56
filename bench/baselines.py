"""What do the baselines cost? Their share of a sweeps/all.py run, and their fit time per unit.

1. Per method, on the embedded S&P 500: fit time on 1 000 and 5 000 training rows, and the time
   to forecast 250 origins (point and quantiles), in this process.
2. The same `sweeps/all.py` run of the four forecasters (tiny, random weights) as whole processes,
   with the baselines (as shipped) and with `--no-baselines`, the order alternating between rounds.
   The baselines' share is (with − without) / without, the median over rounds (goal ≤ 5 %, issue
   25); each run's printed per-sweep walls are shown next to it.

    python bench/baselines.py [--rounds 2] [--folds 1] [--seeds 1] [--skip-sweeps]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

FORECASTERS = ["toto", "kronos", "chronos2", "tft"]
SMALL_FOLDS = ["--window", "rolling", "--train-size", "200", "--val-size", "20", "--test-size", "20"]


def unit_times(rows: int, origins: int = 250) -> dict[str, tuple[float, float]]:
    """(fit seconds, forecast seconds for `origins` origins) per method on `rows` training rows."""
    import numpy as np

    from search_spaces.baselines import METHODS
    from trainables.adapter import UnitData, Window
    from trainables.baselines import BaselinesAdapter
    from trainables.data import read_prices

    frame = read_prices(None, "SPX")[0].reset_index(drop=True)
    n = len(frame)  # 5 031 days: the origins are its last 250 rows (for timing they may lie in the training rows)
    data = UnitData(frame, (), Window(0, rows), Window(rows, n), Window(n, n))
    out = {}
    for method in METHODS:
        adapter = BaselinesAdapter({"method": method, "prediction_length": 1}, seed=0)
        start = time.perf_counter()
        adapter.fit(data, None)
        fitted = time.perf_counter() - start
        start = time.perf_counter()
        adapter.forecast(data, np.arange(n - origins, n))
        out[method] = (fitted, time.perf_counter() - start)
    return out


def _all_run(storage: str, args, baselines: bool) -> tuple[float, dict[str, int]]:
    """Wall of one sweeps/all.py process, and the per-sweep walls it printed."""
    config = Path(storage) / "tiny.json"
    from trainables import registry

    config.write_text(json.dumps({m: {"training_config": registry.get(m).spaces().TINY} for m in FORECASTERS}))
    cmd = [sys.executable, "sweeps/all.py", "--models", ",".join(FORECASTERS), "--config", str(config),
           "--mode", "priority", "--max-runs", "1", "--init", "scratch", "--folds", str(args.folds),
           "--seeds", str(args.seeds), "--horizon", "2", "--context", "64", "--gpus-per-trial", "0",
           "--storage", storage, "--name", "with" if baselines else "without", "--overwrite", *SMALL_FOLDS]  # fmt: skip
    if not baselines:
        cmd.append("--no-baselines")
    start = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"error: sweeps/all.py exited {done.returncode}: {done.stderr.strip().splitlines()[-1:]}")
    walls = {m: int(s) for m, s in re.findall(r"^Sweep \w+?_(\w+): .*?, (\d+) s$", done.stdout, re.M)}
    if baselines:  # where the baselines sweep's time goes: its units' own fit + forecast seconds
        records = glob.glob(os.path.join(storage, "with_baselines", "trial_*", "units", "*", "record.json"))
        units = [json.loads(open(r).read()) for r in records]
        walls["its units' own time (fit, forecast, scoring, storing)"] = round(
            sum(u["finished_at"] - u["started_at"] for u in units if "started_at" in u), 1
        )
    return wall, walls


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--folds", type=int, default=1)
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--skip-sweeps", action="store_true", help="only the per-unit fit and forecast times")
    args = p.parse_args(argv)

    print("per unit (embedded S&P 500, horizon 1): fit seconds on N training rows; forecast of 250 origins")
    print(f"{'method':<12}{'fit 1 000':>11}{'fit 5 000':>11}{'250 origins':>13}")
    small, large = unit_times(1000), unit_times(5000)
    for method in small:
        print(f"{method:<12}{small[method][0]:>10.2f}s{large[method][0]:>10.2f}s{large[method][1]:>12.2f}s")
    if args.skip_sweeps:
        return 0

    sides: dict[bool, list[float]] = {True: [], False: []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for baselines in (True, False) if r % 2 == 0 else (False, True):
                wall, walls = _all_run(tmp, args, baselines)
                sides[baselines].append(wall)
                shown = ", ".join(f"{m} {s} s" for m, s in walls.items())
                print(f"round {r + 1} {'with' if baselines else 'without'} baselines: {wall:.1f} s  ({shown})")
    with_, without = statistics.median(sides[True]), statistics.median(sides[False])
    share = (with_ - without) / without
    print(f"sweeps/all.py, four tiny forecasters: {without:.1f} s without baselines, {with_:.1f} s with")
    print(f"share={share:.3f} (baselines' extra wall / the four models' run; goal ≤ 0.05)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
