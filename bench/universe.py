"""How does a universe sweep's cost grow with its assets? `sweeps/tft.py --assets` at 1, 10 and 50.

Each size is one whole process (Ray start-up, trials, report) over a synthetic universe (one
parquet file, a random walk per asset, business days): 2 configurations of a tiny TFT × N assets
× 2 folds × 1 seed, in both fits (`--fit per-asset`: a model per (asset, fold, seed); `--fit
global`: one per (fold, seed) on every asset). Prints, per fit and size, the wall, seconds per
(asset, unit) = wall / (configurations × assets × folds), the driver's peak resident memory and
the trial processes' largest peak (the frames of every asset go to the trials once, through the
object store, with tune.with_parameters), alternating the order between rounds. The last line:
`growth_per_asset=… growth_global=…`, each the 50-asset wall / (50 × the 1-asset wall).

    python bench/universe.py [--rounds 1] [--rows 600]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import statistics
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from whole_sweep import timed_sweep

SIZES = (1, 10, 50)
FITS = ("per-asset", "global")
CONFIGS, FOLDS = 2, 2


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


def run(assets: int, fit: str, rows: int, tmp: str) -> tuple[float, float, float]:
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
            "--val-size", "40", "--test-size", "40", "--storage", os.path.join(tmp, "r"), "--name", f"u{assets}", "--fit", fit,
            "--overwrite"]  # fmt: skip
    wall, driver = timed_sweep(args, os.path.join(tmp, f"u{assets}.log"), f"{assets}-asset")
    records = glob.glob(os.path.join(tmp, "r", f"u{assets}", "trial_*", "units", "*", "record.json"))
    if len(records) != CONFIGS * assets * FOLDS:
        raise SystemExit(f"error: {len(records)} units stored, {CONFIGS * assets * FOLDS} expected")
    trial_peak = max(json.loads(Path(r).read_text()).get("peak_rss_mb", float("nan")) for r in records)
    return wall, driver, trial_peak


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=1, help="rounds; even rounds run the sizes in reverse order")
    p.add_argument("--rows", type=int, default=600, help="business days per asset")
    a = p.parse_args()
    runs = [(fit, n) for fit in FITS for n in SIZES]
    walls: dict[tuple, list[float]] = {k: [] for k in runs}
    peaks: dict[tuple, list[tuple[float, float]]] = {k: [] for k in runs}
    with tempfile.TemporaryDirectory(prefix="universe_") as tmp:
        for r in range(a.rounds):
            for fit, n in runs if r % 2 == 0 else reversed(runs):
                wall, driver, trial = run(n, fit, a.rows, tmp)
                walls[fit, n].append(wall)
                peaks[fit, n].append((driver, trial))
                units = CONFIGS * n * FOLDS
                print(f"round {r + 1}  {fit:<9} {n:>3} assets  {units:>4} units  wall {wall:7.1f} s  "
                      f"{wall / units:6.2f} s/unit  driver peak {driver:6.0f} MB  trial peak {trial:6.0f} MB", flush=True)  # fmt: skip
    wall = {k: statistics.median(v) for k, v in walls.items()}
    for fit, n in runs:
        driver = statistics.median(d for d, _ in peaks[fit, n])
        trial = statistics.median(t for _, t in peaks[fit, n])
        per = wall[fit, n] / (CONFIGS * n * FOLDS)
        print(
            f"{fit:<9} {n:>3} assets: {per:.2f} s per (asset, unit), driver peak {driver:.0f} MB, trial peak {trial:.0f} MB"
        )
    growth = {fit: wall[fit, SIZES[-1]] / (SIZES[-1] * wall[fit, SIZES[0]]) for fit in FITS}
    print(" ".join(f"growth_{fit.replace('-', '_')}={g:.2f}" for fit, g in growth.items()))


if __name__ == "__main__":
    main()
