"""Recompute every artefact of a sweep from its stored results alone (no training, no Ray).

    python analysis/report.py results/tft_quick              # one sweep
    python analysis/report.py results                        # every sweep under results/

Writes next to the results: sweep_runs.parquet/.csv/.json, config_ranking.csv,
all_models_ranked.csv, param_impact_detail.csv / param_impact_summary.csv (baseline sweeps),
param_importances.csv (grid / Optuna), drift_ks_psi_by_fold.csv,
drift_ks_psi_overall_summary.json, folds/<fold>/…, assets/<asset>/… (a universe), optuna_* (Optuna sweeps), summary.json,
best_model.json, plots/*.png and report.md.

    python analysis/report.py results/tft_quick --recompute-metrics   # metrics from stored forecasts

--recompute-metrics first rewrites every unit's metrics from its predictions.parquet (see
analysis/recompute.py): sweeps made before a metric changed or was added get it, no training.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
from collections import Counter
from dataclasses import dataclass, field

from analysis import markdown, optuna_handoff, universe, verdicts
from analysis.best import best_record
from analysis.drawing import Drawer
from analysis.ranking import config_labels, direction, fold_matrix
from analysis.runs import ResultsError, Sweep, find_sweeps, read_sweep, sweep_runs
from analysis.tables import SweepTables, asset_tables, fold_tables, sweep_tables
from trainables import layout, store


@dataclass
class Report:
    """What `generate` computed and where it wrote it."""

    sweep: Sweep
    tables: SweepTables
    best: dict | None
    summary: dict
    artefacts: dict[str, str] = field(default_factory=dict)


def flagged_units(runs, metric: str) -> list[dict]:
    """Units the report could not use as they are: unreadable records, or no value for `metric`."""
    if runs.empty:
        return []
    bad = runs[runs["status"] == "unreadable"]
    out = [{"unit": f"{r['trial_id']}/{r['unit']}", "reason": r["error"]} for _, r in bad.iterrows()]
    done = runs[(runs["status"] == "complete") & runs[metric].isna()]
    out += [{"unit": f"{r['trial_id']}/{r['unit']}", "reason": f"no value for {metric}"} for _, r in done.iterrows()]
    return out


def _versus_naive(ranked) -> list[dict]:
    """Each complete configuration's verdicts, best first, as JSON-ready rows."""
    keys = [k for k in ("config_id", *verdicts.ROW_KEYS) if k in ranked]
    ok = ranked[ranked["status"] == "ok"][keys]
    return [{k: (None if v != v else v) for k, v in row.items()} for row in ok.to_dict(orient="records")]


def _answer_bar(v: dict) -> dict:
    bar = v.get("best_baseline")
    if not bar:
        return {}
    return {"answer_baseline": verdicts.spa_words((v.get("spa_pvalue_baseline") or {}).get("test"), bar["name"])}


def summarise(sweep: Sweep, t: SweepTables, best: dict | None) -> dict:
    """summary.json: the best configuration, verdicts, counts of configurations and units, failures and why."""
    errors = Counter(t.ranked.loc[t.ranked["error"] != "", "error"])
    v = t.verdicts.summary() if t.verdicts is not None else {"spa_pvalue": {"val": None, "test": None}}
    return {
        "sweep": sweep.name,
        "model": sweep.model,
        "mode": sweep.mode,
        "metric": t.metric,
        "direction": t.mode,
        "units_per_configuration": len(sweep.units),
        **({"assets": sweep.assets, "dropped_assets": sweep.meta.get("dropped_assets") or {}} if sweep.assets else {}),
        "configurations": len(t.ranked),
        "status_counts": {k: int(v) for k, v in t.ranked["status"].value_counts().items()},
        "units": {k: int(v) for k, v in t.runs["status"].value_counts().items()},
        "errors": [{"error": e, "configurations": n} for e, n in errors.most_common()],
        "spa_pvalue": v["spa_pvalue"],
        "answer": verdicts.spa_words(v["spa_pvalue"].get("test")),
        "answer_distribution": {
            "vs_random_walk": verdicts.spa_words((v.get("spa_pvalue_prob") or {}).get("test"), "the random walk"),
            "vs_garch": verdicts.spa_words((v.get("spa_pvalue_garch") or {}).get("test"), "GARCH"),
        },
        **_answer_bar(v),
        "verdicts": v,
        "configurations_vs_naive": _versus_naive(t.ranked),
        "flagged_units": flagged_units(t.runs, t.metric),
        "best_overall": best,
        "best_per_model": {best["model"]: best} if best else {},
        "git_sha": sweep.meta.get("git_sha"),
        "started": sweep.meta.get("started"),
        "notes": t.notes,
    }


def _write_csv(out: dict, base: str, name: str, frame) -> None:
    if frame is not None:
        out[name] = store.join(base, name)
        store.write_text(out[name], frame.to_csv(index=False))


def write_tables(base: str, t: SweepTables, runs_name: str = layout.RUNS_CSV) -> dict[str, str]:
    """The CSV tables of `t` into directory `base`; returns name → path."""
    out: dict[str, str] = {}
    _write_csv(out, base, runs_name, t.runs)
    _write_csv(out, base, layout.RANKING, t.ranked)
    _write_csv(out, base, layout.IMPACT_DETAIL, t.impact_detail)
    _write_csv(out, base, layout.IMPACT_SUMMARY, t.impact_summary)
    _write_csv(out, base, layout.IMPORTANCES, t.importances)
    return out


def _plots(base: str, t: SweepTables, sweep: Sweep, full: bool, drawer: Drawer) -> dict[str, str]:
    """Submit the plots of `t` (under `base/plots`) to `drawer`; returns title → path relative to `base`."""
    from analysis import curves, plots

    out = {"Ranking": layout.plot_file("Ranking")}
    drawer.submit(plots.ranking_plot, t.ranked, t.metric, store.join(base, out["Ranking"]))
    if t.impact_summary is not None:
        out["Parameter impact"] = layout.plot_file("Parameter impact")
        drawer.submit(plots.impact_plot, t.impact_summary, t.metric, store.join(base, out["Parameter impact"]))
    if t.importances is not None:
        out["Parameter importance"] = layout.plot_file("Parameter importance")
        drawer.submit(plots.importance_plot, t.importances, store.join(base, out["Parameter importance"]))
    if not full:
        return out
    ok = t.ranked[t.ranked["status"] == "ok"]
    top = ok.head(12)
    labels = dict(zip(top["config_id"], config_labels(t.ranked, top.index)))
    out["Metric by fold"] = layout.plot_file("Metric by fold")
    matrix = fold_matrix(t.runs, t.metric, list(top["config_id"]))
    names = [labels[c] for c in matrix.index]
    drawer.submit(plots.heatmap_plot, matrix, names, t.metric, t.mode, store.join(base, out["Metric by fold"]))
    if universe.is_universe(t.runs):  # configuration × asset, relative to naive (scale-free across assets)
        out["rel_mae by asset"] = layout.plot_file("rel_mae by asset")
        matrix = universe.asset_matrix(t.runs, "val_rel_mae", list(top["config_id"]))
        names = [labels[c] for c in matrix.index]
        path = store.join(base, out["rel_mae by asset"])
        drawer.submit(plots.heatmap_plot, matrix, names, "val_rel_mae", "min", path, "asset")
    top3 = dict(list(labels.items())[:3])
    out["Learning curves"] = layout.plot_file("Learning curves")
    best_id = None if ok.empty else ok.iloc[0]["config_id"]
    if best_id is not None:
        out["Forecast vs actual (test)"] = layout.plot_file("Forecast vs actual (test)")
    out["Drift"] = layout.plot_file("Drift")
    drawer.submit(plots.drift_plot, t.drift if t.drift is not None else t.runs.iloc[:0], store.join(base, out["Drift"]))
    if sweep.mode == "optuna":
        out["Optuna history"] = layout.plot_file("Optuna history")
        history = optuna_handoff.history(t.runs, t.ranked)
        drawer.submit(plots.history_plot, history, "robust_score", "min", store.join(base, out["Optuna history"]))
    # Last: reading curves and predictions here overlaps the workers drawing the plots above.
    curves_table = curves.learning_curves(t.runs, list(top3))
    drawer.submit(plots.curves_plot, curves_table, top3, store.join(base, out["Learning curves"]))
    if best_id is not None:
        table, label = curves.forecasts(t.runs, best_id), labels[best_id]
        if table["asset"].nunique() > 1:  # prices of different assets do not share an axis: the first asset's
            first = universe.assets_of(t.runs)[0]
            table, label = table[table["asset"] == first], f"{label} — {first}"
        drawer.submit(plots.forecast_plot, table, label, store.join(base, out["Forecast vs actual (test)"]))
        if t.distribution is not None:
            out["Calibration (test)"] = layout.plot_file("Calibration (test)")
            bands, garch = t.distribution.bands, t.distribution.garch
            best = bands[bands["config_id"] == best_id]
            h = t.verdicts.horizon if t.verdicts is not None else None
            test = garch[(garch["split"] == "test") & (garch["horizon"] == h)] if len(garch) else garch
            path = store.join(base, out["Calibration (test)"])
            drawer.submit(plots.calibration_plot, best, test, labels[best_id], path)
    return out


def generate(
    path: str,
    metric: str | None = None,
    mode: str | None = None,
    top_k: int = 5,
    draw: bool = True,
    parallel: bool = False,
    settings: verdicts.Settings | None = None,
) -> Report:
    """Read the sweep at `path` and write every artefact next to it.

    `parallel`: draw the plots in worker processes while the tables are written here (worth it
    when the caller started `drawing.warm()` early, as every sweep does at its end).
    """
    sweep = read_sweep(path)
    settings = settings or verdicts.Settings()
    if not draw:
        return _generate(sweep, metric, mode, top_k, None, settings)
    with Drawer(parallel) as drawer:
        return _generate(sweep, metric, mode, top_k, drawer, settings)


def _generate(
    sweep: Sweep, metric: str | None, mode: str | None, top_k: int, drawer: Drawer | None, settings: verdicts.Settings
) -> Report:
    metric = metric or sweep.metric
    mode = direction(metric, mode)
    runs = sweep_runs(sweep.path, refresh=True)
    missing = not runs.empty and metric not in runs
    if missing:  # no unit has it (an older sweep, a renamed metric): the report still stands
        runs[metric] = float("nan")
    t = sweep_tables(sweep, runs, metric, mode, settings=settings)
    if missing:
        t.notes.append(f"no unit records {metric}: try --recompute-metrics, or another --metric")
    best = best_record(t.ranked, runs) if not t.ranked.empty else None
    sd = layout.SweepDir(sweep.path)
    art = write_tables(sweep.path, t)
    art[layout.RUNS_PARQUET] = sd.runs_parquet
    art[layout.RUNS_JSON] = sd.runs_json
    store.write_text(sd.runs_json, runs.to_json(orient="records", indent=1))
    _write_csv(art, sweep.path, layout.ALL_RANKED, t.units)
    if t.drift is not None:
        _write_csv(art, sweep.path, layout.DRIFT_BY_FOLD, t.drift)
        art["drift_summary"] = sd.file(layout.DRIFT_SUMMARY)
        store.write_json(art["drift_summary"], t.drift_summary)
    for fold, ft in fold_tables(sweep, runs, metric, mode).items():
        base = sd.fold(fold)
        art.update({f"{layout.FOLDS}/{fold}/{k}": v for k, v in write_tables(base, ft).items()})
        if drawer is not None:
            _plots(base, ft, sweep, False, drawer)
    for asset, at in asset_tables(sweep, runs, metric, mode).items():
        base = sd.asset(asset)
        art.update(
            {
                f"{layout.ASSETS}/{asset}/{k}": v
                for k, v in write_tables(base, at, runs_name=layout.ASSET_RUNS_CSV).items()
            }
        )
    if sweep.mode == "optuna" and not runs.empty:
        art.update(
            {f"optuna_{k}": v for k, v in optuna_handoff.write_handoff(sweep, runs, t.ranked, metric, top_k).items()}
        )
    summary = summarise(sweep, t, best)
    art[layout.SUMMARY] = sd.write_summary(summary)
    if best is not None:
        art[layout.BEST_MODEL] = sd.write_best_model(best)
    plot_paths = _plots(sweep.path, t, sweep, True, drawer) if drawer is not None and not runs.empty else {}
    art.update({f"plot:{k}": store.join(sweep.path, v) for k, v in plot_paths.items()})
    art[layout.REPORT] = sd.write_report(markdown.sweep_report(sweep.name, sweep.meta, t, best, summary, plot_paths))
    return Report(sweep, t, best, summary, art)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python analysis/report.py", description=__doc__.split("\n")[0])
    p.add_argument("path", help="a sweep directory (or a results root: every sweep under it)")
    p.add_argument("--metric", help="validation metric to rank on (default: the sweep's own)")
    p.add_argument("--mode", choices=("min", "max"), help="direction (default: the metric's own)")
    p.add_argument("--top-k", type=int, default=5, help="configurations in optuna_top_k_configs.json")
    p.add_argument("--no-plots", action="store_true", help="tables only")
    p.add_argument(
        "--recompute-metrics",
        action="store_true",
        help="first rewrite every unit's metrics from its stored predictions (originals kept under metrics_v<N>)",
    )
    verdicts.add_arguments(p)
    args = p.parse_args(argv)
    try:
        settings = verdicts.settings_from(args)
        if args.metric is not None:
            if not args.metric.startswith("val_"):
                raise ResultsError(f"--metric {args.metric!r} must be a validation metric (val_…)")
            direction(args.metric)
        if not store.is_dir(args.path):
            raise ResultsError(f"{args.path!r} is not a directory")
        paths = find_sweeps(args.path)
        if not paths:
            raise ResultsError(f"no sweep under {args.path!r} (a sweep directory holds {layout.SWEEP_META})")
    except KeyError:
        print(f"error: --metric {args.metric!r} is not a known metric", file=sys.stderr)
        return 2
    except (ResultsError, verdicts.VerdictError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in paths:
        if args.recompute_metrics:
            from analysis.recompute import recompute_sweep

            done = recompute_sweep(path)
            print(f"{path}: metrics recomputed for {done.rewritten} of {done.units} complete units")
            for problem in done.problems:
                print(f"warning: {problem}", file=sys.stderr)
        report = generate(path, args.metric, args.mode, args.top_k, draw=not args.no_plots, settings=settings)
        print(f"{report.sweep.name}: {len(report.artefacts)} artefacts, report {report.artefacts['report.md']}")
        print(f"  did the sweep beat the random walk? {report.summary['answer']}")
        flagged = report.summary["flagged_units"]
        if flagged:
            print(
                f"warning: {len(flagged)} unit(s) flagged, first {flagged[0]['unit']}: {flagged[0]['reason']} "
                "(all in report.md)",
                file=sys.stderr,
            )
        for note in report.tables.notes:  # what was left out and why, or how a table was computed
            print(f"note: {note}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
