"""One (fold, seed) unit: fit the adapter, forecast val and test from rolling origins, score."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from trainables import layout, quantiles
from trainables.adapter import Adapter, UnitData, Window
from trainables.metrics import METRICS_VERSION, evaluate, in_sample_scale
from trainables.quantiles import Forecast

# The split that chooses a unit's checkpoint / early-stopping epoch. "val" uses the val window the
# sweep then also ranks configurations on; "train-tail" holds out the end of the training window.
EARLY_STOP_ON = ("val", "train-tail")


@dataclass(frozen=True)
class Scoring:
    """How a unit's forecasts are scored: origins `stride` rows apart; `distribution` False keeps
    only the point forecast (`--point-only`: no quantiles stored, NaN distribution metrics)."""

    stride: int = 1
    distribution: bool = True


class UnitError(RuntimeError):
    """A unit could not produce a usable forecast (e.g. the loss diverged)."""


def origins(window: Window, context: int, horizon: int, stride: int = 1) -> np.ndarray:
    """Forecast origins inside `window`: every `stride` rows (every row by default, so overlapping
    h-step forecasts; the DM test's h − 1 HAC lags and the block bootstraps allow for the overlap),
    each with `context` rows before it and `horizon` rows inside the window after it."""
    start = max(window.start, context)
    return np.arange(start, window.stop - horizon + 1, max(1, int(stride)))


def fit_data(data: UnitData, early_stop_on: str) -> UnitData:
    """What `fit` sees. With "train-tail" the last rows of the training window (as many as val
    has, at most a quarter of it) become the validation window and are not trained on, so the
    val window the sweep ranks on never chose a checkpoint."""
    if early_stop_on == "val":
        return data
    if early_stop_on != "train-tail":
        raise ValueError(f"early_stop_on must be one of {EARLY_STOP_ON}, got {early_stop_on!r}")
    tail = min(len(data.val), len(data.train) // 4)
    cut = data.train.stop - tail
    return replace(data, train=Window(data.train.start, cut), val=Window(cut, data.train.stop))


def mase_scale(data: UnitData) -> float:
    """The training window's in-sample one-step naive MAE (stored in the record for recomputation)."""
    return in_sample_scale(data.frame[data.target].to_numpy()[data.train.start : data.train.stop])


def score(
    data: UnitData, adapter: Adapter, split: str, scale: float, scoring: Scoring = Scoring()
) -> tuple[dict[str, float], pd.DataFrame]:
    """Metrics and a long prediction table of `adapter` on the `split` window of `data`: per
    (origin, step) the actual, the point forecast, the naive value, the model's quantiles and the
    probabilistic random walk's (trainables.quantiles' columns)."""
    h, ctx = adapter.horizon(adapter.config), adapter.context_length(adapter.config)
    where = origins(getattr(data, split), ctx, h, scoring.stride)
    if scoring.distribution:
        forecast = adapter.forecast(data, where)
    else:
        forecast = Forecast.point_only(adapter.predict(data, where))
    y_pred = np.asarray(forecast.point, dtype="float64")
    q = quantiles.sort(forecast.quantiles)
    if y_pred.shape != (len(where), h) or q.shape != (len(where), h, len(quantiles.LEVELS)):
        raise UnitError(
            f"{adapter.name}.forecast returned shapes {y_pred.shape} and {q.shape}, expected "
            f"{(len(where), h)} and {(len(where), h, len(quantiles.LEVELS))}"
        )
    if not np.isfinite(y_pred).all():
        raise UnitError(f"non-finite forecast on {split} (training diverged?)")
    if np.isinf(q).any():
        raise UnitError(f"infinite forecast quantile on {split} (training diverged?)")
    close = data.frame[data.target].to_numpy()
    rows = where[:, None] + np.arange(h)
    y_true, y_last = close[rows], close[where - 1]
    if scoring.distribution:
        q_rw = quantiles.random_walk(close[data.train.start : data.train.stop], y_last, h)
    else:
        q_rw = np.full_like(q, np.nan)
    dist = q if np.isfinite(q).any() else None  # a point-only model: NaN distribution metrics
    metrics = {f"{split}_{k}": v for k, v in evaluate(y_true, y_pred, y_last, scale, dist, q_rw).items()}
    ts = data.frame["timestamp"].to_numpy()
    columns = {
        "split": split,
        "origin": np.repeat(ts[where], h),
        "step": np.tile(np.arange(1, h + 1), len(where)),
        "timestamp": ts[rows].ravel(),
        "y_true": y_true.ravel(),
        "y_pred": y_pred.ravel(),
        "y_naive": np.repeat(y_last, h),
    }
    columns.update(zip(quantiles.columns(), q.reshape(-1, len(quantiles.LEVELS)).T))
    columns.update(zip(quantiles.columns(quantiles.RW_PREFIX), q_rw.reshape(-1, len(quantiles.LEVELS)).T))
    return metrics, pd.DataFrame(columns)


def stored_quantiles(part: pd.DataFrame, n: int, h: int, prefix: str = "") -> np.ndarray | None:
    """(origins, horizon, levels) quantiles of one split's rows sorted by (origin, step); None when
    the table predates them (older sweeps) or holds none (a point-only model)."""
    cols = quantiles.columns(prefix)
    if not set(cols) <= set(part.columns):
        return None
    q = part[cols].to_numpy("float64").reshape(n, h, len(cols))
    return q if np.isfinite(q).any() else None


def table_metrics(table: pd.DataFrame, scale: float | None) -> dict[str, float]:
    """Every metric of every split of a stored predictions table (as `score` wrote it)."""
    out: dict[str, float] = {}
    for split, part in table.groupby("split", sort=False):
        part = part.sort_values(["origin", "step"])
        h = int(part["step"].max())
        n = len(part) // h
        y_true = part["y_true"].to_numpy("float64").reshape(n, h)
        y_pred = part["y_pred"].to_numpy("float64").reshape(n, h)
        y_last = part["y_naive"].to_numpy("float64").reshape(n, h)[:, 0]
        q, q_rw = stored_quantiles(part, n, h), stored_quantiles(part, n, h, quantiles.RW_PREFIX)
        out.update({f"{split}_{k}": v for k, v in evaluate(y_true, y_pred, y_last, scale, q, q_rw).items()})
    return out


def evaluate_into(
    adapter: Adapter, data: UnitData, out_dir: str, scoring: Scoring = Scoring()
) -> tuple[dict[str, float], float]:
    """Score a fitted adapter on val and test as `scoring` says; write the forecasts
    to `out_dir`/predictions.parquet. Returns the metrics and the MASE scale (the training
    window's naive MAE)."""
    metrics, tables, scale = {}, [], mase_scale(data)
    for split in ("val", "test"):
        m, t = score(data, adapter, split, scale, scoring)
        metrics.update(m)
        tables.append(t)
    os.makedirs(out_dir, exist_ok=True)
    pd.concat(tables, ignore_index=True).to_parquet(layout.UnitDir(out_dir).predictions, index=False)
    return metrics, scale


def run_unit(
    adapter_cls: type[Adapter],
    config: dict[str, Any],
    data: UnitData,
    seed: int,
    out_dir: str,
    log_dir: str | None,
    device: str = "cpu",
    early_stop_on: str = "val",
    on_validation: Callable[[int, float], None] | None = None,
    scoring: Scoring = Scoring(),
) -> dict[str, Any]:
    """Fit, evaluate, and write predictions.parquet + model/ into `out_dir`; return the record.

    `on_validation(step, val_loss)` is called at each of the fit's validations (Adapter.validated);
    forecasts are scored as `scoring` says.
    """
    start = time.perf_counter()
    adapter = adapter_cls(config, seed, device)
    adapter.on_validation = on_validation
    info = dict(adapter.fit(fit_data(data, early_stop_on), log_dir))
    if info.get("checkpoint_chosen_on") == "val":
        info["checkpoint_chosen_on"] = early_stop_on  # the split the adapter saw as val
    train_seconds = time.perf_counter() - start
    metrics, scale = evaluate_into(adapter, data, out_dir, scoring)
    adapter.save(layout.UnitDir(out_dir).model)
    return {
        "metrics": metrics,
        "metrics_version": METRICS_VERSION,
        "mase_scale": scale,
        "train_seconds": train_seconds,
        "info": info,
    }


def run_global_unit(
    adapter_cls: type[Adapter],
    config: dict[str, Any],
    datas: dict[str, UnitData],
    seed: int,
    out_dirs: dict[str, str],
    log_dir: str | None,
    device: str = "cpu",
    early_stop_on: str = "val",
    on_validation: Callable[[int, float], None] | None = None,
    scoring: Scoring = Scoring(),
) -> dict[str, dict[str, Any]]:
    """One model fitted on every asset's training window (`Adapter.fit_many`), then evaluated on
    each asset as `run_unit` does: predictions.parquet into each asset's `out_dirs` entry, the
    model once, into the first asset's. Returns each asset's record (`model_in`: the asset whose
    directory holds the model; the fit's seconds on the first asset's record, 0 on the others)."""
    start = time.perf_counter()
    adapter = adapter_cls(config, seed, device)
    adapter.on_validation = on_validation
    info = dict(adapter.fit_many({a: fit_data(d, early_stop_on) for a, d in datas.items()}, log_dir))
    if info.get("checkpoint_chosen_on") == "val":
        info["checkpoint_chosen_on"] = early_stop_on
    train_seconds = time.perf_counter() - start
    first = next(iter(datas))
    records = {}
    for asset, data in datas.items():
        metrics, scale = evaluate_into(adapter, data, out_dirs[asset], scoring)
        records[asset] = {
            "metrics": metrics,
            "metrics_version": METRICS_VERSION,
            "mase_scale": scale,
            "train_seconds": train_seconds if asset == first else 0.0,
            "model_in": first,
            "info": info,
        }
    adapter.save(layout.UnitDir(out_dirs[first]).model)
    return records
