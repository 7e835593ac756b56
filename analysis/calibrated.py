"""Is each configuration's forecast distribution calibrated on the test split?

From the seed-averaged test quantiles (analysis.losses' bands): per configuration the tests of
analysis.calibration (Kupiec and Christoffersen on the step-1 hits of the 80 % band and of each
2.5 % tail, a HAC coverage test over all steps, Bonferroni over the tests run) and a word for the
ranking: `calibrated`, `miscalibrated: 80 % band covers 0.71`, or `untested`. The same tests on
the probabilistic random walk's and GARCH's quantiles give the reference the word is read against.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from trainables import quantiles

# Columns a ranked row gains (the word is also in verdicts.ROW_KEYS).
COLUMNS = ("calibration", "test_coverage80", "test_coverage95")
SEQUENCE = ["asset", "fold_end", "fold_id"]  # one time-ordered run of origins


def arrays(part: pd.DataFrame, prefix: str = "") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(y (n, h), q (n, h, levels), sequence label (n,)) of one forecaster's rows, in time order
    within each (asset, fold); origins that lack a step are left out."""
    h = int(part["step"].max())
    part = part.sort_values([*SEQUENCE, "origin", "step"])
    full = part.groupby([*SEQUENCE, "origin"], sort=False)["step"].transform("size") == h
    part = part[full.to_numpy()]
    n = len(part) // h
    y = part["y_true"].to_numpy("float64").reshape(n, h)
    q = part[quantiles.columns(prefix)].to_numpy("float64").reshape(n, h, len(quantiles.LEVELS))
    first = part.iloc[::h]
    label = (first["asset"].astype(str) + "|" + first["fold_id"].astype(str)).to_numpy()
    return y, q, label


def judge(part: pd.DataFrame, prefix: str = ""):
    """analysis.calibration.Calibration of one forecaster's test rows (None without quantiles)."""
    from analysis.calibration import calibrate

    if part.empty or part[quantiles.columns(prefix)].isna().all().all():
        return None
    return calibrate(*arrays(part, prefix))


def by_config(bands: pd.DataFrame) -> pd.DataFrame:
    """model, config_id and COLUMNS per configuration of the bands table."""
    rows = []
    for (model, config), part in bands.groupby(["model", "config_id"], sort=False):
        c = judge(part)
        rows.append(
            {
                "model": model,
                "config_id": config,
                "calibration": c.word if c else "untested",
                "test_coverage80": c.coverage80 if c else np.nan,
                "test_coverage95": c.coverage95 if c else np.nan,
            }
        )
    return pd.DataFrame(rows, columns=["model", "config_id", *COLUMNS])


def attach(ranked: pd.DataFrame, bands: pd.DataFrame) -> pd.DataFrame:
    """`ranked` with COLUMNS after the verdict columns ("untested" where a configuration has no bands)."""
    out = ranked.drop(columns=[c for c in COLUMNS if c in ranked])
    out = out.merge(by_config(bands), on=["model", "config_id"], how="left")
    out["calibration"] = out["calibration"].fillna("untested")
    order = [c for c in ranked.columns if c in out] + [c for c in COLUMNS if c not in ranked]
    at = order.index("verdict") + 1 if "verdict" in order else len(order)
    order = [c for c in order if c not in COLUMNS]
    out = out[order[:at] + list(COLUMNS) + order[at:]]
    out.attrs.update(ranked.attrs)
    return out


def references(bands: pd.DataFrame, garch: pd.DataFrame) -> dict[str, dict]:
    """The calibration summary of the probabilistic random walk and of GARCH on the test split (the
    random walk's from any one configuration's rows: it is the same for all)."""
    out = {}
    if not bands.empty:
        first = bands[bands["config_id"] == bands["config_id"].iloc[0]]
        c = judge(first, quantiles.RW_PREFIX)
        out["random walk"] = c.summary() if c else {"word": "untested"}
    test = garch[garch["split"] == "test"] if not garch.empty else garch
    if not test.empty:
        h = int(test["horizon"].max())
        # Sweeps on the same asset and folds (best.py over several) hold the same GARCH forecasts: once each.
        one = test[test["horizon"] == h].drop_duplicates(["asset", "fold_id", "origin", "step"])
        c = judge(one.assign(fold_end=""))
        out["GARCH(1,1)-t"] = c.summary() if c else {"word": "untested"}
    return out
