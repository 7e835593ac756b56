"""The one list of forecasters: name → adapter class, search-space module and the facts about it.

Adding a model means an adapter, a search-space module, an entry script and one `register` call.
Imports are lazy so `--help`, validation and analysis never load a model package.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import ModuleType

from trainables.adapter import Adapter


@dataclass(frozen=True)
class ModelEntry:
    """One forecaster. Its search-space module holds BASELINE, the strategies' grids, OPTUNA,
    TINY (a small random model for tests and benchmarks) and, for a pretrained model, ZERO_SHOT
    (the settings that skip fine-tuning) and SIZES (random architectures for init="scratch")."""

    name: str
    adapter_path: str  # "module:Class"
    space_module: str
    package: str  # the pip package that carries the model code
    install_hint: str
    context_key: str = "context_length"  # hyperparameter holding the rows of history read
    horizon_key: str = "prediction_length"  # hyperparameter holding the steps forecast
    max_horizon: int | None = None  # the longest forecast the model makes (None: the data's limit)
    # pip distributions whose versions a sweep records (besides ray, torch, ...)
    distributions: tuple[str, ...] = ()
    # TensorBoard tags the adapter's `fit` writes its training and validation losses under
    curve_tags: tuple[str, ...] = ()
    # Hyperparameters naming weights (hub id or directory) → where a saved unit model keeps them
    # ("" = the model directory itself); empty for a model trained from scratch only.
    weight_keys: dict[str, str] = field(default_factory=dict)
    steps_key: str | None = None  # hyperparameter holding the number of fine-tuning steps
    global_fit: bool = False  # the adapter implements fit_many (--fit global: one model for a universe)
    # a family of simple benchmarks: ranked rows marked "baseline", the bar of beats_best_baseline
    baseline: bool = False
    # why the model takes no covariates (trainables.covariates); "" when it takes them
    no_covariates: str = ""

    def adapter(self) -> type[Adapter]:
        module, cls = self.adapter_path.split(":")
        return getattr(importlib.import_module(module), cls)

    def spaces(self) -> ModuleType:
        return importlib.import_module(self.space_module)


MODELS: dict[str, ModelEntry] = {
    "tft": ModelEntry(
        "tft",
        "trainables.tft:TFTAdapter",
        "search_spaces.tft",
        "pytorch_forecasting",
        "pip install pytorch-forecasting lightning",
        "max_encoder_length",
        "max_prediction_length",
        distributions=("pytorch-forecasting", "lightning"),
        curve_tags=("train_loss_epoch", "val_loss"),
        global_fit=True,
    ),
    "toto": ModelEntry(
        "toto",
        "trainables.toto:TotoAdapter",
        "search_spaces.toto",
        "toto",
        "pip install --no-deps toto-ts==0.2.0 && pip install -e '.[foundation]'",
        distributions=("toto-ts",),
        curve_tags=("train/loss", "val/loss"),
        weight_keys={"pretrained": ""},
        steps_key="max_steps",
        global_fit=True,
    ),
    "chronos2": ModelEntry(
        "chronos2",
        "trainables.chronos2:Chronos2Adapter",
        "search_spaces.chronos2",
        "chronos",
        "pip install chronos-forecasting peft",
        # 64 output patches × 16 steps: beyond that Chronos-2 feeds its own forecasts back in as
        # context, which its authors advise against.
        max_horizon=1024,
        distributions=("chronos-forecasting", "transformers", "peft"),
        curve_tags=("train/loss", "eval/loss"),
        weight_keys={"pretrained": ""},
        steps_key="num_steps",
        global_fit=True,
    ),
    "kronos": ModelEntry(
        "kronos",
        "trainables.kronos:KronosAdapter",
        "search_spaces.kronos",
        "kronos_finance",
        "pip install kronos-finance==0.1.5",
        # Kronos-small/base read at most 512 tokens: a longer forecast would have slid its whole
        # observed context out of the window.
        max_horizon=512,
        distributions=("kronos-finance",),
        curve_tags=("tokenizer/train_loss", "tokenizer/val_loss", "predictor/train_loss", "predictor/val_loss"),
        weight_keys={"pretrained": "predictor", "tokenizer": "tokenizer"},
        steps_key="predictor_steps",
        global_fit=True,
        no_covariates="its tokenizer reads fixed K-line inputs (open, high, low, close, volume, amount)",
    ),
    "baselines": ModelEntry(
        "baselines",
        "trainables.baselines:BaselinesAdapter",
        "search_spaces.baselines",
        "statsforecast",
        "pip install statsforecast",
        distributions=("statsforecast",),
        baseline=True,
        global_fit=False,
        no_covariates="the baselines are univariate benchmarks of the target alone",
    ),
}


class UnknownModel(KeyError):
    """A model name the registry does not hold."""


def get(name: str) -> ModelEntry:
    """The registry entry for `name`, or UnknownModel listing the known models."""
    if name not in MODELS:
        raise UnknownModel(f"unknown model {name!r} (known: {', '.join(MODELS)})")
    return MODELS[name]


def register(entry: ModelEntry) -> None:
    """Add a forecaster (the one line a new model needs besides its own three files)."""
    if not entry.name.isidentifier():
        raise ValueError(f"model name {entry.name!r} must be a Python identifier")
    MODELS[entry.name] = entry


def pretrained(name: str) -> bool:
    """Whether the model loads released weights (it has weight hyperparameters)."""
    return bool(get(name).weight_keys)
