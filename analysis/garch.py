"""GARCH(1,1) with Student-t innovations: a conditional-volatility baseline for quantile forecasts.

Fitted once on the training window's returns, then filtered with fixed parameters through the
rows before each origin. Prices that are all positive are modelled as 100 × log returns and
forecast multiplicatively; any other series as first differences (scaled to unit variance on the
training window, so arch's optimiser sees a sane scale) and forecast additively.

Row indexing: values[i] is time i; the return r[j] = f(values[j + 1], values[j]) is "the return
at row j + 1". Origin o knows values[: o], i.e. r[: o - 1], so its forecast is arch's row o − 2.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from arch import arch_model

from trainables.adapter import Window
from trainables.quantiles import LEVELS, from_samples

# Elements (rows × sims × horizon) of one arch simulation array: arch keeps about four of them
# per call, so this caps a chunk's memory near 4 × 160 MB.
_SIM_BUDGET = 20_000_000


# Five parameters (mu, omega, alpha, beta, nu): on fewer returns than this arch still returns a
# "fit", with arbitrary values.
MIN_TRAIN_RETURNS = 20


class GarchError(RuntimeError):
    """The GARCH fit failed or gave unusable parameters."""


def _returns(values: np.ndarray, train: Window, ratio: bool) -> tuple[np.ndarray, float]:
    """Model-scale returns and the factor back to log-price (ratio) or price units."""
    moves = np.diff(np.log(values)) if ratio else np.diff(values)
    spread = float(np.std(moves[train.start : train.stop - 1]))
    if spread == 0.0:  # arch "fits" a flat series without complaint, to a degenerate point mass
        raise GarchError("garch: the training window's values never change")
    if ratio:
        return moves * 100.0, 0.01
    return moves / spread, spread


def _std_t(nu: float, seed: int, first_row: int) -> Callable[[tuple[int, int]], np.ndarray]:
    """arch's `rng(size)` hook: unit-variance t draws, one call per forecast row in order.

    Each row gets its own Generator keyed by (seed, row): an origin's draws depend neither on
    which other origins are asked for nor on how they are chunked."""
    row = first_row
    sd = np.sqrt(nu / (nu - 2.0))

    def rng(size: tuple[int, int]) -> np.ndarray:
        nonlocal row
        gen = np.random.default_rng([seed, row])
        row += 1
        return gen.standard_t(nu, size=size) / sd

    return rng


def _chunks(rows: np.ndarray, max_rows: int) -> list[np.ndarray]:
    """Split sorted forecast rows into runs spanning at most `max_rows` rows (arch simulates
    every row from a call's start to its series' end, requested or not)."""
    out, begin = [], 0
    for k in range(1, len(rows) + 1):
        if k == len(rows) or rows[k] - rows[begin] >= max_rows:
            out.append(rows[begin:k])
            begin = k
    return out


def garch_quantiles(
    values: np.ndarray,
    train: Window,
    origins: np.ndarray,
    horizon: int,
    sims: int = 1000,
    seed: int = 0,
) -> np.ndarray:
    """Quantiles at LEVELS of values[o … o + horizon − 1] for each origin o, shape
    (len(origins), horizon, len(LEVELS)). Origin o reads values[: o] only; origins must be sorted
    and at or after train.stop (the parameters are estimated on the whole training window).
    horizon 1 is analytic; longer horizons use `sims` simulated paths seeded by `seed`."""
    values = np.asarray(values, dtype="float64")
    origins = np.asarray(origins, dtype=int)
    if len(origins) == 0:
        return np.full((0, horizon, len(LEVELS)), np.nan)
    if train.start < 0 or np.any(np.diff(origins) < 0) or origins[0] < train.stop or origins[-1] > len(values):
        raise ValueError(f"garch: origins must be sorted within [{train.stop}, {len(values)}]")
    if horizon < 1:
        raise ValueError("garch: horizon must be at least 1")
    if len(train) - 1 < MIN_TRAIN_RETURNS:
        raise GarchError(f"garch: {len(train) - 1} training returns, need {MIN_TRAIN_RETURNS}")
    seen = values[: origins[-1]]  # every row any origin may read; nothing later is touched
    if not np.all(np.isfinite(seen)):
        raise GarchError("garch: non-finite values before the last origin")
    ratio = bool(np.all(seen > 0))
    r, unit = _returns(seen, train, ratio)
    # r[j] needs values[j] and values[j + 1]: the training window's own returns are
    # r[train.start : train.stop - 1].
    try:
        res = arch_model(r, mean="Constant", vol="GARCH", p=1, q=1, dist="t", rescale=False).fit(
            disp="off", first_obs=train.start, last_obs=train.stop - 1
        )
    except Exception as e:  # arch and scipy raise many types; the caller needs one
        raise GarchError(f"garch: fit failed: {type(e).__name__}: {e}") from e
    params = res.params
    mu, nu = float(params["mu"]), float(params["nu"])
    if not (np.all(np.isfinite(params)) and nu > 2.0):
        raise GarchError(f"garch: unusable parameters {dict(params.round(4))}")

    last = seen[origins - 1]
    rows = origins - 2  # arch row t forecasts r[t + 1], the return at row t + 2 = o
    if horizon == 1:
        f = res.forecast(start=int(rows[0]), horizon=1, reindex=False)
        sigma = np.sqrt(f.variance.to_numpy()[rows - rows[0], 0])
        z = res.model.distribution.ppf(np.asarray(LEVELS), [nu])
        steps = (mu + sigma[:, None] * z[None, :]) * unit
        q = last[:, None] * np.exp(steps) if ratio else last[:, None] + steps
        return q[:, None, :]

    out = np.empty((len(origins), horizon, len(LEVELS)))
    max_rows = max(1, _SIM_BUDGET // (sims * horizon))
    done = 0
    for chunk in _chunks(rows, max_rows):
        # A model whose series ends at the chunk's last row, with the fitted parameters fixed:
        # its forecasts cannot read anything past that row, and memory stays bounded.
        fixed = arch_model(r[: chunk[-1] + 1], mean="Constant", vol="GARCH", p=1, q=1, dist="t", rescale=False).fix(
            params, first_obs=train.start, last_obs=train.stop - 1
        )
        f = fixed.forecast(
            start=int(chunk[0]),
            horizon=horizon,
            method="simulation",
            simulations=sims,
            rng=_std_t(nu, seed, int(chunk[0])),
            reindex=False,
        )
        sim = f.simulations.values  # (rows, sims, h) simulated returns; ours to overwrite
        paths = sim if np.all(np.diff(chunk) == 1) else sim[chunk - chunk[0]]  # a view when contiguous
        for j in range(1, horizon):  # cumulative returns, step by step (faster than cumsum
            paths[..., j] += paths[..., j - 1]  # along a short last axis)
        paths *= unit
        lo = last[done : done + len(chunk), None, None]
        prices = lo * np.exp(paths, out=paths) if ratio else lo + paths
        out[done : done + len(chunk)] = from_samples(prices, axis=1)
        done += len(chunk)
    return out
