"""Chronos-2 (Amazon) adapter: zero-shot, full or LoRA fine-tuning through `Chronos2Pipeline.fit`.

As the authors do: the model is loaded and predicts in float32 (`scripts/evaluation/evaluate.py`,
`chronos_2(torch_dtype="float32")`), and fine-tuning keeps the weights of the best val loss
(`fit` sets `load_best_model_at_end=True`). Unlike them, the best weights are kept in memory
rather than in Trainer checkpoints, and training contexts are as long as evaluation contexts.
"""

from __future__ import annotations

import copy
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import torch
from chronos.chronos2 import Chronos2CoreConfig, Chronos2Model, Chronos2Pipeline
from transformers.trainer_callback import TrainerCallback

from search_spaces import chronos2 as chronos2_space
from search_spaces.chronos2 import BASELINE, SIZES
from trainables import foundation, quantiles, weights
from trainables.adapter import Adapter, UnitData, seed_everything

# 21 levels as in the released model; long-horizon unrolling needs 0.1 … 0.9 among them.
_QUANTILES = [0.01, 0.05] + [round(0.05 * k, 2) for k in range(2, 19)] + [0.95, 0.99]

# Same modules the pipeline adapts by default in LoRA mode.
_LORA_TARGETS = [
    "self_attention.q",
    "self_attention.k",
    "self_attention.v",
    "self_attention.o",
    "output_patch_embedding.output_layer",
]

# Trainer log key → TensorBoard tag.
_TB_TAGS = {
    "loss": "train/loss",
    "eval_loss": "eval/loss",
    "learning_rate": "train/learning_rate",
    "grad_norm": "train/grad_norm",
}

_PREDICT_BATCH = 256  # series per forward pass at inference
_MAX_VAL_ORIGINS = 32  # rolling validation origins used for the eval loss
_LORA_DIR = "lora"  # a LoRA unit's adapter weights (the base is a reference)
_FINAL_CKPT = "finetuned-ckpt"  # where `Chronos2Pipeline.fit` saves its result


def _scratch_model(size: str, context_length: int = 2048) -> Chronos2Model:
    """A randomly initialised Chronos-2 with the released architecture, shrunk to `size`."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}, got {size!r}")
    chronos_config = {
        "context_length": context_length,
        "input_patch_size": 16,
        "input_patch_stride": 16,
        "output_patch_size": 16,
        "max_output_patches": 4,
        "quantiles": _QUANTILES,
        "use_reg_token": True,
        "use_arcsinh": True,
        "time_encoding_scale": context_length,
    }
    config = Chronos2CoreConfig(**SIZES[size], chronos_config=chronos_config)
    config.architectures = ["Chronos2Model"]  # from_pretrained looks the class up by this name
    return Chronos2Model(config)


def build_pipeline(config: dict[str, Any], device: str = "cpu") -> Chronos2Pipeline:
    """Load (init="pretrained") or randomly build (init="scratch") the pipeline on `device`."""
    if config["init"] == "pretrained":
        pipeline = _released(weights.resolve(config["pretrained"]))
    elif config["init"] == "scratch":
        pipeline = Chronos2Pipeline(model=_scratch_model(config["size"]))
    else:
        raise ValueError(f"init must be 'pretrained' or 'scratch', got {config['init']!r}")
    _to_fp32(pipeline, device)
    return pipeline


def _released(path: str) -> Chronos2Pipeline:
    """The released pipeline at `path`, read from disk once per process (each call: a copy)."""
    return foundation.pretrained("chronos2", path, Chronos2Pipeline.from_pretrained)


def _to_fp32(pipeline: Chronos2Pipeline, device: str) -> None:
    # transformers 5 loads in the checkpoint's saved dtype; the authors evaluate Chronos-2 in fp32.
    pipeline.model.to(device=device, dtype=torch.float32)
    pipeline.model.eval()


class _TensorBoardLosses(TrainerCallback):
    """Writes the Trainer's logged losses to TensorBoard and remembers the last values."""

    def __init__(self, log_dir: str | None) -> None:
        self.last: dict[str, float] = {}
        self.board = foundation.Board(log_dir)

    def on_log(self, args, state, control, logs=None, **kwargs):  # noqa: ARG002 (TrainerCallback API)
        for key, tag in _TB_TAGS.items():
            if logs and key in logs:
                value = float(logs[key])
                self.last[key] = value
                self.board.add(tag, value, state.global_step)

    def close(self) -> None:
        self.board.close()


class _BestWeights(TrainerCallback):
    """Keeps the trainable weights of the best eval loss in memory and restores them at the end.

    It replaces the pipeline's `load_best_model_at_end` checkpointing, which writes a full model
    (~0.5 GB for the released one) at every evaluation: nothing is saved during training.
    """

    def __init__(self, validated: Callable[[int, float], None] | None = None) -> None:
        self.best_loss, self.best_step = float("inf"), 0
        self._state: dict[str, torch.Tensor] | None = None
        self.validated = validated  # Adapter.validated: each evaluation's loss goes on to the trial

    @staticmethod
    def _trainable(model) -> Iterator[tuple[str, torch.nn.Parameter]]:
        # LoRA trains the adapters only; the frozen weights never change, so they need no copy.
        return ((name, p) for name, p in model.named_parameters() if p.requires_grad)

    def on_evaluate(self, args, state, control, metrics=None, model=None, **kwargs):  # noqa: ARG002 (TrainerCallback API)
        loss = (metrics or {}).get("eval_loss", float("nan"))
        if self.validated is not None:
            self.validated(state.global_step, float(loss))
        if loss < self.best_loss:
            self.best_loss, self.best_step = float(loss), state.global_step
            self._state = {name: p.detach().to("cpu", copy=True) for name, p in self._trainable(model)}
        # The pipeline's final-step callback asks for a save; the weights are kept here instead.
        control.should_save = False
        return control

    def on_train_end(self, args, state, control, model=None, **kwargs):  # noqa: ARG002 (TrainerCallback API)
        if self._state is None:
            return
        with torch.no_grad():
            for name, p in self._trainable(model):
                p.copy_(self._state[name])

    @property
    def chosen(self) -> bool:
        return self._state is not None


def _series(data: UnitData) -> np.ndarray:
    return data.frame[data.target].to_numpy(dtype=np.float32)


def _rows(data: UnitData, start: int, stop: int) -> np.ndarray | dict:
    """Rows [start, stop) of the target, with the covariates as the pipeline's dict input: every
    covariate's values over the same rows ("past_covariates" holds a known one's past as well)."""
    y = _series(data)[start:stop]
    if not data.covariates:
        return y
    covs = {c: data.frame[c].to_numpy(dtype=np.float32)[start:stop] for c in data.covariates}
    return {"target": y, "past_covariates": covs}


def _prepared(data: UnitData, windows: list[tuple[int, int]], horizon: int) -> list:
    """Training or val series in the authors' covariate format (`preprocess.from_list_of_dicts`,
    known covariates named: their values are in the series, the dataset cuts out the future part)."""
    inputs = [_rows(data, a, b) for a, b in windows]
    if not data.covariates:
        return inputs
    from chronos.chronos2 import preprocess

    known = list(data.known_covariates) or None
    return preprocess.from_list_of_dicts(inputs, prediction_length=horizon, known_covariates_names=known)


def _validation_windows(data: UnitData, context: int, horizon: int) -> list[tuple[int, int]]:
    """Rolling windows over the val range, each ending `horizon` steps after its origin.

    The pipeline's validation dataset scores the last `horizon` values of each series, so
    a window [origin - context, origin + horizon) is one val origin, as in evaluation.
    """
    origins = foundation.spread(max(data.val.start, 1), data.val.stop - horizon, _MAX_VAL_ORIGINS)
    return [(max(0, int(o) - context), int(o) + horizon) for o in origins]


def _eval_every(num_steps: int) -> int:
    # ~10 evaluations per run, never sparser than the pipeline's own default of 100 steps.
    return max(1, min(100, num_steps // 10))


def _min_past(train_rows: int, context: int, horizon: int) -> int:
    """Shortest training context: the full `context` that every evaluation forecast reads.

    The pipeline's default (`min_past=prediction_length`) trains mostly on contexts far shorter
    than that. A training window without room for one full context + horizon falls back to the
    default rather than repeating a single window.
    """
    return context if train_rows >= context + horizon else horizon


class Chronos2Adapter(Adapter):
    """Chronos-2 forecasts the target from its own past and, when given, its covariates (past-only
    and known-ahead, through the pipeline's dict inputs, as the authors' covariate examples do)."""

    name = "chronos2"

    def __init__(self, config: dict[str, Any], seed: int, device: str = "cpu") -> None:
        super().__init__({**BASELINE, **config}, seed, device)  # defaults: the space's baseline
        self.pipeline: Chronos2Pipeline | None = None

    @classmethod
    def planned_steps(cls, config: dict[str, Any]) -> int:
        return chronos2_space.planned_steps(config)

    @classmethod
    def seed_free(cls, config: dict[str, Any]) -> bool:
        """Released weights without fine-tuning: the forecast (a quantile head, no sampling) ignores the seed."""
        config = {**BASELINE, **config}
        return config["init"] == "pretrained" and int(config["num_steps"]) <= 0

    def fit(self, data: UnitData, log_dir: str | None) -> dict[str, Any]:
        return self.fit_many({"": data}, log_dir)

    def fit_many(self, datas: dict[str, UnitData], log_dir: str | None) -> dict[str, Any]:
        """Fine-tune on every series' training window (`Chronos2Pipeline.fit` takes a list of
        series, as the authors fine-tune on many); one series is `fit`."""
        seed_everything(self.seed)  # before building: a scratch model's init depends on it
        self.pipeline = build_pipeline(self.config, self.device)
        num_steps = int(self.config["num_steps"])
        if num_steps <= 0:
            return {"num_steps": 0.0, "checkpoint_chosen_on": "none"}
        if log_dir is not None:
            os.makedirs(log_dir, exist_ok=True)
            return self._finetune(list(datas.values()), log_dir, os.path.join(log_dir, "chronos2_trainer"))
        with tempfile.TemporaryDirectory(prefix="chronos2_") as tmp:
            return self._finetune(list(datas.values()), None, tmp)

    def _finetune(self, datas: list[UnitData], log_dir: str | None, output_dir: str) -> dict[str, Any]:
        """Run `Chronos2Pipeline.fit` and keep the fine-tuned pipeline (its best-val weights)."""
        cfg = self.config
        context, horizon, num_steps = self.context_length(cfg), self.horizon(cfg), int(cfg["num_steps"])
        train = [w for d in datas for w in _prepared(d, [(d.train.start, d.train.stop)], horizon)]
        # Each series' val windows (_MAX_VAL_ORIGINS of them at most per series).
        val = [w for d in datas for w in _prepared(d, _validation_windows(d, context, horizon), horizon)]
        losses, best = _TensorBoardLosses(log_dir), _BestWeights(self.validated)
        every = _eval_every(num_steps)
        try:
            self.pipeline = self.pipeline.fit(
                inputs=train,
                prediction_length=horizon,
                validation_inputs=val or None,
                finetune_mode=cfg["finetune_mode"],
                lora_config=self._lora_config(),
                context_length=context,
                learning_rate=float(cfg["learning_rate"]),
                num_steps=num_steps,
                batch_size=int(cfg["batch_size"]),
                output_dir=output_dir,
                finetuned_ckpt_name=_FINAL_CKPT,
                min_past=min(_min_past(len(d.train), context, horizon) for d in datas),
                callbacks=[losses, best],
                remove_printer_callback=True,
                # Extra kwargs go to TrainingArguments; the Trainer reseeds from `seed` itself.
                seed=self.seed,
                logging_steps=1,
                eval_steps=every,
                # `_BestWeights` keeps the best weights: no Trainer checkpoint is written.
                save_strategy="no",
                load_best_model_at_end=False,
                disable_tqdm=True,
            )
        finally:
            losses.close()
        # The one copy `fit` always writes; `save` writes the model where the unit keeps it.
        shutil.rmtree(os.path.join(output_dir, _FINAL_CKPT), ignore_errors=True)
        _to_fp32(self.pipeline, self.device)  # and eval(): the Trainer leaves dropout on
        facts = {
            "num_steps": float(num_steps),
            "train_loss": losses.last.get("loss", float("nan")),
            "checkpoint_chosen_on": "val" if best.chosen else "none",
        }
        if best.chosen:
            facts.update(best_eval_loss=best.best_loss, best_step=float(best.best_step))
        return facts

    def _lora_config(self):
        if self.config["finetune_mode"] != "lora":
            return None
        from peft import LoraConfig

        return LoraConfig(
            r=int(self.config["lora_r"]),
            lora_alpha=int(self.config["lora_alpha"]),
            target_modules=_LORA_TARGETS,
        )

    def predict(self, data: UnitData, origins: np.ndarray) -> np.ndarray:
        return self.forecast(data, origins).point

    def forecast(self, data: UnitData, origins: np.ndarray) -> quantiles.Forecast:
        """The quantile head at LEVELS (`predict_quantiles`: the head's own levels where it has them,
        Chronos' interpolation between its two outer levels for 0.025 / 0.975); the point is its 0.5."""
        if self.pipeline is None:
            self.pipeline = build_pipeline(self.config, self.device)
        context, horizon = self.context_length(self.config), self.horizon(self.config)
        # Each origin gets its own slice, so no forecast can read a value at or after its origin
        # (a known covariate: at or after origin + horizon).
        contexts = [self._context(data, int(o), context, horizon) for o in origins]
        # No autocast: in bf16 the quantiles are rounded before they are de-normalised.
        levels, _ = self.pipeline.predict_quantiles(
            contexts,
            prediction_length=horizon,
            quantile_levels=list(quantiles.LEVELS),
            batch_size=_PREDICT_BATCH,
            context_length=context,
            cross_learning=False,  # True would let origins in one batch see each other's contexts
        )
        q = np.stack([f[0].float().numpy() for f in levels]).astype(np.float64)  # (origins, horizon, levels)
        return quantiles.Forecast(q[..., quantiles.index(0.5)], q)

    @staticmethod
    def _context(data: UnitData, origin: int, context: int, horizon: int) -> torch.Tensor | dict:
        """What the forecast from `origin` reads: rows before it, and a known covariate's rows
        origin … origin + horizon − 1 as its future values."""
        rows = _rows(data, max(0, origin - context), origin)
        if not isinstance(rows, dict):
            return torch.from_numpy(rows)
        future = {c: data.frame[c].to_numpy(dtype=np.float32)[origin : origin + horizon] for c in data.known_covariates}
        return {**rows, "future_covariates": future} if future else rows

    def _untouched(self) -> bool:
        """Released weights, not fine-tuned: stored as a reference, not a copy."""
        return self.config["init"] == "pretrained" and int(self.config["num_steps"]) <= 0

    def _lora(self) -> bool:
        return self.config["init"] == "pretrained" and hasattr(self.pipeline.model, "merge_and_unload")

    def save(self, path: str) -> None:
        """Zero-shot: adapter.json with a reference to the released weights; LoRA: the reference
        plus the adapter weights only; otherwise the whole model (LoRA merged in when its base is random)."""
        if self.pipeline is None:
            raise RuntimeError("nothing to save: call fit first")
        meta: dict = {"config": self.config, "seed": self.seed}
        if self._untouched() or self._lora():
            meta["weights"] = {"pretrained": weights.reference(self.config["pretrained"])}
            if self._lora():
                self.pipeline.model.save_pretrained(os.path.join(path, _LORA_DIR))
        else:
            Chronos2Pipeline(model=self._plain_model()).save_pretrained(path)
        foundation.save_meta(path, meta)

    def _plain_model(self) -> Chronos2Model:
        """The model with any LoRA weights merged in, so a save needs no base checkpoint."""
        model = self.pipeline.model
        if hasattr(model, "merge_and_unload"):  # a peft model
            model = copy.deepcopy(model).merge_and_unload()
        return model

    @classmethod
    def load(cls, path: str, device: str = "cpu") -> Chronos2Adapter:
        meta = foundation.load_meta(path)
        adapter = cls(meta["config"], meta["seed"], device)
        if "weights" in meta:
            adapter.pipeline = _released(weights.follow(meta["weights"]["pretrained"]))
            lora = os.path.join(path, _LORA_DIR)
            if os.path.isdir(lora):
                from peft import PeftModel

                adapter.pipeline.model = PeftModel.from_pretrained(adapter.pipeline.model, lora).merge_and_unload()
        else:
            adapter.pipeline = Chronos2Pipeline.from_pretrained(path)
        _to_fp32(adapter.pipeline, device)
        return adapter
