"""The baselines family (trainables/baselines.py): hand-computed formulas, statsforecast's own
forecasts, no look-ahead, save/load, and a real sweep of all six methods."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pandas as pd
import pytest
from conftest import TINY_FOLDS
from scipy.stats import norm

from trainables import quantiles
from trainables.adapter import UnitData, Window
from trainables.baselines import METHODS, STATSFORECAST, BaselinesAdapter
from trainables.quantiles import LEVELS

Z = {level: float(norm.ppf(level)) for level in LEVELS}
SF_METHODS = list(STATSFORECAST)


def frame_of(values) -> pd.DataFrame:
    values = np.asarray(values, dtype="float64")
    return pd.DataFrame({"timestamp": pd.bdate_range("2020-01-01", periods=len(values)), "close": values})


def unit(frame: pd.DataFrame, train: int, val: int) -> UnitData:
    """Train on rows [0, train), val on the next `val` rows, test on the rest."""
    n = len(frame)
    return UnitData(frame, (), Window(0, train), Window(train, train + val), Window(train + val, n))


def spx(n: int) -> pd.DataFrame:
    """The first `n` days of the S&P 500 (arch's embedded data, adjusted close)."""
    from arch.data import sp500

    return frame_of(sp500.load()["Adj Close"].to_numpy("float64")[:n])


def fitted(method: str, data: UnitData, **config) -> BaselinesAdapter:
    adapter = BaselinesAdapter({"method": method, "context_length": 64, "prediction_length": 2, **config}, seed=0)
    adapter.fit(data, None)
    return adapter


def test_drift_forecasts_and_quantiles_by_hand():
    # Training 10, 11, 13, 12, 14: slope (14 − 10) / 4 = 1; differences around it 0, 1, −2, 1, so
    # σ̂² = 6 / 3 = 2; T = 5. From the origin after y = 15: 16 and 17, sd sqrt(2·1·1.2), sqrt(2·2·1.4).
    data = unit(frame_of([10, 11, 13, 12, 14, 15, 13, 12]), train=5, val=1)
    f = fitted("drift", data).forecast(data, np.array([6]))
    np.testing.assert_allclose(f.point, [[16.0, 17.0]])
    sd = [math.sqrt(2.4), math.sqrt(5.6)]
    expected = [[mean + Z[q] * s for q in LEVELS] for mean, s in zip([16, 17], sd)]
    np.testing.assert_allclose(f.quantiles[0], expected, rtol=1e-12)


def test_mean_return_forecasts_and_quantiles_by_hand():
    # Log returns a, b, a with a = log 1.1, b = log 0.9: μ = log(1.1² · 0.9) / 3 = log(1.089) / 3,
    # and the sample std is |a − b| / sqrt 3. From the origin after y = 120.
    data = unit(frame_of([100, 110, 99, 108.9, 120, 130]), train=4, val=1)
    f = fitted("mean", data).forecast(data, np.array([5]))
    mu, sigma = math.log(1.089) / 3, math.log(1.1 / 0.9) / math.sqrt(3)
    np.testing.assert_allclose(f.point, [[120 * 1.089 ** (1 / 3), 120 * 1.089 ** (2 / 3)]], rtol=1e-12)
    expected = [[120 * math.exp(k * mu + Z[q] * sigma * math.sqrt(k)) for q in LEVELS] for k in (1, 2)]
    np.testing.assert_allclose(f.quantiles[0], expected, rtol=1e-12)


def test_the_mean_method_on_a_target_that_is_not_all_positive_by_hand():
    # Training 1, −1, 2, 0, 3: mean 1, s² = (0 + 4 + 1 + 1 + 4) / 4 = 2.5, s·sqrt(1 + 1/5) = sqrt 3.
    data = unit(frame_of([1, -1, 2, 0, 3, 5, -4, 2]), train=5, val=1)
    f = fitted("mean", data).forecast(data, np.array([6, 7]))
    np.testing.assert_allclose(f.point, np.ones((2, 2)))
    np.testing.assert_allclose(f.quantiles, np.broadcast_to([1 + Z[q] * math.sqrt(3) for q in LEVELS], (2, 2, 11)))


def test_the_random_walk_is_the_last_value_with_quantiles_random_walk():
    data = unit(spx(400), train=300, val=50)
    where = np.array([300, 320, 360])
    f = fitted("rw", data, prediction_length=3).forecast(data, where)
    y = data.frame["close"].to_numpy()
    np.testing.assert_array_equal(f.point, np.repeat(y[where - 1, None], 3, axis=1))
    np.testing.assert_array_equal(f.quantiles, quantiles.random_walk(y[:300], y[where - 1], 3))
    assert np.isfinite(f.quantiles).all()


@pytest.mark.parametrize("method", SF_METHODS)
def test_the_first_forecast_after_training_is_statsforecasts_own(method):
    """Context = the training window: `forward` on the fitted model gives what StatsForecast fits
    and forecasts on that series (log space, then exp)."""
    from statsforecast import StatsForecast, models

    data = unit(spx(300), train=250, val=25)
    adapter = fitted(method, data, context_length=250)
    f = adapter.forecast(data, np.array([250]))
    name = STATSFORECAST[method]
    y = np.log(data.frame["close"].to_numpy()[:250])
    df = pd.DataFrame({"unique_id": "spx", "ds": np.arange(250), "y": y})
    own = StatsForecast(models=[getattr(models, name)(season_length=1)], freq=1).forecast(df=df, h=2, level=[80])
    np.testing.assert_allclose(f.point[0], np.exp(own[name]), rtol=1e-6)
    np.testing.assert_allclose(f.quantiles[0, :, LEVELS.index(0.1)], np.exp(own[f"{name}-lo-80"]), rtol=1e-6)
    np.testing.assert_allclose(f.quantiles[0, :, LEVELS.index(0.9)], np.exp(own[f"{name}-hi-80"]), rtol=1e-6)


@pytest.mark.parametrize("method", METHODS)
def test_no_forecast_reads_values_at_or_after_its_origin(method):
    frame = spx(700)
    data = unit(frame, train=500, val=100)
    adapter = fitted(method, data, prediction_length=3)
    for origin in (500, 560, 600, 650):
        before = adapter.forecast(data, np.array([origin]))
        assert np.isfinite(before.point).all() and np.isfinite(before.quantiles).all()
        changed = frame.copy()
        changed.loc[origin:, "close"] *= 3
        after = adapter.forecast(unit(changed, 500, 100), np.array([origin]))
        np.testing.assert_array_equal(before.point, after.point)
        np.testing.assert_array_equal(before.quantiles, after.quantiles)
        refit = fitted(method, unit(changed, 500, 100), prediction_length=3)  # the fit reads the training rows only
        np.testing.assert_array_equal(before.quantiles, refit.forecast(unit(changed, 500, 100), [origin]).quantiles)
        # A control: the row just before the origin does move the forecast and its quantiles.
        control = frame.copy()
        control.loc[origin - 1, "close"] *= 1.1
        moved = adapter.forecast(unit(control, 500, 100), np.array([origin]))
        assert not np.allclose(before.point, moved.point) and not np.allclose(before.quantiles, moved.quantiles)


@pytest.mark.parametrize("method", METHODS)
def test_save_and_load_give_the_same_forecast(method, tmp_path):
    data = unit(spx(400), train=300, val=50)
    adapter = fitted(method, data, prediction_length=3)
    adapter.save(str(tmp_path / "m"))
    loaded = BaselinesAdapter.load(str(tmp_path / "m"))
    where = np.arange(300, 397, 8)
    a, b = adapter.forecast(data, where), loaded.forecast(data, where)
    np.testing.assert_array_equal(a.point, b.point)
    np.testing.assert_array_equal(a.quantiles, b.quantiles)
    assert loaded.config == adapter.config and loaded.method == method


@pytest.mark.parametrize("method", SF_METHODS)
def test_statsforecast_quantiles_rise_with_the_level_around_the_point(method):
    data = unit(spx(1200), train=1000, val=100)
    f = fitted(method, data, context_length=256, prediction_length=5).forecast(data, np.arange(1000, 1196, 3))
    q = f.quantiles
    assert np.isfinite(q).all() and (np.diff(q, axis=-1) > 0).all()
    assert (q[..., LEVELS.index(0.1)] < f.point).all() and (f.point < q[..., LEVELS.index(0.9)]).all()
    np.testing.assert_array_equal(f.point, q[..., LEVELS.index(0.5)])
    if method != "auto_theta":  # Gaussian in log space: each level's offset from the median is σ·z_q
        offset = np.log(q) - np.log(f.point)[..., None]
        z = np.array([Z[level] for level in LEVELS])
        sigma = offset[..., LEVELS.index(0.9)] / Z[0.9]
        np.testing.assert_allclose(offset, sigma[..., None] * z, rtol=1e-6, atol=1e-12)


@pytest.mark.parametrize("method", ["auto_arima", "auto_ets"])
def test_arima_and_ets_keep_the_training_windows_variance_at_every_origin(method):
    """Their log-space intervals have the same width at every origin, years after the training window
    too (statsforecast's AutoETS.forward re-estimates σ² from a context whose first residual is
    measured against the level fitted at the training window's start: ~3× wider bands there)."""
    data = unit(spx(5031), train=1000, val=100)
    f = fitted(method, data, context_length=512, prediction_length=3).forecast(data, np.array([1000, 2500, 4000, 5000]))
    width = np.log(f.quantiles[..., LEVELS.index(0.9)]) - np.log(f.quantiles[..., LEVELS.index(0.1)])
    np.testing.assert_allclose(width, np.broadcast_to(width[0], width.shape), rtol=1e-9)


@pytest.mark.parametrize(
    ("method", "prefix"), [("auto_arima", "ARIMA("), ("auto_ets", "ETS("), ("auto_theta", "Theta(")]
)
def test_fit_names_the_fitted_model(method, prefix):
    info = BaselinesAdapter({"method": method}, seed=0).fit(unit(spx(600), train=500, val=50), None)
    assert info["model"].startswith(prefix) and info["checkpoint_chosen_on"] == "none" and info["space"] == "log"


@pytest.mark.slow
@pytest.mark.usefixtures("ray_session")
def test_a_grid_sweep_runs_every_baseline_with_finite_quantiles(tmp_path):
    from analysis.runs import sweep_runs
    from sweeps.cli import main

    # --context 64: the folds' 200 training rows are fewer than the baseline's 512 the sweep asks for
    args = ["--mode", "grid", "--folds", "1", "--seeds", "2", "--storage", str(tmp_path / "r"), "--name", "s",
            "--context", "64", "--gpus-per-trial", "0", *TINY_FOLDS]  # fmt: skip
    assert main("baselines", args) == 0
    runs = sweep_runs(str(tmp_path / "r" / "s"))
    assert len(runs) == 6 * 2 and (runs["status"] == "complete").all()
    methods = runs["config"].map(lambda c: json.loads(c)["method"])
    assert sorted(set(methods)) == sorted(METHODS)
    assert runs["shared_from"].notna().sum() == 6  # seed-free: one run per method serves both seeds
    assert (runs["checkpoint_chosen_on"] == "none").all()
    for method, checkpoint in zip(methods, runs["checkpoint"]):
        table = pd.read_parquet(os.path.join(os.path.dirname(checkpoint), "predictions.parquet"))
        q = table[quantiles.columns()].to_numpy()
        assert len(table) and np.isfinite(q).all(), method
        if method == "rw":  # the rw baseline's distribution is the probabilistic random walk itself
            np.testing.assert_array_equal(q, table[quantiles.columns(quantiles.RW_PREFIX)].to_numpy())
