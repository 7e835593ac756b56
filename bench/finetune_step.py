"""Seconds per fine-tuning step and peak memory of each foundation model on CPU (printed, not a test).

The tiny randomly initialised models, one fresh process each (the worker of `bench/gpu_check.py`,
which times the real-size models on a CUDA GPU at 1, 2 and 4 trials per GPU; `--real` runs it
after the CPU table).

    python bench/finetune_step.py [--steps 20] [--real]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)

from bench import gpu_check
from trainables import registry

# Each model's TINY random model (its search-space module) at a longer context and horizon.
LONGER = {"context_length": 128, "prediction_length": 16, "batch_size": 16}
ROWS = (1200, 150, 150)  # train, val, test rows at the end of the S&P 500 series (periodic val inside)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=20, help="fine-tuning steps per measurement")
    p.add_argument("--real", action="store_true", help="then run bench/gpu_check.py (needs a CUDA GPU)")
    a = p.parse_args()
    print(f"{'model':<10} {'size':<6} {'device':<7} {'s/step':>8} {'peak MB':>8}")
    for model in gpu_check.foundation_models():
        config = {**registry.get(model).spaces().TINY, **LONGER}
        spec = {"model": model, "config": config, "steps": a.steps, "device": "cpu", "rows": ROWS}
        (r,) = gpu_check.run_workers([spec])
        line = r.get("error") or f"{r['per_step']:8.3f} {r['peak_rss_mb']:8.0f}"
        print(f"{model:<10} {'tiny':<6} {'cpu':<7} {line}", flush=True)
    if a.real:
        sys.exit(gpu_check.main(["--steps", str(a.steps)]))


if __name__ == "__main__":
    main()
