"""The forecast-distribution contract: sample quantiles, sorting, the probabilistic random walk,
and the distribution metrics (scoringrules as the oracle where it has the formula)."""

import numpy as np
import pytest
from scipy import stats

from trainables import quantiles
from trainables.metrics import METRICS, coverage, evaluate, hac_variance, mode_of, quantile_loss

LEVELS = np.asarray(quantiles.LEVELS)


def _band_coverage(draws: int, method: str, reps: int = 4000) -> float:
    rng = np.random.default_rng(0)
    samples, y = rng.standard_normal((reps, draws)), rng.standard_normal(reps)
    if method == "ours":
        q = quantiles.from_samples(samples)
        lo, hi = q[:, 0], q[:, -1]
    else:
        lo, hi = np.quantile(samples, [0.025, 0.975], axis=1)
    return float(np.mean((y >= lo) & (y <= hi)))


def test_sample_quantiles_cover_as_they_say_where_numpys_default_undercovers():
    assert abs(_band_coverage(50, "ours") - 0.95) < 0.015
    assert abs(_band_coverage(256, "ours") - 0.95) < 0.015
    assert _band_coverage(50, "linear") < 0.93  # numpy's default: ~0.914 at 50 draws


def test_a_level_the_draw_count_cannot_resolve_is_nan_not_a_guess():
    q = quantiles.from_samples(np.arange(38.0))  # 0.025 × 39 < 1: neither tail level is resolved
    assert np.isnan(q[0]) and np.isnan(q[-1]) and np.isfinite(q[1:-1]).all()
    assert np.isfinite(quantiles.from_samples(np.arange(39.0))).all()
    # Weibull rule by hand: 9 draws 1..9, level 0.1 → position 0.1 × 10 = 1st draw, 0.5 → 5th.
    q9 = quantiles.from_samples(np.arange(1.0, 10.0))
    assert q9[quantiles.index(0.1)] == 1.0 and q9[quantiles.index(0.5)] == 5.0
    assert np.isnan(quantiles.from_samples(np.zeros((2, 0)))).all()


def test_crossing_quantiles_are_sorted_and_nan_levels_stay_in_place():
    q = np.array([[np.nan, 3.0, 1.0, 2.0, np.nan], [5.0, 4.0, 3.0, 2.0, 1.0]])
    out = quantiles.sort(q)
    np.testing.assert_array_equal(out[0], [np.nan, 1.0, 2.0, 3.0, np.nan])
    np.testing.assert_array_equal(out[1], [1.0, 2.0, 3.0, 4.0, 5.0])
    # Rearrangement never raises the pinball loss.
    rng = np.random.default_rng(1)
    crossed = rng.normal(size=(200, 1, len(LEVELS)))
    y = rng.normal(size=(200, 1))
    assert quantile_loss(y, quantiles.sort(crossed)).mean() <= quantile_loss(y, crossed).mean()


def test_probabilistic_random_walk_by_hand():
    train = np.array([100.0, 110.0, 99.0, 108.9, 119.79])  # 1-step ratios 1.1, 0.9, 1.1, 1.1
    q = quantiles.random_walk(train, np.array([200.0]), horizon=1)
    ratios = np.array([1.1, 0.9, 1.1, 1.1])
    np.testing.assert_allclose(q[0, 0], 200 * quantiles.from_samples(ratios), rtol=1e-12)
    # Not a positive price: additive moves.
    train = np.array([0.0, 1.0, -1.0, 2.0])  # 1-step moves 1, -2, 3; 2-step -1, 1
    q = quantiles.random_walk(train, np.array([5.0]), horizon=2)
    np.testing.assert_allclose(q[0, 0], 5 + quantiles.from_samples(np.array([1.0, -2.0, 3.0])))
    np.testing.assert_allclose(q[0, 1], 5 + quantiles.from_samples(np.array([-1.0, 1.0])))


def _normal_forecast(n=300, h=3, scale=1.0, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.normal(size=(n, h))
    q = np.broadcast_to(stats.norm.ppf(LEVELS) * scale, (n, h, len(LEVELS))).copy()
    return y, q


def test_ql_is_scoringrules_quantile_crps_on_the_nine_levels():
    import scoringrules as sr

    y, q = _normal_forecast()
    nine = [quantiles.index(t) for t in quantiles.QL_LEVELS]
    oracle = sr.crps_quantile(y, q[..., nine], np.asarray(quantiles.QL_LEVELS))
    np.testing.assert_allclose(quantile_loss(y, q), oracle, rtol=1e-12)
    assert METRICS["ql"].fn(y, q) == pytest.approx(float(np.mean(oracle)))


def test_distribution_metrics_by_hand():
    # One origin, one step, y = 1; every quantile at 0: QL_τ = 2 τ (y − q) = 2τ, mean over 0.1…0.9 = 1.
    y = np.array([[1.0]])
    q = np.zeros((1, 1, len(LEVELS)))
    m = evaluate(y, np.zeros((1, 1)), np.array([0.0]), scale=0.5, q=q, q_rw=q * 0 - 1.0)
    assert m["ql"] == pytest.approx(1.0)
    assert m["sql"] == pytest.approx(2.0)  # ÷ scale 0.5
    assert m["wql"] == pytest.approx(1.0)  # Σ QL / Σ |y| = 1 / 1
    # The random walk at −1: QL_τ = 2τ · 2 → mean 2; rel_ql = 1 / 2.
    assert m["rel_ql"] == pytest.approx(0.5)
    # 95 % band [0, 0], y = 1 above it: width 0 + 2/0.05 × 1 = 40, ÷ scale 0.5 = 80.
    assert m["msis95"] == pytest.approx(80.0)
    assert m["cov80_err"] == pytest.approx(0.8) and m["cov95_err"] == pytest.approx(0.95)


def test_calibrated_bands_have_small_coverage_errors_and_narrow_ones_do_not():
    y, q = _normal_forecast(n=4000, h=1)
    assert abs(coverage(y, q, 80) - 0.8) < 0.02 and abs(coverage(y, q, 95) - 0.95) < 0.01
    _, narrow = _normal_forecast(n=4000, h=1, scale=0.5)
    assert METRICS["cov80_err"].fn(y, narrow) > 0.2


def test_a_point_only_forecast_gets_nan_distribution_metrics_and_every_one_has_a_direction():
    y = np.ones((3, 2))
    m = evaluate(y, y, np.ones(3), 1.0)  # no quantiles
    for name, metric in METRICS.items():
        if metric.dist:
            assert np.isnan(m[name]) and mode_of(f"val_{name}") == "min"
    point = quantiles.Forecast.point_only(y)
    assert point.quantiles.shape == (3, 2, len(LEVELS)) and np.isnan(point.quantiles).all()


def test_hac_variance_by_hand():
    d = np.array([1.0, -1.0, 1.0, -1.0])  # mean 0; γ0 = 1, γ1 = −3/4
    assert hac_variance(d, 1) == pytest.approx(1.0)
    assert hac_variance(d, 2) == pytest.approx(1.0 + 2 * 0.5 * (-0.75))


@pytest.mark.parametrize("horizon", [1, 5])
def test_dm_test_keeps_its_size_on_overlapping_forecasts_of_a_true_random_walk(horizon):
    """Two forecasters of equal skill on a random walk, origins one row apart (h-step forecasts
    overlap): the one-sided DM test rejects at 5 % about 5 % of the time."""
    from trainables.metrics import dm_test

    rng = np.random.default_rng(horizon)
    rejections, reps, n = 0, 600, 250
    for _ in range(reps):
        walk = np.cumsum(rng.normal(size=n + horizon + 1))
        origins = np.arange(1, n + 1)
        future = walk[origins[:, None] + np.arange(horizon)]
        last = walk[origins - 1][:, None]
        a = last + rng.normal(scale=0.5, size=(n, 1))  # the same skill: last value ± noise
        b = last + rng.normal(scale=0.5, size=(n, 1))
        d = np.mean(np.abs(a - future) - np.abs(b - future), axis=1)
        rejections += dm_test(d, horizon)[1] < 0.05
    assert 0.025 < rejections / reps < 0.085


def test_a_stored_table_without_quantiles_keeps_its_point_metrics_and_gets_nan_distribution_ones():
    """Sweeps made before the distribution was stored: recomputation gives the same point metrics."""
    import pandas as pd

    from trainables.unit import table_metrics

    rng = np.random.default_rng(0)
    n, h = 40, 2
    y = 100 + rng.normal(size=(n, h)).cumsum(axis=0)
    q = y[..., None] + stats.norm.ppf(LEVELS)
    table = pd.DataFrame(
        {
            "split": "test",
            "origin": np.repeat(np.arange(n), h),
            "step": np.tile(np.arange(1, h + 1), n),
            "y_true": y.ravel(),
            "y_pred": (y + 0.5).ravel(),
            "y_naive": np.repeat(y[:, 0] - 1, h),
        }
    )
    for j, col in enumerate(quantiles.columns()):
        table[col] = q[..., j].ravel()
        table[quantiles.column(LEVELS[j], quantiles.RW_PREFIX)] = q[..., j].ravel() + 1
    new = table_metrics(table, 1.0)
    old = table_metrics(table[["split", "origin", "step", "y_true", "y_pred", "y_naive"]], 1.0)
    assert np.isfinite(new["test_ql"]) and new["test_rel_ql"] < 1  # the random walk is shifted off the truth
    for name, metric in METRICS.items():
        key = f"test_{name}"
        if metric.dist:
            assert np.isnan(old[key])
        else:
            np.testing.assert_equal(old[key], new[key])
