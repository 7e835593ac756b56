"""Simple baselines as a model family: what a statistician would fit in a minute.

One configuration per `method`: "rw" (last value), "drift" (random walk with drift), "mean"
(historical mean return), and statsforecast's "auto_arima", "auto_ets", "auto_theta". Every
statistic is fitted on the unit's training window once; each origin then reads only the rows before
it (the last one for rw/drift/mean, at most `context_length` for the statsforecast models). No
randomness: one run per fold serves every seed.
"""

from __future__ import annotations

import json
import os
import pickle
from typing import Any

import numpy as np
from scipy.stats import norm

from search_spaces.baselines import BASELINE, METHODS
from trainables import quantiles
from trainables.adapter import Adapter, UnitData
from trainables.quantiles import LEVELS, Forecast

STATSFORECAST = {"auto_arima": "AutoARIMA", "auto_ets": "AutoETS", "auto_theta": "AutoTheta"}
# statsforecast's central intervals whose ends are LEVELS: lo-L is level (1 − L/100)/2, hi-L (1 + L/100)/2.
INTERVALS = (20, 40, 60, 80, 95)
_KEYS = {0.5: "mean"} | {round((1 - L / 100) / 2, 4): f"lo-{L}" for L in INTERVALS}
_KEYS |= {round((1 + L / 100) / 2, 4): f"hi-{L}" for L in INTERVALS}
KEYS = tuple(_KEYS[round(level, 4)] for level in LEVELS)  # a KeyError here: LEVELS changed, add an interval
_Z = norm.ppf(LEVELS)  # the standard normal's quantile at each level


# ---------------------------------------------------------------------------- formulas


def drift_forecast(y_last: np.ndarray, slope: float, sigma: float, n_train: int, horizon: int) -> Forecast:
    """Random walk with drift (Hyndman & Athanasopoulos, Forecasting: Principles and Practice, 3rd ed.,
    §5.2 "drift method", §5.5 benchmark standard deviations): ŷ_k = y[o−1] + k·slope with Gaussian
    quantiles of sd σ̂·sqrt(k·(1 + k/T)), T the training rows, σ̂ the std of the training first
    differences around the slope."""
    k = np.arange(1, horizon + 1)
    point = np.asarray(y_last, dtype="float64")[:, None] + k * slope
    sd = sigma * np.sqrt(k * (1 + k / n_train))
    return Forecast(point, point[..., None] + sd[:, None] * _Z)


def lognormal_forecast(y_last: np.ndarray, mu: float, sigma: float, horizon: int) -> Forecast:
    """Historical mean return, log-normal (the lognormal property of stock prices: Hull, Options,
    Futures, and Other Derivatives): y[o−1]·exp(k·μ + z_q·σ̂·sqrt(k)), μ and σ̂ the mean and std of
    the training log returns; the point is the median y[o−1]·exp(k·μ)."""
    k = np.arange(1, horizon + 1)
    y_last = np.asarray(y_last, dtype="float64")[:, None, None]
    log_q = k[:, None] * mu + _Z * sigma * np.sqrt(k)[:, None]
    return Forecast(y_last[..., 0] * np.exp(k * mu), y_last * np.exp(log_q))


def mean_method_forecast(mean: float, s: float, n_train: int, origins: int, horizon: int) -> Forecast:
    """The mean method (Hyndman & Athanasopoulos, FPP 3rd ed., §5.2 "mean method", §5.5): the
    training mean at every step, Gaussian quantiles mean ± z_q·s·sqrt(1 + 1/T), s the training std."""
    point = np.full((origins, horizon), float(mean))
    return Forecast(point, point[..., None] + _Z * s * np.sqrt(1 + 1 / n_train))


# ---------------------------------------------------------------------------- statsforecast


def _new_model(method: str):
    from statsforecast import models  # ~2 s to import: only for the methods that need it

    # season_length=1: daily and intraday prices carry no fixed season (no cycle of a known period).
    return getattr(models, STATSFORECAST[method])(season_length=1)


def _describe(method: str, model: Any) -> str:
    """The fitted model in words: ARIMA order, ETS components, Theta variant."""
    fitted = model.model_
    if method == "auto_arima":
        from statsforecast.arima import arima_string

        return arima_string(fitted).strip()
    if method == "auto_ets":
        error, trend, season, damped = fitted["components"]
        return f"ETS({error},{trend}{'d' if damped == 'D' else ''},{season})"
    return f"Theta({fitted['modeltype']})"


def _forward(method: str, model: Any, y: np.ndarray, horizon: int) -> dict[str, np.ndarray]:
    """The fitted model applied, without re-estimating, to the context `y`: mean, lo-L, hi-L."""
    if method != "auto_ets":
        return model.forward(y=y, h=horizon, level=list(INTERVALS))
    # AutoETS.forward (forward_ets then forecast_ets) re-estimates σ² from the context's residuals,
    # the first of which is the context's first value minus the level fitted at the *training*
    # window's start: on SPX log prices that inflates σ² ~12× at an origin 4 000 rows on. Keep
    # the training window's σ² instead, as AutoARIMA.forward does.
    from statsforecast.ets import forecast_ets, forward_ets

    state = forward_ets(model.model_, y)
    state["sigma2"] = model.model_["sigma2"]
    return forecast_ets(state, h=horizon, level=list(INTERVALS))


# ---------------------------------------------------------------------------- adapter


class BaselinesAdapter(Adapter):
    """The six baselines. `save` writes JSON (config, seed, fitted statistics); for the statsforecast
    methods also model.pkl, a pickle of the fitted statsforecast object (what `forward` needs:
    coefficients, states, σ²). Unpickling runs code from the file: load only your own sweeps."""

    name = "baselines"

    def __init__(self, config: dict[str, Any], seed: int, device: str = "cpu") -> None:
        super().__init__({**BASELINE, **config}, seed, device)
        self.method = str(self.config["method"])
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {', '.join(METHODS)}, got {self.method!r}")
        self.fitted: dict[str, Any] = {}  # JSON-able statistics of the training window
        self.model: Any = None  # the fitted statsforecast object

    @classmethod
    def seed_free(cls, config: dict[str, Any]) -> bool:  # noqa: ARG003 (the contract's signature)
        return True  # deterministic (AutoTheta's interval draws use statsforecast's fixed seed 0)

    def fit(self, data: UnitData, log_dir: str | None) -> dict[str, float | str]:
        if log_dir is not None:  # no learning curve to write: an empty run, where readers look for one
            os.makedirs(log_dir, exist_ok=True)
        y = data.frame[data.target].to_numpy(dtype="float64")[data.train.start : data.train.stop]
        # Log space where the target is a positive price: multiplicative price dynamics, and the
        # exponentiated intervals stay positive. A returns series (any value ≤ 0) stays raw.
        positive = bool(np.all(y > 0))
        fitted: dict[str, Any] = {"n_train": len(y), "log": positive}
        info: dict[str, float | str] = {"method": self.method, "checkpoint_chosen_on": "none"}
        if self.method == "rw":
            fitted["train"] = y.tolist()  # quantiles.random_walk's empirical k-step moves
        elif self.method == "drift":
            diffs = np.diff(y)
            fitted |= {"slope": float((y[-1] - y[0]) / (len(y) - 1)), "sigma": float(np.std(diffs, ddof=1))}
            info["slope"] = fitted["slope"]
        elif self.method == "mean" and positive:
            returns = np.diff(np.log(y))
            fitted |= {"mu": float(returns.mean()), "sigma": float(np.std(returns, ddof=1))}
            info["mu"] = fitted["mu"]
        elif self.method == "mean":
            fitted |= {"mean": float(y.mean()), "sigma": float(np.std(y, ddof=1))}
            info["mean"] = fitted["mean"]
        else:
            self.model = _new_model(self.method).fit(np.log(y) if positive else y)
            info["model"] = _describe(self.method, self.model)
        info["space"] = "log" if positive else "raw"
        self.fitted = fitted
        return info

    def predict(self, data: UnitData, origins: np.ndarray) -> np.ndarray:
        return self.forecast(data, origins).point

    def forecast(self, data: UnitData, origins: np.ndarray) -> Forecast:
        y = data.frame[data.target].to_numpy(dtype="float64")
        origins = np.asarray(origins, dtype=int)
        h, f = self.horizon(self.config), self.fitted
        y_last = y[origins - 1]
        if self.method == "rw":
            out = Forecast(np.repeat(y_last[:, None], h, axis=1), quantiles.random_walk(f["train"], y_last, h))
        elif self.method == "drift":
            out = drift_forecast(y_last, f["slope"], f["sigma"], f["n_train"], h)
        elif self.method == "mean" and f["log"]:
            out = lognormal_forecast(y_last, f["mu"], f["sigma"], h)
        elif self.method == "mean":
            out = mean_method_forecast(f["mean"], f["sigma"], f["n_train"], len(origins), h)
        else:
            out = self._statsforecast(y, origins)
        return Forecast(out.point, quantiles.sort(out.quantiles))

    def _statsforecast(self, y: np.ndarray, origins: np.ndarray) -> Forecast:
        h, ctx = self.horizon(self.config), self.context_length(self.config)
        q = np.empty((len(origins), h, len(LEVELS)))
        for i, origin in enumerate(origins):
            window = y[max(0, origin - ctx) : origin]
            fc = _forward(self.method, self.model, np.log(window) if self.fitted["log"] else window, h)
            q[i] = np.stack([np.asarray(fc[key], dtype="float64") for key in KEYS], axis=-1)
        # The intervals are symmetric (Gaussian) in the fitted space: the mean is the median, and
        # exp maps quantiles to quantiles, so the point is the price's median.
        q = np.exp(q) if self.fitted["log"] else q
        return Forecast(q[..., LEVELS.index(0.5)].copy(), q)

    def save(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, "baselines.json"), "w") as f:
            json.dump({"config": self.config, "seed": self.seed, "fitted": self.fitted}, f)
        if self.model is not None:
            with open(os.path.join(path, "model.pkl"), "wb") as f:
                pickle.dump(self.model, f)

    @classmethod
    def load(cls, path: str, device: str = "cpu") -> BaselinesAdapter:
        with open(os.path.join(path, "baselines.json")) as f:
            meta = json.load(f)
        adapter = cls(meta["config"], meta["seed"], device)
        adapter.fitted = meta["fitted"]
        if adapter.method in STATSFORECAST:
            with open(os.path.join(path, "model.pkl"), "rb") as f:
                adapter.model = pickle.load(f)
        return adapter
