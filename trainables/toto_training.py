"""Toto fine-tuning loop: Toto's own next-patch objective in a plain torch loop.

Training follows the package's `TotoForFinetuning._train_or_val_step` (inputs = window[:-patch],
targets = window[patch:], targets scaled by the model's causal patch loc/scale, loss masked by
the padding mask), because that module hard-wires `CombinedLoss` and its data module needs HF
`datasets`. Optimiser and schedule are the package's: AdamW and `WarmupStableDecayLR` (linear
warmup, stable, 1-sqrt decay over the last fifth). As the authors' `finetune_toto.py` keeps the
best-val checkpoint (`ModelCheckpoint(monitor="val_loss")`), the loop restores the weights of the
best periodic val loss.

Covariates (trainables.toto_inputs lays them out): windows carry them as further variates, read
from the training window only; the loss is the target's (variate 0) alone. The authors mask the
exogenous (known-ahead) variates out of the loss; we also leave out the past-only ones, which Toto
forecasts as plain variates, since the sweep scores the target only. Fine-tuning with known
covariates first enables the backbone's variate labels, as `TotoForFinetuning(
add_exogenous_features=True)` does.

Losses: "nll" is Toto's pre-training `CombinedLoss` (NLL + Barron robust loss on the mean);
"quantile" is the pinball loss averaged over all quantile levels (the CRPS) of the predictive
mixture; "huber" is a Huber loss on the predictive mean. All act in Toto's scaled space.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from toto.model.losses import CombinedLoss
from toto.model.scheduler import WarmupStableDecayLR
from toto.model.toto import Toto

from trainables import foundation, toto_inputs
from trainables.adapter import TrainingDiverged, UnitData, Window, check_loss
from trainables.foundation import Board, on_cuda
from trainables.toto_inputs import Variates

LOSSES = ("nll", "quantile", "huber")
_MAX_VAL_WINDOWS = 16  # val windows scored for the periodic val loss
_CRPS_SAMPLES = 4  # reparameterised draws per mixture component for the quantile loss
_MIN_LR_RATIO = 0.1  # the package's default min_lr / lr
_EVALUATIONS = 10  # periodic val losses per run (besides the zero-shot one at step 0)

LossFn = Callable[[torch.distributions.Distribution, torch.Tensor], torch.Tensor]


def windows(y: np.ndarray | Variates, ends: np.ndarray, length: int, first: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows [end - length, end) of `y` for each end; rows before `first` become padding.

    Padding is zero with a False mask, as the package's `pad_array` does: the scaler gives it
    no weight and the loss ignores it. A unit with covariates (`Variates`) gives
    (windows, variates, time), laid out by `Variates.windows`.
    """
    if isinstance(y, Variates):
        return y.windows(ends, length, first)
    rows = ends[:, None] - length + np.arange(length)
    valid = rows >= first
    values = np.where(valid, y[np.clip(rows, 0, None)], 0.0).astype(np.float32)
    return values, valid


def train_batch(
    y: np.ndarray | Variates, train: Window, rng: np.random.Generator, context: int, patch: int, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """`size` random windows of context + one patch that read no row outside `train`.

    Every end from one real input patch + one target patch to the window's end is equally
    likely, and windows reaching before `train` are left-padded: the authors' data module samples
    split points with GluonTS `ExpectedNumInstanceSampler(min_future=patch_size)` and pads the
    past (`FinetuneDataModule.setup`). Their sampler also allows an empty past (`min_past=0`);
    we ask for one real patch, since our padding is masked and an all-padding input has nothing
    to condition on.
    """
    if len(train) < 2 * patch:
        raise ValueError(f"training window has {len(train)} rows; Toto needs at least {2 * patch}")
    ends = rng.integers(train.start + 2 * patch, train.stop + 1, size=size)
    return windows(y, ends, context + patch, first=train.start)


def train_batch_many(
    ys: list[np.ndarray | Variates], trains: list[Window], rng: np.random.Generator, context: int, patch: int, size: int
) -> tuple[np.ndarray, np.ndarray]:
    """`train_batch` over several series (a global fit): every (series, end) pair equally likely,
    so a series weighs by its training length, as a GluonTS instance sampler per series does.
    One series draws exactly as `train_batch`."""
    if len(ys) == 1:
        return train_batch(ys[0], trains[0], rng, context, patch, size)
    counts = np.array([len(t) - 2 * patch + 1 for t in trains])
    if (counts < 1).any():
        raise ValueError(f"a training window has {len(trains[int(np.argmin(counts))])} rows; Toto needs {2 * patch}")
    pick = rng.integers(0, counts.sum(), size=size)
    which = np.searchsorted(np.cumsum(counts), pick, side="right")
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]])
    parts = [
        windows(ys[i], trains[i].start + 2 * patch + pick[which == i] - offsets[i], context + patch, trains[i].start)
        for i in np.unique(which)
    ]
    return np.concatenate([v for v, _ in parts]), np.concatenate([m for _, m in parts])


def crps(distr: torch.distributions.Distribution, target: torch.Tensor) -> torch.Tensor:
    """Pinball loss averaged over all quantile levels (= CRPS), estimated by sampling.

    CRPS = E|X - y| - E|X - X'| / 2. Each mixture component is sampled with the
    reparameterisation trick and weighted by its probability, so the locations, scales,
    degrees of freedom and mixture weights all get gradients.
    """
    if isinstance(distr, torch.distributions.MixtureSameFamily):
        weights_ = distr.mixture_distribution.probs  # (..., K)
        draws = distr.component_distribution.rsample((_CRPS_SAMPLES,))  # (S, ..., K)
    else:
        weights_ = torch.ones_like(target).unsqueeze(-1)
        draws = distr.rsample((_CRPS_SAMPLES,)).unsqueeze(-1)
    accuracy = ((draws - target.unsqueeze(-1)).abs().mean(0) * weights_).sum(-1)
    # X' pairs each draw with the next one: independent draws, no second sample needed.
    partner = draws.roll(1, dims=0)
    spread = (draws.unsqueeze(-1) - partner.unsqueeze(-2)).abs().mean(0)  # (..., K, K)
    spread = (spread * weights_.unsqueeze(-1) * weights_.unsqueeze(-2)).sum((-1, -2))
    return accuracy - 0.5 * spread


def _huber(distr: torch.distributions.Distribution, target: torch.Tensor) -> torch.Tensor:
    # On the predictive mean, as the robust half of Toto's CombinedLoss does.
    return F.huber_loss(distr.mean, target, reduction="none", delta=1.0)


def loss_fn(name: str) -> LossFn:
    """Per-element loss in the model's scaled space."""
    if name == "nll":
        return CombinedLoss()  # Toto's pre-training loss: NLL + Barron robust loss
    if name == "quantile":
        return crps
    if name == "huber":
        return _huber
    raise ValueError(f"loss must be one of {LOSSES}, got {name!r}")


def _schedule(optimizer: torch.optim.Optimizer, lr: float, warmup: int, max_steps: int) -> WarmupStableDecayLR:
    warmup = min(warmup, max_steps)
    decay = (max_steps - warmup) // 5
    return WarmupStableDecayLR(
        optimizer,
        warmup_steps=warmup,
        stable_steps=max_steps - warmup - decay,
        decay_steps=decay,
        min_lr=lr * _MIN_LR_RATIO,
        base_lr=lr,
    )


def val_ends(window: Window, patch: int) -> np.ndarray:
    """Ends of val windows whose last patch (the scored one) lies inside `window`."""
    return foundation.spread(window.start + patch, window.stop, _MAX_VAL_WINDOWS)


def enable_variate_labels(backbone: torch.nn.Module) -> bool:
    """Give `backbone` Toto's target/exogenous variate labels, unless it has them (trained ones
    are kept); True when it enabled them. The labels are drawn from torch's global generator."""
    if backbone.fusion is not None:
        return False
    backbone.enable_variate_labels()
    return True


class TotoTraining:
    """Fine-tunes `model` in place on one unit; `run` returns the unit's training facts."""

    def __init__(self, model: Toto, config: dict[str, Any], patch: int, device: str, seed: int) -> None:
        self.model, self.config, self.patch, self.device, self.seed = model, config, patch, device, seed
        self.context = int(config["context_length"])
        self.loss_fn = loss_fn(config["loss"])
        self.num_exogenous = 0  # known-ahead covariates: the last variates (set per run)

    def run(
        self, data: UnitData | list[UnitData], board: Board, validated: Callable[[int, float], None] | None = None
    ) -> dict[str, Any]:
        """Train on one series, or on several (a global fit: batches drawn from every training
        window, the val loss over every series' val windows); `validated(step, val_loss)` is called
        after each periodic validation."""
        datas = data if isinstance(data, list) else [data]
        self._layout(datas)
        max_steps = int(self.config["max_steps"])
        ends = [val_ends(d.val, self.patch) for d in datas]
        facts: dict[str, Any] = {
            "max_steps": float(max_steps),
            "num_params": float(sum(p.numel() for p in self.model.parameters())),
        }
        val_loss = self._val_many(datas, ends, board, step=0)  # the zero-shot starting point
        if max_steps <= 0:
            return {**facts, "val_loss": val_loss, "checkpoint_chosen_on": "none"}
        # After the zero-shot val loss, so that it scores the model as it was given.
        if datas[0].known_covariates and enable_variate_labels(self.model.model):
            self.model.to(self.device)  # the labels are made on the CPU
            facts["num_params"] = float(sum(p.numel() for p in self.model.parameters()))
        optimizer, scheduler = self._optimiser(max_steps)
        rng, every = np.random.default_rng(self.seed), max(1, max_steps // _EVALUATIONS)
        ys = [toto_inputs.series(d, self.patch) for d in datas]
        trains, size = [d.train for d in datas], int(self.config["batch_size"])
        train_loss, best, best_step, best_state = float("nan"), float("inf"), 0, None
        for step in range(1, max_steps + 1):
            batch = train_batch_many(ys, trains, rng, self.context, self.patch, size)
            train_loss = self._step(batch, optimizer, scheduler)
            board.add("train/loss", train_loss, step)
            board.add("train/learning_rate", optimizer.param_groups[0]["lr"], step)
            if step % every == 0 or step == max_steps:
                val_loss = self._val_many(datas, ends, board, step)
                if validated is not None:
                    validated(step, val_loss)
                # Candidates are the fine-tuned steps only, as for the authors' ModelCheckpoint
                # (no validation before training); the zero-shot model is its own configuration.
                if val_loss < best:
                    best, best_step = val_loss, step
                    best_state = {k: v.detach().to("cpu", copy=True) for k, v in self.model.state_dict().items()}
        facts.update(train_loss=train_loss, val_loss=val_loss, checkpoint_chosen_on="none")
        if best_state is not None:  # no val window (NaN losses): keep the last weights
            self.model.load_state_dict(best_state)
            facts.update(val_loss=best, best_step=float(best_step), checkpoint_chosen_on="val")
        return facts

    def _layout(self, datas: list[UnitData]) -> None:
        """The variates every window of these series carries: the same covariates for all."""
        toto_inputs.check_same_covariates(datas)
        self.num_exogenous = len(datas[0].known_covariates)

    def _optimiser(self, max_steps: int) -> tuple[torch.optim.AdamW, WarmupStableDecayLR]:
        """AdamW as `TotoForFinetuning.configure_optimizers` sets it up, with its scheduler."""
        lr = float(self.config["learning_rate"])
        optimizer = torch.optim.AdamW(
            self.model.parameters(),
            lr=lr,
            betas=(0.9, 0.999),
            eps=1e-7,
            weight_decay=float(self.config["weight_decay"]),
        )
        return optimizer, _schedule(optimizer, lr, int(self.config["warmup_steps"]), max_steps)

    def _step(self, batch: tuple[np.ndarray, np.ndarray], optimizer, scheduler) -> float:
        self.model.train()
        loss = self._window_loss(*batch, last_patch_only=False)
        check_loss(loss, f"step {scheduler.last_epoch}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        return float(loss.detach())

    def _window_loss(self, values: np.ndarray, mask: np.ndarray, *, last_patch_only: bool) -> torch.Tensor:
        """Masked mean loss of next-patch prediction over windows, as in `TotoForFinetuning`.

        The model reads window[:-patch]; its outputs at step t forecast window[t + patch], scaled by
        the causal loc/scale of the patch holding t, so a target never enters its own scaling.
        """
        patch = self.patch
        series_ = torch.from_numpy(values).to(self.device)  # (batch, variates, time)
        padding = torch.from_numpy(mask).to(self.device)
        if series_.ndim == 2:  # the target alone
            series_, padding = series_.unsqueeze(1), padding.unsqueeze(1)
        inputs, input_mask = series_[..., :-patch], padding[..., :-patch]
        backbone = self.model.model
        with foundation.autocast(self.device):
            hidden, loc, scale = backbone.backbone(
                inputs,
                input_mask,
                torch.zeros_like(inputs, dtype=torch.int),
                num_exogenous_variables=self.num_exogenous,
            )
        # The target's loss only (variate 0): the authors mask the exogenous variates out of the
        # loss; selecting rather than multiplying by a mask keeps a covariate's huge values from
        # turning the sum into NaN (inf * 0).
        hidden, loc, scale = hidden[:, :1], loc[:, :1], scale[:, :1]
        targets, target_mask = series_[:, :1, patch:], padding[:, :1, patch:].clone()
        if last_patch_only:
            target_mask[..., :-patch] = False
        if not torch.isfinite(hidden).all():  # else torch.distributions fails on NaN with a long dump
            raise TrainingDiverged("training diverged: the model's outputs are no longer finite")
        # The distribution head runs in float32: bf16 log-densities are too coarse for the NLL.
        distr = backbone.output_distribution(hidden.float())
        eps = torch.finfo(series_.dtype).eps
        scaled_targets = (targets - loc.float()) / (scale.float() + eps)
        loss = self.loss_fn(distr, scaled_targets) * target_mask
        return loss.sum() / target_mask.sum().clamp_min(1)

    def val_loss(self, data: UnitData, ends: np.ndarray, board: Board | None = None, step: int = 0) -> float:
        """Loss on the first patch after each val origin (context may reach back before val)."""
        return self._val_many([data], [ends], board, step)

    @torch.no_grad()
    def _val_many(self, datas: list[UnitData], ends: list[np.ndarray], board: Board | None, step: int) -> float:
        """`val_loss` over the val windows of every series together (one mean over all windows)."""
        self._layout(datas)
        parts = [
            windows(toto_inputs.series(d, self.patch), e, self.context + self.patch, first=0)
            for d, e in zip(datas, ends, strict=True)
            if len(e)
        ]
        if not parts:
            return float("nan")
        self.model.eval()
        values, mask = np.concatenate([v for v, _ in parts]), np.concatenate([m for _, m in parts])
        with torch.random.fork_rng(devices=self._rng_devices()):
            torch.manual_seed(self.seed)  # quantile loss samples: same draws at every evaluation
            loss = float(self._window_loss(values, mask, last_patch_only=True))
        if board is not None:
            board.add("val/loss", loss, step)
        return loss

    def _rng_devices(self) -> list[int]:
        if not on_cuda(self.device):
            return []
        index = torch.device(self.device).index
        return [torch.cuda.current_device() if index is None else index]
