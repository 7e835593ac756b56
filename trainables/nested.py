"""The Tune trainable: one trial = one configuration, run over every (fold, seed) unit, and in a
universe over every (asset, fold, seed) unit.

Each unit stores its files (predictions, model, record.json last) under `<trial>/units/`.
After each fold the trial reports the running aggregate and a checkpoint holding its
progress. A restored trial skips every unit already stored, and a merged sweep's trial
also skips the units its configuration already has in earlier trials (`Plan.prior`). A
configuration whose forecasts do not depend on the seed (`Adapter.seed_free`) runs once per
fold; that unit's files and metrics are recorded for every seed, marked `shared_from`.

Units run in the trial's own process also report each validation of their fit (`_Live`): the
progress display shows them, and ASHA can stop a hopeless configuration after the first
validations of its first unit instead of after a whole fold.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import ray
from ray import tune

from trainables import covariates as cov
from trainables import layout, registry, store
from trainables.adapter import UnitData
from trainables.folds import Fold, windows
from trainables.ids import config_id, unit_id, unit_key
from trainables.metrics import mode_of
from trainables.unit import Scoring, run_global_unit, run_unit

# ASHA's clock and value (sweeps.driver). The clock grows across a trial's units: the first unit's
# optimizer steps, then `fold_time` at each fold's end. Every rung compares one kind of value: the
# first unit's val loss at the same step (same fold, same seed for every configuration), or the
# robust score after the same folds.
ASHA_TIME = "asha_time"
ASHA_SCORE = "asha_score"


@dataclass(frozen=True)
class Plan:
    """What every trial of one sweep shares (sent once through the object store)."""

    model: str
    entry: registry.ModelEntry  # carried, not looked up: workers see models registered by the driver only
    folds: tuple[Fold, ...]
    seeds: tuple[int, ...]
    features: tuple[str, ...]
    assets: tuple[str, ...] = ()  # a universe's assets; () for one asset
    covariates: tuple[cov.Covariate, ...] = ()  # declared; each configuration reads its set
    fit: str = "per-asset"  # a universe: a model per (asset, fold, seed), or "global": per (fold, seed)
    metric: str = "val_pct_mae"
    early_stop_on: str = "val"  # trainables.unit.EARLY_STOP_ON
    scoring: Scoring = Scoring()  # origin stride, point only or with the distribution
    parallel_units: int = 1
    # The most optimizer steps a unit of any configuration trains (ASHA's clock for one fold);
    # 0 when units report no validations (or run as Ray tasks): the clock then counts folds.
    unit_steps: int = 0
    cpus_per_unit: float = 1.0
    gpus_per_unit: float = 0.0
    experiment_path: str = ""  # <storage>/<name>: local path or URI
    # Units a merged sweep already holds for a configuration (by config_id), in other trials.
    prior: dict[str, list[dict]] = field(default_factory=dict)


def fold_time(plan: Plan, index: int) -> float:
    """ASHA's clock at the end of fold `index` (0-based)."""
    return float(max(plan.unit_steps, 1) * (index + 1))


def max_time(plan: Plan) -> float:
    """ASHA's max_t: past the last fold's end, so ASHA's own stop at max_t never cuts a trial short."""
    return fold_time(plan, len(plan.folds) - 1) + 1


class _Live:
    """tune.report (without a checkpoint) at each validation of the units the trial runs itself.

    The configuration's first unit moves ASHA's clock to its step with its val loss; when it ends,
    the clock jumps to the first fold's end with its last val loss, so a unit that stopped early is
    compared with what it ended at. Later units' reports leave the clock where it is: progress
    only, ASHA decides nothing on them.
    """

    def __init__(self, plan: Plan, first: str | None, steps: int) -> None:
        self.plan, self.first, self.steps = plan, first, steps  # steps: this configuration's planned
        self.time, self.score, self.robust, self.step = 0.0, math.nan, math.inf, 0

    def hook(self, key: str) -> Callable[[int, float], None] | None:
        if self.plan.unit_steps <= 0:
            return None

        def on_validation(step: int, loss: float) -> None:
            if key == self.first:
                self.time, self.score, self.step = float(min(step, self.plan.unit_steps)), loss, step
            self.report(key, step, loss)

        return on_validation

    def unit_done(self, key: str) -> None:
        if key == self.first and self.plan.unit_steps > 0:
            self.time = fold_time(self.plan, 0)
            self.report(key, self.step, self.score)

    def fold_done(self, index: int, robust: float) -> dict[str, float]:
        """ASHA's fields for the fold report (the first fold's robust score is not on the val-loss rungs)."""
        self.time, self.robust = fold_time(self.plan, index), robust
        self.score = math.nan if index == 0 and self.plan.unit_steps > 0 else robust
        return {ASHA_TIME: self.time, ASHA_SCORE: self.score}

    def report(self, key: str, step: int, loss: float) -> None:
        tune.report(
            {
                "intermediate": 1,  # not a fold result: analysis, logs and the searcher's best skip it
                "unit": key,
                "unit_step": int(step),
                "unit_steps": self.steps,
                "unit_val_loss": float(loss),
                "robust_score": self.robust,  # Tune requires its metric in every result
                ASHA_TIME: self.time,
                ASHA_SCORE: self.score,
            }
        )


def aggregate(units: list[dict], metric: str) -> dict[str, float]:
    """Mean and std of every metric over `units`, and robust_score on `metric`.

    robust_score = mean + std for a metric to minimise, −(mean − std) for one to maximise,
    so lower is better either way; std is the population std (0 for one unit).
    """
    table = pd.DataFrame([u["metrics"] for u in units])
    out: dict[str, float] = {}
    for col in table.columns:
        values = table[col].to_numpy(dtype="float64")
        with warnings.catch_warnings():  # all NaN (no distribution: its metrics) is NaN, not a warning
            warnings.simplefilter("ignore", RuntimeWarning)
            out[col] = float(np.nanmean(values))
            out[f"{col}_std"] = float(np.nanstd(values))
    mean, std = out[metric], out[f"{metric}_std"]
    out["robust_score"] = mean + std if mode_of(metric) == "min" else -(mean - std)
    out["units_done"] = len(units)
    out["train_seconds_total"] = float(sum(u["train_seconds"] for u in units))
    return out


def _read_progress(checkpoint: tune.Checkpoint | None) -> list[dict]:
    # Read the file straight from the checkpoint's filesystem (maybe S3): no local copy needed.
    if checkpoint is None:
        return []
    with checkpoint.filesystem.open_input_stream(f"{checkpoint.path}/{layout.PROGRESS}") as f:
        return json.loads(f.read().decode())["units"]


def _device() -> str:
    import torch

    try:
        gpus = ray.get_gpu_ids()
    except Exception:  # outside a Ray worker
        gpus = []
    # Fake GPUs (ray.init(num_gpus=...)) on a CPU box must still train on the CPU.
    return "cuda" if gpus and torch.cuda.is_available() else "cpu"


def _prepare(entry: registry.ModelEntry, cpus: float) -> None:
    """This worker process's torch threads and its model's own set-up (repeats are no-ops)."""
    import torch

    torch.set_num_threads(max(1, int(cpus)))
    entry.adapter().prepare_worker()


def _unit_job(
    entry: registry.ModelEntry,
    config: dict,
    data: UnitData,
    seed: int,
    dests: list[str],
    log_dir: str | None,
    cpus: float,
    early_stop_on: str = "val",
    on_validation: Callable[[int, float], None] | None = None,
    scoring: Scoring = Scoring(),
) -> dict:
    """Run one unit and store its files at each of `dests` (several when seeds share it); runs in the
    trial process or as a Ray task on any node. The caller writes record.json after this returns,
    so a unit with a record is complete."""
    started = time.time()
    _prepare(entry, cpus)
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "unit")
        record = run_unit(
            entry.adapter(), config, data, seed, out, log_dir, _device(), early_stop_on, on_validation, scoring
        )
        for i, dest in enumerate(dests):
            store.put_dir(out, dest, keep=i < len(dests) - 1)
    return {**record, **_where(started)}


def _global_job(
    entry: registry.ModelEntry,
    config: dict,
    datas: dict[str, UnitData],
    seed: int,
    dests: dict[str, str],
    log_dir: str | None,
    cpus: float,
    early_stop_on: str = "val",
    on_validation: Callable[[int, float], None] | None = None,
    scoring: Scoring = Scoring(),
) -> dict[str, dict]:
    """One model on every asset of a fold (`--fit global`), each asset's files stored at its `dests`
    entry; the caller writes the records. Runs in the trial process or as a Ray task."""
    started = time.time()
    _prepare(entry, cpus)
    with tempfile.TemporaryDirectory() as tmp:
        outs = {a: os.path.join(tmp, a) for a in datas}
        records = run_global_unit(
            entry.adapter(), config, datas, seed, outs, log_dir, _device(), early_stop_on, on_validation, scoring
        )
        for asset, out in outs.items():
            store.put_dir(out, dests[asset])
    where = _where(started)
    return {a: {**r, **where} for a, r in records.items()}


def _where(started: float) -> dict:
    """Where and when a unit ran (node, process, GPUs Ray gave it, wall-clock start and end) and
    the process's peak memory so far, for its record."""
    return {
        "node_id": ray.get_runtime_context().get_node_id(),
        "pid": os.getpid(),
        "gpu_ids": [str(g) for g in ray.get_gpu_ids()],
        "started_at": started,
        "finished_at": time.time(),
        "peak_rss_mb": _peak_rss_mb(),
    }


def _peak_rss_mb() -> float:
    """Peak resident memory of this process so far (the trial's, or the unit task's)."""
    import resource
    import sys

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return round(peak / (2**20 if sys.platform == "darwin" else 2**10), 1)  # bytes on macOS, kB on Linux


def _trial_store(plan: Plan) -> str:
    return f"{plan.experiment_path.rstrip('/')}/{os.path.basename(tune.get_context().get_trial_dir())}"


def _log_dir(plan: Plan, key: str) -> str:
    if "://" not in plan.experiment_path:
        return layout.TrialDir(_trial_store(plan)).tensorboard(key)  # live: straight into the results
    # Remote storage: write in the trial's working dir; Tune syncs artifacts with checkpoints.
    return os.path.join(os.getcwd(), layout.TENSORBOARD, key)


def unit_data(config: dict, plan: Plan, frame: pd.DataFrame, fold: Fold, asset: str | None = None) -> UnitData:
    """What a unit of `config` reads of one asset in `fold`: its windows, features and covariate set."""
    past, known = cov.columns(config, plan.covariates)
    return UnitData(frame, plan.features, *windows(fold, frame["timestamp"]), asset=asset,
                    past_covariates=past, known_covariates=known)  # fmt: skip


def _run_fold(
    config: dict, plan: Plan, frames: dict, fold: Fold, todo: list[tuple[str | None, int]], live: _Live
) -> list[dict]:
    """Run the (asset, seed) units `todo` of one fold; each asset's windows are its own rows between the fold's dates."""
    trial = layout.TrialDir(_trial_store(plan))
    # Seed-free: the first seed's run stands for all of them (its files are small: a weight reference).
    seed_free = plan.entry.adapter().seed_free(config)
    jobs = []  # (asset, seed run, seeds it stands for, data)
    for asset in dict.fromkeys(a for a, _ in todo):
        frame = frames[asset]
        data = unit_data(config, plan, frame, fold)
        seeds = [s for a, s in todo if a == asset]
        groups = {seeds[0]: seeds} if seed_free and len(seeds) > 1 else {s: [s] for s in seeds}
        jobs += [(asset, seed, group, data) for seed, group in groups.items()]
    key = {(a, s): unit_key(fold.name, s, a) for a, s in todo}
    dests = [[trial.unit(key[a, s]).path for s in group] for a, _, group, _ in jobs]
    logs = [_log_dir(plan, key[a, s]) for a, s, _, _ in jobs]
    scoring = plan.scoring
    records: dict[int, list[dict]] = {}  # by job: reported in job order whatever order they end in

    def store_records(index: int, result: dict) -> None:
        """Write one finished run's records at once (each seed it stands for): a driver or trial
        killed later loses only the units still running."""
        asset, seed, group, _ = jobs[index]
        records[index] = []
        for s in group:
            record = {"fold": fold.name, "seed": s, "unit": key[asset, s], **result}
            if asset is not None:
                record["asset"] = asset
            if s != seed:
                record.update(shared_from=key[asset, seed], train_seconds=0.0)
            trial.unit(key[asset, s]).write_record(record)
            records[index].append(record)

    if plan.parallel_units > 1:
        task = ray.remote(_unit_job).options(num_cpus=plan.cpus_per_unit, num_gpus=plan.gpus_per_unit)
        refs = {id(d): ray.put(d) for _, _, _, d in jobs}  # one copy of each asset's data in the object store
        pending = {
            task.remote(
                plan.entry, config, refs[id(d)], s, ds, lg, plan.cpus_per_unit, plan.early_stop_on, None, scoring
            ): i
            for i, ((_, s, _, d), ds, lg) in enumerate(zip(jobs, dests, logs))
        }
        while pending:
            (ready,), _ = ray.wait(list(pending), num_returns=1)
            store_records(pending.pop(ready), ray.get(ready))
    else:
        for i, ((a, s, _, d), ds, lg) in enumerate(zip(jobs, dests, logs)):
            hook = live.hook(key[a, s])
            store_records(
                i, _unit_job(plan.entry, config, d, s, ds, lg, plan.cpus_per_unit, plan.early_stop_on, hook, scoring)
            )
            live.unit_done(key[a, s])
    return [r for i in sorted(records) for r in records[i]]


def _run_global_fold(config: dict, plan: Plan, frames: dict, fold: Fold, seeds: list[int], live: _Live) -> list[dict]:
    """Run the (fold, seed) global units of `seeds`: per seed one model on every asset, a record per asset."""
    trial = layout.TrialDir(_trial_store(plan))
    datas = {a: unit_data(config, plan, frames[a], fold, a) for a in plan.assets}
    key = {(a, s): unit_key(fold.name, s, a) for a in plan.assets for s in seeds}
    first = plan.assets[0]
    dests = {s: {a: trial.unit(key[a, s]).path for a in plan.assets} for s in seeds}
    logs = {s: _log_dir(plan, key[first, s]) for s in seeds}
    records: dict[int, list[dict]] = {}

    def store_records(s: int, by_asset: dict[str, dict]) -> None:
        """Write one seed's records (an asset each) as soon as its model is done."""
        records[s] = []
        for asset, result in by_asset.items():
            record = {"fold": fold.name, "seed": s, "unit": key[asset, s], "asset": asset, **result}
            record["model_in"] = key[result["model_in"], s]  # the unit directory holding the model
            trial.unit(key[asset, s]).write_record(record)
            records[s].append(record)

    if plan.parallel_units > 1:
        task = ray.remote(_global_job).options(num_cpus=plan.cpus_per_unit, num_gpus=plan.gpus_per_unit)
        ref = ray.put(datas)
        args = (plan.cpus_per_unit, plan.early_stop_on, None, plan.scoring)
        pending = {task.remote(plan.entry, config, ref, s, dests[s], logs[s], *args): s for s in seeds}
        while pending:
            (ready,), _ = ray.wait(list(pending), num_returns=1)
            store_records(pending.pop(ready), ray.get(ready))
    else:
        for s in seeds:
            hook = live.hook(key[first, s])
            args = (plan.cpus_per_unit, plan.early_stop_on, hook, plan.scoring)
            store_records(s, _global_job(plan.entry, config, datas, s, dests[s], logs[s], *args))
            live.unit_done(key[first, s])
    return [r for s in seeds for r in records[s]]


def finished_units(trial_store: str) -> list[dict]:
    """Records of the units of a trial that completed (their record.json exists)."""
    return layout.TrialDir(trial_store).finished_records()


def train(config: dict[str, Any], plan: Plan, frames: dict[str | None, pd.DataFrame]) -> None:
    """Tune function trainable; bind `plan` and `frames` (by asset; None for a one-asset sweep) with tune.with_parameters."""
    # Units already stored count as done even when Tune's own checkpoint lags behind them
    # (a driver killed between a unit's end and the next experiment snapshot).
    earlier = [*plan.prior.get(config_id(config), []), *_read_progress(tune.get_checkpoint())]
    by_key = {unit_id(u): u for u in [*earlier, *finished_units(_trial_store(plan))]}
    done = list(by_key.values())
    assets = plan.assets or (None,)
    first = (assets[0], plan.folds[0].name, plan.seeds[0])
    live = _Live(
        plan, None if first in by_key else unit_key(*first[1:], first[0]), plan.entry.adapter().planned_steps(config)
    )
    ran = False
    for index, fold in enumerate(plan.folds):
        todo = [(a, s) for a in assets for s in plan.seeds if (a, fold.name, s) not in by_key]
        if not todo:
            continue
        if plan.fit == "global":  # a seed missing any asset's unit retrains its one model on all of them
            seeds = list(dict.fromkeys(s for _, s in todo))
            done = [u for u in done if (u["fold"], u["seed"]) not in {(fold.name, s) for s in seeds}]
            done += _run_global_fold(config, plan, frames, fold, seeds, live)
        else:
            done += _run_fold(config, plan, frames, fold, todo, live)
        _report(done, plan, fold.name, index, live)
        ran = True
    if not ran and done:  # everything was already stored: still give Tune this trial's result
        _report(done, plan, plan.folds[-1].name, len(plan.folds) - 1, live)


def _report(done: list[dict], plan: Plan, fold: str, index: int, live: _Live) -> None:
    """tune.report the running aggregate with a checkpoint that lists the units done."""
    folds_done = len({u["fold"] for u in done})
    metrics = {**aggregate(done, plan.metric), "folds_done": folds_done, "fold": fold, "fold_index": index}
    metrics.update(live.fold_done(index, metrics["robust_score"]))
    with tempfile.TemporaryDirectory() as out:
        store.write_json(os.path.join(out, layout.PROGRESS), {"units": done})
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(out))
