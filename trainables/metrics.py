"""Forecast metrics: plain functions with a declared direction.

Point metrics are functions of (y_true, y_pred, y_last, scale); arrays have shape (origins,
horizon). `y_last` (origins,) is the last observed value before each origin: the naive
(random-walk) forecast and the reference for direction and trading. `scale` is the in-sample
one-step naive MAE of the training window (MASE's denominator).

Distribution metrics (`dist=True`) are functions of (y_true, q, q_rw, scale): `q` the model's
quantiles at trainables.quantiles.LEVELS, shape (origins, horizon, levels), `q_rw` the
probabilistic random walk's. They are NaN when the model gives no distribution.
Adding a metric = one function + one line in METRICS; rankings and best.py pick it up, and
`analysis/report.py SWEEP --recompute-metrics` adds it to every stored sweep.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from trainables import quantiles

TRADING_DAYS = 252
# Bumped when a stored metric's definition changes (2: one-sided DM, dm_stat, rel_mae, mase);
# `report.py --recompute-metrics` keeps the older values under `metrics_v<old>` in each record.
METRICS_VERSION = 3  # 3: the distribution metrics (ql, sql, wql, rel_ql, msis95, coverage errors)
DM_LEVEL = 0.05  # one-sided level of the "beats naive" verdict


@dataclass(frozen=True)
class Metric:
    fn: Callable[..., float]
    mode: str  # "min" or "max": which way is better
    positive: bool = False  # divides by prices: NaN unless every value is > 0
    dist: bool = False  # scores the distribution: fn(y_true, q, q_rw, scale)


def _naive(y_true: np.ndarray, y_last: np.ndarray) -> np.ndarray:
    return np.broadcast_to(y_last[:, None], y_true.shape)


def _prices(*arrays) -> bool:
    """True when every value is a positive price (ratios of prices are defined)."""
    return all(a is not None and bool(np.all(np.asarray(a) > 0)) for a in arrays)


def pct_mae(y_true, y_pred, y_last=None, scale=None) -> float:
    """Mean |ŷ − y| / |y| × 100 (NaN unless every actual is a positive price)."""
    if not _prices(y_true):
        return float("nan")
    return float(np.mean(np.abs(y_pred - y_true) / np.abs(y_true)) * 100)


def mae(y_true, y_pred, y_last=None, scale=None) -> float:
    return float(np.mean(np.abs(y_pred - y_true)))


def rmse(y_true, y_pred, y_last=None, scale=None) -> float:
    return float(np.sqrt(np.mean((y_pred - y_true) ** 2)))


def r2(y_true, y_pred, y_last=None, scale=None) -> float:
    ss_res = np.sum((y_true - y_pred) ** 2)
    ss_tot = np.sum((y_true - np.mean(y_true)) ** 2)
    return float(1 - ss_res / ss_tot) if ss_tot > 0 else float("nan")


def directional_accuracy(y_true, y_pred, y_last, scale=None) -> float:
    """Share of forecasts whose move from the last observed value has the right sign."""
    last = _naive(y_true, y_last)
    return float(np.mean(np.sign(y_pred - last) == np.sign(y_true - last)))


def naive_pct_mae(y_true, y_pred, y_last, scale=None) -> float:
    """pct_mae of the random-walk forecast (last observed value carried forward)."""
    return pct_mae(y_true, _naive(y_true, y_last))


def rel_mae(y_true, y_pred, y_last, scale=None) -> float:
    """MAE ÷ the naive forecast's MAE on the same origins: < 1 beats the random walk."""
    naive = mae(y_true, _naive(y_true, y_last))
    return mae(y_true, y_pred) / naive if naive > 0 else float("nan")


def mase(y_true, y_pred, y_last=None, scale=None) -> float:
    """MAE ÷ `scale`, the in-sample one-step naive MAE of the training window (Hyndman & Koehler)."""
    return mae(y_true, y_pred) / scale if scale is not None and scale > 0 else float("nan")


def in_sample_scale(values: np.ndarray) -> float:
    """MASE's denominator: mean |y_t − y_{t−1}| over a training window's values."""
    values = np.asarray(values, dtype="float64")
    return float(np.mean(np.abs(np.diff(values)))) if len(values) > 1 else float("nan")


def loss_differential(y_true, y_pred, y_last) -> np.ndarray:
    """Per origin: the model's absolute error minus the naive forecast's, averaged over the horizon."""
    return np.mean(np.abs(y_pred - y_true) - np.abs(_naive(y_true, y_last) - y_true), axis=1)


def hac_variance(d: np.ndarray, h: int) -> float:
    """Newey–West long-run variance of `d` (Bartlett kernel, h − 1 lags): the variance of an
    h-step forecast's per-origin series, whose overlapping origins are correlated up to lag h − 1."""
    d = np.asarray(d, dtype="float64")
    n = len(d)
    dc = d - d.mean()
    var = np.dot(dc, dc) / n
    for lag in range(1, min(h, n)):
        var += 2 * (1 - lag / h) * np.dot(dc[lag:], dc[:-lag]) / n
    return float(var)


def dm_test(d: np.ndarray, h: int) -> tuple[float, float]:
    """Diebold–Mariano test of mean(d) < 0 (the model's loss is lower): (statistic, one-sided p).

    `d` is the per-origin loss differential model − naive. Its variance is the Newey–West (HAC)
    estimate with h − 1 lags, with the Harvey–Leybourne–Newbold small-sample correction and a
    t(n − 1) reference distribution. The statistic is negative when the model does better; p is
    P(T ≤ stat): small when the model is better, above 0.5 when it is worse than naive.
    """
    d = np.asarray(d, dtype="float64")
    d = d[np.isfinite(d)]
    n = len(d)
    if n < 3:
        return float("nan"), float("nan")
    var = hac_variance(d, h)
    if var <= 0:  # a constant differential: the sign alone decides
        stat = float(np.sign(d.mean()) * np.inf) if not np.allclose(d, 0) else 0.0
    else:
        stat = d.mean() / np.sqrt(var / n) * np.sqrt(max(n + 1 - 2 * h + h * (h - 1) / n, 0.0) / n)
    from scipy import stats  # here, not at the top: best.py needs directions, not scipy (~1 s)

    return float(stat), float(stats.t.cdf(stat, df=n - 1))


def dm_stat(y_true, y_pred, y_last, scale=None) -> float:
    """Signed DM statistic vs the naive forecast (absolute-error loss): negative = better than naive."""
    return dm_test(loss_differential(y_true, y_pred, y_last), y_true.shape[1])[0]


def dm_pvalue_vs_naive(y_true, y_pred, y_last, scale=None) -> float:
    """One-sided DM p-value of H1 "the model's absolute error is lower than the naive forecast's"."""
    return dm_test(loss_differential(y_true, y_pred, y_last), y_true.shape[1])[1]


def _strategy_returns(y_true, y_pred, y_last) -> np.ndarray:
    """Daily returns of going long/short the sign of the one-step forecast move."""
    position = np.sign(y_pred[:, 0] - y_last)
    return position * (y_true[:, 0] / y_last - 1)


def sharpe(y_true, y_pred, y_last, scale=None) -> float:
    """Annualised Sharpe ratio of the sign-of-forecast strategy (zero risk-free rate)."""
    if not _prices(y_true, y_last):
        return float("nan")
    r = _strategy_returns(y_true, y_pred, y_last)
    sd = r.std(ddof=1) if len(r) > 1 else 0.0
    return float(r.mean() / sd * np.sqrt(TRADING_DAYS)) if sd > 0 else 0.0


def max_drawdown(y_true, y_pred, y_last, scale=None) -> float:
    """Largest peak-to-trough fall of the strategy's equity curve, as a positive fraction."""
    if not _prices(y_true, y_last):
        return float("nan")
    equity = np.cumprod(1 + _strategy_returns(y_true, y_pred, y_last))
    peak = np.maximum.accumulate(np.concatenate([[1.0], equity]))[1:]
    return float(np.max(1 - equity / peak)) if len(equity) else 0.0


# ------------------------------------------------------------------ the forecast distribution


def quantile_loss(y_true: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Per (origin, step): the mean over QL_LEVELS of 2·ρ_τ(y − q_τ), ρ_τ(u) = u(τ − 1{u < 0}).
    The factor 2 makes the 0.5 level alone the absolute error. NaN where a level is missing."""
    at = [quantiles.index(t) for t in quantiles.QL_LEVELS]
    tau = np.asarray(quantiles.QL_LEVELS)
    u = np.asarray(y_true, dtype="float64")[..., None] - np.asarray(q, dtype="float64")[..., at]
    return np.mean(2 * u * (tau - (u < 0)), axis=-1)


def _mean(values: np.ndarray) -> float:
    """Mean over every (origin, step), NaN unless all are finite (a partial mean would flatter)."""
    values = np.asarray(values, dtype="float64")
    return float(np.mean(values)) if values.size and np.isfinite(values).all() else float("nan")


def ql(y_true, q, q_rw=None, scale=None) -> float:
    """Mean quantile loss over the nine levels 0.1 … 0.9, in the target's units (not the CRPS)."""
    return _mean(quantile_loss(y_true, q))


def sql(y_true, q, q_rw=None, scale=None) -> float:
    """ql ÷ the training window's in-sample naive MAE: fev-bench's scaled quantile loss (m = 1)."""
    return ql(y_true, q) / scale if scale is not None and scale > 0 else float("nan")


def wql(y_true, q, q_rw=None, scale=None) -> float:
    """Σ quantile loss ÷ Σ |y| over every (origin, step): AutoGluon's default WQL."""
    total = np.sum(np.abs(y_true))
    return float(ql(y_true, q) * np.size(y_true) / total) if total > 0 else float("nan")


def rel_ql(y_true, q, q_rw, scale=None) -> float:
    """ql ÷ the probabilistic random walk's ql on the same origins: < 1 beats it."""
    naive = ql(y_true, q_rw) if q_rw is not None else float("nan")
    return ql(y_true, q) / naive if naive > 0 else float("nan")


def _band(q: np.ndarray, band: int) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = quantiles.BANDS[band]
    return q[..., quantiles.index(lo)], q[..., quantiles.index(hi)]


def msis95(y_true, q, q_rw=None, scale=None) -> float:
    """Mean scaled interval score of the 95 % band (M4): width plus 2/α × each miss, ÷ scale."""
    lo, hi = _band(np.asarray(q, dtype="float64"), 95)
    alpha = 0.05
    score = (hi - lo) + 2 / alpha * (lo - y_true) * (y_true < lo) + 2 / alpha * (y_true - hi) * (y_true > hi)
    return _mean(score) / scale if scale is not None and scale > 0 else float("nan")


def coverage(y_true, q, band: int) -> float:
    """Share of (origin, step) whose actual lies inside the central `band` % band."""
    lo, hi = _band(np.asarray(q, dtype="float64"), band)
    return _mean((y_true >= lo) & (y_true <= hi)) if np.isfinite(lo).all() and np.isfinite(hi).all() else float("nan")


def cov80_err(y_true, q, q_rw=None, scale=None) -> float:
    """|coverage of the 80 % band − 0.80| (0: covers as often as it says)."""
    return abs(coverage(y_true, q, 80) - 0.80)


def cov95_err(y_true, q, q_rw=None, scale=None) -> float:
    """|coverage of the 95 % band − 0.95|."""
    return abs(coverage(y_true, q, 95) - 0.95)


METRICS: dict[str, Metric] = {
    "pct_mae": Metric(pct_mae, "min", positive=True),
    "mae": Metric(mae, "min"),
    "rmse": Metric(rmse, "min"),
    "r2": Metric(r2, "max"),
    "directional_accuracy": Metric(directional_accuracy, "max"),
    "naive_pct_mae": Metric(naive_pct_mae, "min", positive=True),
    "rel_mae": Metric(rel_mae, "min"),
    "mase": Metric(mase, "min"),
    "dm_stat": Metric(dm_stat, "min"),
    "dm_pvalue_vs_naive": Metric(dm_pvalue_vs_naive, "min"),
    "sharpe": Metric(sharpe, "max", positive=True),
    "max_drawdown": Metric(max_drawdown, "min", positive=True),
    "ql": Metric(ql, "min", dist=True),
    "sql": Metric(sql, "min", dist=True),
    "wql": Metric(wql, "min", dist=True),
    "rel_ql": Metric(rel_ql, "min", dist=True),
    "msis95": Metric(msis95, "min", dist=True),
    "cov80_err": Metric(cov80_err, "min", dist=True),
    "cov95_err": Metric(cov95_err, "min", dist=True),
}


class UnknownMetric(KeyError):
    """A metric name that is in no METRICS entry (after its val_/test_ prefix)."""


def evaluate(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    y_last: np.ndarray,
    scale: float | None = None,
    q: np.ndarray | None = None,
    q_rw: np.ndarray | None = None,
) -> dict[str, float]:
    """Every metric in METRICS for one window; `scale` is the training window's in-sample naive MAE,
    `q` / `q_rw` the model's and the probabilistic random walk's quantiles (None: NaN for those)."""
    out = {}
    for name, m in METRICS.items():
        if not m.dist:
            out[name] = m.fn(y_true, y_pred, y_last, scale)
        else:
            out[name] = m.fn(y_true, q, q_rw, scale) if q is not None else float("nan")
    return out


def base_name(metric: str) -> str:
    """`val_mean_pct_mae_std` → `pct_mae`: the METRICS key of a (split-prefixed) metric name."""
    base = metric.split("_", 1)[1] if metric.split("_", 1)[0] in ("val", "test") else metric
    return base.removeprefix("mean_").removesuffix("_std")


def mode_of(metric: str) -> str:
    """Direction of a (possibly split-prefixed, e.g. `val_sharpe`) metric name."""
    base = base_name(metric)
    if base == "robust_score":
        return "min"
    if base not in METRICS:
        raise UnknownMetric(metric)
    return METRICS[base].mode


def needs_distribution(metric: str) -> bool:
    """Whether `metric` scores the forecast distribution (NaN for a point-only forecast)."""
    entry = METRICS.get(base_name(metric))
    return bool(entry and entry.dist)


def needs_positive(metric: str) -> bool:
    """Whether `metric` divides by prices (undefined on a target with values ≤ 0)."""
    entry = METRICS.get(base_name(metric))
    return bool(entry and entry.positive)
