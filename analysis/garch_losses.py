"""GARCH(1,1)-t forecasts on a sweep's own origins: the stronger benchmark of the distribution.

For every (asset, fold, split, horizon) the sweep's units forecast, a GARCH fitted on that fold's
training window only (analysis.garch) forecasts the same origins; its quantiles per (origin, step)
are cached in the sweep's directory (sweep_garch.parquet, one group at a time), its per-origin
quantile loss joined to the losses table as `garch_ql`. A group whose fit fails, or a sweep whose
data can no longer be read, gets NaN and a note, never an error.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from trainables import layout, quantiles, store

GARCH_FILE = layout.GARCH_PARQUET
GARCH_VERSION = "1"
GROUP = ["asset", "fold_id", "split", "horizon"]
GARCH_COLUMNS = [*GROUP, "origin", "step", "y_true", *quantiles.columns()]


def _units(sweep) -> dict[tuple[str, str], tuple[pd.DataFrame, dict]]:
    """(asset as the tables name it, fold_id) → (the asset's price frame, the fold's dates)."""
    from analysis.runs import fold_id, sweep_prices

    out = {}
    for asset, frame in sweep_prices(sweep).items():
        for fold in sweep.meta["folds"]:
            out[sweep.asset_name(asset), fold_id(sweep.spec, fold, asset)] = (frame, fold)
    return out


def group_forecasts(frame: pd.DataFrame, fold: dict, split: str, horizon: int, origins: np.ndarray) -> pd.DataFrame:
    """GARCH's quantiles per (origin, step) at these origin timestamps of one fold's `split` window."""
    from analysis.garch import garch_quantiles
    from trainables.folds import Fold, windows

    train, _, _ = windows(Fold(**fold), frame["timestamp"])
    stamps = frame["timestamp"].to_numpy()
    rows = np.searchsorted(stamps, np.asarray(origins, dtype=stamps.dtype))
    values = frame["close"].to_numpy("float64")
    q = garch_quantiles(values, train, rows, horizon)
    y = values[rows[:, None] + np.arange(horizon)]
    table = pd.DataFrame(
        {
            "origin": np.repeat(stamps[rows], horizon),
            "step": np.tile(np.arange(1, horizon + 1), len(rows)),
            "y_true": y.ravel(),
        }
    )
    for j, col in enumerate(quantiles.columns()):
        table[col] = q[..., j].ravel()
    return table.assign(split=split, horizon=horizon)


def _key(asset, fold, split, horizon, origin) -> tuple:
    """A cache key whose parts compare the same read from parquet or from the losses table."""
    return str(asset), str(fold), str(split), int(horizon), pd.Timestamp(origin)


def garch_forecasts(sweep_path: str, losses: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """GARCH's quantiles on every origin of `losses` (computed where the cache lacks them), and notes."""
    from analysis.garch import GarchError
    from analysis.runs import read_sweep

    path = store.join(sweep_path, GARCH_FILE)
    cached = store.maybe_read_parquet(path)
    have = cached[0] if cached is not None and cached[1].get("version") == GARCH_VERSION else None
    have = have if have is not None else pd.DataFrame(columns=GARCH_COLUMNS)
    done = {_key(*row) for row in have[[*GROUP, "origin"]].drop_duplicates().itertuples(index=False)}
    notes, parts, units = [], [], None
    for key, part in losses.groupby(GROUP, sort=False):
        origins = np.sort(part["origin"].unique())
        if all(_key(*key, o) in done for o in origins):
            continue
        asset, fold, split, horizon = key
        try:
            units = _units(read_sweep(sweep_path)) if units is None else units
        except Exception as exc:  # the data moved or cannot be read: no GARCH benchmark
            return have, [f"GARCH baseline not computed (the sweep's data is not readable: {str(exc).splitlines()[0]})"]
        if (asset, fold) not in units:
            notes.append(f"GARCH baseline: fold {fold} of asset {asset or '-'} is not in {layout.SWEEP_META}")
            continue
        frame, dates = units[asset, fold]
        try:
            parts.append(group_forecasts(frame, dates, split, int(horizon), origins).assign(asset=asset, fold_id=fold))
        except GarchError as exc:
            notes.append(f"GARCH baseline, asset {asset or '-'} fold {dates['name']} {split}: {exc}")
    if parts:
        have = pd.concat([have, *parts] if len(have) else parts, ignore_index=True)[GARCH_COLUMNS]
        have = have.drop_duplicates([*GROUP, "origin", "step"], keep="last")
        store.write_parquet(path, have, {"version": GARCH_VERSION})
    return have, notes


def with_garch(sweep_path: str, losses: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """`losses` with `garch_ql` (GARCH's quantile loss, horizon mean, per origin), GARCH's
    forecasts per (origin, step), and notes."""
    from trainables.metrics import quantile_loss

    if losses.empty or losses["ql"].isna().all():  # no distribution to judge: no GARCH fits
        return losses.assign(garch_ql=np.nan), pd.DataFrame(columns=GARCH_COLUMNS), []
    garch, notes = garch_forecasts(sweep_path, losses)
    if garch.empty:
        return losses.assign(garch_ql=np.nan), garch, notes
    per_step = garch.assign(
        garch_ql=quantile_loss(garch["y_true"].to_numpy("float64"), garch[quantiles.columns()].to_numpy("float64"))
    )
    per_origin = per_step.groupby([*GROUP, "origin"], sort=False)["garch_ql"].mean().reset_index()
    per_origin["horizon"] = per_origin["horizon"].astype(losses["horizon"].dtype)
    out = losses.drop(columns="garch_ql").merge(per_origin, on=[*GROUP, "origin"], how="left")
    return out[losses.columns], garch, notes
