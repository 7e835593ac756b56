"""The command line shared by every `sweeps/<model>.py`: flags → SweepSpec → validated sweep."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import NoReturn

from search_spaces.strategies import MODES
from sweeps import resume
from sweeps.spec import (
    FITS,
    FoldPlan,
    SpecError,
    SweepSpec,
    check,
    check_name,
    parse_assets,
    parse_covariates,
    parse_seeds,
    read_config_file,
)
from trainables import layout, registry, store
from trainables.data import Columns, DataError
from trainables.folds import FoldError
from trainables.unit import EARLY_STOP_ON
from trainables.weights import WeightsNotFound


class _Defaults(argparse.ArgumentDefaultsHelpFormatter):
    """Shows a flag's default, unless it is None, False or "" (not given: the help says what happens)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False or action.default == "":
            return action.help
        return super()._get_help_string(action)


def parser(model: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog=f"python sweeps/{model}.py",
        description=f"Sweep {model} hyperparameters over walk-forward folds × replica seeds with Ray Tune.",
        formatter_class=_Defaults,
    )
    g = p.add_argument_group("what to search")
    g.add_argument(
        "--mode",
        choices=MODES,
        default=None,
        help="grid: param_ranges (or the model's GRID); quick/full: small/large grids; priority: "
        "hand-picked configs; ofat: baseline + one factor at a time; optuna: TPE search "
        "(default: ofat when --config has param_ranges, else quick)",
    )
    g.add_argument("--max-runs", type=int, help="cap on the number of configurations")
    g.add_argument("--num-samples", type=int, default=20, help="Optuna trials (mode optuna)")
    g.add_argument(
        "--config",
        help="sweep JSON file (training_config, param_ranges, folds, seeds, covariates; see docs/sweeping.md)",
    )
    g.add_argument("--configs", help="JSON list of configurations for --mode priority (e.g. optuna_top_k_configs.json)")
    g.add_argument("--metric", default="val_pct_mae", help="validation metric the robust score is built on")
    g.add_argument(
        "--scheduler", choices=("fifo", "asha"), default="fifo", help="asha prunes configs after early folds"
    )
    g.add_argument("--seed", type=int, default=0, help="seed of the search algorithm")
    if not registry.get(model).baseline:
        g.add_argument(
            "--baselines",
            action="store_true",
            help="first sweep the baselines (random walk, drift, historical mean, AutoARIMA, AutoETS, AutoTheta) "
            "on the same data, folds, seeds and horizon, then compare: does the model beat the best of them? "
            f"(= python sweeps/all.py --models {model} ...)",
        )
    g.add_argument(
        "--early-stop-on",
        choices=EARLY_STOP_ON,
        help="split that picks each unit's checkpoint / early-stopping epoch: val (default; val then also "
        "ranks the configurations) or train-tail (a held-out tail of the training window, keeping val clean)",
    )
    g.add_argument(
        "--origin-stride",
        type=int,
        default=1,
        metavar="N",
        help="rows between forecast origins in val and test (default 1: every row; overlapping h-step "
        "forecasts, which the DM test's h-1 HAC lags and the block bootstraps allow for)",
    )
    g.add_argument(
        "--point-only",
        action="store_true",
        help="score the point forecast only: no quantiles stored, NaN distribution metrics, no GARCH or calibration",
    )
    w = p.add_argument_group("weights (foundation models: toto, chronos2, kronos)")
    w.add_argument("--pretrained", help="hub id or local directory of the weights (default: the official hub id)")
    w.add_argument("--tokenizer", help="kronos only: hub id or local directory of the tokenizer")
    w.add_argument("--init", choices=("pretrained", "scratch"), help="scratch: randomly initialised model (offline)")
    sizes = getattr(registry.get(model).spaces(), "SIZES", None)
    if sizes:
        w.add_argument("--size", choices=sorted(sizes), help="architecture size with --init scratch")
    d = p.add_argument_group("data and folds")
    d.add_argument("--data", help="parquet or CSV price file (default: the embedded daily series, see --asset)")
    d.add_argument("--asset", help="asset id in the data's asset column; embedded: SPX, NDX, WTI or VIX")
    d.add_argument(
        "--assets",
        help="a universe: A,B,... (embedded SPX,NDX,WTI,VIX) or all (every asset of --data); each configuration "
        "is judged on every (asset, fold, seed)",
    )
    d.add_argument(
        "--fit",
        choices=FITS,
        default="per-asset",
        help="a universe: per-asset, one model per (asset, fold, seed); global, one model per "
        f"(fold, seed) trained on every asset together ({', '.join(n for n, e in registry.MODELS.items() if e.global_fit)})",
    )
    d.add_argument(
        "--drop-short-assets",
        action="store_true",
        help="leave out (and record) an asset without enough rows for a fold, instead of stopping",
    )
    d.add_argument("--timestamp-col", default="timestamp", help="timestamp column of --data")
    d.add_argument("--asset-col", help="asset-id column of --data (default: 'asset' if present)")
    d.add_argument("--target-col", default="close", help="price column to forecast")
    d.add_argument("--features", default=None, help="feature set (BASELINE_FEATURES, RETURNS_ONLY, NONE)")
    d.add_argument(
        "--covariates",
        help="inputs besides the target: [name=]column of --data or [name=]asset:X (another asset's close), "
        "':known' after a column known ahead; e.g. vix=asset:VIX,volume. Every configuration reads all of "
        "them unless param_ranges.covariates varies the set ('none', 'vix', 'vix+volume')",
    )
    d.add_argument("--folds", type=int, help="generate N walk-forward folds (default 2, or the config file's folds)")
    d.add_argument(
        "--window", choices=("expanding", "rolling"), default="expanding", help="generated folds' train window"
    )
    d.add_argument("--train-size", type=int, default=1000, help="rows of a rolling train window")
    d.add_argument("--val-size", type=int, default=126, help="rows of each generated val window")
    d.add_argument("--test-size", type=int, default=126, help="rows of each generated test window")
    d.add_argument("--seeds", help="replica seeds: a count (e.g. 2) or a list (7,11,13); default 2")
    d.add_argument(
        "--horizon",
        type=int,
        help="steps forecast from each origin, the same in every configuration (default: the model's baseline); "
        "give every model the same one to compare them",
    )
    d.add_argument(
        "--context",
        type=int,
        help="rows of history each forecast reads, the same in every configuration: fixes the model's "
        "context hyperparameter (TFT max_encoder_length) in every mode, Optuna's space included "
        "(default: each configuration's own)",
    )
    r = p.add_argument_group("where and how it runs")
    r.add_argument("--storage", default="results", help="results root: local directory or s3://bucket/prefix")
    r.add_argument("--name", help="sweep name (default: <model>_<mode>); results go to <storage>/<name>")
    r.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=False,
        choices=("auto",),
        help="continue the interrupted sweep of that name (Tune restore); --resume auto: continue the "
        "sweep this command line describes if it is stored, start it if not, refuse if it differs",
    )
    r.add_argument("--overwrite", action="store_true", help="replace an existing sweep of the same name")
    r.add_argument(
        "--merge",
        action="store_true",
        help="add replica seeds, folds or param_ranges values to the existing sweep of that name; "
        "only its missing (configuration, fold, seed) units run",
    )
    r.add_argument("--address", help="Ray cluster address (default: start a local Ray instance)")
    r.add_argument("--cpus-per-trial", type=float, default=1.0, help="CPUs per unit of a trial")
    r.add_argument(
        "--gpus-per-trial", type=float, help="GPUs per unit (fractions allowed; default 1 if the cluster has GPUs)"
    )
    r.add_argument("--parallel-units", type=int, default=1, help="units of one trial run in parallel as Ray tasks")
    r.add_argument("--max-concurrent", type=int, help="concurrent trials (default: what the resources allow)")
    r.add_argument(
        "--max-failures", type=int, default=1, help="retries of a crashed trial from its last fold checkpoint"
    )
    r.add_argument("--keep-top-k", type=int, help="at the end, keep model weights of the K best configurations only")
    r.add_argument("--fail-fast", action="store_true", help="stop the whole sweep at the first failed configuration")
    r.add_argument("--notes", default="", help="free text recorded with the sweep")
    r.add_argument("--verbose", action="store_true", help="Tune's status tables and the workers' logs")
    r.add_argument(
        "--dry-run",
        action="store_true",
        help="read the data, build the folds and count the configurations and units, print them and exit: "
        "Ray is not started, nothing is written",
    )
    return p


def spec_from_args(model: str, args: argparse.Namespace) -> SweepSpec:
    """Merge defaults, the config file and flags (flags win) into a checked SweepSpec."""
    entry = registry.get(model)
    fields = read_config_file(args.config) if args.config else {}
    fields["training_config"] = {**fields.get("training_config", {}), **_weight_flags(args, entry.spaces().BASELINE)}
    mode = args.mode or ("ofat" if fields.get("param_ranges") else "quick")
    folds = fields.get("folds", FoldPlan())
    if args.folds is not None or not folds.explicit:
        folds = FoldPlan(
            n=args.folds if args.folds is not None else 2,
            window=args.window,
            train_size=args.train_size,
            val_size=args.val_size,
            test_size=args.test_size,
        )
    spec = SweepSpec(
        model=model,
        mode=mode,
        name=args.name or fields.get("name") or f"{model}_{mode}",
        storage=args.storage,
        data=args.data,
        asset=args.asset,
        assets=parse_assets(args.assets) if args.assets else fields.get("assets"),
        fit=args.fit,
        drop_short_assets=args.drop_short_assets,
        columns=Columns(timestamp=args.timestamp_col, asset=args.asset_col, close=args.target_col),
        features=args.features or fields.get("features", "BASELINE_FEATURES"),
        covariates=parse_covariates(args.covariates) if args.covariates else fields.get("covariates", ()),
        early_stop_on=args.early_stop_on or fields.get("early_stop_on", "val"),
        origin_stride=args.origin_stride,
        point_only=args.point_only,
        folds=folds,
        seeds=parse_seeds(args.seeds) if args.seeds else fields.get("seeds", (7, 11)),
        training_config=fields.get("training_config", {}),
        param_ranges=fields.get("param_ranges", {}),
        points=_read_points(args.configs) if args.configs else None,
        horizon=_horizon(args.horizon, entry, fields.get("param_ranges", {})),
        context=_context(args.context, entry, fields.get("param_ranges", {})),
        max_runs=args.max_runs,
        num_samples=args.num_samples,
        metric=args.metric,
        scheduler=args.scheduler,
        cpus_per_trial=args.cpus_per_trial,
        gpus_per_trial=args.gpus_per_trial,
        parallel_units=args.parallel_units,
        max_concurrent=args.max_concurrent,
        max_failures=args.max_failures,
        keep_top_k=args.keep_top_k,
        address=args.address,
        seed=args.seed,
        notes=args.notes or fields.get("notes", ""),
        fail_fast=args.fail_fast,
        overwrite=args.overwrite,
        merge=args.merge,
        verbose=args.verbose,
    )
    check(spec, entry.spaces().BASELINE, list(registry.MODELS))
    _check_metric(spec.metric)
    return spec


def _horizon(horizon: int | None, entry: registry.ModelEntry, ranges: dict) -> int | None:
    """--horizon, checked against what the model can forecast; it fixes the horizon of every configuration."""
    if horizon is None:
        return None
    if horizon < 1:
        raise SpecError(f"--horizon must be at least 1, got {horizon}")
    if entry.max_horizon is not None and horizon > entry.max_horizon:
        raise SpecError(f"--horizon {horizon}: {entry.name} forecasts at most {entry.max_horizon} steps")
    if entry.horizon_key in ranges:
        raise SpecError(f"--horizon fixes {entry.horizon_key}: remove param_ranges.{entry.horizon_key} (or --horizon)")
    return horizon


def _context(context: int | None, entry: registry.ModelEntry, ranges: dict) -> int | None:
    """--context: it fixes the rows of history of every configuration (whether folds hold them is
    checked with the data)."""
    if context is not None and entry.context_key in ranges:
        raise SpecError(f"--context fixes {entry.context_key}: remove param_ranges.{entry.context_key} (or --context)")
    return context


def _weight_flags(args: argparse.Namespace, baseline: dict) -> dict:
    """--pretrained/--tokenizer/--init/--size as hyperparameter constants, if the model has them."""
    given = {k: getattr(args, k) for k in ("pretrained", "tokenizer", "init", "size") if getattr(args, k, None)}
    for key in given:
        if key not in baseline:
            raise SpecError(f"--{key} does not apply to this model (it has no {key!r} setting)")
    return given


def _check_metric(metric: str) -> None:
    from trainables.metrics import mode_of

    if not metric.startswith("val_"):
        raise SpecError(f"--metric {metric!r} must be a validation metric (val_…): select on val, report test")
    try:
        mode_of(metric)
    except KeyError:
        raise SpecError(f"--metric {metric!r} is not a known metric") from None


def _read_points(path: str) -> list[dict]:
    try:
        with open(path) as f:
            raw = json.load(f)
    except (OSError, json.JSONDecodeError) as exc:
        raise SpecError(f"--configs {path!r}: {exc}") from None
    if isinstance(raw, dict) and "configs" in raw:
        raw = raw["configs"]
    if not isinstance(raw, list) or not all(isinstance(c, dict) for c in raw) or not raw:
        raise SpecError(f"--configs {path!r} must hold a non-empty JSON list of configuration objects")
    return [c.get("config", c) for c in raw]


def resumed_spec(model: str, args: argparse.Namespace) -> SweepSpec:
    """The spec to run for --resume: the recorded spec of --name, else of the newest sweep of this
    model; for --resume auto, the flags' spec as resume.auto decides (restore, start or refuse)."""
    if args.resume == "auto":
        return resume.auto(spec_from_args(model, args))
    name = check_name(args.name) if args.name else _latest_sweep(model, args.storage)
    sweep = layout.SweepDir(store.join(args.storage, name))
    if not sweep.is_sweep():
        raise SpecError(f"--resume: nothing to resume at {args.storage}/{name} (no {layout.SWEEP_META})")
    spec = SweepSpec.from_json(sweep.read_meta()["spec"])
    if spec.model != model:
        raise SpecError(f"--resume: sweep {name!r} is a {spec.model} sweep, not {model}")
    return spec.with_(resume=True, address=args.address or spec.address, storage=args.storage)


def _latest_sweep(model: str, storage: str) -> str:
    best, newest = None, ""
    for name in store.subdirs(storage):
        sweep = layout.SweepDir(store.join(storage, name))
        if sweep.is_sweep():
            meta = sweep.read_meta()
            if meta["spec"]["model"] == model and meta["started"] > newest:
                best, newest = name, meta["started"]
    if best is None:
        raise SpecError(f"--resume: no {model} sweep under {storage!r} to resume")
    return best


def main(model: str, argv: list[str] | None = None) -> int:
    """Entry point of `python sweeps/<model>.py`; returns the exit code."""
    args = parser(model).parse_args(argv)
    if getattr(args, "baselines", False):
        from sweeps import all as every

        argv = sys.argv[1:] if argv is None else argv
        return every.main(["--models", model, "--exact-name", *[a for a in argv if a != "--baselines"]])
    try:
        both = [
            f for f, on in (("--resume", args.resume), ("--merge", args.merge), ("--overwrite", args.overwrite)) if on
        ]
        if len(both) > 1:
            raise SpecError(f"{both[0]} and {both[1]} cannot be used together")
        spec = resumed_spec(model, args) if args.resume else spec_from_args(model, args)
        from sweeps import driver

        prepared = driver.prepare(spec)
        if args.dry_run:
            from sweeps import dry_run

            print(dry_run.report(spec, prepared))
            return 0
        return driver.run(spec, prepared)
    except (SpecError, DataError, FoldError, WeightsNotFound) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def exit_now(code: int) -> NoReturn:
    """End a sweep script with `code`, skipping the interpreter's teardown.

    Everything is written and Ray is stopped by then; unwinding torch, pyarrow and Ray's core
    worker module state only costs ~1.5 s of exit time, so the shell gets its prompt back sooner.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)
