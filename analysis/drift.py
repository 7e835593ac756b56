"""Distribution drift between each fold's train window and its val / test windows.

KS: two-sample Kolmogorov–Smirnov statistic and p-value (scipy). PSI (population stability
index) over bins cut at the train window's quantiles:
    PSI = Σ_b (a_b − e_b) · ln(a_b / e_b),   e_b = (n_b^train + ½) / (n^train + ½·B)
and a_b likewise for the val / test values (the ½ keeps empty bins finite). B is `bins` (10),
fewer when the smaller sample has under 5 values a bin (a 20-day window gets 4 bins), because
PSI on near-empty bins measures sampling noise. A value on a cut point falls in the upper bin.
PSI < 0.1: stable, 0.1–0.25: moderate, > 0.25: large shift.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from trainables.features import FEATURES, KNOWN_AHEAD

MIN_PER_BIN = 5
LEVELS = ((0.1, "stable"), (0.25, "moderate"), (np.inf, "large"))


def psi(expected: np.ndarray, actual: np.ndarray, bins: int = 10) -> float:
    """Population stability index of `actual` against `expected` (see module doc)."""
    expected, actual = np.asarray(expected, float), np.asarray(actual, float)
    expected, actual = expected[np.isfinite(expected)], actual[np.isfinite(actual)]
    if len(expected) == 0 or len(actual) == 0:
        return float("nan")
    bins = min(bins, max(2, min(len(expected), len(actual)) // MIN_PER_BIN))
    cuts = np.unique(np.quantile(expected, np.linspace(0, 1, bins + 1))[1:-1])
    e = _shares(np.searchsorted(cuts, expected, side="right"), len(cuts) + 1)
    a = _shares(np.searchsorted(cuts, actual, side="right"), len(cuts) + 1)
    return float(np.sum((a - e) * np.log(a / e)))


def _shares(bin_of: np.ndarray, n_bins: int) -> np.ndarray:
    return (np.bincount(bin_of, minlength=n_bins) + 0.5) / (len(bin_of) + 0.5 * n_bins)


def ks(expected: np.ndarray, actual: np.ndarray) -> tuple[float, float]:
    """Two-sample KS statistic and p-value."""
    expected, actual = np.asarray(expected, float), np.asarray(actual, float)
    expected, actual = expected[np.isfinite(expected)], actual[np.isfinite(actual)]
    if len(expected) == 0 or len(actual) == 0:
        return float("nan"), float("nan")
    res = stats.ks_2samp(expected, actual)
    return float(res.statistic), float(res.pvalue)


def psi_level(value: float) -> str:
    if np.isnan(value):
        return ""
    return next(name for limit, name in LEVELS if value < limit)


def drift_table(frame: pd.DataFrame, windows: dict[str, tuple], variables: list[str], bins: int = 10) -> pd.DataFrame:
    """KS and PSI of every variable, train vs val and train vs test, per fold.

    `windows` maps a fold name to its (train, val, test) row windows (trainables.folds.windows).
    """
    rows = []
    for fold, (train, val, test) in windows.items():
        for var in variables:
            ref = frame[var].to_numpy()[train.start : train.stop]
            for split, win in (("val", val), ("test", test)):
                other = frame[var].to_numpy()[win.start : win.stop]
                stat, p = ks(ref, other)
                value = psi(ref, other, bins)
                kind = "calendar" if var in KNOWN_AHEAD else "market"
                rows.append((fold, split, var, kind, len(ref), len(other), stat, p, value, psi_level(value)))
    cols = ["fold", "split", "variable", "kind", "n_train", "n_other", "ks_stat", "ks_pvalue", "psi", "psi_level"]
    return pd.DataFrame(rows, columns=cols)


def drift_summary(table: pd.DataFrame, alpha: float = 0.05) -> dict:
    """Per split and variable over folds: mean/max KS and PSI, share of folds with KS p < alpha.

    `worst` names the market (non-calendar) variable with the largest PSI: calendar features
    (day of week, month) shift between windows by construction and are reported, not flagged.
    """
    if table.empty:
        return {"folds": 0, "by_variable": [], "worst": None}
    g = table.groupby(["split", "variable", "kind"], sort=False)
    by = g.agg(
        mean_ks=("ks_stat", "mean"),
        max_ks=("ks_stat", "max"),
        share_ks_significant=("ks_pvalue", lambda p: float((p < alpha).mean())),
        mean_psi=("psi", "mean"),
        max_psi=("psi", "max"),
    ).reset_index()
    by["level"] = by["max_psi"].map(psi_level)
    market = table[table["kind"] == "market"]
    worst = market.loc[market["psi"].idxmax()] if market["psi"].notna().any() else None
    return {
        "folds": int(table["fold"].nunique()),
        "alpha": alpha,
        "psi_levels": {name: limit for limit, name in LEVELS if np.isfinite(limit)},
        "by_variable": by.to_dict(orient="records"),
        "worst": None
        if worst is None
        else {k: worst[k] for k in ("fold", "split", "variable", "psi", "psi_level", "ks_stat", "ks_pvalue")},
        "market_shifted": sorted(set(market.loc[market["psi"] >= 0.25, "variable"])),
    }


def sweep_drift(sweep) -> pd.DataFrame:
    """Drift table of a stored sweep (analysis.runs.Sweep): reload its data and features, cut its
    folds' windows; a universe's table has a row set per asset (column `asset`).

    Variables: the log return (the change, for a target with values ≤ 0) and every input feature
    of the sweep's feature set.
    """
    from analysis.runs import sweep_prices
    from trainables.features import add_features
    from trainables.folds import Fold, windows

    tables = []
    for asset, prices in sweep_prices(sweep).items():
        frame, features = add_features(prices, sweep.spec.get("features") or "BASELINE_FEATURES")
        ret = "log_return" if bool((frame["close"] > 0).all()) else "change"
        if ret not in frame:
            frame[ret] = FEATURES[ret](frame)
        variables = [ret, *[f for f in features if f != ret]]
        cut = {f["name"]: windows(Fold(**f), frame["timestamp"]) for f in sweep.meta["folds"]}
        table = drift_table(frame, cut, variables)
        tables.append(table if asset is None else table.assign(asset=asset)[["asset", *table.columns]])
    return pd.concat(tables, ignore_index=True) if len(tables) > 1 else tables[0]
