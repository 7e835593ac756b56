"""The same TFT tuning job, as whole processes: ours vs pytorch-forecasting vs neuralforecast.

Measures the wall-clock seconds, start to exit, of (a) `sweeps/tft.py`, (b) pytorch-forecasting's
own `optimize_hyperparameters`, (c) neuralforecast's `AutoTFT` (only with the `bench` extra,
`pip install -e ".[bench]"`; skipped otherwise), each a fresh process with RAY_ADDRESS=local and
RAY_USAGE_STATS_ENABLED=0 (no run joins a stale Ray) in a temp dir of its own, the order
alternating (A B C, C B A, ...) so a machine drifting over minutes weighs on every tool.

The job: the embedded S&P 500 daily close (no other feature), horizon 1, encoder 60, batch 64, one
train/val split = ours' single walk-forward fold (`--folds 1 --seeds 1 --features NONE`, val and
test 250 rows; the peers train on exactly its train rows and validate on its val rows), N
configurations × S optimizer steps (epochs of 30 batches, validated every 30 steps), 7-quantile
loss, no early stopping, hidden size in 8..64, learning rate in 1e-4..3e-2. Sizes: small = 4 × 60
(medians of 3 rounds), realistic = 8 × 300 (1 round); `--tiny` = 2 × 10, a smoke test only. Ways:
  same-work   no pruning anywhere and the same fixed configurations: ours `--mode priority --configs`
              (FIFO); ptf has ranges only, so its Optuna study (NopPruner) gets the configurations
              as enqueued trials; nf (FIFO, it never prunes by default) as points_to_evaluate;
  as-shipped  each tool's own search and pruning, every tool at encoder 60: ours `--mode optuna
              --scheduler asha --context 60` (its OPTUNA space but the encoder), ptf's TPE +
              SuccessiveHalvingPruner, nf's random search (no pruner). Each tool's search is seeded
              with the round's number (ours `--seed r`, ptf `TPESampler(seed=r)`, nf
              `BasicVariantGenerator(random_state=r)`): every round draws other configurations
              in every tool, the same ones in a rerun, so the medians are over draws, not one draw.
Parallelism is each tool's default on the 2 cores: ours 2 trials at once, 1 CPU (torch thread)
each; ptf one trial at a time in one process (torch's default 2 threads); nf one Ray trial at a
time with every CPU. Beyond training each does its own: ours forecasts val and test from every
origin, stores each unit, writes its report; ptf checkpoints and logs every trial; nf refits the
best configuration once after the search (its time is printed). ptf runs without its learning-rate
finder (an extra 100 steps a trial that replaces the learning-rate search).

Targets (2 cores), ours ÷ peer wall: small ≤ 0.9 against both; realistic same-work ≤ 0.6 vs ptf
and ≤ 0.8 vs nf; realistic as-shipped ≤ 0.8 vs both. The last lines are
`size=… way=… ratio_ptf=… ratio_nf=…` (n/a for a tool skipped or failed).

    python bench/vs_peers.py [--size small|realistic|both] [--way same-work|as-shipped|both]
                             [--rounds N] [--tools ours,ptf,nf] [--tiny] [--keep]
"""

from __future__ import annotations

import argparse
import glob
import importlib.util
import json
import os
import re
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
TOOL_NAMES = ("ours", "ptf", "nf")
BATCHES = 30  # training batches an epoch (ours' limit_train_batches): a validation every 30 steps
ENCODER = 60
SPLIT_ROWS = 250  # ours' --val-size and --test-size: a trading year each
QUANTILES = [0.02, 0.1, 0.25, 0.5, 0.75, 0.9, 0.98]  # pytorch-forecasting's QuantileLoss, ours' loss
# The fixed configurations of same-work: the first N (learning rate, hidden size) pairs.
POINTS = [(1e-3, 16), (3e-3, 32), (3e-4, 16), (1e-2, 8), (1e-3, 64), (3e-3, 8), (3e-4, 32), (1e-2, 16)]


def configurations(n: int) -> list[dict]:
    """The first `n` same-work configurations, in ours' (and ptf's) hyperparameter names."""
    return [
        {"learning_rate": lr, "hidden_size": h, "attention_head_size": 2, "dropout": 0.1, "hidden_continuous_size": 8}
        for lr, h in POINTS[:n]
    ]


def split() -> dict:
    """Rows (positions in the embedded SPX frame) of ours' single fold: train [start, stop), val [stop, val_stop)."""
    from trainables.data import load_prices
    from trainables.folds import generate, windows

    frame = load_prices(None, "SPX")
    fold = generate(frame["timestamp"], 1, SPLIT_ROWS, SPLIT_ROWS)[0]
    train, val, _ = windows(fold, frame["timestamp"])
    return {"train_start": train.start, "train_stop": train.stop, "val_stop": val.stop}


def epochs_and_batches(steps: int) -> tuple[int, int]:
    """(max_epochs, limit_train_batches) giving `steps` optimizer steps (ours and ptf)."""
    return (steps // BATCHES, BATCHES) if steps >= BATCHES else (1, steps)


# ------------------------------------------------------------------------------------ the tools


def ours(job: dict, tmp: str) -> list[str]:
    """sweeps/tft.py's command line for the job."""
    epochs, batches = epochs_and_batches(job["steps"])
    training = {"max_encoder_length": ENCODER, "max_prediction_length": 1, "batch_size": 64, "max_epochs": epochs,
                "limit_train_batches": batches, "early_stopping_patience": 99}  # fmt: skip
    sweep = _write(tmp, "sweep.json", {"training_config": training})
    args = [sys.executable, str(ROOT / "sweeps" / "tft.py"), "--config", sweep, "--folds", "1", "--seeds", "1"]
    args += ["--features", "NONE", "--val-size", str(SPLIT_ROWS), "--test-size", str(SPLIT_ROWS)]
    args += ["--storage", os.path.join(tmp, "results"), "--name", "bench", "--gpus-per-trial", "0"]
    if job["way"] == "same-work":
        return [*args, "--mode", "priority", "--configs", _write(tmp, "configs.json", job["points"])]
    return [*args, "--mode", "optuna", "--num-samples", str(job["configs"]), "--scheduler", "asha",
            "--context", str(ENCODER), "--seed", str(job["seed"])]  # fmt: skip


PTF = """
import json, sys
import optuna
from pytorch_forecasting import TimeSeriesDataSet
from pytorch_forecasting.data import EncoderNormalizer
from pytorch_forecasting.models.temporal_fusion_transformer.tuning import optimize_hyperparameters
sys.path.insert(0, {root!r})
from trainables.data import load_prices

job = json.load(open(sys.argv[1]))
s = job["split"]
frame = load_prices(None, "SPX")[["close"]]
frame["time_idx"], frame["series"] = range(len(frame)), "0"
train_ds = TimeSeriesDataSet(  # as trainables/tft.py builds ours (features NONE)
    frame.iloc[s["train_start"] : s["train_stop"]], time_idx="time_idx", target="close", group_ids=["series"],
    max_encoder_length={encoder}, min_encoder_length={encoder}, max_prediction_length=1, min_prediction_length=1,
    time_varying_known_reals=["time_idx"], time_varying_unknown_reals=["close"],
    target_normalizer=EncoderNormalizer(), add_relative_time_idx=True,
)
val_ds = TimeSeriesDataSet.from_dataset(
    train_ds, frame.iloc[: s["val_stop"]], min_prediction_idx=s["train_stop"], stop_randomization=True
)
# as-shipped: the study the tuner makes itself (TPE, SuccessiveHalvingPruner), its TPE seeded
study = optuna.create_study(
    direction="minimize", pruner=optuna.pruners.SuccessiveHalvingPruner(),
    sampler=optuna.samplers.TPESampler(seed=job["seed"]),
)
if job["way"] == "same-work":
    # The tuner ignores its `pruner` argument when handed a study: the study carries NopPruner.
    study = optuna.create_study(direction="minimize", pruner=optuna.pruners.NopPruner())
    for c in job["points"]:
        study.enqueue_trial({{**c, "gradient_clip_val": 0.1}})
study = optimize_hyperparameters(
    train_ds.to_dataloader(train=True, batch_size=64, num_workers=0),
    val_ds.to_dataloader(train=False, batch_size=256, num_workers=0),
    model_path=job["tmp"] + "/ptf", n_trials=job["configs"], max_epochs=job["epochs"],
    gradient_clip_val_range=(0.01, 1.0), hidden_size_range=(8, 64), hidden_continuous_size_range=(4, 16),
    attention_head_size_range=(1, 4), dropout_range=(0.0, 0.4), learning_rate_range=(1e-4, 3e-2),
    use_learning_rate_finder=False, study=study, log_dir=job["tmp"] + "/ptf_logs",
    trainer_kwargs=dict(limit_train_batches=job["batches"], enable_progress_bar=False, accelerator="cpu"),
)
states = [t.state.name for t in study.trials]
print("BENCH configs=%d" % sum(s in ("COMPLETE", "PRUNED") for s in states), states, flush=True)
"""

NF = """
import json, sys, time
import pandas as pd
from ray import tune
from ray.tune.search.basic_variant import BasicVariantGenerator
from neuralforecast import NeuralForecast
from neuralforecast.auto import AutoTFT, RayOptions
from neuralforecast.losses.pytorch import MQLoss
sys.path.insert(0, {root!r})
from trainables.data import load_prices

job = json.load(open(sys.argv[1]))
s = job["split"]
close = load_prices(None, "SPX")["close"].to_numpy()[s["train_start"] : s["val_stop"]]
df = pd.DataFrame({{"unique_id": "SPX", "ds": range(len(close)), "y": close}})
config = {{
    "input_size": {encoder}, "max_steps": job["steps"], "val_check_steps": min({batches}, job["steps"]),
    "batch_size": 64, "windows_batch_size": 64, "early_stop_patience_steps": -1, "accelerator": "cpu",
    "hidden_size": tune.choice([8, 16, 32, 64]), "learning_rate": tune.loguniform(1e-4, 3e-2),
    "enable_progress_bar": False, "enable_model_summary": False,
}}
# as-shipped: AutoTFT's default search, BasicVariantGenerator (its default random_state is 1)
kwargs = {{"search_alg": BasicVariantGenerator(random_state=job["seed"])}}
if job["way"] == "same-work":
    config.update(dropout=0.1, n_head=2)
    points = [{{"learning_rate": c["learning_rate"], "hidden_size": c["hidden_size"]}} for c in job["points"]]
    kwargs["search_alg"] = BasicVariantGenerator(points_to_evaluate=points)
else:
    config.update(dropout=tune.uniform(0.0, 0.4), n_head=tune.choice([1, 2, 4]))

# Only the refit of the best configuration runs `_fit_model` in this process (the trials run in
# Ray workers, which import the class unpatched): time it, changing nothing else.
fit_model = AutoTFT._fit_model
def timed(self, *args, **kw):
    t0 = time.perf_counter()
    out = fit_model(self, *args, **kw)
    print("BENCH refit_s=%.1f" % (time.perf_counter() - t0), flush=True)
    return out
AutoTFT._fit_model = timed

run_config = tune.RunConfig(storage_path=job["tmp"] + "/ray_results", verbose=0)  # not ~/ray_results
model = AutoTFT(h=1, loss=MQLoss(quantiles={quantiles}), config=config, num_samples=job["configs"],
                ray_options=RayOptions(run_config=run_config, gpus=0), backend="ray", **kwargs)
nf = NeuralForecast(models=[model], freq=1)
nf.fit(df, val_size=s["val_stop"] - s["train_stop"])
results = nf.models[0].results
print("BENCH configs=%d" % (len(results) - results.num_errors), flush=True)
"""


def peer(code: str, job: dict, tmp: str) -> list[str]:
    """A peer's command: its script and the job, written to its temp dir."""
    script = code.format(root=str(ROOT), encoder=ENCODER, batches=BATCHES, quantiles=QUANTILES)
    epochs, batches = epochs_and_batches(job["steps"])
    spec = _write(tmp, "job.json", {**job, "tmp": tmp, "epochs": epochs, "batches": batches})
    return [sys.executable, _write(tmp, "peer.py", script), spec]


TOOLS = {"ours": ours, "ptf": lambda job, tmp: peer(PTF, job, tmp), "nf": lambda job, tmp: peer(NF, job, tmp)}


def _write(tmp: str, name: str, content: str | dict | list) -> str:
    path = os.path.join(tmp, name)
    with open(path, "w") as f:
        f.write(content if isinstance(content, str) else json.dumps(content))
    return path


def _configs_run(tool: str, tmp: str, text: str) -> int:
    """How many configurations the run trained (pruned ones included), from its results or log."""
    if tool == "ours":
        return sum(os.path.getsize(p) > 0 for p in glob.glob(f"{tmp}/results/bench/trial_*/result.json"))
    found = re.findall(r"^BENCH configs=(\d+)", text, re.M)
    return int(found[-1]) if found else 0


def run(tool: str, job: dict, keep: bool) -> tuple[float | None, str]:
    """(wall seconds of one whole process or None when it failed, a note); a failure prints its log's end."""
    tmp = tempfile.mkdtemp(prefix=f"peers_{tool}_")
    env = {**os.environ, "RAY_ADDRESS": "local", "RAY_USAGE_STATS_ENABLED": "0", "PYTHONWARNINGS": "ignore"}
    log = os.path.join(tmp, "log.txt")
    try:
        cmd = TOOLS[tool](job, tmp)
        # A file, never a pipe: Ray's child processes hold a pipe open past the exit (~20 s).
        with open(log, "w") as out:
            start = time.perf_counter()
            code = subprocess.call(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp)
            wall = time.perf_counter() - start
        text = Path(log).read_text(errors="replace")
        done = _configs_run(tool, tmp, text)
        refit = re.findall(r"^BENCH refit_s=([\d.]+)", text, re.M)
        note = (f" (refit of the best {refit[-1]}s)" if refit else "") + (f" [{tmp}]" if keep else "")
        if code == 0 and done == job["configs"]:
            return wall, note
        why = f"exited {code}" if code else f"trained {done} of {job['configs']} configurations"
        print(f"  {tool} {why}; the end of its log:\n    " + "\n    ".join(text.splitlines()[-15:]), flush=True)
        return None, note
    finally:
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)


# ------------------------------------------------------------------------------------ the bench


def _median(values: list) -> float | None:
    ok = [v for v in values if v is not None]
    return statistics.median(ok) if ok else None


def measure(sizes: list[str], ways: list[str], tools: list[str], rounds: int | None, keep: bool) -> dict:
    """{(size, way, tool): [wall or None per round]}, printing each run as it ends."""
    fold, walls = split(), {}
    for size in sizes:
        n, steps, default_rounds = SIZES[size]
        for way in ways:
            job = {"configs": n, "steps": steps, "way": way, "split": fold, "points": configurations(n)}
            for r in range(rounds or default_rounds):
                job["seed"] = r  # as-shipped: each round's searches draw other configurations
                for tool in tools if r % 2 == 0 else tools[::-1]:  # A B C, then C B A
                    wall, note = run(tool, job, keep)
                    walls.setdefault((size, way, tool), []).append(wall)
                    shown = "failed" if wall is None else f"{wall:.1f}s"
                    print(f"{size} {way} {tool} round {r + 1} wall={shown}{note}", flush=True)
    return walls


def report(walls: dict, sizes: list[str], ways: list[str]) -> None:
    """Medians per size and way, then (last) one ratio line per size and way."""
    print()
    for size in sizes:
        for way in ways:
            parts = []
            for tool in TOOL_NAMES:
                values = walls.get((size, way, tool))
                if values:
                    med = _median(values)
                    ok = sum(v is not None for v in values)
                    parts.append(f"{tool} {med:.1f}s ({ok} of {len(values)})" if med is not None else f"{tool} failed")
            print(f"{size} {way} medians: " + ", ".join(parts))
    for size in sizes:
        for way in ways:
            med = {t: _median(walls.get((size, way, t), [])) for t in TOOL_NAMES}
            ratio = {t: f"{med['ours'] / med[t]:.2f}" if med["ours"] and med[t] else "n/a" for t in ("ptf", "nf")}
            print(f"size={size} way={way} ratio_ptf={ratio['ptf']} ratio_nf={ratio['nf']}")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", choices=["small", "realistic", "both"], default="both")
    p.add_argument("--way", choices=["same-work", "as-shipped", "both"], default="both")
    p.add_argument("--rounds", type=int, help="rounds per size and way (default: small 3, realistic 1)")
    p.add_argument("--tools", default="ours,ptf,nf", help="comma-separated subset of ours,ptf,nf, in this order")
    p.add_argument("--tiny", action="store_true", help="2 configurations × 10 steps: a smoke test only")
    p.add_argument("--keep", action="store_true", help="keep each run's temp dir (log, results)")
    args = p.parse_args()
    tools = [t for t in args.tools.split(",") if t]
    unknown = sorted(set(tools) - set(TOOL_NAMES))
    if unknown:
        p.error(f"--tools: unknown {', '.join(unknown)} (choose from {', '.join(TOOL_NAMES)})")
    if "nf" in tools and importlib.util.find_spec("neuralforecast") is None:
        print('neuralforecast is not installed: nf skipped (install it with pip install -e ".[bench]")')
        tools.remove("nf")
    sizes = ["tiny"] if args.tiny else ["small", "realistic"] if args.size == "both" else [args.size]
    ways = ["same-work", "as-shipped"] if args.way == "both" else [args.way]
    print(
        f"TFT tuning job on {os.cpu_count()} CPUs; tools {','.join(tools)}; sizes {','.join(sizes)}; ways {','.join(ways)}"
    )
    report(measure(sizes, ways, tools, args.rounds, args.keep), sizes, ways)


if __name__ == "__main__":
    main()
