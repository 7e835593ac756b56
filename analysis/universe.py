"""A universe's configurations judged asset by asset.

For each complete configuration: on how many assets it beats the naive forecast (one-sided DM at
5 % on the test split, the asset's folds concatenated in time, seeds averaged), on how many its
distribution beats the probabilistic random walk and GARCH (the same test on the quantile loss), and its worst
asset on the ranking metric; a configuration × asset table; the best configuration per asset
(each asset ranked on its own units, as analysis.ranking does for the whole universe).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.bar import is_baseline, marks
from analysis.ranking import direction, rank_configs
from trainables.metrics import DM_LEVEL, dm_test

MIN_ORIGINS = 10  # fewer test origins on an asset: its DM test is not run (the asset is not counted)


def assets_of(runs: pd.DataFrame) -> list[str]:
    """The assets of a tidy table in first-seen order; a one-asset table gives one (or none)."""
    if "asset" not in runs or runs.empty:
        return []
    return list(dict.fromkeys(runs["asset"].astype(str)))


def is_universe(runs: pd.DataFrame) -> bool:
    return len(assets_of(runs)) > 1


def asset_matrix(runs: pd.DataFrame, metric: str, config_ids: list[str]) -> pd.DataFrame:
    """Mean of `metric` over folds × seeds: one row per configuration (in the given order), one column per asset."""
    done = runs[(runs["status"] == "complete") & runs["config_id"].isin(config_ids)]
    if metric not in done:
        return pd.DataFrame(index=config_ids)
    table = done.pivot_table(index="config_id", columns="asset", values=metric, aggfunc="mean")
    order = [a for a in assets_of(runs) if a in table.columns]
    return table.reindex(index=[c for c in config_ids if c in table.index], columns=order)


# What each count judges: (column, the loss, the reference's loss).
COUNTS = (
    ("assets_beating_naive", "loss", "naive_loss"),
    ("assets_beating_naive_prob", "ql", "rw_ql"),
    ("assets_beating_garch", "ql", "garch_ql"),
)


def _beats(losses: pd.DataFrame, horizon: int, loss: str = "loss", reference: str = "naive_loss") -> float:
    """One-sided DM p-value of a loss table (one configuration, one asset) against a reference, in time order."""
    part = losses.sort_values(["fold_end", "origin"])
    d = (part[loss] - part[reference]).dropna()
    if len(d) < MIN_ORIGINS:
        return np.nan
    return dm_test(d.to_numpy(float), horizon)[1]


def per_asset(ranked: pd.DataFrame, runs: pd.DataFrame, losses: pd.DataFrame, metric: str) -> pd.DataFrame:
    """model, config_id, assets_beating_naive ("k/N") and its _k count (and the same for the
    distribution vs the probabilistic random walk and vs GARCH), worst_asset,
    worst_asset_<metric> for each complete configuration of `ranked`."""
    mode = direction(metric)
    ok = ranked[ranked["status"] == "ok"]
    counted = [c for name, _, _ in (*COUNTS, BAR_COUNT) for c in (name, f"{name}_k")]
    cols = ["model", "config_id", *counted, "worst_asset", f"worst_asset_{metric}"]
    if ok.empty:
        return pd.DataFrame(columns=cols)
    matrix = asset_matrix(runs, metric, list(ok["config_id"]))
    test = losses[losses["split"] == "test"] if not losses.empty else losses
    groups: dict[tuple, list[pd.DataFrame]] = {}  # (model, config_id) → its per-asset test losses
    for (model, cid, _), part in test.groupby(["model", "config_id", "asset"], sort=False) if not test.empty else []:
        groups.setdefault((model, cid), []).append(part)
    bars = _bars(runs, metric)
    rows = []
    for model, cid in zip(ok["model"], ok["config_id"]):
        values = matrix.loc[cid].dropna() if cid in matrix.index else pd.Series(dtype=float)
        worst = (values.idxmax() if mode == "min" else values.idxmin()) if len(values) else None
        row = {"model": model, "config_id": cid}
        for name, loss, reference in COUNTS:
            parts = groups.get((model, cid), [])
            pvalues = [_beats(part, int(part["horizon"].max()), loss, reference) for part in parts]
            tested = [p for p in pvalues if np.isfinite(p)]
            k = sum(p < DM_LEVEL for p in tested)
            row.update({name: f"{k}/{len(tested)}", f"{name}_k": k})
        row.update(_versus_bars(groups.get((model, cid), []), groups, bars) if not is_baseline(model) else {})
        row.update(worst_asset=worst)
        row[f"worst_asset_{metric}"] = values.get(worst, np.nan) if worst is not None else np.nan
        rows.append(row)
    return pd.DataFrame(rows, columns=cols)


BAR_COUNT = ("assets_beating_best_baseline", "loss", "bar_loss")


def _bars(runs: pd.DataFrame, metric: str) -> dict[str, tuple[str, str]]:
    """Each asset's best baseline, chosen on that asset's val units (as best_per_asset ranks)."""
    part = runs[marks(runs["model"])] if not runs.empty else runs
    if part.empty:
        return {}
    best = best_per_asset(part, metric)
    return {r["asset"]: (r["model"], r["config_id"]) for _, r in best.iterrows() if r["config_id"] is not None}


def _versus_bars(parts: list[pd.DataFrame], groups: dict, bars: dict) -> dict:
    """ "k/N" assets on which a configuration beats that asset's best baseline (test DM at 5 %)."""
    if not bars:
        return {}
    pvalues = []
    for part in parts:
        asset = part["asset"].iloc[0]
        theirs = [p for p in groups.get(bars.get(asset), []) if p["asset"].iloc[0] == asset]
        if not theirs:
            continue
        keys = ["fold_id", "fold_end", "origin"]
        ref = theirs[0].groupby(keys)["loss"].mean().rename("bar_loss").reset_index()
        pvalues.append(_beats(part.merge(ref, on=keys, how="inner"), int(part["horizon"].max()), "loss", "bar_loss"))
    tested = [p for p in pvalues if np.isfinite(p)]
    k = sum(p < DM_LEVEL for p in tested)
    return {BAR_COUNT[0]: f"{k}/{len(tested)}", f"{BAR_COUNT[0]}_k": k}


def rankings(runs: pd.DataFrame, metric: str, mode: str | None = None) -> dict[str, pd.DataFrame]:
    """Each asset's own ranking of the configurations (on that asset's units only)."""
    return {asset: rank_configs(runs[runs["asset"] == asset], metric, mode) for asset in assets_of(runs)}


def best_per_asset(runs: pd.DataFrame, metric: str, mode: str | None = None) -> pd.DataFrame:
    """One row per asset: its best complete configuration, its metric and robust score there."""
    rows = []
    for asset, ranked in rankings(runs, metric, mode).items():
        ok = ranked[ranked["status"] == "ok"]
        if ok.empty:
            rows.append({"asset": asset, "model": None, "config_id": None})
            continue
        top = ok.iloc[0]
        rows.append(
            {
                "asset": asset,
                "model": top["model"],
                "config_id": top["config_id"],
                metric: top[metric],
                "robust_score": top["robust_score"],
                "configurations": len(ok),
                "config": top["config"],
            }
        )
    return pd.DataFrame(rows)


def attach(ranked: pd.DataFrame, runs: pd.DataFrame, losses: pd.DataFrame, metric: str) -> pd.DataFrame:
    """`ranked` with per_asset's columns after robust_score, when `runs` hold several assets."""
    if not is_universe(runs):
        return ranked
    extra = per_asset(ranked, runs, losses, metric)
    out = ranked.merge(extra, on=["model", "config_id"], how="left")
    new = [c for c in extra.columns if c not in ("model", "config_id")]
    rest = list(ranked.columns)
    at = rest.index("robust_score") + 1 if "robust_score" in rest else len(rest)
    out = out[rest[:at] + new + rest[at:]]
    out.attrs.update(ranked.attrs)
    return out


def versus_winner(best: pd.DataFrame, runs: pd.DataFrame, winner: str | None, metric: str) -> pd.DataFrame:
    """best_per_asset's table with the universe winner's `metric` on each asset next to the asset's best."""
    if winner is None or best.empty:
        return best.assign(winner_value=np.nan)
    on_asset = asset_matrix(runs, metric, [winner])
    values = on_asset.iloc[0] if len(on_asset) else pd.Series(dtype=float)
    return best.assign(winner_value=[values.get(a, np.nan) for a in best["asset"]])
