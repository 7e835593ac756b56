"""Metrics against values computed by hand."""

import numpy as np
import pytest

from trainables import metrics as m

Y = np.array([[100.0], [110.0], [99.0]])
P = np.array([[102.0], [105.0], [99.0]])
LAST = np.array([101.0, 100.0, 108.0])


def test_point_errors_by_hand():
    assert m.pct_mae(Y, P) == pytest.approx((2 / 100 + 5 / 110 + 0) / 3 * 100)
    assert m.mae(Y, P) == pytest.approx(7 / 3)
    assert m.rmse(Y, P) == pytest.approx(np.sqrt((4 + 25 + 0) / 3))
    ss_tot = sum((y - 103) ** 2 for y in (100, 110, 99))
    assert m.r2(Y, P) == pytest.approx(1 - 29 / ss_tot)


def test_naive_and_direction_by_hand():
    # Naive = last value: errors 1, 10, 9.
    assert m.naive_pct_mae(Y, P, LAST) == pytest.approx((1 / 100 + 10 / 110 + 9 / 99) / 3 * 100)
    # Moves: true -1,+10,-9; predicted +1,+5,-9 → right on rows 2 and 3.
    assert m.directional_accuracy(Y, P, LAST) == pytest.approx(2 / 3)


def test_trading_metrics_by_hand():
    # Positions +1, +1, -1; returns -1/101, +10/100, +9/108.
    r = np.array([-1 / 101, 0.1, 9 / 108])
    assert m.sharpe(Y, P, LAST) == pytest.approx(r.mean() / r.std(ddof=1) * np.sqrt(252))
    equity = np.cumprod(1 + r)
    assert m.max_drawdown(Y, P, LAST) == pytest.approx(1 - equity[0] / 1.0)


def test_dm_pvalue_matches_hand_computation_h1():
    rng = np.random.default_rng(0)
    y = 100 + rng.normal(0, 1, (50, 1))
    last = y[:, 0] + rng.normal(0, 1, 50)
    pred = y + rng.normal(0, 0.5, (50, 1))
    d = np.abs(pred - y)[:, 0] - np.abs(last - y[:, 0])
    n = len(d)
    stat = d.mean() / np.sqrt(d.var() / n) * np.sqrt((n - 1) / n)
    from scipy import stats

    assert m.dm_pvalue_vs_naive(y, pred, last) == pytest.approx(2 * stats.t.sf(abs(stat), n - 1))
    assert m.dm_pvalue_vs_naive(y, pred, last) < 0.05  # the model really is better here


def test_dm_uses_hac_lags_for_longer_horizons():
    rng = np.random.default_rng(1)
    y = 100 + rng.normal(0, 1, (40, 3))
    pred = y + rng.normal(0, 1, (40, 3))
    last = y[:, 0] + rng.normal(0, 1, 40)
    d = np.mean(np.abs(pred - y) - np.abs(last[:, None] - y), axis=1)
    dc, n, h = d - d.mean(), 40, 3
    var = dc @ dc / n + 2 * sum((1 - k / h) * (dc[k:] @ dc[:-k]) / n for k in (1, 2))
    stat = d.mean() / np.sqrt(var / n) * np.sqrt((n + 1 - 2 * h + h * (h - 1) / n) / n)
    from scipy import stats

    assert m.dm_pvalue_vs_naive(y, pred, last) == pytest.approx(2 * stats.t.sf(abs(stat), n - 1))


def test_directions_and_prefixes():
    assert m.mode_of("val_pct_mae") == "min"
    assert m.mode_of("val_sharpe") == "max"
    assert m.mode_of("test_directional_accuracy") == "max"
    assert m.mode_of("robust_score") == "min"
    with pytest.raises(KeyError):
        m.mode_of("val_nonsense")


def test_evaluate_returns_every_metric():
    assert set(m.evaluate(Y, P, LAST)) == set(m.METRICS)
