"""All the tables of one sweep (or one fold of it), computed before anything is written or drawn."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from analysis import drift, impact, universe, verdicts
from analysis.losses import Tables
from analysis.ranking import rank_configs, ranked_units
from analysis.runs import Sweep

# Modes whose configurations move one parameter at a time from the baseline (deltas make sense)
# and modes that spread over the space (importances make sense).
DELTA_MODES = ("ofat", "priority")
IMPORTANCE_MODES = ("grid", "quick", "full", "optuna")


@dataclass
class SweepTables:
    metric: str
    mode: str
    runs: pd.DataFrame
    ranked: pd.DataFrame
    units: pd.DataFrame
    baseline_id: str | None = None
    impact_detail: pd.DataFrame | None = None
    impact_summary: pd.DataFrame | None = None
    importances: pd.DataFrame | None = None
    drift: pd.DataFrame | None = None
    drift_summary: dict | None = None
    verdicts: verdicts.Verdicts | None = None
    distribution: Tables | None = None  # the losses, test bands and GARCH forecasts behind the verdicts
    notes: list[str] = field(default_factory=list)


def _impact(sweep: Sweep, t: SweepTables) -> None:
    baseline = impact.sweep_baseline(sweep.spec)
    # A grid may hold the baseline too; only OFAT / priority sweeps may fall back to a guess.
    t.baseline_id = impact.find_baseline(t.runs, baseline, exact=sweep.mode not in DELTA_MODES)
    if t.baseline_id is not None:
        t.impact_detail = impact.impact_detail(t.runs, t.metric, t.baseline_id, t.mode)
        t.impact_summary = impact.impact_summary(t.impact_detail)
    if sweep.mode in IMPORTANCE_MODES:
        try:
            t.importances = impact.importances(t.ranked, t.metric, t.mode)
        except (ImportError, RuntimeError, ValueError) as exc:
            t.notes.append(f"importances not computed: {exc}")


def _drift(sweep: Sweep, t: SweepTables) -> None:
    try:
        t.drift = drift.sweep_drift(sweep)
        t.drift_summary = drift.drift_summary(t.drift)
    except Exception as exc:  # data moved or unreadable: the rest of the report still stands
        t.notes.append(f"drift not computed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")


def add_verdicts(t: SweepTables, settings: verdicts.Settings) -> None:
    """SPA / MCS / pooled DM of the ranked configurations, joined into `t.ranked`; problems become notes."""
    try:
        t.ranked, t.verdicts, t.distribution = verdicts.judge(t.ranked, t.runs, settings)
        losses, unreadable = t.distribution.losses, t.distribution.unreadable
    except Exception as exc:  # a verdict that cannot be computed must not cost the rest of the report
        t.notes.append(f"verdicts not computed: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
        return
    t.notes += [f"verdicts: {n}" for n in t.verdicts.notes]
    if universe.is_universe(t.runs):
        try:
            t.ranked = universe.attach(t.ranked, t.runs, losses, t.metric)
        except Exception as exc:  # the universe's columns must not cost the rest of the report
            t.notes.append(f"per-asset verdicts not computed: {str(exc).splitlines()[0] or type(exc).__name__}")
    if unreadable:
        t.notes.append(
            f"{len(unreadable)} unit(s) without readable predictions.parquet, left out of the verdicts "
            f"(first: {unreadable[0]})"
        )


def sweep_tables(
    sweep: Sweep,
    runs: pd.DataFrame,
    metric: str,
    mode: str,
    with_drift: bool = True,
    settings: verdicts.Settings | None = None,
) -> SweepTables:
    """Ranking, ranked unit models, impact or importances, drift and (given `settings`) verdicts."""
    t = SweepTables(metric, mode, runs, rank_configs(runs, metric, mode), ranked_units(runs, metric, mode))
    if not runs.empty:
        _impact(sweep, t)
        if settings is not None:
            add_verdicts(t, settings)
    if with_drift:
        _drift(sweep, t)
    return t


def fold_tables(sweep: Sweep, runs: pd.DataFrame, metric: str, mode: str) -> dict[str, SweepTables]:
    """The same tables restricted to each fold (no drift: it is per fold already)."""
    names = runs.drop_duplicates("fold").sort_values(["fold_end", "fold"])["fold"].tolist()
    return {name: sweep_tables(sweep, runs[runs["fold"] == name], metric, mode, with_drift=False) for name in names}


def asset_tables(sweep: Sweep, runs: pd.DataFrame, metric: str, mode: str) -> dict[str, SweepTables]:
    """A universe's tables restricted to each asset ({} for one asset)."""
    if not universe.is_universe(runs):
        return {}
    return {
        a: sweep_tables(sweep, runs[runs["asset"] == a], metric, mode, with_drift=False)
        for a in universe.assets_of(runs)
    }
