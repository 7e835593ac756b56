"""The contract every forecaster adapter fulfils.

An adapter holds only what is special about one model: build or load it, fit it on a
training window, forecast from rolling origins, save and load its weights. The fold × seed
loop, metrics, reporting and checkpointing live once, in `trainables.nested`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from trainables.quantiles import Forecast


@dataclass(frozen=True)
class Window:
    """Half-open row range [start, stop) of one asset's frame."""

    start: int
    stop: int

    def __len__(self) -> int:
        return self.stop - self.start


@dataclass(frozen=True)
class UnitData:
    """What one (fold, seed) unit trains and forecasts on.

    `frame` is one asset's rows sorted by time with the columns `timestamp, open, high, low,
    close, volume` plus the feature columns named in `features`. Row i of `frame` is day i.
    `asset` names the series for a model fitted on several (`fit_many`); None otherwise.
    `past_covariates` and `known_covariates` name further columns of `frame` the model reads
    besides the target (trainables.covariates): a past-only one at rows before an origin only, a
    known-ahead one also at the rows it forecasts (origin … origin + horizon − 1), never later.
    """

    frame: pd.DataFrame
    features: tuple[str, ...]
    train: Window
    val: Window
    test: Window
    target: str = "close"
    asset: str | None = None
    past_covariates: tuple[str, ...] = ()
    known_covariates: tuple[str, ...] = ()

    @property
    def covariates(self) -> tuple[str, ...]:
        """Every covariate column: the past-only ones, then the known-ahead ones."""
        return (*self.past_covariates, *self.known_covariates)


class NoGlobalFit(RuntimeError):
    """fit_many called on a model without a global fit (the sweep refuses --fit global for it first)."""


class TrainingDiverged(RuntimeError):
    """The training loss stopped being a finite number (learning rate too high, bad data)."""


def check_loss(loss: Any, where: str) -> None:
    """Raise TrainingDiverged when `loss` (a float or a 0-d tensor) is NaN or infinite."""
    value = float(loss.detach()) if hasattr(loss, "detach") else float(loss)
    if not np.isfinite(value):
        raise TrainingDiverged(f"training diverged: loss is {value} at {where}")


class Adapter(ABC):
    """One forecaster. Subclasses set `name` and implement the abstract methods below (and
    `forecast` where the model gives a distribution)."""

    name: str = ""
    # Set by the trial for a unit it runs in its own process: called with (optimizer step, val
    # loss) at each validation during `fit` (the live progress line, ASHA's within-unit rungs).
    on_validation: Callable[[int, float], None] | None = None

    def __init__(self, config: dict[str, Any], seed: int, device: str = "cpu") -> None:
        self.config = dict(config)
        self.seed = int(seed)  # numpy integers (from Tune or Optuna) do not seed Python's random
        self.device = device

    @staticmethod
    def context_length(config: dict[str, Any]) -> int:
        """Rows of history each forecast reads (before its origin)."""
        return int(config["context_length"])

    @staticmethod
    def horizon(config: dict[str, Any]) -> int:
        """Steps forecast from each origin."""
        return int(config["prediction_length"])

    @classmethod
    def seed_free(cls, config: dict[str, Any]) -> bool:  # noqa: ARG003 (overridden per model)
        """Whether a unit's forecasts are the same for every seed (then one run serves all seeds)."""
        return False

    @classmethod
    def planned_steps(cls, config: dict[str, Any]) -> int:  # noqa: ARG003 (overridden per model)
        """Optimizer steps a unit of `config` trains for at most (0: it reports no validations)."""
        return 0

    @classmethod
    def prepare_worker(cls) -> None:
        """Process-wide set-up of a sweep's worker (trial process or unit task) before its units;
        never run in a user's own process (loading a best model, a notebook)."""
        return None  # nothing by default (a hook, not an abstract method)

    def validated(self, step: int, loss: float) -> None:
        """Called by `fit` after each validation pass (not the sanity check, not before training)."""
        if self.on_validation is not None:
            self.on_validation(int(step), float(loss))

    @abstractmethod
    def fit(self, data: UnitData, log_dir: str | None) -> dict[str, float | str]:
        """Train on `data.train` (early-stop on `data.val` if the model does).

        Fitted statistics (scalers, normalisers) may use the training window or a forecast's
        own context window only. Per-step/epoch losses go to TensorBoard under `log_dir`.
        Returns small training facts (e.g. epochs run, final losses) for the unit's record,
        including `checkpoint_chosen_on`: the split that chose the weights or epoch ("val", "none").
        """

    def fit_many(self, datas: dict[str, UnitData], log_dir: str | None) -> dict[str, float | str]:  # noqa: ARG002
        """`fit` on every asset's training window together (`--fit global`): one model for the
        universe, then `predict` on each asset's data. Only models whose registry entry says
        `global_fit` implement it; the sweep refuses --fit global for the others at the door."""
        raise NoGlobalFit(f"{self.name}: no global fit (its registry entry has global_fit=False)")

    @abstractmethod
    def predict(self, data: UnitData, origins: np.ndarray) -> np.ndarray:
        """Point forecasts of shape (len(origins), horizon) of `data.target`.

        Row k forecasts rows origins[k] .. origins[k] + horizon - 1 and may read only rows
        before origins[k] (at most `context_length` of them).
        """

    def forecast(self, data: UnitData, origins: np.ndarray) -> Forecast:
        """The point forecast and quantiles at trainables.quantiles.LEVELS per (origin, step), with
        `predict`'s rules on what each origin may read. A model without a distribution keeps this
        default: its quantiles are NaN (NaN distribution metrics, never a crash)."""
        return Forecast.point_only(self.predict(data, origins))

    @abstractmethod
    def save(self, path: str) -> None:
        """Write everything `load` needs into directory `path`."""

    @classmethod
    @abstractmethod
    def load(cls, path: str, device: str = "cpu") -> Adapter:
        """Rebuild a fitted adapter saved by `save`."""


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch, so a fit on CPU is repeatable."""
    import random

    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
