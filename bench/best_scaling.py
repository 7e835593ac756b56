"""How `python analysis/best.py` scales with the number of trials in a results store.

    python bench/best_scaling.py                    # 100, 1 000, 10 000 trials × 10 units
    python bench/best_scaling.py --sizes 100,1000   # quicker

Builds a synthetic store in the real on-disk format (sweep.json, one trial_<id>/ per trial with
params.json and units/<fold>__seed<seed>/record.json for 5 folds × 2 seeds; 1 % of the trials
failed half-way with an error.txt), then times best.py as a user runs it, in a fresh process:
- cold: `--refresh`, every record.json read and the sweep's sweep_runs.parquet cache written;
- warm: the normal call, which reads that cache (what a user meets after the sweep's own report,
  which writes the cache at the end of every sweep).
The last line is `seconds_10k=<warm seconds at 10 000 trials>` (target: under 3 s).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)

from trainables import layout  # noqa: E402
from trainables.ids import unit_key  # noqa: E402

FOLDS = 5
SEEDS = (7, 11)
METRICS = ("pct_mae", "mae", "rmse", "r2", "directional_accuracy", "naive_pct_mae", "dm_pvalue_vs_naive")
METRICS += ("sharpe", "max_drawdown")


def _folds() -> list[dict]:
    return [
        {
            "name": f"wf_{i + 1}",
            "train_start": "20100104",
            "train_end": f"2015{i + 1:02d}01",
            "val_start": f"2015{i + 1:02d}02",
            "val_end": f"2015{i + 1:02d}20",
            "test_start": f"2015{i + 1:02d}21",
            "test_end": f"2015{i + 2:02d}10",
        }
        for i in range(FOLDS)
    ]


def _sweep_json(name: str) -> dict:
    spec = {
        "model": "tft",
        "mode": "optuna",
        "name": name,
        "data": None,
        "asset": None,
        "columns": {"close": "close"},
        "seeds": list(SEEDS),
        "metric": "val_pct_mae",
        "training_config": {},
    }
    return {"spec": spec, "folds": _folds(), "started": "2026-11-01T00:00:00+00:00", "git_sha": "0" * 40}


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def build_store(root: str, trials: int, seed: int = 0) -> str:
    """A results root holding one synthetic sweep of `trials` trials × 10 units; returns the root."""
    rng = np.random.default_rng(seed)
    sweep = layout.SweepDir(os.path.join(root, "bench_sweep"))
    os.makedirs(sweep.root)
    _write(sweep.sweep_json, json.dumps(_sweep_json("bench_sweep")))
    _write(sweep.file(f"{layout.STATE_PREFIX}-2026-11-01_00-00-00.json"), "{}")
    for t in range(trials):
        trial = sweep.trial(layout.trial_dirname(f"bench_{t:05d}"))
        params = {"learning_rate": float(10 ** rng.uniform(-4, -2)), "hidden_size": int(rng.choice([8, 16, 32, 64]))}
        os.makedirs(trial.units)
        _write(trial.params, json.dumps(params))
        failed = t % 100 == 99
        if failed:
            _write(trial.error, "Traceback ...\nRuntimeError: diverged\n")
        quality = rng.normal(1.5, 0.2)
        for f in range(FOLDS if not failed else FOLDS // 2):
            for s in SEEDS:
                key = unit_key(f"wf_{f + 1}", s)
                values = rng.normal(quality, 0.1, size=2 * len(METRICS))
                metrics = {f"{split}_{m}": float(v) for (split, m), v in zip(_names(), values)}
                record = {"fold": f"wf_{f + 1}", "seed": s, "unit": key, "metrics": metrics, "train_seconds": 1.0}
                os.makedirs(trial.unit(key).path)
                _write(trial.unit(key).record, json.dumps(record))
    return root


def _names() -> list[tuple[str, str]]:
    return [(split, m) for split in ("val", "test") for m in METRICS]


def time_best(root: str, *extra: str) -> float:
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, str(ROOT / "analysis" / "best.py"), "--results", root, "--top-k", "5", *extra],
        check=True,
        stdout=subprocess.DEVNULL,
        cwd=ROOT,
    )
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", default="100,1000,10000", help="comma list of trial counts")
    p.add_argument("--repeats", type=int, default=3, help="warm timings per size (median reported)")
    args = p.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    warm_at = {}
    work = tempfile.mkdtemp(prefix="best_scaling_")
    try:
        for n in sizes:
            root = os.path.join(work, str(n))
            t0 = time.perf_counter()
            build_store(root, n)
            built = time.perf_counter() - t0
            cold = time_best(root, "--refresh")
            warm = statistics.median(time_best(root) for _ in range(args.repeats))
            warm_at[n] = warm
            print(
                f"trials={n:>6} units={n * FOLDS * len(SEEDS):>7}  build_s={built:6.1f}  cold_s={cold:6.2f}  warm_s={warm:5.2f}"
            )
            shutil.rmtree(root)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if 10000 in warm_at:
        print(f"seconds_10k={warm_at[10000]:.2f}")
    else:
        print(f"seconds_10k=nan  (10000 not in --sizes; largest: {max(warm_at)} trials, {warm_at[max(warm_at)]:.2f} s)")


if __name__ == "__main__":
    main()
