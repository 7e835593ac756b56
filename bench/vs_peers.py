"""The same TFT tuning job, as whole processes: ours vs pytorch-forecasting vs neuralforecast.

(a) `sweeps/tft.py`, (b) pytorch-forecasting's own `optimize_hyperparameters`, (c) neuralforecast's
`AutoTFT` (only with the `bench` extra: `pip install -e ".[bench]"`), each in a fresh process
(RAY_ADDRESS=local, so no run joins another's Ray), alternating the order round by round.

The job: the S&P 500 daily close (the embedded series), one train/val split = ours with
`--folds 1 --seeds 1 --features NONE` (the peers train and validate on exactly that fold's rows),
horizon 1, encoder 60, batch 64, N configurations × S optimizer steps (30 batches an epoch,
validated every epoch / 30 steps), no early stopping. Sizes: small = 4 × 60 (medians of 3
rounds), realistic = 8 × 300 (1 round). Ways:
  same-work   pruning off everywhere (ptf: Optuna's NopPruner) and the same fixed configurations
              (ours `--mode priority --configs`, ptf enqueued Optuna trials, nf points_to_evaluate);
  as-shipped  each tool's own search and pruning: ours `--mode optuna --scheduler asha`, ptf's
              default pruner, nf's random search (it has no pruner) — same steps and encoder.
Parallelism is each tool's default on 2 cores: ours 2 trials at once on 1 thread each, ptf one
trial at a time (torch's 2 threads), nf one Ray trial at a time with both CPUs. What each tool
does beyond training is its own: ours forecasts val and test from every origin, stores each
unit and writes its report and plots; nf refits the best configuration once after the search.

Targets (2 cores): small ≤ 0.9 against both; realistic same-work ≤ 0.6 vs ptf and ≤ 0.8 vs nf;
realistic as-shipped ≤ 0.8 vs both. The last lines are `size=… way=… ratio_ptf=… ratio_nf=…`.

    python bench/vs_peers.py [--size small|realistic|both] [--way same-work|as-shipped|both]
                             [--rounds N] [--tools ours,ptf,nf] [--tiny] [--keep]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)

SIZES = {"small": (4, 60, 3), "realistic": (8, 300, 1), "tiny": (2, 10, 1)}  # configs, steps, rounds
BATCHES = 30  # training batches per epoch (ours' limit_train_batches)
ENCODER = 60
# The fixed configurations of same-work: the first N (learning rate, hidden size) pairs.
POINTS = [(1e-3, 16), (3e-3, 32), (3e-4, 16), (1e-2, 8), (1e-3, 64), (3e-3, 8), (3e-4, 32), (1e-2, 16)]


def configurations(n: int) -> list[dict]:
    return [
        {"learning_rate": lr, "hidden_size": h, "attention_head_size": 2, "dropout": 0.1, "hidden_continuous_size": 8}
        for lr, h in POINTS[:n]
    ]


def split() -> dict:
    """Rows (positions in the embedded SPX frame) of ours' single fold: train [0, a), val [a, b)."""
    from trainables.data import load_prices
    from trainables.folds import generate, windows

    frame = load_prices(None, "SPX")
    fold = generate(frame["timestamp"], 1, 250, 250, "expanding", None)[0]
    train, val, _ = windows(fold, frame["timestamp"])
    return {"train_start": train.start, "train_stop": train.stop, "val_stop": val.stop}


# ------------------------------------------------------------------------------------ the tools


def ours(job: dict, tmp: str) -> list[str]:
    epochs = job["steps"] // BATCHES if job["steps"] >= BATCHES else 1
    training = {"max_encoder_length": ENCODER, "max_prediction_length": 1, "batch_size": 64, "max_epochs": epochs,
                "limit_train_batches": min(BATCHES, job["steps"]), "early_stopping_patience": 99}  # fmt: skip
    with open(os.path.join(tmp, "sweep.json"), "w") as f:
        json.dump({"training_config": training}, f)
    args = [sys.executable, str(ROOT / "sweeps" / "tft.py"), "--config", os.path.join(tmp, "sweep.json")]
    args += ["--folds", "1", "--seeds", "1", "--features", "NONE", "--val-size", "250", "--test-size", "250"]
    args += ["--storage", os.path.join(tmp, "results"), "--name", "bench", "--gpus-per-trial", "0"]
    if job["way"] == "same-work":
        with open(os.path.join(tmp, "configs.json"), "w") as f:
            json.dump(configurations(job["configs"]), f)
        return [*args, "--mode", "priority", "--configs", os.path.join(tmp, "configs.json")]
    return [*args, "--mode", "optuna", "--num-samples", str(job["configs"]), "--scheduler", "asha"]


PTF = """
import json, sys
import lightning.pytorch as pl
import optuna
from pytorch_forecasting import TimeSeriesDataSet
from pytorch_forecasting.data import EncoderNormalizer
from pytorch_forecasting.models.temporal_fusion_transformer.tuning import optimize_hyperparameters
sys.path.insert(0, {root!r})
from trainables.data import load_prices

job = json.load(open(sys.argv[1]))
frame = load_prices(None, "SPX")[["close"]].reset_index(drop=True)
frame["time_idx"], frame["series"] = range(len(frame)), "0"
s = job["split"]
train = frame.iloc[s["train_start"] : s["train_stop"]]
train_ds = TimeSeriesDataSet(  # as trainables/tft.py builds it (features NONE)
    train, time_idx="time_idx", target="close", group_ids=["series"],
    max_encoder_length={encoder}, min_encoder_length={encoder}, max_prediction_length=1, min_prediction_length=1,
    time_varying_known_reals=["time_idx"], time_varying_unknown_reals=["close"],
    target_normalizer=EncoderNormalizer(), add_relative_time_idx=True,
)
val_ds = TimeSeriesDataSet.from_dataset(
    train_ds, frame.iloc[: s["val_stop"]], min_prediction_idx=s["train_stop"], stop_randomization=True
)
study = optuna.create_study(direction="minimize")
pruner = None
if job["way"] == "same-work":
    pruner = optuna.pruners.NopPruner()
    for c in job["points"]:
        study.enqueue_trial({{**c, "gradient_clip_val": 0.1}})
steps = job["steps"]
optimize_hyperparameters(
    train_ds.to_dataloader(train=True, batch_size=64, num_workers=0),
    val_ds.to_dataloader(train=False, batch_size=256, num_workers=0),
    model_path=job["tmp"] + "/ptf", n_trials=job["configs"], max_epochs=max(1, steps // {batches}),
    gradient_clip_val_range=(0.01, 1.0), hidden_size_range=(8, 64), hidden_continuous_size_range=(4, 16),
    attention_head_size_range=(1, 4), dropout_range=(0.0, 0.4), learning_rate_range=(1e-4, 3e-2),
    use_learning_rate_finder=False, study=study, pruner=pruner, log_dir=job["tmp"] + "/ptf_logs",
    trainer_kwargs=dict(limit_train_batches=min({batches}, steps), enable_progress_bar=False, accelerator="cpu"),
)
print("trials", len(study.trials), "best", study.best_value)
"""

NF = """
import json, sys
import pandas as pd
from ray import tune
from ray.tune.search.basic_variant import BasicVariantGenerator
from neuralforecast import NeuralForecast
from neuralforecast.auto import AutoTFT
sys.path.insert(0, {root!r})
from trainables.data import load_prices

job = json.load(open(sys.argv[1]))
s = job["split"]
close = load_prices(None, "SPX")["close"].to_numpy()[s["train_start"] : s["val_stop"]]
df = pd.DataFrame({{"unique_id": "SPX", "ds": range(len(close)), "y": close}})
config = {{
    "input_size": {encoder}, "max_steps": job["steps"], "val_check_steps": min({batches}, job["steps"]),
    "batch_size": 64, "windows_batch_size": 64, "scaler_type": "robust", "n_head": 2,
    "hidden_size": tune.choice([8, 16, 32, 64]), "learning_rate": tune.loguniform(1e-4, 3e-2),
    "early_stop_patience_steps": -1, "enable_progress_bar": False, "enable_model_summary": False,
}}
search = BasicVariantGenerator(random_state=1)
if job["way"] == "same-work":
    points = [{{"learning_rate": c["learning_rate"], "hidden_size": c["hidden_size"]}} for c in job["points"]]
    search = BasicVariantGenerator(points_to_evaluate=points)
model = AutoTFT(h=1, config=config, search_alg=search, num_samples=job["configs"], backend="ray")
NeuralForecast(models=[model], freq=1).fit(df, val_size=s["val_stop"] - s["train_stop"])
print("trials", job["configs"], "done")
"""


def peer(code: str, job: dict, tmp: str) -> list[str]:
    path = os.path.join(tmp, "peer.py")
    with open(path, "w") as f:
        f.write(code.format(root=str(ROOT), encoder=ENCODER, batches=BATCHES))
    with open(os.path.join(tmp, "job.json"), "w") as f:
        json.dump({**job, "tmp": tmp}, f)
    return [sys.executable, path, os.path.join(tmp, "job.json")]


TOOLS = {"ours": ours, "ptf": lambda job, tmp: peer(PTF, job, tmp), "nf": lambda job, tmp: peer(NF, job, tmp)}


def run(tool: str, job: dict, keep: bool) -> float | None:
    """Wall seconds of one whole process, or None when it failed (its log's end is printed)."""
    tmp = tempfile.mkdtemp(prefix=f"peers_{tool}_")
    env = {**os.environ, "RAY_ADDRESS": "local", "RAY_USAGE_STATS_ENABLED": "0", "PYTHONWARNINGS": "ignore"}
    log = os.path.join(tmp, "log.txt")
    try:
        # A file, not a pipe: Ray's child processes would hold a pipe open past the exit.
        with open(log, "w") as out:
            start = time.perf_counter()
            code = subprocess.call(TOOLS[tool](job, tmp), stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp)
            wall = time.perf_counter() - start
        if code != 0:
            print(f"  {tool} exited {code}; the end of {log}:\n" + "".join(open(log).readlines()[-8:]), flush=True)
            return None
        return wall
    finally:
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", choices=["small", "realistic", "both"], default="both")
    p.add_argument("--way", choices=["same-work", "as-shipped", "both"], default="both")
    p.add_argument("--rounds", type=int, help="rounds per size (default: small 3, realistic 1)")
    p.add_argument("--tools", default="ours,ptf,nf", help="comma-separated subset of ours,ptf,nf")
    p.add_argument("--tiny", action="store_true", help="2 configurations × 10 steps (a smoke test)")
    p.add_argument("--keep", action="store_true", help="keep each run's directory (logs, results)")
    args = p.parse_args()
    tools = [t for t in args.tools.split(",") if t]
    if "nf" in tools and importlib.util.find_spec("neuralforecast") is None:
        print('neuralforecast is not installed: nf skipped (pip install -e ".[bench]")')
        tools.remove("nf")
    sizes = ["tiny"] if args.tiny else ["small", "realistic"] if args.size == "both" else [args.size]
    ways = ["same-work", "as-shipped"] if args.way == "both" else [args.way]
    fold, walls = split(), {}
    for size in sizes:
        n, steps, rounds = SIZES[size]
        for way in ways:
            job = {"configs": n, "steps": steps, "way": way, "split": fold, "points": configurations(n)}
            for r in range(args.rounds or rounds):
                for tool in tools if r % 2 == 0 else tools[::-1]:  # A B C, then C B A
                    wall = run(tool, job, args.keep)
                    walls.setdefault((size, way, tool), []).append(wall)
                    shown = "failed" if wall is None else f"{wall:.1f}s"
                    print(f"{size} {way} {tool} round {r + 1} wall={shown}", flush=True)
    print()
    for (size, way, tool), values in walls.items():
        ok = [v for v in values if v is not None]
        print(
            f"{size} {way} {tool}: median {statistics.median(ok):.1f}s of {len(ok)}"
            if ok
            else f"{size} {way} {tool}: failed"
        )
    for size in sizes:
        for way in ways:
            med = {t: _median(walls.get((size, way, t), [])) for t in ("ours", "ptf", "nf")}
            ratio = {t: f"{med['ours'] / med[t]:.2f}" if med["ours"] and med[t] else "n/a" for t in ("ptf", "nf")}
            print(f"size={size} way={way} ratio_ptf={ratio['ptf']} ratio_nf={ratio['nf']}")


def _median(values: list) -> float | None:
    ok = [v for v in values if v is not None]
    return statistics.median(ok) if ok else None


if __name__ == "__main__":
    main()
