"""Named feature sets computed from prices. Every feature at row t uses rows ≤ t only."""

from __future__ import annotations

import numpy as np
import pandas as pd


def _log_return(f: pd.DataFrame) -> pd.Series:
    return np.log(f["close"]).diff().fillna(0.0)


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


def add_features(frame: pd.DataFrame, feature_set: str) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """Return a copy of `frame` with the set's feature columns, and their names."""
    names = FEATURE_SETS[feature_set]
    out = frame.copy()
    for name in names:
        out[name] = FEATURES[name](out).astype("float64")
    return out, names
