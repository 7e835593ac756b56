"""Per-origin losses and test-split quantiles of a sweep's complete units, read once and cached.

From each unit's `predictions.parquet`: per (split, origin) the horizon means of the model's and
the naive absolute error and of the model's and the probabilistic random walk's quantile loss
(`losses`), and the test split's actuals and quantiles per (origin, step) (`bands`, what
calibration is judged on). Both are averaged over replica seeds (quantiles by their mean, Vincent
averaging). GARCH's quantile loss on the same origins (analysis.garch) is joined per sweep. Each
sweep's tables are cached in its directory while its units stay the same.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from trainables import layout, quantiles, store

LOSS_VALUES = ["loss", "naive_loss", "ql", "rw_ql", "garch_ql"]
UNIT_KEYS = ["model", "config_id", "asset", "fold_id", "fold_end"]
LOSS_COLUMNS = [*UNIT_KEYS[:2], "split", *UNIT_KEYS[2:], "origin", "horizon", *LOSS_VALUES, "mase_scale"]
QUANTILE_COLUMNS = quantiles.columns() + quantiles.columns(quantiles.RW_PREFIX)
BAND_COLUMNS = [*UNIT_KEYS, "origin", "step", "y_true", *QUANTILE_COLUMNS]
LOSSES_VERSION = "3"  # 2: asset, mase_scale; 3: ql, rw_ql, garch_ql and the test bands
LOSSES_FILE = layout.LOSSES_PARQUET
BANDS_FILE = layout.BANDS_PARQUET


@dataclass
class Tables:
    """A sweep's (or several sweeps') per-origin losses, test bands, and the unit files not read."""

    losses: pd.DataFrame
    bands: pd.DataFrame
    garch: pd.DataFrame = field(default_factory=pd.DataFrame)  # analysis.garch_losses' forecasts
    unreadable: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def unit_losses(table: pd.DataFrame) -> pd.DataFrame:
    """Per (split, origin) of one unit's predictions table, horizon means of: the model's and the
    naive absolute error, the model's and the probabilistic random walk's quantile loss (NaN where
    the table holds no quantiles: older sweeps, point-only models)."""
    from trainables.metrics import quantile_loss

    y = table["y_true"].to_numpy("float64")

    def ql(prefix: str) -> np.ndarray:
        cols = quantiles.columns(prefix)
        if not set(cols) <= set(table.columns):
            return np.full(len(table), np.nan)
        return quantile_loss(y, table[cols].to_numpy("float64"))

    err = table.assign(
        loss=(table["y_pred"] - table["y_true"]).abs(),
        naive_loss=(table["y_naive"] - table["y_true"]).abs(),
        ql=ql(""),
        rw_ql=ql(quantiles.RW_PREFIX),
    )
    g = err.groupby(["split", "origin"], sort=False)
    out = g[["loss", "naive_loss", "ql", "rw_ql"]].mean()
    out["horizon"] = g["step"].max()
    return out.reset_index()


def unit_bands(table: pd.DataFrame) -> pd.DataFrame:
    """The test rows of one unit's predictions table with its quantiles (NaN columns where it has none)."""
    test = table[table["split"] == "test"]
    return test.reindex(columns=["origin", "step", "y_true", *QUANTILE_COLUMNS])


def read_tables(runs: pd.DataFrame) -> Tables:
    """Seed-averaged losses and test bands of every complete unit in `runs` (one read of each file)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    done = runs[runs["status"] == "complete"].drop_duplicates(["model", "config_id", "fold_id", "seed"])
    paths = [layout.TrialDir(str(t)).unit(str(u)).predictions for t, u in zip(done["trial_path"], done["unit"])]
    losses, bands, bad = [], [], []
    for (_, row), raw, path in zip(done.iterrows(), store.maybe_read_many(paths), paths):
        try:
            table = pq.read_table(pa.BufferReader(raw)).to_pandas()
        except Exception:  # missing or truncated file: flagged, the rest goes on
            bad.append(path)
            continue
        unit = {
            "model": row["model"],
            "config_id": row["config_id"],
            "asset": str(row.get("asset") or ""),
            "fold_id": row["fold_id"],
            "fold_end": row["fold_end"],
        }
        losses.append(unit_losses(table).assign(**unit, mase_scale=float(row.get("mase_scale", np.nan))))
        bands.append(unit_bands(table).assign(**unit))
    if not losses:
        return Tables(pd.DataFrame(columns=LOSS_COLUMNS), pd.DataFrame(columns=BAND_COLUMNS), unreadable=bad)
    every = pd.concat(losses, ignore_index=True).assign(garch_ql=np.nan)  # GARCH's: joined per sweep
    keys = [*UNIT_KEYS[:2], "split", *UNIT_KEYS[2:], "origin", "horizon"]
    mean_losses = every.groupby(keys, sort=False)[[*LOSS_VALUES, "mase_scale"]].mean().reset_index()
    every = pd.concat(bands, ignore_index=True)
    mean_bands = every.groupby([*UNIT_KEYS, "origin", "step"], sort=False)[["y_true", *QUANTILE_COLUMNS]].mean()
    return Tables(mean_losses[LOSS_COLUMNS], mean_bands.reset_index()[BAND_COLUMNS], unreadable=bad)


def _units_key(runs: pd.DataFrame) -> str:
    done = runs[runs["status"] == "complete"]
    keys = [LOSSES_VERSION, *sorted(f"{t}/{u}" for t, u in zip(done["trial_id"], done["unit"]))]
    return hashlib.sha1("\n".join(keys).encode()).hexdigest()


def sweep_tables(sweep_path: str, runs: pd.DataFrame) -> Tables:
    """One sweep's tables, cached as sweep_losses.parquet / sweep_bands.parquet while its units stay
    the same; GARCH's losses joined (analysis.garch_losses caches its own fits)."""
    from analysis.garch_losses import GARCH_FILE, with_garch

    key = _units_key(runs)
    paths = store.join(sweep_path, LOSSES_FILE), store.join(sweep_path, BANDS_FILE)
    cached = [store.maybe_read_parquet(p) for p in paths]
    if all(c is not None and c[1].get("units") == key for c in cached):
        meta, garch = cached[0][1], store.maybe_read_parquet(store.join(sweep_path, GARCH_FILE))
        return Tables(
            cached[0][0],
            cached[1][0],
            garch[0] if garch is not None else pd.DataFrame(),
            json.loads(meta.get("unreadable", "[]")),
            json.loads(meta.get("notes", "[]")),
        )
    tables = read_tables(runs)
    tables.losses, tables.garch, tables.notes = with_garch(sweep_path, tables.losses)
    meta = {"units": key, "unreadable": json.dumps(tables.unreadable), "notes": json.dumps(tables.notes)}
    store.write_parquet(paths[0], tables.losses, meta)
    store.write_parquet(paths[1], tables.bands, {"units": key})
    return tables


def tables_of(runs: pd.DataFrame) -> Tables:
    """The tables of every sweep in a tidy table of runs (runs logged by hand have no forecasts)."""
    out = Tables(pd.DataFrame(columns=LOSS_COLUMNS), pd.DataFrame(columns=BAND_COLUMNS))
    parts = []
    tune_runs = runs[runs.get("source", pd.Series("tune", index=runs.index)) == "tune"]
    for path, part in tune_runs.groupby("sweep_path", sort=False):
        one = sweep_tables(str(path), part)
        parts.append(one)
        out.unreadable += one.unreadable
        out.notes += [n for n in one.notes if n not in out.notes]
    losses = [p.losses for p in parts if not p.losses.empty]
    bands = [p.bands for p in parts if not p.bands.empty]
    garch = [p.garch for p in parts if not p.garch.empty]
    if garch:
        out.garch = pd.concat(garch, ignore_index=True)
    if losses:
        out.losses = pd.concat(losses, ignore_index=True)
    if bands:
        out.bands = pd.concat(bands, ignore_index=True)
    return out


def losses_of(runs: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Per-origin losses of every sweep in `runs`, and the unit files that could not be read."""
    tables = tables_of(runs)
    return tables.losses, tables.unreadable
