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


def test_dm_h1_equals_one_sided_t_test_of_the_loss_differential():
    rng = np.random.default_rng(0)
    y = 100 + rng.normal(0, 1, (50, 1))
    last = y[:, 0] + rng.normal(0, 1, 50)
    pred = y + rng.normal(0, 0.5, (50, 1))
    d = np.abs(pred - y)[:, 0] - np.abs(last - y[:, 0])
    from scipy import stats

    t = stats.ttest_1samp(d, 0, alternative="less")
    assert m.dm_stat(y, pred, last) == pytest.approx(t.statistic)
    assert m.dm_pvalue_vs_naive(y, pred, last) == pytest.approx(t.pvalue)
    assert m.dm_stat(y, pred, last) < 0 and m.dm_pvalue_vs_naive(y, pred, last) < 0.05  # really better


def test_dm_by_hand_both_ways():
    # Absolute errors: model 1, 1, 2, 0; naive 3, 2, 2, 3 → d = -2, -1, 0, -3 (model better).
    y = np.array([[10.0], [10.0], [10.0], [10.0]])
    pred = np.array([[11.0], [9.0], [12.0], [10.0]])
    last = np.array([13.0, 8.0, 12.0, 7.0])
    d = np.array([-2.0, -1.0, 0.0, -3.0])
    n = 4
    sd = np.sqrt(np.sum((d - d.mean()) ** 2) / (n - 1))  # 1.2910
    stat = d.mean() / (sd / np.sqrt(n))  # -1.5 / 0.6455 = -2.3238
    assert stat == pytest.approx(-2.32379, abs=1e-5)
    from scipy import stats

    p = stats.t.cdf(stat, df=3)  # 0.0514: just short of 5 %
    assert m.dm_stat(y, pred, last) == pytest.approx(stat)
    assert m.dm_pvalue_vs_naive(y, pred, last) == pytest.approx(p)
    assert m.dm_pvalue_vs_naive(y, pred, last) == pytest.approx(0.05142, abs=1e-4)
    # Swap the roles: a forecast worse than naive gets the mirrored statistic and p > 0.5.
    worse_pred, worse_last = last[:, None], pred[:, 0]
    assert m.dm_stat(y, worse_pred, worse_last) == pytest.approx(-stat)
    assert m.dm_pvalue_vs_naive(y, worse_pred, worse_last) == pytest.approx(1 - p)
    assert m.dm_pvalue_vs_naive(y, worse_pred, worse_last) > 0.5


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

    assert m.dm_stat(y, pred, last) == pytest.approx(stat)
    assert m.dm_pvalue_vs_naive(y, pred, last) == pytest.approx(stats.t.cdf(stat, n - 1))


def test_dm_constant_differential_and_too_few_origins():
    y = np.full((4, 1), 10.0)
    assert m.dm_test(np.array([-1.0, -1.0, -1.0]), 1) == (-np.inf, 0.0)
    assert m.dm_test(np.array([1.0, 1.0, 1.0]), 1) == (np.inf, 1.0)
    assert m.dm_test(np.zeros(5), 1) == (0.0, 0.5)
    assert np.isnan(m.dm_pvalue_vs_naive(y[:2], y[:2], np.full(2, 9.0)))


def test_scale_free_metrics_by_hand():
    # Model errors 2, 5, 0 (MAE 7/3); naive errors 1, 10, 9 (MAE 20/3) → rel_mae 0.35.
    assert m.rel_mae(Y, P, LAST) == pytest.approx(7 / 20)
    # In-sample naive MAE of 100, 102, 99, 103: (2 + 3 + 4) / 3 = 3 → MASE (7/3) / 3.
    scale = m.in_sample_scale(np.array([100.0, 102.0, 99.0, 103.0]))
    assert scale == pytest.approx(3.0)
    assert m.mase(Y, P, LAST, scale) == pytest.approx(7 / 9)
    assert np.isnan(m.mase(Y, P, LAST, None)) and np.isnan(m.mase(Y, P, LAST, 0.0))
    assert m.evaluate(Y, P, LAST, scale)["mase"] == pytest.approx(7 / 9)


def test_price_ratio_metrics_are_nan_on_a_target_with_values_at_or_below_zero():
    y = np.array([[0.01], [-0.02], [0.0]])
    pred = np.array([[0.0], [0.01], [0.0]])
    last = np.array([0.0, 0.01, -0.02])
    values = m.evaluate(y, pred, last, m.in_sample_scale(np.array([0.01, -0.01, 0.02])))
    for name in ("pct_mae", "naive_pct_mae", "sharpe", "max_drawdown"):
        assert np.isnan(values[name]) and m.needs_positive(f"val_{name}")
    assert np.isfinite(values["rel_mae"]) and np.isfinite(values["mae"]) and np.isfinite(values["mase"])
    assert not m.needs_positive("val_rel_mae")


def test_directions_and_prefixes():
    assert m.mode_of("val_pct_mae") == "min"
    assert m.mode_of("val_sharpe") == "max"
    assert m.mode_of("test_directional_accuracy") == "max"
    assert m.mode_of("robust_score") == "min"
    assert m.mode_of("val_rel_mae") == m.mode_of("test_mase") == m.mode_of("val_dm_stat") == "min"
    with pytest.raises(m.UnknownMetric):
        m.mode_of("val_nonsense")


def test_evaluate_returns_every_metric():
    assert set(m.evaluate(Y, P, LAST)) == set(m.METRICS)
