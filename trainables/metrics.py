"""Forecast metrics: plain functions of (y_true, y_pred, y_last) with a declared direction.

Arrays have shape (origins, horizon). `y_last` (origins,) is the last observed value before
each origin: the naive (random-walk) forecast and the reference for direction and trading.
Adding a metric = one function + one line in METRICS; rankings and best.py pick it up.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

TRADING_DAYS = 252


@dataclass(frozen=True)
class Metric:
    fn: Callable[[np.ndarray, np.ndarray, np.ndarray], float]
    mode: str  # "min" or "max": which way is better


def _naive(y_true: np.ndarray, y_last: np.ndarray) -> np.ndarray:
    return np.broadcast_to(y_last[:, None], y_true.shape)


def pct_mae(y_true, y_pred, y_last=None) -> float:
    """Mean |ŷ − y| / |y| × 100."""
    return float(np.mean(np.abs(y_pred - y_true) / np.abs(y_true)) * 100)


def mae(y_true, y_pred, y_last=None) -> float:
    return float(np.mean(np.abs(y_pred - y_true)))


def rmse(y_true, y_pred, y_last=None) -> float:
    return float(np.sqrt(np.mean((y_pred - y_true) ** 2)))


def r2(y_true, y_pred, y_last=None) -> float:
    ss_res = np.sum((y_true - y_pred) ** 2)
    ss_tot = np.sum((y_true - np.mean(y_true)) ** 2)
    return float(1 - ss_res / ss_tot) if ss_tot > 0 else float("nan")


def directional_accuracy(y_true, y_pred, y_last) -> float:
    """Share of forecasts whose move from the last observed value has the right sign."""
    last = _naive(y_true, y_last)
    return float(np.mean(np.sign(y_pred - last) == np.sign(y_true - last)))


def naive_pct_mae(y_true, y_pred, y_last) -> float:
    """pct_mae of the random-walk forecast (last observed value carried forward)."""
    return pct_mae(y_true, _naive(y_true, y_last))


def dm_pvalue_vs_naive(y_true, y_pred, y_last) -> float:
    """Two-sided Diebold–Mariano p-value, absolute-error loss, model vs naive.

    The loss differential per origin is averaged over the horizon; its variance is the
    Newey–West (HAC) estimate with h − 1 lags, with the Harvey–Leybourne–Newbold small-sample
    correction and a t(n − 1) reference distribution.
    """
    d = np.mean(np.abs(y_pred - y_true) - np.abs(_naive(y_true, y_last) - y_true), axis=1)
    n, h = len(d), y_true.shape[1]
    if n < 3:
        return float("nan")
    dc = d - d.mean()
    var = np.dot(dc, dc) / n
    for lag in range(1, h):
        var += 2 * (1 - lag / h) * np.dot(dc[lag:], dc[:-lag]) / n
    if var <= 0:
        return 1.0 if np.allclose(d, 0) else 0.0
    stat = d.mean() / np.sqrt(var / n)
    stat *= np.sqrt((n + 1 - 2 * h + h * (h - 1) / n) / n)
    from scipy import stats  # here, not at the top: best.py needs directions, not scipy (~1 s)

    return float(2 * stats.t.sf(abs(stat), df=n - 1))


def _strategy_returns(y_true, y_pred, y_last) -> np.ndarray:
    """Daily returns of going long/short the sign of the one-step forecast move."""
    position = np.sign(y_pred[:, 0] - y_last)
    return position * (y_true[:, 0] / y_last - 1)


def sharpe(y_true, y_pred, y_last) -> float:
    """Annualised Sharpe ratio of the sign-of-forecast strategy (zero risk-free rate)."""
    r = _strategy_returns(y_true, y_pred, y_last)
    sd = r.std(ddof=1) if len(r) > 1 else 0.0
    return float(r.mean() / sd * np.sqrt(TRADING_DAYS)) if sd > 0 else 0.0


def max_drawdown(y_true, y_pred, y_last) -> float:
    """Largest peak-to-trough fall of the strategy's equity curve, as a positive fraction."""
    equity = np.cumprod(1 + _strategy_returns(y_true, y_pred, y_last))
    peak = np.maximum.accumulate(np.concatenate([[1.0], equity]))[1:]
    return float(np.max(1 - equity / peak)) if len(equity) else 0.0


METRICS: dict[str, Metric] = {
    "pct_mae": Metric(pct_mae, "min"),
    "mae": Metric(mae, "min"),
    "rmse": Metric(rmse, "min"),
    "r2": Metric(r2, "max"),
    "directional_accuracy": Metric(directional_accuracy, "max"),
    "naive_pct_mae": Metric(naive_pct_mae, "min"),
    "dm_pvalue_vs_naive": Metric(dm_pvalue_vs_naive, "min"),
    "sharpe": Metric(sharpe, "max"),
    "max_drawdown": Metric(max_drawdown, "min"),
}


def evaluate(y_true: np.ndarray, y_pred: np.ndarray, y_last: np.ndarray) -> dict[str, float]:
    """Every metric in METRICS for one window."""
    return {name: m.fn(y_true, y_pred, y_last) for name, m in METRICS.items()}


def mode_of(metric: str) -> str:
    """Direction of a (possibly split-prefixed, e.g. `val_sharpe`) metric name."""
    base = metric.split("_", 1)[1] if metric.split("_", 1)[0] in ("val", "test") else metric
    base = base.removeprefix("mean_").removesuffix("_std")
    if base == "robust_score":
        return "min"
    if base not in METRICS:
        raise KeyError(metric)
    return METRICS[base].mode
