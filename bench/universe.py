"""How does a universe sweep's cost grow with its assets? `sweeps/tft.py --assets` at 1, 10 and 50.

Each size is one whole process (Ray start-up, trials, report) over a synthetic universe (one
parquet file, a random walk per asset, business days): 2 configurations of a tiny TFT × N assets
× 2 folds × 1 seed, per-asset fit (the one fit built so far; `--fit global` is not). Prints, per
size, the wall, seconds per (asset, unit) = wall / (configurations × assets × folds), the
driver's peak resident memory and the trial processes' largest peak (the frames of every asset go
to the trials once, through the object store, with tune.with_parameters), alternating the order
of the sizes between rounds. The last line: `growth=<50-asset wall / (50 × 1-asset wall)>`.

    python bench/universe.py [--rounds 1] [--rows 600]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SIZES = (1, 10, 50)
CONFIGS, FOLDS = 2, 2
# What sweeps/tft.py runs, then this process's peak memory (the entry script skips atexit on exit).
WRAPPER = """
import os, resource, sys
sys.path.insert(0, os.getcwd())
from sweeps.cli import main
code = main("tft", sys.argv[1:])
print(f"PEAK_RSS_KB {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}", flush=True)
os._exit(code)
"""


def universe(path: str, assets: int, rows: int) -> None:
    """A parquet file of `assets` random walks (asset ids S000, S001, …) on the same business days."""
    days = pd.bdate_range("2015-01-01", periods=rows)
    rng = np.random.default_rng(0)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, (assets, rows)), axis=1))
    frame = pd.DataFrame(
        {
            "timestamp": np.tile(days, assets),
            "asset": np.repeat([f"S{i:03d}" for i in range(assets)], rows),
            "close": close.ravel(),
        }
    )
    frame.to_parquet(path)


def run(assets: int, rows: int, tmp: str) -> tuple[float, float, float]:
    """(wall seconds, driver peak MB, largest trial peak MB) of one sweep over `assets` assets."""
    data = os.path.join(tmp, f"u{assets}.parquet")
    universe(data, assets, rows)
    config = os.path.join(tmp, "tiny.json")
    with open(config, "w") as f:
        tiny = {"max_encoder_length": 20, "max_prediction_length": 2, "batch_size": 32, "max_epochs": 1,
                "limit_train_batches": 3, "hidden_size": 8, "attention_head_size": 1, "hidden_continuous_size": 4}  # fmt: skip
        json.dump({"training_config": tiny, "param_ranges": {"learning_rate": [1e-3, 3e-3][:CONFIGS]}}, f)
    args = ["--config", config, "--mode", "grid", "--folds", str(FOLDS), "--seeds", "1", "--gpus-per-trial", "0",
            "--data", data, "--assets", "all", "--features", "NONE", "--window", "rolling", "--train-size", "200",
            "--val-size", "40", "--test-size", "40", "--storage", os.path.join(tmp, "r"), "--name", f"u{assets}",
            "--overwrite"]  # fmt: skip
    log = os.path.join(tmp, f"u{assets}.log")
    with open(log, "w") as f:  # a file, not a pipe: Ray's processes would hold a pipe open
        start = time.perf_counter()
        code = subprocess.call([sys.executable, "-c", WRAPPER, *args], stdout=f, stderr=subprocess.STDOUT, cwd=ROOT,
                               env={**os.environ, "RAY_ADDRESS": "local"})  # fmt: skip
        wall = time.perf_counter() - start
    with open(log) as f:
        out = f.read()
    if code != 0:
        raise SystemExit(f"error: the {assets}-asset sweep failed:\n{out[-3000:]}")
    peak = [int(line.split()[1]) for line in out.splitlines() if line.startswith("PEAK_RSS_KB")]
    records = glob.glob(os.path.join(tmp, "r", f"u{assets}", "trial_*", "units", "*", "record.json"))
    if len(records) != CONFIGS * assets * FOLDS:
        raise SystemExit(f"error: {len(records)} units stored, {CONFIGS * assets * FOLDS} expected")
    trial_peak = max(json.loads(Path(r).read_text()).get("peak_rss_mb", float("nan")) for r in records)
    return wall, peak[-1] / 1024 if peak else float("nan"), trial_peak


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=1, help="rounds; even rounds run the sizes in reverse order")
    p.add_argument("--rows", type=int, default=600, help="business days per asset")
    a = p.parse_args()
    walls: dict[int, list[float]] = {n: [] for n in SIZES}
    peaks: dict[int, list[tuple[float, float]]] = {n: [] for n in SIZES}
    with tempfile.TemporaryDirectory(prefix="universe_") as tmp:
        for r in range(a.rounds):
            for n in SIZES if r % 2 == 0 else reversed(SIZES):
                wall, driver, trial = run(n, a.rows, tmp)
                walls[n].append(wall)
                peaks[n].append((driver, trial))
                units = CONFIGS * n * FOLDS
                print(f"round {r + 1}  {n:>3} assets  {units:>4} units  wall {wall:7.1f} s  {wall / units:6.2f} s/unit  "
                      f"driver peak {driver:6.0f} MB  trial peak {trial:6.0f} MB", flush=True)  # fmt: skip
    wall = {n: statistics.median(v) for n, v in walls.items()}
    for n in SIZES:
        driver = statistics.median(d for d, _ in peaks[n])
        trial = statistics.median(t for _, t in peaks[n])
        per = wall[n] / (CONFIGS * n * FOLDS)
        print(f"{n:>3} assets: {per:.2f} s per (asset, unit), driver peak {driver:.0f} MB, trial peak {trial:.0f} MB")
    print("fit global: not built yet (issue 11), not measured")
    print(f"growth={wall[50] / (50 * wall[1]):.2f}")


if __name__ == "__main__":
    main()
