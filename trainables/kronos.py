"""Kronos (NeoQuasar) adapter: two-stage fine-tuning written here, forecasts by repeated sampling.

`kronos-finance` ships the upstream model code only (pinned: `_vendor` is a private path). Stage 1
fine-tunes the tokenizer on reconstruction + BSQ loss, stage 2 the predictor on next-token
cross-entropy over the frozen tokenizer's codes, as in upstream's `finetune/` scripts (the loops
are in `trainables.kronos_training`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from kronos_finance._vendor.kronos_model import Kronos, KronosTokenizer
from kronos_finance._vendor.kronos_model.kronos import top_k_top_p_filtering

from search_spaces import kronos as kronos_space
from search_spaces.kronos import BASELINE, SIZES
from trainables import foundation, quantiles, weights
from trainables.adapter import Adapter, UnitData, seed_everything
from trainables.foundation import Board
from trainables.kronos_training import (
    fp32,
    predictor_losses,
    predictor_val_loss,
    tokenizer_losses,
    tokenizer_val_loss,
    train_stage,
)

_TOKENIZER_FIXED = {"d_in": 6, "ffn_dropout_p": 0.0, "attn_dropout_p": 0.0, "resid_dropout_p": 0.0,
                    "beta": 0.05, "gamma0": 1.0, "gamma": 1.1, "zeta": 0.05}  # fmt: skip

_COLUMNS = ("open", "high", "low", "close", "volume", "amount")
_CLOSE = _COLUMNS.index("close")
_CLIP = 5.0  # normalised inputs are clipped to ±5, as upstream
_EPS = 1e-5
_PREDICT_BATCH = 256  # sampled paths per forward pass
# Val origins (forecasts from inside the val window). Only their `prediction_length` target rows
# are scored, so there are more of them than windows were when every row of a window counted.
_VAL_WINDOWS = 32
_PARTS = {"tokenizer": "tokenizer", "predictor": "pretrained"}  # component → its weight hyperparameter


# ---------------------------------------------------------------------------- models


def load_models(tokenizer_id: str, predictor_id: str, device: str = "cpu") -> tuple[KronosTokenizer, Kronos]:
    """Tokenizer and predictor through their hub mixins' from_pretrained (dir → HF cache → hub),
    read from disk once per process (each call: copies)."""
    tokenizer = _released("tokenizer", weights.resolve(tokenizer_id))
    model = _released("predictor", weights.resolve(predictor_id))
    return _paired(tokenizer, model, {"tokenizer": tokenizer_id, "predictor": predictor_id}, device)


def _released(part: str, path: str) -> KronosTokenizer | Kronos:
    """The released `part` at `path`, read from disk once per process (each call: a copy)."""
    cls = KronosTokenizer if part == "tokenizer" else Kronos
    return foundation.pretrained(f"kronos-{part}", path, cls.from_pretrained)


def _paired(tokenizer: KronosTokenizer, model: Kronos, names: dict[str, str], device: str):
    """Both on `device` in eval mode, after checking the predictor reads the tokenizer's codes."""
    if (tokenizer.s1_bits, tokenizer.s2_bits) != (model.s1_bits, model.s2_bits):
        raise ValueError(
            f"kronos: tokenizer {names['tokenizer']!r} makes ({tokenizer.s1_bits}, {tokenizer.s2_bits})-bit codes "
            f"but predictor {names['predictor']!r} reads ({model.s1_bits}, {model.s2_bits})-bit codes: "
            "pair them as released"
        )
    return tokenizer.to(device).eval(), model.to(device).eval()


def _scratch_models(size: str) -> tuple[KronosTokenizer, Kronos]:
    tok = SIZES[size]["tokenizer"]
    tokenizer = KronosTokenizer(**_TOKENIZER_FIXED, **tok)
    model = Kronos(s1_bits=tok["s1_bits"], s2_bits=tok["s2_bits"], learn_te=True, **SIZES[size]["predictor"])
    return tokenizer, model


def build_models(config: dict[str, Any], device: str = "cpu") -> tuple[KronosTokenizer, Kronos]:
    """Load (init="pretrained") or randomly build (init="scratch") tokenizer + predictor."""
    if config["init"] == "pretrained":
        return load_models(config["tokenizer"], config["pretrained"], device)
    tokenizer, model = _scratch_models(config["size"])
    return tokenizer.to(device).eval(), model.to(device).eval()


# ---------------------------------------------------------------------------- inputs


def _features(frame: pd.DataFrame) -> np.ndarray:
    """The six K-line columns as float64; `amount` (traded value) = close × volume when absent."""
    f = frame.copy()
    if "amount" not in f.columns:
        f["amount"] = f["close"] * f["volume"]
    return f[list(_COLUMNS)].to_numpy(dtype=np.float64)


def _stamps(frame: pd.DataFrame, extra: int) -> np.ndarray:
    """Calendar features (minute, hour, weekday, day, month) per row, plus `extra` rows past the
    end at the median spacing: calendar values are known ahead, prices are not."""
    ts = pd.DatetimeIndex(pd.to_datetime(frame["timestamp"]))
    if extra > 0:
        step = ts.to_series().diff().median() if len(ts) > 1 else pd.Timedelta(days=1)
        ts = ts.append(pd.DatetimeIndex([ts[-1] + step * k for k in range(1, extra + 1)]))
    return np.stack([ts.minute, ts.hour, ts.weekday, ts.day, ts.month], axis=1).astype(np.float32)


def _normalise(x: np.ndarray, context_rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scale windows (B, T, 6) by the mean/std of their first `context_rows` rows, then clip.

    Statistics come from the context only and are applied unchanged to any target rows, so no
    value at or after the origin shapes them (upstream's finetune dataset took them over the
    whole window, targets included: issues #227/#228).
    """
    context = x[:, :context_rows]
    mean, std = context.mean(axis=1, keepdims=True), context.std(axis=1, keepdims=True) + _EPS
    return np.clip((x - mean) / std, -_CLIP, _CLIP), mean, std


def _windows(feats: np.ndarray, stamps: np.ndarray, starts: np.ndarray, length: int, context_rows: int, device: str):
    """Normalised windows [s, s + length) for each start, as (x, stamp) tensors on `device`."""
    rows = starts[:, None] + np.arange(length)
    x, _, _ = _normalise(feats[rows], context_rows)
    return torch.tensor(x, dtype=torch.float32, device=device), torch.tensor(stamps[rows], device=device)


# ---------------------------------------------------------------------------- sampling


def _sample(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator) -> torch.Tensor:
    """One code per row from nucleus-filtered logits (upstream's filter, our seeded generator)."""
    logits = logits.float() / temperature
    if top_p < 1.0:
        logits = top_k_top_p_filtering(logits, top_k=0, top_p=top_p)
    return torch.multinomial(F.softmax(logits, dim=-1), 1, generator=generator)


def _sample_paths(
    tokenizer: KronosTokenizer,
    model: Kronos,
    x: torch.Tensor,
    stamp: torch.Tensor,
    horizon: int,
    limit: int,
    draw: Callable[[torch.Tensor], torch.Tensor],
) -> torch.Tensor:
    """Autoregressive paths (N, horizon, 6) in normalised units, as upstream's
    `auto_regressive_inference` but keeping every path (it returns their mean only).

    `x` is (N, T, 6) context; `stamp` (N, T + horizon, 5) covers context and targets; `draw`
    turns last-position logits into one code per row.
    """
    with fp32(x):
        s1, s2 = tokenizer.encode(x, half=True)
    for _ in range(horizon):
        start, stop = max(0, s1.size(1) - limit), s1.size(1)
        s1_logits, context = model.decode_s1(s1[:, start:], s2[:, start:], stamp[:, start:stop])
        next_s1 = draw(s1_logits[:, -1])
        next_s2 = draw(model.decode_s2(context, next_s1)[:, -1])
        s1, s2 = torch.cat([s1, next_s1], dim=1), torch.cat([s2, next_s2], dim=1)
    start = max(0, s1.size(1) - limit)
    with fp32(x):
        return tokenizer.decode([s1[:, start:], s2[:, start:]], half=True)[:, -horizon:]


def _origin_groups(origins: np.ndarray, context: int, chunk: int) -> Iterator[tuple[int, np.ndarray]]:
    """(context rows, indices) batches; origins near the frame start get shorter contexts."""
    lengths = np.minimum(origins, context)
    if (lengths < 1).any():
        raise ValueError("kronos: every origin needs at least one row before it")
    for length in np.unique(lengths):
        idx = np.flatnonzero(lengths == length)
        for k in range(0, len(idx), chunk):
            yield int(length), idx[k : k + chunk]


# ---------------------------------------------------------------------------- adapter


class KronosAdapter(Adapter):
    """Kronos forecasts all six K-line columns jointly; the point forecast is the median close."""

    name = "kronos"

    def __init__(self, config: dict[str, Any], seed: int, device: str = "cpu") -> None:
        super().__init__({**BASELINE, **config}, seed, device)  # defaults: the space's baseline
        self.max_context = kronos_space.max_context(self.config)
        problem = kronos_space.config_error(self.config)
        if problem:
            raise ValueError(f"kronos: {problem}")
        self.tokenizer: KronosTokenizer | None = None
        self.model: Kronos | None = None

    @classmethod
    def planned_steps(cls, config: dict[str, Any]) -> int:
        return kronos_space.planned_steps(config)

    def fit(self, data: UnitData, log_dir: str | None) -> dict[str, float | str]:
        return self.fit_many({"": data}, log_dir)

    def fit_many(self, datas: dict[str, UnitData], log_dir: str | None) -> dict[str, float | str]:
        """Both stages on every series' training window together (a global fit: each batch draws
        its windows from all of them, the val loss covers every series' val windows); one series is `fit`."""
        seed_everything(self.seed)  # before building: a scratch model's init depends on it
        self.tokenizer, self.model = build_models(self.config, self.device)
        steps = {stage: int(self.config[f"{stage}_steps"]) for stage in ("tokenizer", "predictor")}
        facts: dict[str, float | str] = {f"{stage}_steps": float(n) for stage, n in steps.items()}
        facts["checkpoint_chosen_on"] = "none"  # zero-shot, or no val window to choose on
        if not any(steps.values()):
            return facts
        board = Board(log_dir)
        try:
            facts.update(self._fine_tune(list(datas.values()), steps, board))
        finally:
            board.close()
        return facts

    def _fine_tune(self, datas: list[UnitData], steps: dict[str, int], board: Board) -> dict[str, float | str]:
        """Stage 1 (tokenizer), then stage 2 (predictor on the now frozen tokenizer), each keeping
        its weights with the best val loss. Several series: windows of one length (the shortest
        training window's), every (series, start) pair equally likely in a batch."""
        length, context_rows = self._train_window(min(len(d.train) for d in datas))
        feats = [(_features(d.frame), _stamps(d.frame, 0)) for d in datas]
        rng = np.random.default_rng(self.seed)
        firsts = np.array([d.train.start for d in datas])
        counts = np.array([d.train.stop - length - d.train.start + 1 for d in datas])  # windows lie inside train
        size = int(self.config["batch_size"])

        def batches() -> tuple[torch.Tensor, torch.Tensor]:
            if len(datas) == 1:  # one series: draws exactly as before global fits existed
                starts = rng.integers(firsts[0], firsts[0] + counts[0], size=size)
                return _windows(*feats[0], starts, length, context_rows, self.device)
            pick = rng.integers(0, counts.sum(), size=size)
            which = np.searchsorted(np.cumsum(counts), pick, side="right")
            offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
            parts = [
                _windows(*feats[i], firsts[i] + pick[which == i] - offsets[i], length, context_rows, self.device)
                for i in np.unique(which)
            ]
            return torch.cat([x for x, _ in parts]), torch.cat([t for _, t in parts])

        vals = [self._val_windows(d, *f, length, context_rows) for d, f in zip(datas, feats)]
        vals = [v for v in vals if v is not None]
        val = (torch.cat([x for x, _ in vals]), torch.cat([t for _, t in vals])) if vals else None
        stage = partial(train_stage, batches=batches, val=val, board=board, device=self.device)
        facts: dict[str, float | str] = {} if val is None else {"checkpoint_chosen_on": "val"}
        if steps["tokenizer"]:
            # upstream config.py: the tokenizer at its own rate (2e-4), above the predictor's (4e-5)
            val_loss = partial(tokenizer_val_loss, first=context_rows)
            lr = float(self.config["tokenizer_learning_rate"])
            facts |= stage("tokenizer", self.tokenizer, tokenizer_losses, val_loss, steps=steps["tokenizer"], lr=lr)
        self.tokenizer.eval().requires_grad_(False)
        if steps["predictor"]:
            losses = partial(predictor_losses, tokenizer=self.tokenizer)
            val_loss = partial(predictor_val_loss, tokenizer=self.tokenizer, first=context_rows)
            lr = float(self.config["learning_rate"])
            # Only the predictor's validations go on to the trial (ASHA, progress): its token
            # cross-entropy is the loss the forecasts come from.
            facts |= stage(
                "predictor", self.model, losses, val_loss, steps=steps["predictor"], lr=lr, validated=self.validated
            )
        return facts

    def _train_window(self, train_rows: int) -> tuple[int, int]:
        """(window rows, context rows): context + horizon rows, at most max_context + 1 tokens
        (inputs drop the last), shortened to fit a short training window."""
        horizon = self.horizon(self.config)
        length = min(self.context_length(self.config) + horizon, self.max_context + 1, train_rows)
        if length - horizon < 2:
            raise ValueError(f"kronos: training window of {train_rows} rows is too short for horizon {horizon}")
        return length, length - horizon

    def _val_windows(self, data: UnitData, feats, stamps, length: int, context_rows: int):
        """Up to 32 fixed windows, each a forecast from an origin in the val range: `context_rows`
        rows before it (they may be training rows), then its target rows, all inside val. The val
        losses score those target rows only; None when val holds no full horizon."""
        starts = foundation.spread(max(0, data.val.start - context_rows), data.val.stop - length, _VAL_WINDOWS)
        if not len(starts):
            return None
        return _windows(feats, stamps, starts, length, context_rows, self.device)

    def predict(self, data: UnitData, origins: np.ndarray) -> np.ndarray:
        return self.forecast(data, origins).point

    def forecast(self, data: UnitData, origins: np.ndarray) -> quantiles.Forecast:
        """Median and sample quantiles (trainables.quantiles.from_samples) of the sampled paths' close."""
        if self.model is None:
            self.tokenizer, self.model = build_models(self.config, self.device)
        origins = np.asarray(origins, dtype=np.int64)
        horizon, samples = self.horizon(self.config), int(self.config["num_samples"])
        feats, stamps = _features(data.frame), _stamps(data.frame, horizon)
        generator = torch.Generator(device=self.device).manual_seed(self.seed)
        point = np.empty((len(origins), horizon), dtype=np.float64)
        q = np.empty((len(origins), horizon, len(quantiles.LEVELS)), dtype=np.float64)
        chunk = max(1, _PREDICT_BATCH // samples)
        for length, idx in _origin_groups(origins, self.context_length(self.config), chunk):
            close = self._sampled_close(feats, stamps, origins[idx], length, generator)
            point[idx], q[idx] = np.median(close, axis=1), quantiles.from_samples(close, axis=1)
        return quantiles.Forecast(point, q)

    def _sampled_close(self, feats, stamps, origins: np.ndarray, length: int, generator) -> np.ndarray:
        """Sampled paths of the close, (origins, samples, horizon) in price units, for origins sharing `length`."""
        horizon, samples = self.horizon(self.config), int(self.config["num_samples"])
        context = origins[:, None] - length + np.arange(length)  # rows strictly before each origin
        x, mean, std = _normalise(feats[context], length)
        rows = np.concatenate([context, origins[:, None] + np.arange(horizon)], axis=1)
        x_t = torch.tensor(x, dtype=torch.float32, device=self.device).repeat_interleave(samples, dim=0)
        stamp_t = torch.tensor(stamps[rows], device=self.device).repeat_interleave(samples, dim=0)
        temperature, top_p = float(self.config["temperature"]), float(self.config["top_p"])
        draw = partial(_sample, temperature=temperature, top_p=top_p, generator=generator)
        with torch.no_grad(), foundation.autocast(self.device):
            paths = _sample_paths(self.tokenizer, self.model, x_t, stamp_t, horizon, self.max_context, draw)
        close = paths[..., _CLOSE].cpu().numpy().reshape(len(origins), samples, horizon)
        return close * std[:, :, _CLOSE, None] + mean[:, :, _CLOSE, None]

    def _untouched(self, part: str) -> bool:
        """The released weights of `part`, not fine-tuned: stored as a reference, not a copy."""
        return self.config["init"] == "pretrained" and int(self.config[f"{part}_steps"]) <= 0

    def save(self, path: str) -> None:
        """Each component under its own directory as its hub mixin saves it, or, when it is the
        released one untouched, as a reference in adapter.json."""
        if self.model is None:
            raise RuntimeError("nothing to save: call fit first")
        meta: dict = {"config": self.config, "seed": self.seed, "max_context": self.max_context, "weights": {}}
        for part, module in (("tokenizer", self.tokenizer), ("predictor", self.model)):
            if self._untouched(part):
                meta["weights"][part] = weights.reference(self.config[_PARTS[part]])
            else:
                module.save_pretrained(os.path.join(path, part))
        foundation.save_meta(path, meta)

    @classmethod
    def load(cls, path: str, device: str = "cpu") -> KronosAdapter:
        meta = foundation.load_meta(path)
        adapter = cls(meta["config"], meta["seed"], device)
        adapter.max_context = int(meta["max_context"])
        refs = meta.get("weights") or {}
        # A released component from the process cache; the unit's own weights straight from disk,
        # so loading many units (analysis/ensemble.py) holds no extra copy of each.
        parts, names = {}, {}
        for part, cls in (("tokenizer", KronosTokenizer), ("predictor", Kronos)):
            if part in refs:
                names[part] = weights.follow(refs[part])
                parts[part] = _released(part, names[part])
            else:
                names[part] = os.path.join(path, part)
                parts[part] = cls.from_pretrained(names[part])
        adapter.tokenizer, adapter.model = _paired(parts["tokenizer"], parts["predictor"], names, device)
        return adapter
