"""Rank configurations from the tidy table (analysis.runs), in the metric's direction.

A configuration is (model, config_id); the same configuration in two sweeps pools its units.
Configurations are compared on the folds × seeds they share: the anchor unit is the one most
complete configurations have, and the units compared are those every complete configuration
holding the anchor also has. Configurations missing some of those units are flagged (failed,
incomplete, not comparable) and ranked after the others, never mixed in.

robust_score = mean + std (metric to minimise) or −(mean − std) (to maximise), std over the
units compared (population std): lower is better either way, as in the sweeps' own reports.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.runs import metric_columns, param_columns
from trainables.metrics import mode_of

STATUS_ORDER = {"ok": 0, "incomplete": 1, "not comparable": 2, "failed": 3}


def direction(metric: str, mode: str | None = None) -> str:
    """`mode` if given, else the metric's declared direction; KeyError for an unknown metric."""
    natural = mode_of(metric)
    if mode is None:
        return natural
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be min or max, got {mode!r}")
    return mode


def robust_score(mean, std, mode: str):
    """Lower is better: mean + std for a metric to minimise, −(mean − std) for one to maximise."""
    return mean + std if mode == "min" else -(mean - std)


_CARRY = {"model", "config_id", "fold_id", "seed", "status", "started", "error", "sweep", "trial_path", "train_seconds"}


def _keys(runs: pd.DataFrame) -> pd.DataFrame:
    """The columns a ranking needs, with integer codes `key` (configuration) and `ukey` (unit);
    one row per (key, ukey)."""
    cols = [c for c in runs.columns if c in _CARRY or c == "config" or c.startswith(("val_", "test_", "config/"))]
    out = runs[cols].reset_index(drop=True)
    out["key"] = out.groupby(["model", "config_id"], sort=False).ngroup()
    out["ukey"] = out.groupby(["fold_id", "seed"], sort=False).ngroup()
    dup = out.duplicated(["key", "ukey"], keep=False).to_numpy()
    if not dup.any():
        return out
    # Several rows for one (configuration, unit): a complete record wins over failed/missing, then the newest.
    part = out[dup].assign(_done=out["status"][dup] == "complete")
    by = ["_done", "started"] if "started" in part else ["_done"]
    part = part.sort_values(by, ascending=False, na_position="last", kind="stable").drop_duplicates(["key", "ukey"])
    return pd.concat([out[~dup], part.drop(columns="_done")]).sort_index()


def _shared(runs: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(unit codes compared, configuration codes holding all of them) of a `_keys` table."""
    done = runs[runs["status"].to_numpy() == "complete"][["key", "ukey"]]
    expected = runs.groupby("key")["ukey"].size()  # one row per (key, ukey): size = distinct units
    got = done.groupby("key")["ukey"].size().reindex(expected.index, fill_value=0)
    full = done[done["key"].isin(expected.index[got == expected])]
    if full.empty:
        return np.array([], int), np.array([], int)
    coverage = full.groupby("ukey")["key"].size()
    anchor = coverage.index[coverage.to_numpy() == coverage.max()].min()
    peers = full[full["key"].isin(full.loc[full["ukey"] == anchor, "key"])]
    counts = peers.groupby("ukey")["key"].size()
    units = counts.index[counts.to_numpy() == peers["key"].nunique()].to_numpy()
    have = done[done["ukey"].isin(units)].groupby("key")["ukey"].size()
    return units, have.index[have.to_numpy() == len(units)].to_numpy()


def shared_units(runs: pd.DataFrame) -> tuple[set[tuple[str, int]], set[tuple[str, str]]]:
    """(units compared as (fold_id, seed), configurations holding all of them as (model, config_id)).

    The anchor unit is the one most complete configurations have; the units compared are those
    every complete configuration holding the anchor also has.
    """
    keyed = _keys(runs)
    units, configs = _shared(keyed)
    u = keyed[keyed["ukey"].isin(units)].drop_duplicates("ukey")
    c = keyed[keyed["key"].isin(configs)].drop_duplicates("key")
    return set(zip(u["fold_id"], u["seed"].astype(int))), set(zip(c["model"], c["config_id"]))


def _status(table: pd.DataFrame) -> pd.Series:
    complete = table["units_done"] == table["units_expected"]
    return pd.Series(
        np.select(
            [complete & table["comparable"], table["error"] != "", ~complete],
            ["ok", "failed", "incomplete"],
            "not comparable",
        ),
        index=table.index,
    )


def _first_error(runs: pd.DataFrame) -> pd.Series:
    errors = runs.loc[runs["error"].fillna("").to_numpy() != "", ["key", "error"]]
    return errors.groupby("key")["error"].first()


def _sweep_names(runs: pd.DataFrame) -> pd.Series:
    # Vectorised for the usual one sweep per configuration; joined names only where there are several.
    pairs = runs[["key", "sweep"]].astype({"sweep": str}).drop_duplicates()
    names = pairs.groupby("key")["sweep"].first()
    several = pairs["key"].duplicated(keep=False)
    if several.any():
        joined = pairs[several].groupby("key")["sweep"].agg(lambda s: ",".join(sorted(s)))
        names.loc[joined.index] = joined
    return names


def rank_configs(runs: pd.DataFrame, metric: str, mode: str | None = None) -> pd.DataFrame:
    """One row per configuration, best first, with mean/std of every metric over the units compared."""
    mode = direction(metric, mode)
    runs = _keys(runs)
    units, comparable = _shared(runs)
    done = (runs["status"] == "complete").to_numpy()
    in_comparable = runs["key"].isin(comparable).to_numpy()
    used = done & (~in_comparable | runs["ukey"].isin(units).to_numpy())
    cols = [c for c in metric_columns(runs)]
    grouped = runs.loc[used, cols].groupby(runs["key"][used])
    stats = grouped.mean().join(grouped.std(ddof=0).add_suffix("_std"))
    if metric not in stats:
        stats[metric], stats[f"{metric}_std"] = np.nan, np.nan
    g = runs.groupby("key", sort=False)
    first = g[["model", "config_id", "config", *(["trial_path"] if "trial_path" in runs else [])]].first()
    out = first.assign(
        units_done=runs["key"][done].value_counts(),
        units_expected=g["ukey"].size(),
        units_compared=runs["key"][used].value_counts(),
        error=_first_error(runs),
        sweeps=_sweep_names(runs),
        train_seconds=g["train_seconds"].sum() if "train_seconds" in runs else np.nan,
    )
    out[["units_done", "units_compared"]] = out[["units_done", "units_compared"]].fillna(0).astype(int)
    out["error"] = out["error"].fillna("")
    out["comparable"] = out.index.isin(comparable)
    out["complete"] = out["units_done"] == out["units_expected"]
    out["status"] = _status(out)
    out = out.join(stats)
    out["robust_score"] = robust_score(out[metric], out[f"{metric}_std"], mode)
    out = out.join(g[param_columns(runs)].first())
    out["_order"] = out["status"].map(STATUS_ORDER)
    out = out.sort_values(["_order", "robust_score", "config_id"], na_position="last").drop(columns="_order")
    out.insert(0, "rank", np.arange(1, len(out) + 1))
    front = ["rank", "model", "config_id", "status", "complete", "comparable", metric, f"{metric}_std", "robust_score"]
    test = "test_" + metric.removeprefix("val_")
    front += [c for c in (test, f"{test}_std", "test_rel_mae") if c in out]
    front = list(dict.fromkeys([*front, "units_done", "units_expected", "units_compared", "error", "sweeps"]))
    out = out[front + [c for c in out.columns if c not in front]].reset_index(drop=True)
    out.attrs.update(metric=metric, mode=mode, units_compared=len(units))
    return out


def one_horizon(runs: pd.DataFrame, horizon: int | None = None) -> tuple[pd.DataFrame, int | None, list[str]]:
    """The rows forecasting `horizon` steps (default: the horizon most configurations use, the
    shortest on a tie), that horizon, and a line per sweep left out: errors over different horizons
    are not comparable."""
    if runs.empty or "horizon" not in runs or runs["horizon"].isna().all():
        return runs, horizon, []
    counts = runs.drop_duplicates(["model", "config_id"])["horizon"].value_counts()
    if horizon is None:
        horizon = int(min(counts.index[counts == counts.max()]))
    keep = runs["horizon"] == horizon
    left = runs[~keep].groupby("sweep")["horizon"].agg(lambda h: sorted({int(x) for x in h.dropna()}))
    notes = [f"{name}: horizon {', '.join(map(str, h)) or 'unknown'} ≠ {horizon}" for name, h in left.items()]
    return runs[keep], horizon, notes


def ranked_units(runs: pd.DataFrame, metric: str, mode: str | None = None) -> pd.DataFrame:
    """Every complete unit that saved a model, ranked by `metric` overall and within its fold."""
    mode = direction(metric, mode)
    done = runs[(runs["status"] == "complete") & runs["checkpoint"].notna()].copy()
    if metric not in done:
        done[metric] = np.nan
    ascending = mode == "min"
    done = done.sort_values([metric, "config_id", "fold", "seed"], ascending=[ascending, True, True, True])
    done.insert(0, "rank", np.arange(1, len(done) + 1))
    done.insert(1, "rank_in_fold", done.groupby("fold_id")[metric].rank(ascending=ascending, method="min"))
    test = "test_" + metric.removeprefix("val_")
    keep = ["rank", "rank_in_fold", "model", "sweep", "config_id", "fold", "seed", metric, test, "checkpoint"]
    return done[[c for c in keep if c in done] + param_columns(done)].reset_index(drop=True)


def fold_matrix(runs: pd.DataFrame, metric: str, config_ids: list[str]) -> pd.DataFrame:
    """Mean of `metric` over seeds: one row per configuration (in the given order), one column per fold."""
    done = runs[(runs["status"] == "complete") & runs["config_id"].isin(config_ids)]
    order = done.drop_duplicates("fold_id").sort_values(["fold_end", "fold"])["fold"].tolist()
    table = done.pivot_table(index="config_id", columns="fold", values=metric, aggfunc="mean")
    return table.reindex(index=[c for c in config_ids if c in table.index], columns=order)


def hyperparameters(table: pd.DataFrame) -> list[str]:
    """Config columns that vary across the rows of one model (the ones worth showing)."""
    cols = [c for c in param_columns(table) if table[c].notna().any()]
    return [c for c in cols if table[c].astype(str).nunique() > 1]


def config_labels(table: pd.DataFrame, rows: pd.Index | None = None) -> pd.Series:
    """A short label per row (of `rows`, default all), model first when the table holds several.

    Within each model, a configuration is named by the hyperparameters where it differs from the
    most common value. The one configuration that differs nowhere is "baseline" when every other
    differs in one parameter (an OFAT shape); otherwise it lists all the varying parameters.
    A parameter without one clear most common value (e.g. Optuna's draws) is shown on every row.
    """
    rows = table.index if rows is None else rows
    labels = pd.Series("", index=rows, dtype=object)
    many = table["model"].nunique() > 1
    for model, part in table.groupby("model", sort=False):
        cols = hyperparameters(part)
        text = part[cols].astype(str)
        differs = text.ne(text.apply(_mode)) if cols else text
        ofat = bool(cols) and (differs.sum(axis=1) <= 1).all() and (differs.sum(axis=1) == 0).sum() == 1
        for i in part.index.intersection(rows):
            shown = [c for c in cols if differs.at[i, c]] or ([] if ofat else cols)
            name = ", ".join(f"{c.removeprefix('config/')}={_short(part.at[i, c])}" for c in shown)
            name = name or ("baseline" if ofat else str(part.at[i, "config_id"]))
            labels[i] = f"{model}: {name}" if many else name
    return labels


def _mode(column: pd.Series) -> str | None:
    counts = column.value_counts()
    top = counts.iloc[0]
    return counts.index[0] if top > 1 and (counts == top).sum() == 1 else None  # a clear mode only


def _short(value) -> str:
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e9 else f"{value:.4g}"
    return str(value)
