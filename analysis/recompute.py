"""Recompute every unit's metrics from its stored forecasts, without training.

    python analysis/report.py results/tft_quick --recompute-metrics

Each complete unit's `predictions.parquet` holds what the metrics need (actual, forecast and
naive value per origin and step); MASE also needs the training window's in-sample naive MAE,
which records store as `mase_scale` (older records: recomputed from the sweep's data and folds).
A record whose `metrics_version` is older than trainables.metrics.METRICS_VERSION keeps its
original metrics under `metrics_v<old version>`; `metrics` is rewritten in place, one whole
file at a time (atomic rename locally, a single PUT on s3://). Units whose files cannot be read
are left as they are and reported.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd

from analysis.runs import Sweep, read_sweep
from trainables import layout, store
from trainables.metrics import METRICS_VERSION
from trainables.unit import table_metrics


@dataclass
class Recomputed:
    """What one recomputation did."""

    units: int = 0
    rewritten: int = 0
    problems: list[str] = field(default_factory=list)


def _scales(sweep: Sweep) -> dict[tuple[str | None, str], float]:
    """(asset, fold name) → MASE scale of its training window, from the sweep's own data (for older records)."""
    from analysis.runs import sweep_prices
    from trainables.folds import Fold, windows
    from trainables.metrics import in_sample_scale

    out = {}
    for asset, frame in sweep_prices(sweep).items():
        close = frame["close"].to_numpy()
        for f in sweep.meta["folds"]:
            train, _, _ = windows(Fold(**f), frame["timestamp"])
            out[asset, f["name"]] = in_sample_scale(close[train.start : train.stop])
    return out


def _unit_dirs(sweep: Sweep) -> list[str]:
    out = []
    sd = layout.SweepDir(sweep.path)
    for name in sd.trial_names():
        trial = sd.trial(name)
        out += [trial.unit(key).path for key in trial.unit_keys()]
    return out


def recompute_sweep(path: str) -> Recomputed:
    """Rewrite the metrics of every complete unit of the sweep at `path` from its predictions."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sweep = read_sweep(path)
    dirs = _unit_dirs(sweep)
    records = store.maybe_read_many([layout.UnitDir(d).record for d in dirs])
    tables = store.maybe_read_many([layout.UnitDir(d).predictions for d in dirs])
    out, scales = Recomputed(), None
    for unit, raw, table in zip(dirs, records, tables):
        if raw is None:
            continue  # not complete: nothing to recompute
        out.units += 1
        try:
            record = json.loads(raw)
            predictions = pq.read_table(pa.BufferReader(table)).to_pandas()
        except Exception as exc:  # corrupt record or forecasts: leave the unit as it is
            out.problems.append(f"{unit}: {type(exc).__name__}: {str(exc).splitlines()[0][:120] if str(exc) else ''}")
            continue
        scale = record.get("mase_scale")
        if scale is None:
            try:
                scales = _scales(sweep) if scales is None else scales
                scale = scales.get((record.get("asset"), record.get("fold")), np.nan)
            except Exception as exc:  # the data moved: MASE stays NaN, the rest is recomputed
                scales = {}
                out.problems.append(f"MASE scale not recomputed (data not readable: {str(exc).splitlines()[0]})")
            record["mase_scale"] = scale
        old = int(record.get("metrics_version", 1))
        if old != METRICS_VERSION and f"metrics_v{old}" not in record:
            record[f"metrics_v{old}"] = record.get("metrics", {})
        record["metrics"] = table_metrics(predictions, _finite(scale))
        record["metrics_version"] = METRICS_VERSION
        record["metrics_recomputed"] = datetime.now(UTC).isoformat()
        layout.UnitDir(unit).write_record(record)
        out.rewritten += 1
    return out


def _finite(value) -> float | None:
    return float(value) if value is not None and pd.notna(value) else None
