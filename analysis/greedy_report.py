"""The greedy ensemble's run: selected on val (analysis/greedy.py), judged on test, written, exported, in words.

    python analysis/ensemble.py --greedy --results results [--sweeps a,b] [--metric val_mae]
        [--candidates 10] [--iterations 25] [--horizon H] [--out DIR] [--export DIR]

Judged on test like one configuration: the same weights on the test forecasts give its metrics
(trainables.metrics.evaluate per unit, the mean over units), and its per-origin losses, in
analysis.losses' shape, join the candidates' as one more configuration of the verdicts
(analysis.verdicts.compute over the candidates, the ranking's best baseline and the ensemble:
beats_naive, SPA, MCS, and beats_best_baseline when the baselines are among the sweeps).
Writes weights.csv, ensemble_summary.csv and ensemble.json into `<results>/ensemble_greedy/`
(or --out); --export DIR writes an ensemble model directory (analysis.model_dir) whose members
are each configuration's chosen unit checkpoint (analysis.best.best_record's: newest fold, best seed).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from analysis import bar as bar_mod
from analysis import verdicts
from analysis.greedy import (
    DEFAULT_CANDIDATES,
    DEFAULT_ITERATIONS,
    RW,
    SPLITS,
    UNIT,
    Q,
    Selection,
    Split,
    _of,
    candidates_of,
    combine,
    forecast_table,
    select,
    shared,
    split_metrics,
    stored_forecasts,
)
from analysis.losses import BAND_COLUMNS, LOSS_COLUMNS, unit_bands, unit_losses
from analysis.runs import ResultsError
from trainables import layout, store
from trainables.ids import config_id

ENSEMBLE = "ensemble"  # the model name of the ensemble's rows (no registry entry: never a baseline)
OUT_DIR = layout.GREEDY_DIR
VERDICT_COLUMNS = (*verdicts.ROW_KEYS, "versus_bar")


# ------------------------------------------------------------------ the run


@dataclass
class Greedy:
    """What `run` found and wrote."""

    summary: pd.DataFrame  # the candidates (ranking order) then the ensemble: weight, metrics, verdicts
    result: dict  # ensemble.json
    judged: verdicts.Verdicts
    path: str
    export: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def members(self) -> pd.DataFrame:
        return self.summary[self.summary["kind"] == "member"]


def _plain(value):
    """A JSON-ready scalar: numpy → Python, NaN → None."""
    if isinstance(value, np.generic):
        value = value.item()
    return None if isinstance(value, float) and value != value else value


def run(
    results: str,
    metric: str = "val_mae",
    sweeps: list[str] | None = None,
    candidates: int = DEFAULT_CANDIDATES,
    iterations: int = DEFAULT_ITERATIONS,
    horizon: int | None = None,
    settings: verdicts.Settings = verdicts.Settings(),
    out: str | None = None,
    export: str | None = None,
) -> Greedy:
    """The greedy ensemble of the `candidates` best configurations under `results`: selected on val,
    judged on test, written to `out` (default <results>/ensemble_greedy), exported to `export`."""
    from analysis.runs import load_runs

    runs = load_runs(results)
    if sweeps:
        missing = sorted(set(sweeps) - set(runs["sweep"].astype(str)))
        if missing:
            raise ResultsError(f"no sweep named {', '.join(missing)} under {results!r}")
        runs = runs[runs["sweep"].isin(sweeps)]
    if runs.empty:
        raise ResultsError(f"no runs under {results!r}")
    ranked, runs = verdicts.rank_with_verdicts(runs, metric, horizon=horizon, settings=None)
    notes = [f"left out (another horizon): {line}" for line in ranked.attrs.get("left_out") or []]
    pool = candidates_of(ranked, runs, candidates)
    if len(pool) < 2:
        found = len(pool)
        raise ResultsError(f"a greedy ensemble needs 2 complete configurations with stored forecasts, found {found}")
    keys = list(zip(pool["model"], pool["config_id"]))
    tables = []
    for key in keys:
        table, bad = stored_forecasts(runs, key)
        notes += [f"unreadable forecasts left out: {p}" for p in bad]
        tables.append(table)
    h = ranked.attrs.get("horizon")
    h = int(h) if h is not None and h == h else int(min(t["step"].max() for t in tables))
    splits = shared(tables, h)
    for split in SPLITS:
        if len(splits[split].y) == 0:
            raise ResultsError(f"the {len(keys)} candidates share no {split} forecasts (other folds, seeds or data)")
    done = runs[runs["status"] == "complete"]
    scales = done.groupby(["asset", "fold_id"])["mase_scale"].first().to_dict() if "mase_scale" in done else {}

    val = splits["val"]
    sel = select(val.pred, val.y, val.point_weights, iterations)
    members = [{"model": m, "config_id": c, "weight": float(w)} for (m, c), w in zip(keys, sel.weights) if w > 0]
    ens_config = {"method": "greedy", "loss": "val_mae", "iterations": iterations, "members": members}
    ens_key = (ENSEMBLE, config_id(ens_config))

    # Every metric of each candidate and of the ensemble on the shared points; the ensemble's forecasts.
    metrics, forecasts = [], []
    for split in SPLITS:
        s = splits[split]
        pred, q = combine(sel.weights, s.pred), combine(sel.weights, s.q)
        forecasts.append(forecast_table(s, split, pred, q))
        rows = [split_metrics(s, s.pred[j], s.q[j], h, scales) for j in range(len(keys))]
        metrics.append(pd.DataFrame([*rows, split_metrics(s, pred, q, h, scales)]).add_prefix(f"{split}_"))
    metrics = pd.concat(metrics, axis=1)
    ens_row = {"model": ENSEMBLE, "config_id": ens_key[1], "status": "ok", "config": json.dumps(ens_config)}
    table, judged = judge(ranked, runs, keys, ens_row, pd.concat(forecasts, ignore_index=True), scales, settings)
    judged.notes[:0] = notes

    # The summary: the candidates in ranking order, then the ensemble.
    summary = pool[["rank", "model", "sweeps", "config_id", "config"]].rename(columns={"sweeps": "sweep"})
    names = [f"{bar_mod.name(m, c)}:{i}" for m, c, i in zip(summary["model"], summary["config"], summary["config_id"])]
    summary.insert(0, "name", names)
    summary["kind"] = np.where(sel.weights > 0, "member", "candidate")
    summary["weight"], summary["picks"] = sel.weights, sel.counts
    ens = {**ens_row, "name": "greedy ensemble", "kind": "ensemble", "weight": 1.0, "picks": sel.kept,
           "sweep": ",".join(sorted(set(summary["sweep"])))}  # fmt: skip
    summary = pd.concat([summary, pd.DataFrame([ens]).drop(columns="status")], ignore_index=True)
    summary = pd.concat([summary.astype({"rank": "Int64"}), metrics], axis=1)
    summary["val_loss"] = [val.loss(p) for p in val.pred] + [val.loss(combine(sel.weights, val.pred))]
    cols = [c for c in VERDICT_COLUMNS if c in table]
    summary = summary.merge(table[["model", "config_id", *cols]], on=["model", "config_id"], how="left")

    result = _result(summary, sel, splits, judged, cols)
    result.update(results=str(results), sweeps=sorted(set(runs["sweep"].astype(str))), horizon=h, metric=metric)
    base = out or store.join(results, OUT_DIR)
    weights = summary.iloc[:-1][["name", "rank", "model", "sweep", "config_id", "kind", "weight", "picks", "val_loss"]]
    store.write_text(store.join(base, layout.GREEDY_WEIGHTS), weights.to_csv(index=False))
    store.write_text(store.join(base, layout.ENSEMBLE_SUMMARY), summary.drop(columns="config").to_csv(index=False))
    store.write_json(store.join(base, layout.ENSEMBLE_JSON), result)
    g = Greedy(summary, result, judged, base, notes=judged.notes)
    if export:
        g.export = export_dir(export, g, ranked, runs)
    return g


def _result(summary: pd.DataFrame, sel: Selection, splits: dict[str, Split], judged, cols: list[str]) -> dict:
    """ensemble.json's facts: the selection, the members, the ensemble's and the best single's metrics and verdicts."""
    row, single = summary.iloc[-1], summary.iloc[sel.order[0]]  # the first pick: the best single on val
    scored = [c for c in summary.columns if c.startswith(("val_", "test_")) and c != "val_loss"]
    member_cols = ["model", "config_id", "sweep", "name", "weight", "picks"]
    members = summary.iloc[:-1][summary["weight"].iloc[:-1] > 0][member_cols]
    return {
        "loss": "val MAE of the point forecast: each unit's mean over its shared points, then the mean over units",
        "combination": "weighted mean of the point forecasts and of each quantile level: a quantile average, "
        "not a mixture of the members' distributions",
        "iterations": len(sel.trajectory),
        "picks_kept": sel.kept,
        "order": [summary["config_id"].iloc[j] for j in sel.order],
        "trajectory": sel.trajectory,
        "config_id": row["config_id"],
        "candidates": summary.iloc[:-1][["model", "config_id", "rank"]].to_dict("records"),
        "members": members.to_dict("records"),
        "points": {s: len(splits[s].y) for s in SPLITS},
        "units": {s: len(splits[s].units) for s in SPLITS},
        "val_loss": float(row["val_loss"]),
        "metrics": {c: _plain(row[c]) for c in scored},
        "verdicts": {c: _plain(row[c]) for c in cols},
        "best_single": {
            **{k: single[k] for k in ("model", "config_id", "name", "sweep")},
            "val_loss": float(single["val_loss"]),
            "metrics": {c: _plain(single[c]) for c in scored},
            "verdicts": {c: _plain(single[c]) for c in cols},
        },
        "bar": judged.bar,
        "significance": judged.summary(),
    }


# ------------------------------------------------------------------ the verdicts


def judge(
    ranked: pd.DataFrame,
    runs: pd.DataFrame,
    keys: list[tuple[str, str]],
    ens_row: dict,
    forecasts: pd.DataFrame,
    scales: dict,
    settings: verdicts.Settings,
) -> tuple[pd.DataFrame, verdicts.Verdicts]:
    """The verdicts (analysis.verdicts.compute, the calibration words, the words against the bar) of
    the candidates `keys`, the ranking's best baseline (the bar) and the ensemble, whose losses are
    built from its `forecasts` and added to the stored ones as one more configuration."""
    from analysis import calibrated
    from analysis.losses import tables_of

    bar = bar_mod.best(ranked)
    judged_keys = keys + ([bar] if bar is not None and bar not in keys else [])
    subset = pd.concat([ranked[_of(ranked, judged_keys)], pd.DataFrame([ens_row])], ignore_index=True)
    subset.attrs.update(ranked.attrs)
    stored = tables_of(runs)
    ens_key = (ens_row["model"], ens_row["config_id"])
    ens_losses, ens_bands = loss_rows(forecasts, ens_key, scales, stored.losses)
    losses = pd.concat([stored.losses[_of(stored.losses, judged_keys)], ens_losses], ignore_index=True)
    bands = pd.concat([stored.bands[_of(stored.bands, judged_keys)], ens_bands], ignore_index=True)
    judged = verdicts.compute(subset, losses, settings)
    judged.notes += stored.notes
    judged.calibration = calibrated.references(stored.bands, stored.garch)
    table = calibrated.attach(verdicts.attach(subset, judged), bands)
    table["versus_bar"] = [bar_mod.words(r, judged.bar) for r in table.to_dict("records")]
    return table, judged


def loss_rows(
    table: pd.DataFrame, key: tuple[str, str], scales: dict, losses: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """One forecaster's rows of the losses table (LOSS_COLUMNS) and of the test bands (BAND_COLUMNS),
    per unit by analysis.losses' own functions, then seed-averaged as it averages a configuration's
    units; garch_ql from the other rows of `losses` at the same origins (the same GARCH fits)."""
    per_unit, bands = [], []
    for (asset, fold, fold_end, _), unit in table.groupby(UNIT, sort=False):
        keys = {"model": key[0], "config_id": key[1], "asset": asset, "fold_id": fold, "fold_end": fold_end}
        per_unit.append(unit_losses(unit.reset_index(drop=True)).assign(**keys, mase_scale=scales.get((asset, fold))))
        bands.append(unit_bands(unit).assign(**keys))
    by = ["model", "config_id", "split", "asset", "fold_id", "fold_end", "origin", "horizon"]
    values = ["loss", "naive_loss", "ql", "rw_ql", "mase_scale"]
    out = pd.concat(per_unit, ignore_index=True).astype({"mase_scale": "float64"})
    out = out.groupby(by, sort=False)[values].mean().reset_index()
    at = ["split", "asset", "fold_id", "origin", "horizon"]
    garch = losses.dropna(subset=["garch_ql"]).drop_duplicates(at)[[*at, "garch_ql"]] if len(losses) else None
    if garch is not None and len(garch):
        out = out.merge(garch.astype({"horizon": out["horizon"].dtype}), on=at, how="left")
    else:
        out["garch_ql"] = np.nan
    bands = pd.concat(bands, ignore_index=True)
    band_by = ["model", "config_id", "asset", "fold_id", "fold_end", "origin", "step"]
    bands = bands.groupby(band_by, sort=False)[["y_true", *Q, *RW]].mean().reset_index()
    return out[LOSS_COLUMNS], bands[BAND_COLUMNS]


# ------------------------------------------------------------------ the model directory


def _member_data(unit: pd.Series):
    """analysis.model_dir.DataInfo of the rows a unit's model was fitted on: its fold's training window."""
    from analysis.model_dir import data_info
    from analysis.runs import read_sweep, sweep_prices
    from trainables.data import Columns
    from trainables.folds import Fold, windows

    sweep = read_sweep(str(unit["sweep_path"]))
    spec = sweep.spec
    frame = sweep_prices(sweep)[unit["asset"] if sweep.assets else None]
    fold = next(f for f in sweep.meta["folds"] if f["name"] == unit["fold"])
    train, _, _ = windows(Fold(**fold), frame["timestamp"])
    rows = frame.iloc[train.start : train.stop].reset_index(drop=True)
    asset = unit["asset"] if sweep.assets else spec.get("asset")
    columns = asdict(Columns(**(spec.get("columns") or {})))
    info = data_info(
        rows, spec.get("data") or "embedded (SPX)", asset, spec.get("features") or "BASELINE_FEATURES", columns
    )
    return info, sweep


def export_dir(path: str, g: Greedy, ranked: pd.DataFrame, runs: pd.DataFrame) -> str:
    """An ensemble model directory at `path` (analysis.model_dir): model.json of kind "ensemble" and
    members/<i>/ per member, heaviest first, each a single-model directory with the weights of the
    configuration's chosen unit checkpoint (analysis.best.best_record: the newest fold, its best seed)."""
    from analysis import model_dir
    from analysis.best import best_record
    from sweeps.provenance import git_state, versions

    if not store.is_remote(path):
        import shutil

        shutil.rmtree(os.path.join(path, model_dir.MEMBERS), ignore_errors=True)  # no stale members
    members = g.members.sort_values(["weight", "rank"], ascending=[False, True], kind="stable")
    entries, infos = [], []
    for i, (_, m) in enumerate(members.iterrows()):
        record = best_record(ranked, runs, int(m["rank"]))
        units = runs[(runs["model"] == m["model"]) & (runs["config_id"] == m["config_id"])]
        unit = units[units["checkpoint"] == record["checkpoint"]].iloc[0]
        info, sweep = _member_data(unit)
        infos.append(info)
        sub = f"{model_dir.MEMBERS}/{i}"
        card = model_dir.ModelCard(
            kind="single",
            model=m["model"],
            config=record["config"],
            horizon=g.result["horizon"],
            data=info,
            stopping={
                "rule": f"as swept: unit {unit['unit']}'s checkpoint (newest fold, best seed on {record['metric']})",
                "checkpoint_chosen_on": _plain(unit.get("checkpoint_chosen_on")),
            },
            verdicts={
                **{c: _plain(m[c]) for c in VERDICT_COLUMNS if c in m},
                "judged_among": "the greedy ensemble's candidates, the best baseline and the ensemble",
            },
            source={
                "sweep": m["sweep"],
                "config_id": m["config_id"],
                "unit": unit["unit"],
                "checkpoint": record["checkpoint"],
                "trial_path": unit["trial_path"],
                "ensemble_weight": float(m["weight"]),
            },
            git_sha=sweep.meta.get("git_sha"),
            versions=sweep.meta.get("versions") or {},
        )
        store.put_dir(store.local_copy(str(record["checkpoint"])), store.join(path, sub, model_dir.WEIGHTS), keep=True)
        model_dir.write(store.join(path, sub), card)
        entry = {"dir": sub, "weight": float(m["weight"]), "model": m["model"], "config_id": m["config_id"]}
        entries.append({**entry, "sweep": m["sweep"]})
    r = g.result
    card = model_dir.ModelCard(
        kind="ensemble",
        model=ENSEMBLE,
        config={
            "method": "greedy ensemble selection (Caruana et al. 2004), with replacement",
            **{k: r[k] for k in ("iterations", "picks_kept", "loss", "combination", "members")},
        },
        horizon=r["horizon"],
        data=infos[0],  # the heaviest member's; the members share the folds the ensemble was selected on
        stopping={
            "rule": f"greedy selection with replacement on val, {r['iterations']} iterations",
            "why": f"the first {r['picks_kept']} picks give the lowest val MAE, {r['val_loss']:.6g}",
        },
        verdicts={
            **r["verdicts"],
            "judged_among": "the greedy ensemble's candidates, the best baseline and the ensemble",
        },
        source={
            "results": r["results"],
            "sweeps": r["sweeps"],
            "config_id": r["config_id"],
            "ensemble_json": store.join(g.path, layout.ENSEMBLE_JSON),
        },
        members=entries,
        git_sha=git_state()["git_sha"],
        versions=versions(),
    )
    return model_dir.write(path, card)


# ------------------------------------------------------------------ in words


def text(g: Greedy) -> str:
    """The members with their weights, the ensemble vs the best single on val and test, the verdicts in words."""
    r, s = g.result, g.summary
    lines = [
        f"Greedy ensemble of {len(s) - 1} candidates from {', '.join(r['sweeps'])} (horizon {r['horizon']}): "
        f"{r['picks_kept']} of {r['iterations']} picks kept, on {r['points']['val']} val points of "
        f"{r['units']['val']} units shared by every candidate.",
    ]
    cols = ["name", "rank", "weight", "val_loss", "val_mae", "test_mae", "test_rel_mae", "test_ql", "verdict"]
    lines.append(s[[c for c in cols if c in s]].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
    b = r["best_single"]
    for split in SPLITS:
        e, o = r["metrics"][f"{split}_mae"], b["metrics"][f"{split}_mae"]
        word = "better than" if e < o else "no better than"
        lines.append(f"{split}: ensemble MAE {e:.4f}, {word} the best single ({b['name']}) {o:.4f}")
    v = r["verdicts"]
    lines.append(f"Against the random walk on test: {verdicts.verdict_words(v.get('test_dm_p_pooled'))}"
                 f" (one-sided DM p = {_fmt(v.get('test_dm_p_pooled'))}); best single: "
                 f"{verdicts.verdict_words(b['verdicts'].get('test_dm_p_pooled'))}.")  # fmt: skip
    level = f"{100 * (1 - g.judged.settings.mcs_size):g} %"
    lines.append(
        f"In the {level} Model Confidence Set on val: {_yes(v.get('in_mcs'))}; on test: {_yes(v.get('test_in_mcs'))}."
    )
    lines.append(f"Against the best baseline: {v.get('versus_bar')}.")
    lines.append(f"Forecast distribution: {v.get('calibration', 'untested')}.")
    lines.append("Did any of them beat the random walk on test? " + verdicts.spa_words(g.judged.spa.get("test")))
    lines += [f"  note: {n}" for n in g.notes]
    return "\n".join(lines)


def _fmt(p) -> str:
    return "—" if p is None or p != p else f"{p:.3f}"


def _yes(flag) -> str:
    return "untested" if flag is None or flag != flag else ("yes" if flag else "no")
