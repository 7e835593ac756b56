"""The one list of forecasters: name → adapter class and search-space module.

Imports are lazy so `--help`, validation and analysis never load a model package.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from types import ModuleType

from trainables.adapter import Adapter


@dataclass(frozen=True)
class ModelEntry:
    name: str
    adapter_path: str  # "module:Class"
    space_module: str
    package: str  # the pip package that carries the model code
    install_hint: str
    context_key: str = "context_length"  # hyperparameter holding the rows of history read
    horizon_key: str = "prediction_length"  # hyperparameter holding the steps forecast
    max_horizon: int | None = None  # the longest forecast the model makes (None: the data's limit)

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
    ),
    "toto": ModelEntry(
        "toto",
        "trainables.toto:TotoAdapter",
        "search_spaces.toto",
        "toto",
        "pip install --no-deps toto-ts==0.2.0 && pip install -e '.[foundation]'",
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
    ),
}


def get(name: str) -> ModelEntry:
    """The registry entry for `name`, or KeyError listing the known models."""
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r} (known: {', '.join(MODELS)})")
    return MODELS[name]
