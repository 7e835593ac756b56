"""Temporal Fusion Transformer (pytorch-forecasting + lightning) as an adapter."""

from __future__ import annotations

import json
import os
import re
import sys
import warnings
from collections import OrderedDict
from typing import Any

import numpy as np
import pandas as pd
import torch

from search_spaces import tft as tft_space
from search_spaces.tft import BASELINE
from trainables import quantiles
from trainables.adapter import Adapter, TrainingDiverged, UnitData, check_loss
from trainables.features import KNOWN_AHEAD

_GROUP = "series"
_CACHED_FOLDS = 4  # (train, val) datasets kept per trial process: every seed of a fold reuses them
# Packages torchmetrics imports from its __init__ when installed, for metrics the TFT never uses:
# transformers (BERTScore, InfoLM, CLIP) and matplotlib (Metric.plot). ~2-3 s of CPU per trial process.
_UNUSED_BY_TFT = ("transformers", "matplotlib")


def _import_torchmetrics() -> None:
    """Import torchmetrics (Lightning and pytorch-forecasting need it) without `_UNUSED_BY_TFT`.

    torchmetrics asks lightning_utilities' RequirementCache whether each optional package is
    installed and imports it if so; during this one import the cache answers no for those two,
    so their metrics are defined without them (BERTScore and Metric.plot then fail in this
    process: sweep workers only, see `prepare_worker`). Nothing else asks during it (Lightning
    and pytorch-forecasting check neither), and later checks get the true answer: transformers
    stays importable for anything else. A no-op once torchmetrics is imported.
    """
    if "torchmetrics" in sys.modules:
        return
    try:
        from lightning_utilities.core.imports import RequirementCache

        check = RequirementCache._check_requirement
    except (ImportError, AttributeError):
        return

    def lean(cache) -> None:
        name = re.split(r"[^A-Za-z0-9_.-]", cache.requirement or "", maxsplit=1)[0]
        if name not in _UNUSED_BY_TFT:
            return check(cache)
        cache.available, cache.message = False, f"{name}: left out of torchmetrics by the TFT adapter"

    RequirementCache._check_requirement = lean
    try:
        import torchmetrics  # noqa: F401
    finally:
        RequirementCache._check_requirement = check


class _Memo:
    """A dataset whose samples are computed once and then served from memory.

    pytorch-forecasting builds each sample in `TimeSeriesDataSet.__getitem__` (pandas and tensor
    work) every epoch; the samples do not depend on the epoch or the seed (no length
    randomisation here), so the first computation serves every later epoch and unit. The
    DataLoader's sampler and collate function are the package's, so batches are the same.
    """

    def __init__(self, dataset) -> None:
        self.dataset, self.items = dataset, [None] * len(dataset)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int):
        if self.items[i] is None:
            self.items[i] = self.dataset[i]
        return self.items[i]


_DATASETS: OrderedDict[tuple, tuple] = OrderedDict()  # fold key → (train ds, val ds, train memo, val memo)


def _quiet() -> None:
    # Lightning and pytorch-forecasting warn at length about things that are fine here.
    warnings.filterwarnings("ignore", module=r"(lightning|pytorch_forecasting|torch)\b")
    import logging

    for name in ("lightning", "lightning.pytorch", "pytorch_lightning", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _long_frame(data: UnitData, stop: int) -> pd.DataFrame:
    """Rows [0, stop) in pytorch-forecasting's long format: time_idx = row number, the series id
    the asset for a model of several (`fit_many`), else "0"."""
    cols = ["timestamp", data.target, *data.features, *data.covariates]
    frame = data.frame.iloc[:stop][cols].copy()
    frame["time_idx"] = np.arange(len(frame))
    frame[_GROUP] = data.asset or "0"
    return frame


class TFTAdapter(Adapter):
    name = "tft"
    # Reuse a fold's datasets and samples across units of this process (False: the package's plain
    # path, rebuilt for every unit; the forecasts are the same either way, tests/test_tft_speed.py).
    reuse_data = True

    def __init__(self, config: dict[str, Any], seed: int, device: str = "cpu") -> None:
        super().__init__({**BASELINE, **config}, seed, device)  # defaults: the space's baseline

    @staticmethod
    def context_length(config: dict[str, Any]) -> int:
        return int(config["max_encoder_length"])

    @classmethod
    def planned_steps(cls, config: dict[str, Any]) -> int:
        return tft_space.planned_steps(config)

    @classmethod
    def prepare_worker(cls) -> None:
        _import_torchmetrics()

    @staticmethod
    def horizon(config: dict[str, Any]) -> int:
        return int(config["max_prediction_length"])

    def _dataset(self, data: UnitData, train: pd.DataFrame | None = None):
        """The training TimeSeriesDataSet of `data`'s training window; `train`: the long frame of
        several assets' training windows instead (a global fit), the asset then a static categorical."""
        from pytorch_forecasting import TimeSeriesDataSet
        from pytorch_forecasting.data import EncoderNormalizer

        c = self.config
        many = train is not None
        if train is None:
            train = _long_frame(data, data.train.stop).iloc[data.train.start :]
        # Covariates are reals like the features: a known-ahead one goes to the decoder as well.
        known = [*[f for f in data.features if f in KNOWN_AHEAD], *data.known_covariates]
        unknown = [data.target, *[f for f in data.features if f not in KNOWN_AHEAD], *data.past_covariates]
        # EncoderNormalizer scales the target by each window's own encoder: no statistic sees
        # a value after the forecast origin; the other reals are scaled on the training window.
        return TimeSeriesDataSet(
            train,
            time_idx="time_idx",
            target=data.target,
            group_ids=[_GROUP],
            max_encoder_length=int(c["max_encoder_length"]),
            min_encoder_length=int(c["max_encoder_length"]),
            max_prediction_length=int(c["max_prediction_length"]),
            min_prediction_length=int(c["max_prediction_length"]),
            # Several series: each one's id is a static input, as in pytorch-forecasting's
            # multi-series examples (group ids are not model inputs by themselves).
            static_categoricals=[_GROUP] if many else [],
            time_varying_known_reals=["time_idx", *known],
            time_varying_unknown_reals=unknown,
            target_normalizer=EncoderNormalizer(),
            add_relative_time_idx=True,
        )

    def fit(self, data: UnitData, log_dir: str | None) -> dict[str, float | str]:
        import lightning.pytorch as pl

        _quiet()
        pl.seed_everything(self.seed, workers=True, verbose=False)
        train_ds, val_ds, train_items, val_items = self._datasets(data)
        return self._train(train_ds, val_ds, train_items, val_items, log_dir)

    def fit_many(self, datas: dict[str, UnitData], log_dir: str | None) -> dict[str, float | str]:
        """One TFT on every asset's training window (series id = the asset), early-stopped on the
        val windows of all of them; `predict` then takes one asset's data (its `asset` set)."""
        import lightning.pytorch as pl
        from pytorch_forecasting import TimeSeriesDataSet
        from torch.utils.data import ConcatDataset

        _quiet()
        pl.seed_everything(self.seed, workers=True, verbose=False)
        parts = [_long_frame(d, d.train.stop).iloc[d.train.start :] for d in datas.values()]
        # Each asset keeps its own row numbers as time_idx: no calendar filling, no missing rows invented.
        train_ds = self._dataset(next(iter(datas.values())), pd.concat(parts, ignore_index=True))
        val = [
            TimeSeriesDataSet.from_dataset(train_ds, _long_frame(d, d.val.stop), min_prediction_idx=d.val.start,
                                           stop_randomization=True)
            for d in datas.values()
        ]  # fmt: skip
        return self._train(train_ds, train_ds, train_ds, ConcatDataset(val), log_dir)

    def _train(self, train_ds, val_ds, train_items, val_items, log_dir: str | None) -> dict[str, float | str]:
        """Lightning's fit of a TFT built from `train_ds` on these samples (`*_items`: the datasets
        or their samples kept in memory; batches collated by `train_ds`)."""
        import lightning.pytorch as pl
        from lightning.pytorch.callbacks import EarlyStopping
        from lightning.pytorch.loggers import TensorBoardLogger
        from pytorch_forecasting import TemporalFusionTransformer
        from pytorch_forecasting.metrics import QuantileLoss

        c = self.config
        batch = int(c["batch_size"])
        train_dl = _loader(train_ds, train_items, train=True, batch_size=batch)
        # No val window (a refit on every row, analysis/refit.py): max_epochs epochs, no early stopping.
        val_dl = None if val_ds is None else _loader(val_ds, val_items, train=False, batch_size=batch * 4)
        self._model = TemporalFusionTransformer.from_dataset(
            train_ds,
            learning_rate=float(c["learning_rate"]),
            hidden_size=int(c["hidden_size"]),
            attention_head_size=int(c["attention_head_size"]),
            dropout=float(c["dropout"]),
            hidden_continuous_size=int(c["hidden_continuous_size"]),
            # Our LEVELS (0.025 … 0.975), not the package's seven: the sweep scores the 80 % / 95 %
            # bands and the nine-level quantile loss; the point is still the 0.5 output.
            loss=QuantileLoss(quantiles=list(quantiles.LEVELS)),
            log_interval=-1,
        )
        stop = EarlyStopping(
            monitor="val_loss",
            patience=int(c["early_stopping_patience"]),
            min_delta=float(c["early_stopping_min_delta"]),
        )
        trainer = pl.Trainer(
            max_epochs=int(c["max_epochs"]),
            limit_train_batches=int(c.get("limit_train_batches", 30)),
            gradient_clip_val=float(c["gradient_clip_val"]),
            accelerator="gpu" if self.device.startswith("cuda") else "cpu",
            devices=1,
            callbacks=[*([stop] if val_dl is not None else []), _finite_loss_callback(), _validated_callback(self)],
            limit_val_batches=None if val_dl is not None else 0,
            logger=TensorBoardLogger(log_dir, name="", version="") if log_dir else False,
            enable_progress_bar=False,
            enable_model_summary=False,
            enable_checkpointing=False,
            deterministic=True,
        )
        trainer.fit(self._model, train_dataloaders=train_dl, val_dataloaders=val_dl)
        self._params = train_ds.get_parameters()
        self._trainer = trainer
        return {
            "epochs": float(trainer.current_epoch),
            "val_loss": float(trainer.callback_metrics.get("val_loss", float("nan"))),
            # Early stopping watches the val window; the last epoch's weights are kept (no checkpoint).
            "checkpoint_chosen_on": "val" if val_dl is not None else "none",
        }

    def _datasets(self, data: UnitData) -> tuple:
        """(train ds, val ds, train samples, val samples) of this fold: built once per process and
        reused by every seed (and configuration) with the same data, windows, lengths and features."""
        from pytorch_forecasting import TimeSeriesDataSet

        def build() -> tuple:
            train_ds = self._dataset(data)
            if not len(data.val):  # no val window: nothing to early-stop on
                return train_ds, None, _Memo(train_ds), None
            val_ds = TimeSeriesDataSet.from_dataset(
                train_ds, _long_frame(data, data.val.stop), min_prediction_idx=data.val.start, stop_randomization=True
            )
            return train_ds, val_ds, _Memo(train_ds), _Memo(val_ds)

        if not self.reuse_data:
            train_ds, val_ds, _, _ = build()
            return train_ds, val_ds, train_ds, val_ds
        key = self._fold_key(data)
        if key not in _DATASETS:
            _DATASETS[key] = build()
            while len(_DATASETS) > _CACHED_FOLDS:
                _DATASETS.popitem(last=False)
        _DATASETS.move_to_end(key)
        return _DATASETS[key]

    def _fold_key(self, data: UnitData) -> tuple:
        """Everything the datasets depend on: the rows read (by content), windows, lengths, columns."""
        cols = ["timestamp", data.target, *data.features, *data.covariates]
        content = int(pd.util.hash_pandas_object(data.frame[cols].iloc[: data.val.stop], index=False).sum())
        lengths = (self.context_length(self.config), self.horizon(self.config))
        inputs = (tuple(data.features), data.past_covariates, data.known_covariates)
        return (content, data.train, data.val, lengths, data.target, inputs)

    def predict(self, data: UnitData, origins: np.ndarray) -> np.ndarray:
        return self.forecast(data, origins).point

    def forecast(self, data: UnitData, origins: np.ndarray) -> quantiles.Forecast:
        """The quantile head's outputs: the point is its 0.5 level (`to_prediction`), the levels
        from `to_quantiles`; a model trained on other levels (older sweeps) leaves ours it lacks NaN."""
        from pytorch_forecasting import TimeSeriesDataSet

        h, ctx = self.horizon(self.config), self.context_length(self.config)
        lo, hi = int(origins.min()), int(origins.max())
        frame = _long_frame(data, hi + h).iloc[max(lo - ctx, 0) :]
        ds = TimeSeriesDataSet.from_parameters(self._params, frame, stop_randomization=True, min_prediction_idx=lo)
        model = self._model.to(self.device).eval()
        trained = [float(t) for t in getattr(model.loss, "quantiles", [])]
        take = [trained.index(t) if t in trained else -1 for t in quantiles.LEVELS]
        by_origin: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        with torch.no_grad():
            for x, _ in ds.to_dataloader(train=False, batch_size=256, num_workers=0):
                first = ds.x_to_index(x)["time_idx"].to_numpy()
                x = {k: v.to(self.device) if torch.is_tensor(v) else v for k, v in x.items()}
                out = model(x)
                point = model.to_prediction(out).cpu().numpy()
                levels = model.to_quantiles(out).cpu().numpy()
                q = np.where(np.asarray(take) >= 0, levels[..., np.maximum(take, 0)], np.nan)
                by_origin.update(zip(first.tolist(), zip(point, q)))
        point = np.stack([by_origin[int(o)][0] for o in origins])
        return quantiles.Forecast(point, np.stack([by_origin[int(o)][1] for o in origins]))

    def save(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)
        self._trainer.save_checkpoint(os.path.join(path, "tft.ckpt"))
        torch.save(self._params, os.path.join(path, "dataset.pt"))
        with open(os.path.join(path, "config.json"), "w") as f:
            json.dump({"config": self.config, "seed": self.seed}, f, indent=1, default=str)

    @classmethod
    def load(cls, path: str, device: str = "cpu") -> TFTAdapter:
        from pytorch_forecasting import TemporalFusionTransformer

        _quiet()
        with open(os.path.join(path, "config.json")) as f:
            meta = json.load(f)
        adapter = cls(meta["config"], meta["seed"], device)
        adapter._model = TemporalFusionTransformer.load_from_checkpoint(
            os.path.join(path, "tft.ckpt"), map_location=device
        )
        # The dataset parameters hold fitted scalers (pickled objects): only load our own files.
        adapter._params = torch.load(os.path.join(path, "dataset.pt"), weights_only=False)
        return adapter


def _loader(dataset, items, train: bool, batch_size: int):
    """The package's `dataset.to_dataloader(train=..., batch_size=..., num_workers=0)`, or, over
    `items` (its samples kept in memory), a DataLoader with the same arguments: the same sampler,
    batches and collate function."""
    from torch.utils.data import DataLoader

    if items is dataset:
        return dataset.to_dataloader(train=train, batch_size=batch_size, num_workers=0)
    return DataLoader(
        items,
        shuffle=train,
        drop_last=train and len(dataset) > batch_size,
        collate_fn=dataset._collate_fn,
        batch_size=batch_size,
        num_workers=0,
    )


def _validated_callback(adapter: TFTAdapter):
    import lightning.pytorch as pl

    class Validated(pl.Callback):
        """Pass each epoch's val_loss to `adapter.validated` (not Lightning's sanity check)."""

        def on_validation_end(self, trainer, pl_module) -> None:  # noqa: ARG002
            loss = trainer.callback_metrics.get("val_loss")
            if not trainer.sanity_checking and loss is not None:
                adapter.validated(trainer.global_step, float(loss))

    return Validated()


def _finite_loss_callback():
    import lightning.pytorch as pl

    class FiniteLoss(pl.Callback):
        """Stop at the first non-finite training loss, with a message saying so.

        Without it an exploded loss surfaces as an unrelated autograd error ("element 0 of tensors
        does not require grad").
        """

        def on_before_backward(self, trainer, pl_module, loss) -> None:  # noqa: ARG002
            where = f"epoch {trainer.current_epoch}, step {trainer.global_step}"
            check_loss(loss, where)
            if not loss.requires_grad:  # pytorch-forecasting's loss of exploded outputs: finite, but constant
                raise TrainingDiverged(
                    f"training diverged: loss {float(loss):.4g} no longer depends on the weights at {where}"
                )

    return FiniteLoss()
