"""A fifth forecaster defined in test code alone: adapter and search space in one module.

A drift model: the mean log return of the context, scaled by a slope fitted on the training
window and shrunk by a factor chosen on the validation window. Deterministic and numpy-only,
so it runs through every contract test in a blink. Registered by tests/test_fifth_model.py.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from search_spaces import domains as d
from trainables.adapter import Adapter, UnitData

# ---------------------------------------------------------------------------- search space

BASELINE = {"context_length": 20, "prediction_length": 2, "ridge": 1e-3}
PRIORITY = [{}, {"context_length": 40}]
QUICK = {"context_length": [10, 20]}
GRID = {"context_length": [10, 20, 40]}
FULL = {"context_length": [10, 20, 40], "ridge": [1e-3, 1e-1]}
PARAM_RANGES = {"context_length": [10, 20, 40], "ridge": [1e-3, 1e-1]}
OPTUNA = {"context_length": d.qrandint(10, 40, 10), "ridge": d.loguniform(1e-4, 1.0)}
TINY = {"context_length": 10}

# ---------------------------------------------------------------------------- adapter

SHRINKS = (0.0, 0.25, 0.5, 0.75, 1.0)


def _mean_returns(y: np.ndarray, ends: np.ndarray, context: int) -> np.ndarray:
    """Mean log return over the `context` rows before each end (rows < end only)."""
    logs = np.log(y)
    starts = np.maximum(ends - context, 0)
    return (logs[ends - 1] - logs[starts]) / np.maximum(ends - 1 - starts, 1)


class DriftAdapter(Adapter):
    name = "drift"

    def __init__(self, config: dict[str, Any], seed: int, device: str = "cpu") -> None:
        super().__init__({**BASELINE, **config}, seed, device)
        self.slope, self.shrink = 0.0, 1.0

    @classmethod
    def seed_free(cls, config: dict[str, Any]) -> bool:  # noqa: ARG003 (the contract's signature)
        return True  # no randomness anywhere

    def _forecast(self, y: np.ndarray, origins: np.ndarray, slope: float) -> np.ndarray:
        h = self.horizon(self.config)
        drift = slope * _mean_returns(y, origins, self.context_length(self.config))
        return y[origins - 1, None] * np.exp(drift[:, None] * np.arange(1, h + 1))

    def fit(self, data: UnitData, log_dir: str | None) -> dict[str, float | str]:
        y = data.frame[data.target].to_numpy(dtype=float)
        h, ctx = self.horizon(self.config), self.context_length(self.config)
        ends = np.arange(data.train.start + ctx, data.train.stop - h + 1)
        x = _mean_returns(y, ends, ctx)
        target = (np.log(y[ends + h - 1]) - np.log(y[ends - 1])) / h
        self.slope = float(x @ target / (x @ x + float(self.config["ridge"])))
        val = np.arange(max(data.val.start, ctx), data.val.stop - h + 1)
        if len(val):  # the shrink factor with the lowest val error chooses the "checkpoint"
            rows = val[:, None] + np.arange(h)
            errors = [np.abs(self._forecast(y, val, s * self.slope) - y[rows]).mean() for s in SHRINKS]
            self.shrink = SHRINKS[int(np.argmin(errors))]
            if log_dir is not None:  # the val error of each candidate, as a "curve"
                from torch.utils.tensorboard import SummaryWriter

                with SummaryWriter(log_dir) as writer:
                    for step, error in enumerate(errors):
                        writer.add_scalar("val/loss", float(error), step)
        return {"slope": self.slope, "shrink": self.shrink, "checkpoint_chosen_on": "val" if len(val) else "none"}

    def predict(self, data: UnitData, origins: np.ndarray) -> np.ndarray:
        y = data.frame[data.target].to_numpy(dtype=float)
        return self._forecast(y, np.asarray(origins, dtype=int), self.shrink * self.slope)

    def save(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)
        with open(os.path.join(path, "drift.json"), "w") as f:
            json.dump({"config": self.config, "seed": self.seed, "slope": self.slope, "shrink": self.shrink}, f)

    @classmethod
    def load(cls, path: str, device: str = "cpu") -> DriftAdapter:
        with open(os.path.join(path, "drift.json")) as f:
            meta = json.load(f)
        adapter = cls(meta["config"], meta["seed"], device)
        adapter.slope, adapter.shrink = meta["slope"], meta["shrink"]
        return adapter
