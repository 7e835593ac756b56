"""Does Ray pay for itself? The same TFT units (a) through `sweeps/tft.py`, (b) in a plain loop.

Both walls are end to end: (a) includes Ray's start-up and the trial actors' imports, (b) the
imports of one process. Prints the time to the first reported result, peak memory per trial
process, each side's summed fit seconds, `floor=` (the ratio of a sweep with no cost beyond the
loop's but fitting two units at a time on one thread each) and, last,
`ratio=<sweep wall / sequential wall>` (target ≤ 0.6 on 2 cores, issue 13).

    python bench/overhead.py [--configs 4] [--folds 2] [--seeds 1] [--epochs 3] [--rounds 1]
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)

LEARNING_RATES = [3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-4, 2e-3, 5e-3]


def _sweep_file(tmp: str, configs: int, epochs: int) -> str:
    path = os.path.join(tmp, "bench.json")
    with open(path, "w") as f:
        json.dump(
            {
                "training_config": {"max_epochs": epochs, "limit_train_batches": 30, "early_stopping_patience": 99},
                "param_ranges": {"learning_rate": LEARNING_RATES[:configs]},
            },
            f,
        )
    return path


def sequential(config_file: str, folds: int, seeds: int) -> tuple[float, float]:
    """(wall, the units' summed fit seconds) of the units in a plain loop, in a fresh process
    (imports included)."""
    code = f"""
import sys, tempfile
sys.path.insert(0, {str(ROOT)!r})
from search_spaces import strategies
from sweeps.spec import read_config_file, DEFAULT_SEEDS
from trainables import registry
from trainables.adapter import UnitData
from trainables.data import load_prices
from trainables.features import add_features
from trainables.folds import generate, windows
from trainables.unit import run_unit
fields = read_config_file({config_file!r})
spaces = registry.get("tft").spaces()
base = {{**spaces.BASELINE, **fields["training_config"]}}
configs = strategies.grid(base, fields["param_ranges"])
frame, feats = add_features(load_prices(None, "SPX"), "BASELINE_FEATURES")
cls = registry.get("tft").adapter()
cls.prepare_worker()  # as every sweep worker does: the loop's units are the sweep's
fit = 0.0
for config in configs:
    for fold in generate(frame["timestamp"], {folds}, 126, 126):
        data = UnitData(frame, feats, *windows(fold, frame["timestamp"]))
        for seed in DEFAULT_SEEDS[:{seeds}]:
            with tempfile.TemporaryDirectory() as out:
                fit += run_unit(cls, config, data, seed, out, None)["train_seconds"]
print(fit)
"""
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    return time.perf_counter() - t0, float(out.split()[-1])


def swept(config_file: str, folds: int, seeds: int, storage: str) -> tuple[float, float, list[float], float]:
    """(wall, seconds to the first reported result, peak RSS in MB of each trial process, the
    units' summed fit seconds) of the sweep.

    Peak memory comes from the unit records (the trial process's own getrusage), so nothing
    polls processes while the sweep runs; only result.json files are checked, twice a second.
    """
    cmd = [sys.executable, str(ROOT / "sweeps" / "tft.py"), "--config", config_file, "--mode", "grid",
           "--folds", str(folds), "--seeds", str(seeds), "--storage", storage, "--name", "bench",
           "--gpus-per-trial", "0"]  # fmt: skip
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    first = None
    while proc.poll() is None:
        if first is None and any(os.path.getsize(p) for p in glob.glob(f"{storage}/bench/trial_*/result.json")):
            first = time.perf_counter() - t0
        time.sleep(0.5)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"sweep failed with exit code {proc.returncode}")
    peaks: dict[int, float] = {}
    fit = 0.0
    for path in glob.glob(f"{storage}/bench/trial_*/units/*/record.json"):
        record = json.loads(Path(path).read_text())
        peaks[record["pid"]] = max(peaks.get(record["pid"], 0.0), record["peak_rss_mb"])
        fit += record["train_seconds"]
    return wall, first if first is not None else float("nan"), sorted(peaks.values()), fit


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--configs", type=int, default=4)
    p.add_argument("--folds", type=int, default=2)
    p.add_argument("--seeds", type=int, default=1)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="repeat both measurements, alternating their order (A B, B A, …) so that a machine "
        "slowing down or speeding up over minutes weighs on both; the ratio is of the summed walls",
    )
    a = p.parse_args()
    units = a.configs * a.folds * a.seeds
    seqs, walls, peaks, seq_fits, sweep_fits = [], [], [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        config = _sweep_file(tmp, a.configs, a.epochs)
        print(f"{units} TFT units ({a.configs} configs × {a.folds} folds × {a.seeds} seeds), {os.cpu_count()} CPUs")
        for r in range(a.rounds):
            for what in ("seq", "sweep") if r % 2 == 0 else ("sweep", "seq"):
                if what == "seq":
                    wall, fit = sequential(config, a.folds, a.seeds)
                    seqs.append(wall)
                    seq_fits.append(fit)
                    print(f"sequential loop (no Ray, torch default threads): {wall:6.1f} s (units' fits {fit:.1f} s)")
                else:
                    wall, first, peak, fit = swept(config, a.folds, a.seeds, os.path.join(tmp, f"results{r}"))
                    walls.append(wall)
                    peaks.extend(peak)
                    sweep_fits.append(fit)
                    print(f"sweeps/tft.py (Ray Tune, 1 CPU per trial):     {wall:6.1f} s (units' fits {fit:.1f} s)")
                    print(f"time to first reported result:                  {first:6.1f} s")
        if peaks:
            print(f"peak RSS per trial process: max {max(peaks):.0f} MB over {len(peaks)} process(es)")
    # Where the time goes: the loop's fits on 2 threads against the sweep's on 1 thread each, 2 at a
    # time; `floor` is the ratio of a sweep that cost nothing beyond the loop's own (its imports
    # and evaluation) besides fitting its units two at a time.
    loop, sweep_fit, seq_fit = sum(seqs), sum(sweep_fits), sum(seq_fits)
    floor = (loop - seq_fit + sweep_fit / 2) / loop
    print(f"fit seconds per unit: loop {seq_fit / len(seqs) / units:.2f}, sweep {sweep_fit / len(walls) / units:.2f}")
    print(f"floor={floor:.3f} (no fixed cost beyond the loop's)")
    print(f"ratio={sum(walls) / loop:.3f}")


if __name__ == "__main__":
    main()
