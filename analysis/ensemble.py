"""Does an ensemble of the top-k configurations beat the best single one?

    python analysis/ensemble.py results/tft_quick --top-k 3
    python analysis/ensemble.py results/tft_quick --top-k 3 --stored   # reuse predictions.parquet
    python analysis/ensemble.py --greedy --results results              # weighted, across models

For every (asset ×) fold × seed the top-k configurations' saved models (same fold, same seed) forecast the
test window; their forecasts are combined by mean and by median on the origins and steps all
members share, and every metric is computed for each member and each combination on exactly
those forecasts. Writes <sweep>/ensemble/ensemble_units.csv, ensemble_summary.csv, ensemble.json.

--greedy: AutoGluon's weighted ensemble (Caruana's greedy selection with replacement) over the
stored val forecasts of the best configurations of every sweep under --results, judged on test
with the single models' verdicts, optionally exported as a model directory (analysis/greedy.py: the
selection; analysis/greedy_report.py: the run, its verdicts, files and export).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse

import numpy as np
import pandas as pd

from analysis.curves import forecasts
from analysis.ranking import direction, rank_configs
from analysis.runs import ResultsError, Sweep, read_sweep, sweep_prices, sweep_runs
from trainables import layout, store
from trainables.metrics import UnknownMetric, evaluate

COMBINERS = {"ensemble_mean": np.mean, "ensemble_median": np.median}


def _sweep_data(sweep: Sweep) -> dict[str, tuple[pd.DataFrame, tuple[str, ...]]]:
    """Each asset's frame and feature names, keyed as the tidy table's `asset` column."""
    from trainables.features import add_features

    features = sweep.spec.get("features") or "BASELINE_FEATURES"
    return {sweep.asset_name(a): add_features(p, features) for a, p in sweep_prices(sweep).items()}


def loaded_forecasts(sweep: Sweep, runs: pd.DataFrame, config_ids: list[str]) -> pd.DataFrame:
    """Test forecasts made now by each member unit's saved model (the checkpoint hand-off, end to end)."""
    from trainables import covariates, registry
    from trainables.adapter import UnitData
    from trainables.folds import Fold, windows
    from trainables.unit import mase_scale, score

    data_of = _sweep_data(sweep)
    folds = {f["name"]: Fold(**f) for f in sweep.meta["folds"]}
    adapter_cls = registry.get(sweep.model).adapter()
    declared = covariates.parse(sweep.spec["covariates"]) if sweep.spec.get("covariates") else ()
    units = runs[(runs["status"] == "complete") & runs["config_id"].isin(config_ids)]
    tables = []
    for _, u in units.drop_duplicates(["config_id", "fold_id", "seed"]).iterrows():
        frame, features = data_of[u["asset"]]
        series = u["asset"] if sweep.spec.get("fit") == "global" else None  # a global model knows its assets
        model = adapter_cls.load(store.local_copy(str(u["checkpoint"])))
        past, known = covariates.columns(model.config, declared)  # the set this unit's configuration read
        data = UnitData(frame, features, *windows(folds[u["fold"]], frame["timestamp"]), asset=series,
                        past_covariates=past, known_covariates=known)  # fmt: skip
        _, table = score(data, model, "test", mase_scale(data))
        tables.append(table.assign(config_id=u["config_id"], asset=u["asset"], fold=u["fold"], seed=u["seed"]))
    return pd.concat(tables, ignore_index=True)


def stored_forecasts(runs: pd.DataFrame, config_ids: list[str]) -> pd.DataFrame:
    """Test forecasts the members stored when they were evaluated (predictions.parquet)."""
    return pd.concat([forecasts(runs, c).assign(config_id=c) for c in config_ids], ignore_index=True)


def _aligned(part: pd.DataFrame, members: list[str]) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """y_true (origins, h), member → y_pred (origins, h), y_last (origins,) on the shared origins × steps."""
    h = int(part.groupby("config_id")["step"].max().min())
    part = part[part["step"] <= h]
    wide = part.pivot_table(index=["origin", "step"], columns="config_id", values="y_pred")[members].dropna()
    origins = wide.index.get_level_values("origin")
    wide = wide[origins.map(origins.value_counts()) == h]  # origins with every step from every member
    truth = part.drop_duplicates(["origin", "step"]).set_index(["origin", "step"]).loc[wide.index]
    n = len(wide) // h
    preds = {m: wide[m].to_numpy().reshape(n, h) for m in members}
    y_last = truth["y_naive"].to_numpy().reshape(n, h)[:, 0]
    return truth["y_true"].to_numpy().reshape(n, h), preds, y_last


def unit_metrics(table: pd.DataFrame, members: list[str], scales: dict[str, float] | None = None) -> pd.DataFrame:
    """Metrics of each member and each combination, per (asset,) fold × seed, on the shared forecasts.

    `scales` maps (asset, fold) to its training window's MASE scale (a record's `mase_scale`)."""
    rows = []
    if "asset" not in table:
        table = table.assign(asset="")
    for (asset, fold, seed), part in table.groupby(["asset", "fold", "seed"]):
        if part["config_id"].nunique() < len(members):
            continue  # a member lacks this unit: no fair comparison here
        y_true, preds, y_last = _aligned(part, members)
        if len(y_true) == 0:
            continue
        stack = np.stack([preds[m] for m in members])
        candidates = {**preds, **{name: fn(stack, axis=0) for name, fn in COMBINERS.items()}}
        for name, y_pred in candidates.items():
            scale = (scales or {}).get((asset, fold))
            metrics = {f"test_{k}": v for k, v in evaluate(y_true, y_pred, y_last, scale).items()}
            row = {"asset": asset, "fold": fold, "seed": seed, "member": name, "origins": len(y_true), **metrics}
            rows.append(row)
    return pd.DataFrame(rows)


def summary(units: pd.DataFrame, members: list[str], metric: str) -> pd.DataFrame:
    """Mean and std over units of every test metric, per member and combination, best first on `metric`."""
    cols = [c for c in units.columns if c.startswith("test_")]
    g = units.groupby("member")[cols]
    out = g.mean().join(g.std(ddof=0).add_suffix("_std")).join(units.groupby("member").size().rename("units"))
    out["kind"] = ["member" if m in members else "ensemble" for m in out.index]
    out["val_rank"] = [members.index(m) + 1 if m in members else np.nan for m in out.index]
    out = out.sort_values(metric, ascending=direction(metric) == "min")
    return out.reset_index()


def verdict(table: pd.DataFrame, members: list[str], metric: str) -> dict:
    """Whether each combination beats the best-ranked single configuration on the test metric."""
    by = table.set_index("member")[metric]
    better = (lambda a, b: a < b) if direction(metric) == "min" else (lambda a, b: a > b)
    best_single = members[0]
    return {
        "metric": metric,
        "best_single": best_single,
        "best_single_value": by[best_single],
        **{f"{name}_value": by[name] for name in COMBINERS},
        **{f"{name}_beats_best_single": bool(better(by[name], by[best_single])) for name in COMBINERS},
    }


def run(path: str, top_k: int = 3, metric: str | None = None, stored: bool = False) -> dict:
    """Build, score and write the top-k ensemble of the sweep at `path`; returns the verdict and tables."""
    sweep = read_sweep(path)
    metric = metric or sweep.metric
    runs = sweep_runs(sweep.path)
    ranked = rank_configs(runs, metric)
    members = ranked.loc[ranked["status"] == "ok", "config_id"].head(top_k).tolist()
    if len(members) < 2:
        raise ResultsError(f"an ensemble needs at least 2 complete configurations, {sweep.name} has {len(members)}")
    table = stored_forecasts(runs, members) if stored else loaded_forecasts(sweep, runs, members)
    done = runs[runs["status"] == "complete"]
    scales = done.groupby(["asset", "fold"])["mase_scale"].first().to_dict() if "mase_scale" in done else {}
    units = unit_metrics(table, members, scales)
    test = "test_" + metric.removeprefix("val_")
    summ = summary(units, members, test)
    result = {"sweep": sweep.name, "members": members, "source": "stored" if stored else "checkpoints"}
    result.update(verdict(summ, members, test))
    base = layout.SweepDir(sweep.path).ensemble
    store.write_text(store.join(base, layout.ENSEMBLE_UNITS), units.to_csv(index=False))
    store.write_text(store.join(base, layout.ENSEMBLE_SUMMARY), summ.to_csv(index=False))
    store.write_json(store.join(base, layout.ENSEMBLE_JSON), result)
    return {**result, "summary": summ, "units": units, "path": base}


def main(argv: list[str] | None = None) -> int:
    from analysis import greedy
    from analysis import verdicts as verdicts_mod

    p = argparse.ArgumentParser(prog="python analysis/ensemble.py", description=__doc__.split("\n")[0])
    p.add_argument("path", nargs="?", help="a sweep directory (not with --greedy)")
    p.add_argument("--top-k", type=int, default=3, help="members: the k best complete configurations")
    p.add_argument(
        "--metric", help="validation metric that ranks the members (default: the sweep's own; --greedy: val_mae)"
    )
    p.add_argument("--stored", action="store_true", help="use the stored test forecasts instead of loading models")
    g = p.add_argument_group("--greedy: a weighted ensemble of several sweeps' configurations (analysis/greedy.py)")
    g.add_argument("--greedy", action="store_true", help="greedy ensemble selection over the sweeps under --results")
    g.add_argument("--results", default="results", help="results root (local directory or s3://…)")
    g.add_argument("--sweeps", help="only these sweeps (comma-separated names)")
    g.add_argument("--candidates", type=int, default=greedy.DEFAULT_CANDIDATES, help="the K best configurations")
    g.add_argument(
        "--iterations", type=int, default=greedy.DEFAULT_ITERATIONS, help="selection rounds (with replacement)"
    )
    g.add_argument("--horizon", type=int, help="configurations forecasting this many steps (default: the most common)")
    g.add_argument("--out", help="where to write (default <results>/ensemble_greedy)")
    g.add_argument("--export", help="write an ensemble model directory here (analysis/model_dir.py)")
    verdicts_mod.add_arguments(p)
    args = p.parse_args(argv)
    try:
        if args.metric is not None and not args.metric.startswith("val_"):
            raise ResultsError(f"--metric {args.metric!r} must be a validation metric (val_…)")
        if args.metric is not None:
            direction(args.metric)
        if args.greedy:
            return _greedy(args)
        if args.path is None:
            raise ResultsError("name a sweep directory (or use --greedy --results DIR)")
        if args.top_k < 2:
            raise ResultsError(f"--top-k must be at least 2, got {args.top_k}")
        out = run(args.path, args.top_k, args.metric, args.stored)
    except UnknownMetric:  # only the metric's name (a KeyError elsewhere is a bug, not a bad argument)
        print(f"error: --metric {args.metric!r} is not a known metric", file=sys.stderr)
        return 2
    except (ResultsError, verdicts_mod.VerdictError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    m = out["metric"]
    cols = ["member", "kind", "val_rank", m, f"{m}_std", "test_directional_accuracy", "test_sharpe", "units"]
    print(out["summary"][cols].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    for name in COMBINERS:
        word = "beats" if out[f"{name}_beats_best_single"] else "does not beat"
        print(
            f"{name} {word} the best single configuration on {m}: {out[name + '_value']:.4f} vs {out['best_single_value']:.4f}"
        )
    print(f"Written: {out['path']}")
    return 0


def _greedy(args: argparse.Namespace) -> int:
    """--greedy: select, judge, write (and export); ResultsError / VerdictError for bad arguments."""
    from analysis import greedy_report
    from analysis import verdicts as verdicts_mod

    if args.path is not None:
        raise ResultsError("--greedy reads every sweep under --results: drop the sweep path (or use --sweeps)")
    if args.candidates < 2:
        raise ResultsError(f"--candidates must be at least 2, got {args.candidates}")
    if args.iterations < 1:
        raise ResultsError(f"--iterations must be at least 1, got {args.iterations}")
    if args.horizon is not None and args.horizon < 1:
        raise ResultsError(f"--horizon must be at least 1, got {args.horizon}")
    sweeps = [s for s in (args.sweeps or "").split(",") if s] or None
    out = greedy_report.run(args.results, args.metric or "val_mae", sweeps, args.candidates, args.iterations,
                            args.horizon, verdicts_mod.settings_from(args), args.out, args.export)  # fmt: skip
    print(greedy_report.text(out))
    print(f"Written: {out.path}")
    if out.export:
        print(f"Exported: {out.export} (an ensemble model directory: analysis/model_dir.py)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
