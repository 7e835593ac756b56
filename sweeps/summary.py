"""What a sweep prints and writes at its end: the ranking, a plot and the best model."""

from __future__ import annotations

import glob
import json
import os

import pandas as pd

from analysis.ranking import hyperparameters, rank, trial_table
from sweeps.spec import SweepSpec
from trainables import store


def _fmt(x: object, digits: int = 3) -> str:
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def ranking_text(ranked: pd.DataFrame, metric: str, top: int = 10) -> str:
    """A plain-text table of the top configurations."""
    test = "test_" + metric.removeprefix("val_")
    shown = hyperparameters(ranked)
    lines = []
    for _, r in ranked.head(top).iterrows():
        params = ", ".join(f"{c.removeprefix('config/')}={r[c]}" for c in shown) or "baseline"
        status = "" if r["complete"] else ("  FAILED: " + r["error"] if r["error"] else "  incomplete")
        lines.append(
            f"{r['rank']:>3}  {_fmt(r.get(metric))} ± {_fmt(r.get(f'{metric}_std'))}  "
            f"{_fmt(r.get(test))}  {_fmt(r.get('val_dm_pvalue_vs_naive'))}  "
            f"{int(r['units_done']) if pd.notna(r['units_done']) else 0}/{r['units_expected']}  {params}{status}"
        )
    head = f"rank  {metric} (mean ± std)  {test}  dm_p_vs_naive  units  configuration"
    return "\n".join([head, *lines])


def describe(spec: SweepSpec, path: str, results, wall: float) -> str:
    """Write config_ranking.csv and best_model.json next to the results; return the summary text."""
    units = len(json.loads(store.read_text(f"{path}/sweep.json"))["folds"]) * len(spec.seeds)
    ranked = rank(trial_table(results), spec.metric, units)
    store.write_text(f"{path}/config_ranking.csv", ranked.to_csv(index=False))
    best = _best(ranked, spec)
    if best:
        store.write_text(f"{path}/best_model.json", store.dumps(best))
    if "://" not in path:
        from analysis.plots import ranking_plot

        ranking_plot(ranked, spec.metric, os.path.join(path, "plots", "ranking.png"))
    failed = int((ranked["error"] != "").sum())
    where = [
        f"\nSweep {spec.name}: {len(ranked)} configurations, {failed} failed, {wall:.0f} s",
        ranking_text(ranked, spec.metric),
        f"\nResults:      {path}",
        f"Ranking:      {path}/config_ranking.csv",
        f"Plot:         {path}/plots/ranking.png" if "://" not in path else "",
        f"Best model:   {path}/best_model.json" if best else "Best model:   none (no configuration completed)",
        f"TensorBoard:  tensorboard --logdir {spec.storage}",
    ]
    return "\n".join(w for w in where if w)


def _best(ranked: pd.DataFrame, spec: SweepSpec) -> dict | None:
    done = ranked[ranked["complete"]]
    if done.empty:
        return None
    top = done.iloc[0]
    config = {c.removeprefix("config/"): top[c] for c in ranked.columns if c.startswith("config/")}
    metrics = {k: top[k] for k in ranked.columns if k.startswith(("val_", "test_")) or k == "robust_score"}
    return {
        "model": spec.model,
        "sweep": spec.name,
        "trial_path": top["path"],
        "config": config,
        "metrics": metrics,
        "unit_models": unit_models(top["path"]),
    }


def unit_models(trial_path: str) -> dict[str, str]:
    """Model directory of every (fold, seed) unit of a local trial, keyed by unit."""
    if "://" in trial_path:
        return {}
    units = sorted(glob.glob(os.path.join(trial_path, "units", "*", "model")))
    return {os.path.basename(os.path.dirname(u)): u for u in units}
