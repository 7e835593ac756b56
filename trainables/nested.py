"""The Tune trainable: one trial = one configuration, run over every (fold, seed) unit.

After each fold the trial reports the running aggregate and a checkpoint holding its
progress plus that fold's unit files (predictions + model). A restored trial reads the
progress and skips the units it already finished.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from ray import tune

from trainables import registry
from trainables.adapter import UnitData
from trainables.folds import Fold, windows
from trainables.metrics import mode_of
from trainables.unit import run_unit

PROGRESS = "progress.json"


@dataclass(frozen=True)
class Plan:
    """What every trial of one sweep shares (sent once through the object store)."""

    model: str
    folds: tuple[Fold, ...]
    seeds: tuple[int, ...]
    features: tuple[str, ...]
    metric: str = "val_pct_mae"
    parallel_units: int = 1
    cpus_per_unit: float = 1.0
    gpus_per_unit: float = 0.0
    live_log_root: str | None = None  # local experiment dir: TensorBoard files go straight there


def unit_key(fold: str, seed: int) -> str:
    return f"{fold}__seed{seed}"


def aggregate(units: list[dict], metric: str) -> dict[str, float]:
    """Mean and std of every metric over `units`, and robust_score on `metric`.

    robust_score = mean + std for a metric to minimise, −(mean − std) for one to maximise,
    so lower is better either way; std is the population std (0 for one unit).
    """
    table = pd.DataFrame([u["metrics"] for u in units])
    out: dict[str, float] = {}
    for col in table.columns:
        values = table[col].to_numpy(dtype="float64")
        out[col] = float(np.nanmean(values))
        out[f"{col}_std"] = float(np.nanstd(values))
    mean, std = out[metric], out[f"{metric}_std"]
    out["robust_score"] = mean + std if mode_of(metric) == "min" else -(mean - std)
    out["units_done"] = len(units)
    out["train_seconds_total"] = float(sum(u["train_seconds"] for u in units))
    return out


def _read_progress(checkpoint: tune.Checkpoint | None) -> list[dict]:
    # Read only progress.json: the checkpoint may also hold large model files, maybe on S3.
    if checkpoint is None:
        return []
    with checkpoint.filesystem.open_input_stream(f"{checkpoint.path}/{PROGRESS}") as f:
        return json.loads(f.read().decode())["units"]


def _device() -> str:
    import ray

    import torch

    try:
        gpus = ray.get_gpu_ids()
    except Exception:  # outside a Ray worker
        gpus = []
    # Fake GPUs (ray.init(num_gpus=...)) on a CPU box must still train on the CPU.
    return "cuda" if gpus and torch.cuda.is_available() else "cpu"


def _set_threads(cpus: float) -> None:
    import torch

    torch.set_num_threads(max(1, int(cpus)))


def _unit(model: str, config: dict, data: UnitData, seed: int, out_dir: str, log_dir: str | None, cpus: float) -> dict:
    _set_threads(cpus)
    return run_unit(registry.get(model).adapter(), config, data, seed, out_dir, log_dir, _device())


def _unit_remote(model: str, config: dict, data: UnitData, seed: int, log_dir: str | None, cpus: float):
    """A unit as a Ray task: files come back as bytes so the task may run on any node."""
    with tempfile.TemporaryDirectory() as out:
        record = _unit(model, config, data, seed, out, log_dir, cpus)
        files = {}
        for root, _, names in os.walk(out):
            for name in names:
                full = os.path.join(root, name)
                with open(full, "rb") as f:
                    files[os.path.relpath(full, out)] = f.read()
    return record, files


def _write_files(files: dict[str, bytes], out_dir: str) -> None:
    for rel, blob in files.items():
        path = os.path.join(out_dir, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(blob)


def _log_dir(plan: Plan, key: str) -> str | None:
    trial_dir = os.path.basename(tune.get_context().get_trial_dir())
    if plan.live_log_root:
        return os.path.join(plan.live_log_root, trial_dir, "tensorboard", key)
    # Remote storage: write in the trial's working dir; Tune syncs artifacts with checkpoints.
    return os.path.join(os.getcwd(), "tensorboard", key)


def _run_fold(config: dict, plan: Plan, frame: pd.DataFrame, fold: Fold, seeds: list[int], out: str) -> list[dict]:
    train, val, test = windows(fold, frame["timestamp"])
    data = UnitData(frame, plan.features, train, val, test)
    jobs = [(seed, unit_key(fold.name, seed)) for seed in seeds]
    if plan.parallel_units > 1:
        import ray

        task = ray.remote(_unit_remote).options(num_cpus=plan.cpus_per_unit, num_gpus=plan.gpus_per_unit)
        data_ref = ray.put(data)
        refs = [task.remote(plan.model, config, data_ref, s, _log_dir(plan, k), plan.cpus_per_unit) for s, k in jobs]
        results = []
        for (seed, key), (record, files) in zip(jobs, ray.get(refs)):
            _write_files(files, os.path.join(out, "units", key))
            results.append(record)
    else:
        results = [
            _unit(plan.model, config, data, s, os.path.join(out, "units", k), _log_dir(plan, k), plan.cpus_per_unit)
            for s, k in jobs
        ]
    return [{"fold": fold.name, "seed": s, **r} for (s, _), r in zip(jobs, results)]


def train(config: dict[str, Any], plan: Plan, frame: pd.DataFrame) -> None:
    """Tune function trainable; bind `plan` and `frame` with tune.with_parameters."""
    done = _read_progress(tune.get_checkpoint())
    finished = {(u["fold"], u["seed"]) for u in done}
    for index, fold in enumerate(plan.folds):
        seeds = [s for s in plan.seeds if (fold.name, s) not in finished]
        if not seeds:
            continue
        out = tempfile.mkdtemp(prefix="fold_")
        try:
            done += _run_fold(config, plan, frame, fold, seeds, out)
            with open(os.path.join(out, PROGRESS), "w") as f:
                json.dump({"units": done}, f, default=float)
            folds_done = len({u["fold"] for u in done})
            metrics = {**aggregate(done, plan.metric), "folds_done": folds_done, "fold": fold.name, "fold_index": index}
            tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(out))
        finally:
            shutil.rmtree(out, ignore_errors=True)
