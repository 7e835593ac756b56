"""Named feature sets computed from prices. Every feature at row t uses rows ≤ t only."""

from __future__ import annotations

import numpy as np
import pandas as pd


def _log_return(f: pd.DataFrame) -> pd.Series:
    return np.log(f["close"]).diff().fillna(0.0)


def _change(f: pd.DataFrame) -> pd.Series:
    return f["close"].diff().fillna(0.0)


def _hl_spread(f: pd.DataFrame) -> pd.Series:
    return f["high"] - f["low"]


def _log_volume(f: pd.DataFrame) -> pd.Series:
    return np.log1p(f["volume"].clip(lower=0))


def _range(f: pd.DataFrame) -> pd.Series:
    return (f["high"] - f["low"]) / f["close"]


def _day_of_week(f: pd.DataFrame) -> pd.Series:
    return f["timestamp"].dt.dayofweek.astype("float64")


def _month(f: pd.DataFrame) -> pd.Series:
    return f["timestamp"].dt.month.astype("float64")


FEATURES = {
    "log_return": _log_return,
    "change": _change,
    "hl_spread": _hl_spread,
    "log_volume": _log_volume,
    "range": _range,
    "day_of_week": _day_of_week,
    "month": _month,
}
# Calendar features are known in advance; the others only up to the forecast origin.
KNOWN_AHEAD = {"day_of_week", "month"}

FEATURE_SETS = {
    "BASELINE_FEATURES": ("log_return", "log_volume", "range", "day_of_week", "month"),
    "RETURNS_ONLY": ("log_return",),
    "NONE": (),
}


# Ratios of prices are undefined for a target with values ≤ 0 (returns, spreads): their
# difference-based counterparts stand in for them.
WITHOUT_RATIOS = {"log_return": "change", "range": "hl_spread"}


def feature_names(frame: pd.DataFrame, feature_set: str) -> tuple[str, ...]:
    """The set's features for this frame: price ratios swapped for differences unless close > 0."""
    names = FEATURE_SETS[feature_set]
    if bool((frame["close"] > 0).all()):
        return names
    return tuple(WITHOUT_RATIOS.get(n, n) for n in names)


def add_features(frame: pd.DataFrame, feature_set: str) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """Return a copy of `frame` with the set's feature columns, and their names."""
    names = feature_names(frame, feature_set)
    out = frame.copy()
    for name in names:
        out[name] = FEATURES[name](out).astype("float64")
    return out, names
