"""Run a validated SweepSpec on Ray Tune: prepare (no Ray), then fit or restore, then summarise."""

from __future__ import annotations

import importlib.util
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import pandas as pd

from search_spaces import domains, strategies
from sweeps import capacity, caveats, imports, merge, provenance, resume
from sweeps.spec import SpecError, SweepSpec
from trainables import covariates as cov
from trainables import folds as fold_mod
from trainables import layout, registry, store, weights
from trainables.data import DataError, Reading, read_prices, read_universe
from trainables.features import add_features
from trainables.folds import Fold


@dataclass(frozen=True)
class Prepared:
    frames: dict[str | None, pd.DataFrame]  # by asset; one-asset sweeps: {None: frame}
    features: tuple[str, ...]
    folds: tuple[Fold, ...]
    unit_steps: int = 0  # trainables.nested.Plan.unit_steps
    assets: tuple[str, ...] = ()  # a universe's assets (those kept); () for a one-asset sweep
    dropped: dict[str, str] = field(default_factory=dict)  # --drop-short-assets: asset -> why
    readings: dict[str | None, Reading] = field(default_factory=dict)  # by asset (dropped ones too): how it was read
    # by asset: the first rows left out because a covariate had no value yet (trainables.covariates)
    trimmed: dict[str | None, int] = field(default_factory=dict)


def _listed(spec: SweepSpec, baseline: dict) -> list[dict]:
    """The configurations a non-Optuna sweep runs (its mode's list, `--max-runs` applied)."""
    entry = registry.get(spec.model)
    listed = strategies.configurations(
        spec.mode, entry.spaces(), baseline, spec.param_ranges, spec.points, spec.fixed(entry)
    )
    return listed[: spec.max_runs]


def _longest(spec: SweepSpec, key: str, baseline: dict) -> int:
    """The largest value `key` takes in this sweep's configurations (for checking fold lengths)."""
    entry = registry.get(spec.model)
    fixed = spec.fixed(entry)
    if key in fixed:
        return int(fixed[key])
    if spec.mode != "optuna":
        return int(max(c[key] for c in _listed(spec, baseline)))
    dom = entry.spaces().OPTUNA.get(key)
    if dom is None:
        return int(baseline[key])
    return int(max(baseline[key], domains.largest(dom)))


def _most_steps(spec: SweepSpec, base: dict) -> int:
    """The most optimizer steps a unit of this sweep's configurations trains (ASHA's clock per
    fold); 0 when units cannot report their validations (they run as Ray tasks)."""
    entry = registry.get(spec.model)
    # From the search-space module (the adapter's planned_steps reads it too): importing the
    # adapter would bring torch into the driver (~3 s before Ray even starts).
    steps = getattr(entry.spaces(), "planned_steps", None)
    if spec.parallel_units > 1 or steps is None:
        return 0
    if spec.mode != "optuna":
        return max((steps(c) for c in _listed(spec, base)), default=0)
    fixed = spec.fixed(entry)
    # Optuna: every searched number at its largest (an upper bound is all the clock needs).
    numeric = {k: v for k, v in entry.spaces().OPTUNA.items() if k not in fixed and domains.numeric(v)}
    numbers = {k: domains.largest(v) for k, v in numeric.items()}
    return max(steps({**base, **fixed}), steps({**base, **numbers, **fixed}))


def _check_storage(storage: str) -> None:
    if "://" in storage:
        try:
            store.filesystem(storage)
        except Exception as exc:  # pyarrow names the problem (scheme, bucket, credentials)
            raise SpecError(f"--storage {storage!r} is not usable: {str(exc).splitlines()[0]}") from None
    elif os.path.exists(storage) and not os.path.isdir(storage):
        raise SpecError(f"--storage {storage!r} is a file, not a directory")


def _check_address(address: str | None) -> None:
    """An explicit Ray address must answer now, or the sweep would hang waiting for it."""
    if address in (None, "auto", "local") or address.startswith("ray://"):
        return
    import socket

    host, _, port = address.rpartition(":")
    if not port.isdigit():
        raise SpecError(f"--address {address!r} must look like HOST:PORT")
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=3).close()
    except OSError:
        raise SpecError(
            f"--address {address!r}: no Ray cluster answers there (start one with `ray start --head`)"
        ) from None


def prepare(spec: SweepSpec) -> Prepared:
    """Load and check everything the sweep needs, before Ray starts; raise on bad input."""
    entry = registry.get(spec.model)
    _check_storage(spec.storage)
    _check_address(spec.address)
    if spec.fit == "global" and not entry.global_fit:
        models = ", ".join(name for name, e in registry.MODELS.items() if e.global_fit)
        raise SpecError(f"--fit global is not built for {spec.model} yet (only {models}): use --fit per-asset")
    if importlib.util.find_spec(entry.package) is None:
        raise SpecError(f"{spec.model}: package {entry.package!r} is not installed ({entry.install_hint})")
    if spec.covariates and entry.no_covariates:
        raise SpecError(f"{spec.model} takes no covariates: {entry.no_covariates} (drop --covariates)")
    frames, features, readings = _frames(spec)
    frames, trimmed = _with_covariates(spec, frames, readings)
    ts = fold_mod.calendar(frames) if spec.assets is not None else frames[None]["timestamp"]
    fp = spec.folds
    folds = fp.explicit or tuple(fold_mod.generate(ts, fp.n, fp.val_size, fp.test_size, fp.window, fp.train_size))
    base = spec.baseline(entry.spaces().BASELINE)
    context, horizon = _longest(spec, entry.context_key, base), _longest(spec, entry.horizon_key, base)
    fold_mod.check_dates(list(folds), ts)
    dropped = _check_rows(spec, frames, folds, context, horizon)
    frames = {a: f for a, f in frames.items() if a not in dropped}
    for frame in frames.values():
        _check_positive(spec, frame)
    _check_weights(base)
    _check_configs(spec, base)
    _check_target(spec, folds, tuple(a for a in frames if a is not None))
    # Last: bad input gets its one error line alone.
    caveats.fallbacks(readings)
    caveats.few_origins(folds, frames, context, horizon, spec.origin_stride)
    for line in cov.first_rows(frames, trimmed):
        print(f"note: {line}")
    assets = tuple(a for a in frames if a is not None)
    return Prepared(frames, features, folds, _most_steps(spec, base), assets, dropped, readings, trimmed)


def _frames(spec: SweepSpec) -> tuple[dict[str | None, pd.DataFrame], tuple[str, ...], dict[str | None, Reading]]:
    """Each asset's frame with its features (one-asset sweep: under None), the feature names, and
    how each was read."""
    extra = cov.data_columns(spec.declared)
    if spec.assets is None:
        prices, reading = read_prices(spec.data, spec.asset, spec.columns, extra)
        frame, features = add_features(prices, spec.features)
        return {None: frame}, features, {None: reading}
    out, features = {}, ()
    universe, readings = read_universe(spec.data, spec.assets, spec.columns, extra)
    for asset, prices in universe.items():
        out[asset], features = add_features(prices, spec.features)
    return out, features, dict(readings)


def _with_covariates(spec: SweepSpec, frames: dict, readings: dict) -> tuple[dict, dict[str | None, int]]:
    """Each frame with its covariate columns (trainables.covariates.attach_all), and the first rows
    that left out per asset."""
    if not spec.covariates:
        return frames, {}
    try:
        out = cov.attach_all(frames, spec.declared, spec.data, spec.columns, readings)
    except (cov.CovariateError, DataError) as exc:
        raise SpecError(str(exc)) from None
    return out, {a: len(frames[a]) - len(out[a]) for a in frames}


def _check_rows(spec: SweepSpec, frames: dict, folds: tuple[Fold, ...], context: int, horizon: int) -> dict[str, str]:
    """FoldError for a fold too short for an asset; with --drop-short-assets those assets are left
    out instead (returned with the reason), unless none would remain."""
    dropped = {}
    for asset, frame in frames.items():
        try:
            fold_mod.check_rows(list(folds), frame["timestamp"], context, horizon, asset)
        except fold_mod.ShortAsset as exc:
            if not spec.drop_short_assets:
                raise
            dropped[asset] = str(exc).split("; leave")[0]
            print(f"--drop-short-assets: left out {dropped[asset]}", file=sys.stderr)
    if dropped and len(dropped) == len(frames):
        raise SpecError("--drop-short-assets: every asset is too short for the folds (use fewer or shorter folds)")
    return dropped


def _check_positive(spec: SweepSpec, frame: pd.DataFrame) -> None:
    """A metric that divides by prices needs a target above zero everywhere."""
    from trainables.metrics import needs_positive

    bad = (frame["close"] <= 0).to_numpy()
    if bad.any() and needs_positive(spec.metric):
        first = pd.Timestamp(frame["timestamp"].iloc[int(bad.argmax())]).date()
        raise SpecError(
            f"target column {spec.columns.close!r} has {int(bad.sum())} value(s) ≤ 0 (first on {first}): "
            f"{spec.metric} divides by prices; select on --metric val_rel_mae or val_mae (pct metrics are then NaN)"
        )


def _check_weights(base: dict) -> None:
    # Offline without the weights: stop here with the hint, not in every trial.
    if base.get("init") == "pretrained":
        for key in ("pretrained", "tokenizer"):
            if key in base:
                weights.resolve(base[key])


def _check_configs(spec: SweepSpec, base: dict) -> None:
    """A configuration the model cannot run (its search-space module's `config_error`) stops the
    sweep here, not in every trial. Optuna: the fixed values (the space's own are valid)."""
    entry = registry.get(spec.model)
    error = getattr(entry.spaces(), "config_error", None)
    if error is None:
        return
    configs = [{**base, **spec.fixed(entry)}] if spec.mode == "optuna" else _listed(spec, base)
    for config in configs:
        problem = error(config)
        if problem:
            raise SpecError(f"{problem} (set by --context, training_config or the mode's configurations)")


def _check_target(spec: SweepSpec, folds: tuple[Fold, ...], assets: tuple[str, ...]) -> None:
    if spec.resume:
        meta = _stored_meta(spec)
        if meta is not None:  # restored trials must run the folds (and assets) their units were made on
            resume.check_folds(meta["folds"], folds)
            resume.check_assets(meta.get("assets") or [], assets)
        return
    if spec.merge:
        meta = _stored_meta(spec)
        if meta is None:
            raise SpecError(f"--merge: no sweep at {spec.sweep_dir!r} to merge into (run it once without --merge)")
        merge.check(meta, spec, folds, assets)
    elif store.exists(spec.sweep_dir) and not spec.overwrite:
        raise SpecError(
            f"sweep {spec.sweep_dir!r} already exists: use --resume, --merge, --overwrite or another --name"
        )


def _stored_meta(spec: SweepSpec) -> dict | None:
    return layout.SweepDir(spec.sweep_dir).maybe_read_meta()


def quiet_ray() -> None:
    """Without --verbose the sweep prints its own progress (sweeps.progress): no Tune tables, no
    worker logs, no Ray info lines; failures still reach the user, one line each, from the callback."""
    import logging
    import warnings

    # ASHA's rung at the first fold's end holds only NaN by design (trainables.nested's fold_done):
    # numpy's warning when Tune takes its percentile is noise.
    warnings.filterwarnings("ignore", message="All-NaN slice encountered", category=RuntimeWarning)
    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # the newer console output ignores verbose=0
    logging.getLogger("ray").setLevel(logging.ERROR)
    logging.getLogger("ray.tune").setLevel(logging.CRITICAL)


def init_ray(address: str | None, verbose: bool = True) -> bool:
    """Connect to `address` (or $RAY_ADDRESS, as `ray job submit` sets it), else start a local Ray.

    Returns False when Ray was already initialised by the caller (it stays theirs to stop).
    """
    import logging

    import ray

    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    # "local" always starts a new instance: never join a stale `ray start` cluster by accident.
    address = address or os.environ.get("RAY_ADDRESS") or "local"
    if address == "local":
        # Local workers must import this project wherever they start (a cluster ships it itself).
        # Through the environment the local Ray inherits, not a job runtime_env: Ray hands its
        # prestarted workers only to work without one (the unit tasks of --parallel-units).
        os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(provenance.ROOT), os.environ.get("PYTHONPATH")) if p)
        # No prestarted workers (one per CPU): Tune gives trial actors a runtime_env of their own,
        # so Ray starts new processes for them anyway, and the idle ones only take CPU from the
        # trials' start-up until Ray kills them (bench/vs_peers.py; unit tasks start theirs on demand).
        os.environ.setdefault("RAY_prestart_worker_first_driver", "0")
    try:
        ray.init(
            address=address,
            include_dashboard=False,
            log_to_driver=verbose,
            logging_level=logging.INFO if verbose else logging.ERROR,
        )
    except Exception as exc:  # refused token, version mismatch, cluster gone...
        raise SpecError(f"cannot connect to Ray at {address}: {str(exc).splitlines()[0]}") from None
    return True


def _resources(spec: SweepSpec, sizing):
    from ray import tune

    unit = {"CPU": spec.cpus_per_trial, "GPU": sizing.gpus_per_unit}
    if spec.parallel_units == 1:
        return tune.PlacementGroupFactory([unit])
    # The trial actor only orchestrates: a sliver of CPU; its unit tasks take the real bundles.
    return tune.PlacementGroupFactory([{"CPU": 0.01}] + [unit] * spec.parallel_units)


def _record(spec: SweepSpec, prepared: Prepared) -> None:
    meta = {
        "spec": spec.to_json(),
        "folds": [f.as_dict() for f in prepared.folds],
        **_universe(prepared),
        "started": datetime.now(UTC).isoformat(),
        **provenance.git_state(),
        "versions": provenance.versions(registry.get(spec.model).distributions),
        "notes": spec.notes,
    }
    layout.SweepDir(spec.sweep_dir).write_meta(meta)


def _universe(prepared: Prepared) -> dict:
    """sweep.json's record of a universe: the assets run and those left out (with why)."""
    if not prepared.assets:
        return {}
    return {"assets": list(prepared.assets), "dropped_assets": prepared.dropped}


def _trial_dirname(trial) -> str:
    return layout.trial_dirname(trial.trial_id)


def run(spec: SweepSpec, prepared: Prepared) -> int:
    """Fit (or restore) the Tune experiment, then print the ranking; returns the exit code. The
    sweep directory is this driver's alone meanwhile (sweeps.lock: a second driver is refused)."""
    from sweeps.lock import DriverLock

    with DriverLock(spec.sweep_dir) as lock:
        if lock.taken_over:
            who = lock.taken_over
            print(f"note: took over the lock of a driver that is gone (pid {who.get('pid')} on {who.get('host')})")
        return _run(spec, prepared, lock)


def _run(spec: SweepSpec, prepared: Prepared, lock) -> int:
    searcher = ("optuna", "ray.tune.search.optuna") if spec.mode == "optuna" else ()
    # ray.init mostly waits for Ray's processes to start: Tune and the trainable import meanwhile.
    importing = imports.in_background(("ray.tune", "trainables.nested", "sweeps.summary", *searcher), "tune-imports")
    import ray

    t0 = time.perf_counter()
    if not spec.verbose:
        quiet_ray()
    ours = init_ray(spec.address, spec.verbose)
    importing.join()
    from ray import tune

    from sweeps import summary
    from trainables.nested import Plan, train
    from trainables.unit import Scoring

    entry = registry.get(spec.model)
    # What the cluster can grow to (an autoscaler's node types), not only what is up now.
    sizing = capacity.size(spec, capacity.discover())
    resources = _resources(spec, sizing)
    local = "://" not in spec.storage
    storage = os.path.abspath(spec.storage) if local else spec.storage
    path = f"{storage.rstrip('/')}/{spec.name}"
    # A merged sweep (and its resume) skips the units each configuration already has.
    stored, prior = merge.stored_units(path) if spec.merge else ([], {})
    plan = Plan(
        model=spec.model,
        entry=entry,
        folds=prepared.folds,
        seeds=spec.seeds,
        features=prepared.features,
        covariates=spec.declared,
        metric=spec.metric,
        early_stop_on=spec.early_stop_on,
        scoring=Scoring(spec.origin_stride, not spec.point_only),
        assets=prepared.assets,
        fit=spec.fit,
        parallel_units=spec.parallel_units,
        unit_steps=prepared.unit_steps,
        cpus_per_unit=spec.cpus_per_trial,
        gpus_per_unit=sizing.gpus_per_unit,
        experiment_path=path,
        prior=prior,
    )
    trainable = tune.with_resources(tune.with_parameters(train, plan=plan, frames=prepared.frames), resources)
    if spec.resume:
        if not resume.restorable(path):
            raise SpecError(f"--resume: {path} holds no restorable Tune experiment")
        print(f"Resuming {path}")
        tuner = tune.Tuner.restore(path, trainable=trainable, resume_errored=True)
    else:
        if spec.overwrite and store.exists(path):  # on s3:// too (--resume auto starts over with it)
            store.delete_dir(path)
            lock.write()  # the directory's lock went with it
        configs = None
        if spec.merge:
            configs = _merge_configs(spec, entry, stored, prior, prepared)
            layout.SweepDir(path).write_meta(
                merge.record(_stored_meta(spec), spec, prepared.folds, provenance.git_state(), _universe(prepared))
            )
        else:
            _record(spec, prepared)
        if configs == []:
            print("--merge: every (configuration, fold, seed) unit is already stored; nothing to run")
            print(summary.describe(spec, path, time.perf_counter() - t0))
            return 0
        tuner = _new_tuner(spec, entry, trainable, storage, plan, sizing, configs, resources)
    results, interrupted = _fit(tuner)
    if spec.keep_top_k and not interrupted:  # before the report, so its tables list what remains
        from sweeps.prune import keep_top_k

        removed = keep_top_k(path, spec.metric, spec.keep_top_k)
        print(f"Disk: kept the models of the {spec.keep_top_k} best configuration(s), removed {removed}")
    # Ray is no longer needed: let it stop while the report is written.
    stopping = threading.Thread(target=ray.shutdown if ours else lambda: None, daemon=True)
    stopping.start()
    print(summary.describe(spec, path, time.perf_counter() - t0))
    stopping.join()
    if interrupted:  # Ctrl-C: Tune saved its state on the way out
        print(
            f"\nInterrupted. Continue with: python sweeps/{spec.model}.py --resume --name {spec.name} "
            f"--storage {spec.storage}"
        )
        return 130
    if spec.fail_fast and results.num_errors:
        print("Stopped at the first failed configuration (--fail-fast).")
        return 1
    return 0


def _fit(tuner):
    """tuner.fit(), and whether Ctrl-C interrupted it.

    Tune catches the first SIGINT itself and then puts back the handler it found, so a marker
    handler installed here is back in place exactly when the run was interrupted.
    """
    import signal

    def marker(*_):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGINT, marker)
    try:
        results = tuner.fit()
        return results, signal.getsignal(signal.SIGINT) is marker
    finally:
        signal.signal(signal.SIGINT, previous)


def _merge_configs(spec: SweepSpec, entry, stored: list[dict], prior: dict, prepared: Prepared) -> list[dict]:
    """The merged sweep's configurations that still miss units: its strategy's list plus the stored ones."""
    listed = []
    if spec.mode != "optuna":  # an Optuna sweep grows by re-running its sampled configurations
        listed = _listed(spec, spec.baseline(entry.spaces().BASELINE))
    todo = merge.to_run([*listed, *stored], prior, prepared.folds, spec.seeds, prepared.assets)
    print(f"--merge: {len(todo)} configuration(s) have units to run")
    return todo


def _new_tuner(spec: SweepSpec, entry, trainable, storage: str, plan, sizing, configs: list[dict] | None, resources):
    import logging

    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    from sweeps.progress import Progress, header
    from sweeps.summary import PrepareReport
    from sweeps.tb_logger import TensorBoardLogger
    from trainables.nested import ASHA_SCORE, ASHA_TIME, max_time

    # Each explicit configuration differs from the baseline constants by design: not worth a warning.
    logging.getLogger("ray.tune.search.variant_generator").setLevel(logging.ERROR)
    base = spec.baseline(entry.spaces().BASELINE)
    concurrent = sizing.concurrent
    search = strategies.build(
        "priority" if configs else spec.mode,
        entry.spaces(),
        base,
        ranges=spec.param_ranges,
        points=configs or spec.points,
        max_runs=None if configs else spec.max_runs,
        num_samples=spec.num_samples,
        max_concurrent=concurrent,
        seed=spec.seed,
        fixed=spec.fixed(entry),
        study_name=spec.name,
        optuna_storage=os.path.join(storage, spec.name, layout.OPTUNA_DB) if "://" not in storage else None,
    )
    callbacks = [TensorBoardLogger(), PrepareReport(search.num_samples, concurrent)]
    if not spec.verbose:
        n, folds, seeds, assets = search.num_samples, len(plan.folds), len(plan.seeds), len(plan.assets)
        per_trial = ", ".join(f"{v:g} {k}" for k, v in resources.required_resources.items() if v)
        where = f"{spec.storage.rstrip('/')}/{spec.name}"
        print(
            header(
                spec.model,
                spec.mode,
                n,
                folds,
                seeds,
                f"{per_trial} per trial, {concurrent} at once",
                where,
                assets,
                spec.fit,
                sized=sizing.why,
            )
        )
        if plan.covariates:
            print(f"  covariates: {', '.join(c.describe() for c in plan.covariates)}")
        callbacks.append(Progress(n, folds * seeds * max(assets, 1), spec.metric, plan.experiment_path))
    # ASHA has its own metric (trainables.nested.ASHA_SCORE), so Tune's metric is the searcher's
    # and analysis' robust_score only without it (Tune refuses two).
    scheduler, metric = FIFOScheduler(), {"metric": "robust_score", "mode": "min"}
    if spec.scheduler == "asha":
        scheduler = ASHAScheduler(
            time_attr=ASHA_TIME, metric=ASHA_SCORE, mode="min", max_t=max_time(plan), grace_period=1, reduction_factor=2
        )
        metric = {}
    return tune.Tuner(
        trainable,
        param_space=search.param_space,
        tune_config=tune.TuneConfig(
            **metric,
            search_alg=search.algorithm,
            scheduler=scheduler,
            num_samples=search.num_samples,
            max_concurrent_trials=spec.max_concurrent,
            reuse_actors=True,
            trial_dirname_creator=_trial_dirname,
        ),
        run_config=tune.RunConfig(
            name=spec.name,
            storage_path=storage,
            failure_config=tune.FailureConfig(max_failures=spec.max_failures, fail_fast=spec.fail_fast),
            # Checkpoints hold only progress.json (unit files live in <trial>/units), so two suffice.
            checkpoint_config=tune.CheckpointConfig(num_to_keep=2),
            sync_config=tune.SyncConfig(sync_artifacts=True),
            callbacks=callbacks,
            verbose=1 if spec.verbose else 0,
        ),
    )
