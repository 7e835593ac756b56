"""Toto (Datadog) adapter: zero-shot, or fine-tuned with Toto's own next-patch objective.

The training loop is in `trainables.toto_training`. Forecasts are the median (and the sample
quantiles) of `num_samples` sampled paths (256 by default, as the authors' `evaluation/fev/evaluate.py` draws), each origin
sampled from its own random generator so that origins can share a batch without their draws
depending on one another.

Covariates are further variates after the target (past-only ones as plain variates, known-ahead
ones as Toto's exogenous variates, their future values injected while decoding); which rows
each reads, and where that differs from the authors' recipe, is in `trainables.toto_inputs`.
A model fine-tuned with known covariates has Toto's variate labels, which
`Toto.load_from_checkpoint` drops (it keeps only the keys a fresh Toto has, and config.json
cannot ask for them: TotoBackbone takes no such argument), so adapter.json records
`variate_labels` and `load_checkpoint` restores them from model.safetensors.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import numpy as np
import safetensors.torch
import torch
from toto.data.util.dataset import MaskedTimeseries
from toto.inference.forecaster import TotoForecaster
from toto.model.toto import Toto

from search_spaces import toto as toto_space
from search_spaces.toto import BASELINE, SIZES
from trainables import foundation, quantiles, toto_inputs, weights
from trainables.adapter import Adapter, UnitData, seed_everything
from trainables.toto_inputs import MaskedFuture, Variates
from trainables.toto_training import TotoTraining, windows

# Class names as the released config.json spells them (the package maps them to classes).
_SCALER = "<class 'model.scaler.CausalPatchStdMeanScaler'>"
_MIXTURE = "<class 'model.distribution.MixtureOfStudentTsOutput'>"

_PREDICT_BATCH = 256  # origins per forward pass in deterministic (mean) decoding
_PREDICT_SEQUENCES = 4096  # origins × samples per forward pass when sampling
_LABELS = ("model.target_variate_label", "model.exogenous_variate_label")  # TotoBackbone's names


class CheckpointError(RuntimeError):
    """A saved Toto lacks weights its adapter.json says it has."""


def _scratch_config(size: str) -> dict[str, Any]:
    """Constructor kwargs of a random Toto with the released layout (as config.json holds them)."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {sorted(SIZES)}, got {size!r}")
    s = SIZES[size]
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


def load_checkpoint(path: str, variate_labels: bool = False) -> tuple[Toto, dict[str, Any]]:
    """A Toto from a directory with model.safetensors + config.json, and its config; its variate
    labels too where the file holds them (`variate_labels`: it must)."""
    # xformers is optional and absent here: force the plain attention path.
    model = Toto.load_from_checkpoint(path, map_location="cpu", use_memory_efficient_attention=False)
    _restore_labels(model, os.path.join(path, "model.safetensors") if os.path.isdir(path) else path, variate_labels)
    config = {**_read_model_config(path), "use_memory_efficient_attention": False}
    return model, config


def _enable_labels(model: Toto) -> None:
    # Their initial values are overwritten: leave torch's global generator as it was.
    with torch.random.fork_rng(devices=[]):
        model.model.enable_variate_labels()


def _restore_labels(model: Toto, file: str, required: bool) -> None:
    """The variate labels the package's loader dropped, put back from `file`."""
    with safetensors.safe_open(file, framework="pt") as f:
        stored = {k: f.get_tensor(k) for k in _LABELS if k in f.keys()}
    if len(stored) < len(_LABELS):
        if required:
            raise CheckpointError(f"{file} lacks the variate labels {', '.join(_LABELS)} its adapter.json records")
        return
    _enable_labels(model)
    model.load_state_dict(stored, strict=False)


def _clone(loaded: tuple[Toto, dict[str, Any]]) -> tuple[Toto, dict[str, Any]]:
    """A copy of a loaded Toto (the package's model does not deep-copy: it holds a staticmethod)."""
    model, config = loaded
    fresh = Toto(**config)
    if model.model.fusion is not None:
        _enable_labels(fresh)
    fresh.load_state_dict(model.state_dict())
    return fresh, dict(config)


def _released(path: str) -> tuple[Toto, dict[str, Any]]:
    """The released Toto at `path`, read from disk once per process (each call: a copy)."""
    return foundation.pretrained("toto", path, load_checkpoint, _clone)


def build_model(config: dict[str, Any], device: str = "cpu") -> tuple[Toto, dict[str, Any]]:
    """Load (init="pretrained") or randomly build (init="scratch") Toto on `device`."""
    if config["init"] == "pretrained":
        # Read from disk once per process; each unit gets its own copy.
        model, model_config = _released(weights.resolve(config["pretrained"]))
    elif config["init"] == "scratch":
        model_config = _scratch_config(config["size"])
        model = Toto(**model_config)
    else:
        raise ValueError(f"init must be 'pretrained' or 'scratch', got {config['init']!r}")
    model.to(device)
    model.eval()
    return model, model_config


def _last_patch(x: torch.Tensor | float, patch: int) -> torch.Tensor | float:
    """The last `patch` time steps of a (rows, variates, time[, components]) parameter."""
    return x[:, :, -patch:] if torch.is_tensor(x) else x


class _PerOriginDraws:
    """The forecaster's predictive distribution, sampled with one generator per origin.

    `distr` is the forecaster's `AffineTransformed` of a Student-t or a mixture of Student-ts
    (toto.model.distribution). `TotoForecaster.generate_samples` lays its rows out as
    (samples, origins) and keeps only the last patch of each draw, so `sample` draws just that
    patch. Only the random numbers are drawn origin by origin; the arithmetic is batched.
    """

    def __init__(self, distr: torch.distributions.Distribution, generators: list[torch.Generator], patch: int) -> None:
        self.distr, self.generators, self.patch = distr, generators, patch

    @property
    def mean(self) -> torch.Tensor:
        return self.distr.mean

    def _per_origin(self, draw: Callable[[torch.Generator, slice], torch.Tensor]) -> torch.Tensor:
        """`draw(generator, rows)` for each origin's rows, put back in the (samples, origins) layout."""
        n = len(self.generators)
        parts = [draw(g, slice(b, None, n)) for b, g in enumerate(self.generators)]
        return torch.stack(parts, dim=1).flatten(0, 1)

    def sample(self) -> torch.Tensor:
        base, patch = self.distr.base_dist, self.patch
        if isinstance(base, torch.distributions.MixtureSameFamily):
            probs = _last_patch(base.mixture_distribution.probs, patch)
            uniform = self._per_origin(
                lambda g, rows: torch.rand(probs[rows].shape[:-1], generator=g, device=probs.device, dtype=probs.dtype)
            )
            # The component by inverse CDF, then its parameters.
            k = (probs.cumsum(-1) < uniform.unsqueeze(-1)).sum(-1, keepdim=True).clamp_max(probs.shape[-1] - 1)
            comp = base.component_distribution
            df, loc, scale = (_last_patch(p, patch).gather(-1, k).squeeze(-1) for p in (comp.df, comp.loc, comp.scale))
        elif isinstance(base, torch.distributions.StudentT):
            df, loc, scale = (_last_patch(p, patch) for p in (base.df, base.loc, base.scale))
        else:
            raise TypeError(f"no per-origin sampler for Toto output distribution {type(base).__name__}")
        # Student-t as `torch.distributions.StudentT.rsample` makes it: normal * rsqrt(chi2 / df),
        # chi2(df) = 2 * Gamma(df / 2). `torch._standard_gamma` is what `Gamma.rsample` calls and,
        # unlike the distribution API, it takes a generator.
        half_df = 0.5 * df
        normal = self._per_origin(
            lambda g, rows: torch.randn(df[rows].shape, generator=g, device=df.device, dtype=df.dtype)
        )
        gamma = self._per_origin(lambda g, rows: torch._standard_gamma(half_df[rows], generator=g))
        chi2 = (2.0 * gamma).clamp_min(torch.finfo(df.dtype).tiny)
        draws = loc + scale * normal * torch.rsqrt(chi2 / df)
        return draws * _last_patch(self.distr.scale, patch) + _last_patch(self.distr.loc, patch)


class _SeededForecaster(TotoForecaster):
    """TotoForecaster whose sampled paths for each origin come from that origin's own generator.

    The package samples a whole batch from the global generator, and torch's CPU gamma sampler
    (inside the Student-t) draws a value-dependent count of random numbers, so one origin's paths
    would depend on the other origins in its batch (a leak in the no-future-data test).
    """

    def __init__(self, model, generators: list[torch.Generator]) -> None:
        super().__init__(model)
        self.generators = generators

    def create_affine_transformed(self, base_distr, loc, scale):  # the package calls it via self
        distr = TotoForecaster.create_affine_transformed(base_distr, loc, scale)
        return _PerOriginDraws(distr, self.generators, self.model.patch_embed.patch_size)


class TotoAdapter(Adapter):
    """Toto forecasts the target from its own past and the unit's covariates, if any (Toto scales
    each variate's context itself)."""

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
        problem = toto_space.context_error(self.context_length(self.config), self._patch)
        if problem:
            raise ValueError(problem)

    # ----------------------------------------------------------------------------- training

    @classmethod
    def planned_steps(cls, config: dict[str, Any]) -> int:
        return toto_space.planned_steps(config)

    def fit(self, data: UnitData, log_dir: str | None) -> dict[str, Any]:
        """Fine-tune (max_steps > 0) and keep the weights of the best val loss."""
        return self.fit_many({"": data}, log_dir)

    def fit_many(self, datas: dict[str, UnitData], log_dir: str | None) -> dict[str, Any]:
        """Fine-tune on every series' training window together (a global fit; one series is `fit`)."""
        self.model = None
        self._ensure_model()
        seed_everything(self.seed)
        board = foundation.Board(log_dir)
        try:
            return TotoTraining(self.model, self.config, self._patch, self.device, self.seed).run(
                list(datas.values()), board, self.validated
            )
        finally:
            board.close()
            self.model.eval()

    # ---------------------------------------------------------------------------- inference

    def predict(self, data: UnitData, origins: np.ndarray) -> np.ndarray:
        return self.forecast(data, origins).point

    def forecast(self, data: UnitData, origins: np.ndarray) -> quantiles.Forecast:
        """Median and sample quantiles (trainables.quantiles.from_samples) of `num_samples` sampled
        paths per origin; num_samples 0: Toto's mean path and no distribution (NaN quantiles)."""
        model = self._ensure_model()
        model.eval()
        origins = np.asarray(origins, dtype=int)
        context, horizon = self.context_length(self.config), self.horizon(self.config)
        y = toto_inputs.series(data, self._patch)
        if isinstance(y, Variates):  # known covariates also at the forecast rows
            inputs = y.context(origins, context, horizon)
        else:
            values, mask = windows(y, origins, context, first=0)  # rows before each origin only
            inputs = {"values": values, "mask": mask}
        chunk = self._origins_per_batch(1 + len(data.covariates))
        out = [
            self._forecast(
                {k: v[i : i + chunk] for k, v in inputs.items()}, origins[i : i + chunk], len(data.known_covariates)
            )
            for i in range(0, len(origins), chunk)
        ]
        if not out:
            return quantiles.Forecast.point_only(np.zeros((0, self.horizon(self.config))))
        return quantiles.Forecast(
            np.concatenate([p for p, _ in out]).astype(np.float64), np.concatenate([q for _, q in out])
        )

    def _origins_per_batch(self, variates: int) -> int:
        num_samples = int(self.config["num_samples"])
        if num_samples <= 0:
            return max(1, _PREDICT_BATCH // variates)
        return max(1, _PREDICT_SEQUENCES // (num_samples * variates))

    def _generators(self, origins: np.ndarray) -> list[torch.Generator]:
        # Seeded from (seed, origin): an origin's paths are the same in any batch, on any call.
        return [torch.Generator(device=self.device).manual_seed(self.seed * 1_000_003 + int(o)) for o in origins]

    @torch.no_grad()
    def _forecast(
        self, arrays: dict[str, np.ndarray], origins: np.ndarray, num_exogenous: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """`arrays`: `values`/`mask` (origins, [variates,] time), with known covariates also
        `future`/`future_mask` (origins, known, horizon); the last `num_exogenous` variates are known."""
        series_ = torch.from_numpy(arrays["values"]).to(self.device)
        padding = torch.from_numpy(arrays["mask"]).to(self.device)
        if series_.ndim == 2:  # the target alone
            series_, padding = series_.unsqueeze(1), padding.unsqueeze(1)
        inputs = MaskedTimeseries(
            series=series_,
            padding_mask=padding,
            id_mask=torch.zeros_like(series_, dtype=torch.int),
            # Toto only carries time stamps along; daily steps stand in for the real ones.
            timestamp_seconds=torch.zeros_like(series_, dtype=torch.int),
            time_interval_seconds=torch.full(series_.shape[:2], 86_400, dtype=torch.int, device=self.device),
            num_exogenous_variables=num_exogenous,
        )
        horizon, num_samples = self.horizon(self.config), int(self.config["num_samples"])
        backbone, future = self.model.model, None
        if num_exogenous:
            future = torch.from_numpy(arrays["future"]).to(self.device)
            backbone = MaskedFuture(backbone, torch.from_numpy(arrays["future_mask"]).to(self.device))
        # Full precision here: the decoder appends samples to a float32 KV cache.
        if num_samples > 0:
            forecaster = _SeededForecaster(backbone, self._generators(origins))
            forecast = forecaster.forecast(
                inputs,
                prediction_length=horizon,
                num_samples=num_samples,
                samples_per_batch=num_samples,
                future_exogenous_variables=future,
            )
            point = forecast.median[:, 0].float().cpu().numpy()
            return point, quantiles.from_samples(forecast.samples[:, 0].float().cpu().numpy())  # (b, h, S) → levels
        mean = (
            TotoForecaster(backbone).forecast(inputs, prediction_length=horizon, future_exogenous_variables=future).mean
        )
        point = mean[:, 0].float().cpu().numpy()
        return point, quantiles.Forecast.point_only(point).quantiles

    # ------------------------------------------------------------------------------ storage

    def _untouched(self) -> bool:
        """Released weights, not fine-tuned: stored as a reference, not a copy."""
        return self.config["init"] == "pretrained" and int(self.config["max_steps"]) <= 0

    def save(self, path: str) -> None:
        """model.safetensors + config.json as `Toto.load_from_checkpoint` reads them, or, zero-shot,
        a reference to the released weights in adapter.json."""
        if self.model is None:
            raise RuntimeError("nothing to save: call fit first")
        meta: dict = {"config": self.config, "seed": self.seed}
        if self._untouched():
            meta["weights"] = {"pretrained": weights.reference(self.config["pretrained"])}
        else:
            os.makedirs(path, exist_ok=True)
            # `Toto.save_pretrained` raises with this package version; write the two files directly.
            state = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
            safetensors.torch.save_file(state, os.path.join(path, "model.safetensors"))
            with open(os.path.join(path, "config.json"), "w") as f:
                json.dump(self.model_config, f, indent=2)
            if self.model.model.fusion is not None:  # the package's loader would drop them
                meta["variate_labels"] = True
        foundation.save_meta(path, meta)

    @classmethod
    def load(cls, path: str, device: str = "cpu") -> TotoAdapter:
        meta = foundation.load_meta(path)
        adapter = cls(meta["config"], meta["seed"], device)
        if "weights" in meta:
            source = weights.follow(meta["weights"]["pretrained"])
            adapter.model, adapter.model_config = _released(source)
        else:
            adapter.model, adapter.model_config = load_checkpoint(path, bool(meta.get("variate_labels", False)))
        adapter.model.to(device)
        adapter.model.eval()
        return adapter
