"""Toto (Datadog) adapter: zero-shot, or fine-tuned with Toto's own next-patch objective.

Losses: "nll" is Toto's pre-training `CombinedLoss` (NLL + Barron robust loss on the mean);
"quantile" is the pinball loss averaged over all quantile levels (the CRPS) of the predictive
mixture; "huber" is a Huber loss on the predictive mean. All act in Toto's scaled space.

Training follows the package's `TotoForFinetuning` step (inputs = window[:-patch], targets =
window[patch:], targets scaled by the model's causal patch loc/scale, loss masked by the
padding mask) in a plain torch loop, because that module hard-wires `CombinedLoss` and its data
module needs HF `datasets`. Optimiser and schedule are the package's: AdamW and
`WarmupStableDecayLR` (linear warmup, stable, 1-sqrt decay over the last fifth).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import numpy as np
import safetensors.torch
import torch
import torch.nn.functional as F
from toto.data.util.dataset import MaskedTimeseries
from toto.inference.forecaster import TotoForecaster
from toto.model.losses import CombinedLoss
from toto.model.scheduler import WarmupStableDecayLR
from toto.model.toto import Toto

from search_spaces.toto import BASELINE
from trainables import weights
from trainables.adapter import Adapter, TrainingDiverged, UnitData, Window, check_loss, seed_everything

# Class names as the released config.json spells them (the package maps them to classes).
_SCALER = "<class 'model.scaler.CausalPatchStdMeanScaler'>"
_MIXTURE = "<class 'model.distribution.MixtureOfStudentTsOutput'>"

# Randomly initialised architectures for init="scratch": the released one, shrunk.
_SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"patch_size": 16, "embed_dim": 64, "num_layers": 2, "num_heads": 4, "mlp_hidden_dim": 128, "k": 8},
    "small": {"patch_size": 64, "embed_dim": 256, "num_layers": 4, "num_heads": 8, "mlp_hidden_dim": 512, "k": 24},
}

_LOSSES = ("nll", "quantile", "huber")
_PREDICT_BATCH = 256  # origins per forward pass in deterministic (mean) decoding
_PREDICT_SEQUENCES = 4096  # origins × samples per forward pass when sampling on a GPU
_MAX_VAL_WINDOWS = 16  # val windows scored for the periodic val loss
_CRPS_SAMPLES = 4  # reparameterised draws per mixture component for the quantile loss
_MIN_LR_RATIO = 0.1  # the package's default min_lr / lr
_META_FILE = "adapter.json"


def _scratch_config(size: str) -> dict[str, Any]:
    """Constructor kwargs of a random Toto with the released layout (as config.json holds them)."""
    if size not in _SIZES:
        raise ValueError(f"size must be one of {sorted(_SIZES)}, got {size!r}")
    s = _SIZES[size]
    return {
        "patch_size": s["patch_size"],
        "stride": s["patch_size"],
        "embed_dim": s["embed_dim"],
        "num_layers": s["num_layers"],
        "num_heads": s["num_heads"],
        "mlp_hidden_dim": s["mlp_hidden_dim"],
        "dropout": 0.1,
        "spacewise_every_n_layers": s["num_layers"],
        "scaler_cls": _SCALER,
        "output_distribution_classes": [_MIXTURE],
        "output_distribution_kwargs": {"k_components": s["k"]},
        "spacewise_first": True,
        "use_memory_efficient_attention": False,
        "stabilize_with_global": True,
        "scale_factor_exponent": 10.0,
    }


def _read_model_config(path: str) -> dict[str, Any]:
    config_file = os.path.join(path, "config.json")
    if not os.path.exists(config_file):
        return {}
    with open(config_file) as f:
        return json.load(f)


def load_checkpoint(path: str) -> tuple[Toto, dict[str, Any]]:
    """A Toto from a directory with model.safetensors + config.json, and its config."""
    # xformers is optional and absent here: force the plain attention path.
    model = Toto.load_from_checkpoint(path, map_location="cpu", use_memory_efficient_attention=False)
    config = {**_read_model_config(path), "use_memory_efficient_attention": False}
    return model, config


def build_model(config: dict[str, Any], device: str = "cpu") -> tuple[Toto, dict[str, Any]]:
    """Load (init="pretrained") or randomly build (init="scratch") Toto on `device`."""
    if config["init"] == "pretrained":
        model, model_config = load_checkpoint(weights.resolve(config["pretrained"]))
    elif config["init"] == "scratch":
        model_config = _scratch_config(config["size"])
        model = Toto(**model_config)
    else:
        raise ValueError(f"init must be 'pretrained' or 'scratch', got {config['init']!r}")
    model.to(device)
    model.eval()
    return model, model_config


def _series(data: UnitData) -> np.ndarray:
    return data.frame[data.target].to_numpy(dtype=np.float32)


def _windows(y: np.ndarray, ends: np.ndarray, length: int, first: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows [end - length, end) of `y` for each end; rows before `first` become padding.

    Padding is zero with a False mask, as the package's `pad_array` does: the scaler gives it
    no weight and the loss ignores it.
    """
    rows = ends[:, None] - length + np.arange(length)
    valid = rows >= first
    values = np.where(valid, y[np.clip(rows, 0, None)], 0.0).astype(np.float32)
    return values, valid


def _crps(distr: torch.distributions.Distribution, target: torch.Tensor) -> torch.Tensor:
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


def _loss_fn(name: str) -> Callable[[torch.distributions.Distribution, torch.Tensor], torch.Tensor]:
    """Per-element loss in the model's scaled space."""
    if name == "nll":
        return CombinedLoss()  # Toto's pre-training loss: NLL + Barron robust loss
    if name == "quantile":
        return _crps
    if name == "huber":
        return _huber
    raise ValueError(f"loss must be one of {_LOSSES}, got {name!r}")


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


def _val_ends(window: Window, patch: int) -> np.ndarray:
    """Ends of val windows whose last patch (the scored one) lies inside `window`."""
    first, last = window.start + patch, window.stop
    if last < first:
        return np.array([], dtype=int)
    return np.unique(np.linspace(first, last, num=min(_MAX_VAL_WINDOWS, last - first + 1)).astype(int))


class TotoAdapter(Adapter):
    """Toto forecasts the target from its own past (univariate; Toto scales each context itself)."""

    name = "toto"

    def __init__(self, config: dict[str, Any], seed: int, device: str = "cpu") -> None:
        super().__init__({**BASELINE, **config}, seed, device)  # defaults: the space's baseline
        self.model: Toto | None = None
        self.model_config: dict[str, Any] = {}

    @property
    def _patch(self) -> int:
        return int(self.model_config["patch_size"])

    def _ensure_model(self) -> Toto:
        if self.model is None:
            seed_everything(self.seed)  # a scratch model's init depends on it
            self.model, self.model_config = build_model(self.config, self.device)
            self._check_context()
        return self.model

    def _check_context(self) -> None:
        context = self.context_length(self.config)
        if context <= 0 or context % self._patch:
            raise ValueError(f"context_length {context} must be a positive multiple of Toto's patch size {self._patch}")

    def _on_cuda(self) -> bool:
        return str(self.device).startswith("cuda")

    def _autocast(self):
        # bf16 needs no loss scaling; without it (pre-Ampere GPUs) train in float32.
        if self._on_cuda() and torch.cuda.is_bf16_supported():
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return nullcontext()

    # ----------------------------------------------------------------------------- training

    def fit(self, data: UnitData, log_dir: str | None) -> dict[str, float]:
        self.model = None
        self._ensure_model()
        seed_everything(self.seed)
        writer = None
        if log_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            os.makedirs(log_dir, exist_ok=True)
            writer = SummaryWriter(log_dir=log_dir)
        try:
            return self._train(data, writer)
        finally:
            if writer is not None:
                writer.close()
            self.model.eval()

    def _train(self, data: UnitData, writer) -> dict[str, float]:
        cfg = self.config
        max_steps = int(cfg["max_steps"])
        loss_fn = _loss_fn(cfg["loss"])
        val_ends = _val_ends(data.val, self._patch)
        facts = {"max_steps": float(max_steps), "num_params": float(sum(p.numel() for p in self.model.parameters()))}
        val_loss = self._val_loss(data, val_ends, loss_fn, writer, step=0)  # the zero-shot starting point
        if max_steps <= 0:
            return {**facts, "val_loss": val_loss}
        optimizer, scheduler = self._optimiser(max_steps)
        rng, y, every = np.random.default_rng(self.seed), _series(data), max(1, max_steps // 10)
        train_loss = float("nan")
        for step in range(1, max_steps + 1):
            train_loss = self._step(self._train_batch(y, data.train, rng), loss_fn, optimizer, scheduler)
            if writer is not None:
                writer.add_scalar("train/loss", train_loss, step)
                writer.add_scalar("train/learning_rate", optimizer.param_groups[0]["lr"], step)
            if step % every == 0 or step == max_steps:
                val_loss = self._val_loss(data, val_ends, loss_fn, writer, step)
        return {**facts, "train_loss": train_loss, "val_loss": val_loss}

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

    def _step(self, batch: tuple[np.ndarray, np.ndarray], loss_fn, optimizer, scheduler) -> float:
        self.model.train()
        loss = self._window_loss(*batch, loss_fn, last_patch_only=False)
        check_loss(loss, f"step {scheduler.last_epoch}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        return float(loss.detach())

    def _train_batch(self, y: np.ndarray, train: Window, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Random windows of context + one patch that read no row outside the training window."""
        length, patch = self.context_length(self.config) + self._patch, self._patch
        if len(train) < 2 * patch:
            raise ValueError(f"training window has {len(train)} rows; Toto needs at least {2 * patch}")
        # A training window shorter than context + patch is left-padded, not extended backwards.
        lowest_end = train.start + min(length, len(train))
        ends = rng.integers(lowest_end, train.stop + 1, size=int(self.config["batch_size"]))
        return _windows(y, ends, length, first=train.start)

    def _window_loss(self, values: np.ndarray, mask: np.ndarray, loss_fn, *, last_patch_only: bool) -> torch.Tensor:
        """Masked mean loss of next-patch prediction over windows, as in `TotoForFinetuning`.

        The model reads window[:-patch]; its outputs at step t forecast window[t + patch], scaled by
        the causal loc/scale of the patch holding t, so a target never enters its own scaling.
        """
        patch = self._patch
        series = torch.from_numpy(values).to(self.device).unsqueeze(1)  # (batch, 1 variate, time)
        padding = torch.from_numpy(mask).to(self.device).unsqueeze(1)
        inputs, input_mask = series[..., :-patch], padding[..., :-patch]
        targets, target_mask = series[..., patch:], padding[..., patch:].clone()
        if last_patch_only:
            target_mask[..., :-patch] = False
        backbone = self.model.model
        with self._autocast():
            hidden, loc, scale = backbone.backbone(inputs, input_mask, torch.zeros_like(inputs, dtype=torch.int))
        if not torch.isfinite(hidden).all():  # else torch.distributions fails on NaN with a long dump
            raise TrainingDiverged("training diverged: the model's outputs are no longer finite")
        # The distribution head runs in float32: bf16 log-densities are too coarse for the NLL.
        distr = backbone.output_distribution(hidden.float())
        eps = torch.finfo(series.dtype).eps
        scaled_targets = (targets - loc.float()) / (scale.float() + eps)
        loss = loss_fn(distr, scaled_targets) * target_mask
        return loss.sum() / target_mask.sum().clamp_min(1)

    @torch.no_grad()
    def _val_loss(self, data: UnitData, ends: np.ndarray, loss_fn, writer, step: int) -> float:
        """Loss on the first patch after each val origin (context may reach back before val)."""
        if len(ends) == 0:
            return float("nan")
        self.model.eval()
        length = self.context_length(self.config) + self._patch
        values, mask = _windows(_series(data), ends, length, first=0)
        with torch.random.fork_rng(devices=self._rng_devices()):
            torch.manual_seed(self.seed)  # quantile loss samples: same draws at every evaluation
            loss = float(self._window_loss(values, mask, loss_fn, last_patch_only=True))
        if writer is not None:
            writer.add_scalar("val/loss", loss, step)
        return loss

    def _rng_devices(self) -> list[int]:
        if not self._on_cuda():
            return []
        index = torch.device(self.device).index
        return [torch.cuda.current_device() if index is None else index]

    # ---------------------------------------------------------------------------- inference

    def predict(self, data: UnitData, origins: np.ndarray) -> np.ndarray:
        """Median of `num_samples` sampled paths per origin (num_samples 0: Toto's mean path)."""
        model = self._ensure_model()
        model.eval()
        origins = np.asarray(origins, dtype=int)
        context = self.context_length(self.config)
        values, mask = _windows(_series(data), origins, context, first=0)  # rows before each origin only
        forecaster = TotoForecaster(model.model)
        chunk = self._origins_per_batch()
        out = [
            self._forecast(forecaster, values[i : i + chunk], mask[i : i + chunk], int(origins[i]))
            for i in range(0, len(origins), chunk)
        ]
        if not out:
            return np.zeros((0, self.horizon(self.config)))
        return np.concatenate(out).astype(np.float64)

    def _origins_per_batch(self) -> int:
        num_samples = int(self.config["num_samples"])
        if num_samples <= 0:
            return _PREDICT_BATCH
        # CPU gamma sampling draws a value-dependent count of random numbers, so in one batch an
        # origin's draws would shift when another origin's context changes (a leak in the
        # no-future-data test): there, sample one origin at a time, its samples as one batch.
        if not self._on_cuda():
            return 1
        return max(1, _PREDICT_SEQUENCES // num_samples)

    @torch.no_grad()
    def _forecast(self, forecaster: TotoForecaster, values: np.ndarray, mask: np.ndarray, origin: int) -> np.ndarray:
        series = torch.from_numpy(values).to(self.device).unsqueeze(1)
        padding = torch.from_numpy(mask).to(self.device).unsqueeze(1)
        inputs = MaskedTimeseries(
            series=series,
            padding_mask=padding,
            id_mask=torch.zeros_like(series, dtype=torch.int),
            # Toto only carries time stamps along; daily steps stand in for the real ones.
            timestamp_seconds=torch.zeros_like(series, dtype=torch.int),
            time_interval_seconds=torch.full(series.shape[:2], 86_400, dtype=torch.int, device=self.device),
        )
        horizon, num_samples = self.horizon(self.config), int(self.config["num_samples"])
        # Full precision here: the decoder appends samples to a float32 KV cache.
        with torch.random.fork_rng(devices=self._rng_devices()):
            torch.manual_seed(self.seed * 1_000_003 + origin)
            if num_samples > 0:
                forecast = forecaster.forecast(
                    inputs, prediction_length=horizon, num_samples=num_samples, samples_per_batch=num_samples
                )
                point = forecast.median
            else:
                point = forecaster.forecast(inputs, prediction_length=horizon).mean
        return point[:, 0].float().cpu().numpy()

    # ------------------------------------------------------------------------------ storage

    def save(self, path: str) -> None:
        """model.safetensors + config.json as `Toto.load_from_checkpoint` reads them."""
        if self.model is None:
            raise RuntimeError("nothing to save: call fit first")
        os.makedirs(path, exist_ok=True)
        # `Toto.save_pretrained` raises with this package version; write the two files directly.
        state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        safetensors.torch.save_file(state, os.path.join(path, "model.safetensors"))
        with open(os.path.join(path, "config.json"), "w") as f:
            json.dump(self.model_config, f, indent=2)
        with open(os.path.join(path, _META_FILE), "w") as f:
            # Tune/Optuna may hand numpy scalars; `.item()` turns them into JSON numbers.
            json.dump({"config": self.config, "seed": self.seed}, f, indent=2, default=lambda v: v.item())

    @classmethod
    def load(cls, path: str, device: str = "cpu") -> TotoAdapter:
        with open(os.path.join(path, _META_FILE)) as f:
            meta = json.load(f)
        adapter = cls(meta["config"], meta["seed"], device)
        adapter.model, adapter.model_config = load_checkpoint(path)
        adapter.model.to(device)
        adapter.model.eval()
        return adapter
