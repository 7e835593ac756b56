"""Does a sweep's cost grow linearly with its units? `sweeps/tft.py` at 8, 16 and 32 tiny units.

Each size is one whole process (Ray start-up, trials, report), 2 folds × 2 seeds × 2, 4 or 8
configurations of a tiny TFT. Prints, per size, the wall, seconds per unit and the driver's peak
resident memory (ru_maxrss of the `sweeps/tft.py` process: Ray's driver-side state grows with the
trial count, so it is measured, not assumed), alternating the order of the sizes between rounds.
The last line: `growth=<32-unit wall / (4 × 8-unit wall)>` (≤ 1: fixed costs amortise, no
super-linear growth) and `driver_mb_growth=<32-unit peak / 8-unit peak>`.

    python bench/scaling.py [--rounds 1] [--epochs 1]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile

from whole_sweep import timed_sweep

SIZES = (8, 16, 32)  # units: configurations × 2 folds × 2 seeds
LEARNING_RATES = [3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-4, 2e-3, 5e-3]


def run(units: int, epochs: int, tmp: str) -> tuple[float, float]:
    """(wall seconds, driver peak MB) of one sweep of `units` units."""
    configs = units // 4
    config = os.path.join(tmp, f"c{units}.json")
    with open(config, "w") as f:
        tiny = {"max_encoder_length": 20, "max_prediction_length": 2, "batch_size": 32, "max_epochs": epochs,
                "limit_train_batches": 3, "hidden_size": 8, "attention_head_size": 1, "hidden_continuous_size": 4}  # fmt: skip
        json.dump({"training_config": tiny, "param_ranges": {"learning_rate": LEARNING_RATES[:configs]}}, f)
    args = ["--config", config, "--mode", "grid", "--folds", "2", "--seeds", "2", "--gpus-per-trial", "0",
            "--window", "rolling", "--train-size", "200", "--val-size", "40", "--test-size", "40",
            "--storage", os.path.join(tmp, "r"), "--name", f"s{units}", "--overwrite"]  # fmt: skip
    return timed_sweep(args, os.path.join(tmp, f"s{units}.log"), f"{units}-unit")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=1, help="rounds; even rounds run the sizes in reverse order")
    p.add_argument("--epochs", type=int, default=1, help="epochs per unit (3 batches each)")
    a = p.parse_args()
    walls: dict[int, list[float]] = {n: [] for n in SIZES}
    peaks: dict[int, list[float]] = {n: [] for n in SIZES}
    with tempfile.TemporaryDirectory(prefix="scaling_") as tmp:
        for r in range(a.rounds):
            for n in SIZES if r % 2 == 0 else reversed(SIZES):
                wall, peak = run(n, a.epochs, tmp)
                walls[n].append(wall)
                peaks[n].append(peak)
                print(f"round {r + 1}  {n:>3} units  wall {wall:7.1f} s  {wall / n:6.2f} s/unit  driver peak {peak:6.0f} MB",
                      flush=True)  # fmt: skip
    wall = {n: statistics.median(v) for n, v in walls.items()}
    peak = {n: statistics.median(v) for n, v in peaks.items()}
    for n in SIZES:
        print(f"{n:>3} units: {wall[n] / n:.2f} s/unit, driver peak {peak[n]:.0f} MB (medians)")
    print(f"growth={wall[32] / (4 * wall[8]):.2f} driver_mb_growth={peak[32] / peak[8]:.2f}")


if __name__ == "__main__":
    main()
