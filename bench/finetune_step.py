"""Seconds per fine-tuning step and peak memory of each foundation model (printed, not a test).

CPU: the tiny randomly initialised models. With a CUDA GPU (`--real`), the released weights
(which must be in the local HF cache or given as directories) at 1, 0.5 and 0.25 GPU per trial,
reported as units per hour of the whole GPU.

    python bench/finetune_step.py [--steps 20] [--real]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)

STEP_KEY = {"toto": "max_steps", "chronos2": "num_steps", "kronos": "predictor_steps"}
TINY = {
    "toto": {"context_length": 128, "prediction_length": 16, "batch_size": 16, "warmup_steps": 1, "num_samples": 8},
    "chronos2": {"context_length": 128, "prediction_length": 16, "batch_size": 16},
    "kronos": {"context_length": 128, "prediction_length": 16, "batch_size": 16, "tokenizer_steps": 0,
               "num_samples": 2},
}  # fmt: skip

_CHILD = """
import json, resource, sys, tempfile
import numpy as np
sys.path.insert(0, {root!r})
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from trainables import registry
from trainables.adapter import UnitData, Window
from trainables.data import load_prices
from trainables.features import add_features
frame, feats = add_features(load_prices(None, "SPX"), "BASELINE_FEATURES")
n = len(frame)
data = UnitData(frame, feats, Window(n - 1500, n - 300), Window(n - 300, n - 150), Window(n - 150, n))
with tempfile.TemporaryDirectory() as logs:
    registry.get({model!r}).adapter()({config!r}, seed=0, device={device!r}).fit(data, logs)
    acc = EventAccumulator(logs, size_guidance={{"scalars": 0}})
    acc.Reload()
    # The per-step training-loss events carry wall times: their median gap is one step,
    # whatever set-up and periodic validation cost around them.
    tag = max((t for t in acc.Tags()["scalars"] if "train" in t and "loss" in t), key=lambda t: len(acc.Scalars(t)))
    per_step = float(np.median(np.diff([e.wall_time for e in acc.Scalars(tag)])))
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({{"per_step": per_step, "peak_mb": peak}}))
"""


def measure(model: str, config: dict, steps: int, device: str) -> dict:
    """Seconds per training step and peak RSS of one fit, in a fresh process."""
    code = _CHILD.format(root=str(ROOT), model=model, config={**config, STEP_KEY[model]: steps}, device=device)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode != 0:
        return {"error": out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"}
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=20, help="fine-tuning steps per measurement")
    p.add_argument("--real", action="store_true", help="also time the released models on the GPU")
    a = p.parse_args()
    print(f"{'model':<10} {'size':<6} {'device':<7} {'s/step':>8} {'peak MB':>8}")
    for model, config in TINY.items():
        r = measure(model, {**config, "init": "scratch", "size": "tiny"}, a.steps, "cpu")
        line = r.get("error") or f"{r['per_step']:8.3f} {r['peak_mb']:8.0f}"
        print(f"{model:<10} {'tiny':<6} {'cpu':<7} {line}")
    import torch

    if not torch.cuda.is_available():
        print("no CUDA GPU here: real-size runs at 1, 0.5 and 0.25 GPU per trial skipped (use --real on a GPU machine)")
        return
    if a.real:
        from concurrent.futures import ThreadPoolExecutor

        for model in TINY:
            steps_per_unit = registry_baseline(model)[STEP_KEY[model]]
            for share in (1.0, 0.5, 0.25):
                k = int(1 / share)  # k trials side by side on the one GPU, as Tune packs them
                config = {**TINY[model], "init": "pretrained"}
                with ThreadPoolExecutor(k) as pool:
                    runs = list(pool.map(lambda _, m=model, c=config: measure(m, c, a.steps, "cuda"), range(k)))
                errors = [r["error"] for r in runs if "error" in r]
                if errors:
                    print(f"{model:<10} real   {share:<4} GPU  {errors[0]}")
                    continue
                per_step = sum(r["per_step"] for r in runs) / k
                per_hour = k * 3600 / (per_step * steps_per_unit)
                print(
                    f"{model:<10} real   {share:<4} GPU {per_step:8.3f} s/step  {per_hour:7.1f} units/h "
                    f"({steps_per_unit} steps/unit)"
                )


def registry_baseline(model: str) -> dict:
    from trainables import registry

    return registry.get(model).spaces().BASELINE


if __name__ == "__main__":
    main()
