"""Toto's inputs with covariates: the variates a unit reads, and which rows each may read.

Variates are laid out as toto-ts 0.2.0 lays them out: the target (variate 0, our forecast), the
past-only covariates, then the known-ahead covariates as Toto's exogenous variates, last in the
variate dimension (`num_exogenous_variables` = their count). Each variate is scaled by Toto's own
causal patch scaler; nothing is scaled here. All variates share one id (space-wise attention
across them), as the authors' `build_id_mask` gives.

Past-only covariates are plain variates, Toto's native multivariate mode: the authors' exogenous
variates need known future values injected during decoding (`TotoForecaster` overwrites the
last `num_exogenous_variables` channels of each decoded patch), which a past-only covariate does
not have; as a plain variate the model forecasts it jointly with the target, as the released
model was pre-trained to. They read the rows the target reads (before the origin).

Known-ahead covariates follow the authors' recipe (`evaluation/fev/evaluate.py`
`generate_test_window`, `data/util/helpers.py` `preprocess_exogenous_features`): shifted forward
by one patch, so that the input at row r holds the covariate at row r + patch, the values of the
patch the model predicts from it. Training (and val-loss) windows end with a patch of zeros
marked padding, as their `instance_to_causal` builds both; forecast contexts mark their last
patch padding (values kept, as the authors keep them), and the forecaster gets the shifted
values of the forecast rows as `future_exogenous_variables`.

Where we differ, and why:
- Our contract lets a known covariate be read at rows < origin + horizon only. The shift reads
  up to origin + patch - 1 (context) and origin + horizon + patch - 1 (future values), so every
  value whose source row is at or after origin + horizon (or past the frame's end) is zero with
  padding False, the authors' own "no value" convention. The package marks every decoded
  position valid; `MaskedFuture` masks those positions too. Training windows keep the authors'
  layout (each patch reads the next patch's known values, all inside the window): with a
  horizon short of a whole patch, a forecast sees fewer known values than training did.
- Rows before a training window are zero and masked, for every variate (the authors' padding
  mask is all True); a covariate value that is not finite is missing: zero and masked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from einops import repeat

from trainables.adapter import UnitData

_NEVER = np.iinfo(np.int64).max


class CovariateMismatch(ValueError):
    """Series fitted together (a global fit) name different covariates."""


@dataclass(frozen=True)
class Variates:
    """One unit's variates by row: `rows` = target then past-only covariates, `known` = known ahead."""

    rows: np.ndarray  # (1 + past covariates, frame rows)
    known: np.ndarray  # (known covariates, frame rows)
    patch: int

    @property
    def num_exogenous(self) -> int:
        return self.known.shape[0]

    def windows(self, ends: np.ndarray, length: int, first: int) -> tuple[np.ndarray, np.ndarray]:
        """Training (and val) windows: rows [end - length, end) of each variate, (windows, variates, time).

        Rows before `first` are padding. A known covariate reads row r + patch at row r, only
        below `end` (no row after the window): its last patch is zero padding, as the authors'
        `preprocess_exogenous_features` appends.
        """
        rows = ends[:, None] - length + np.arange(length)
        values, valid = _read(self.rows, rows, first, _NEVER, covariates_from=1)
        known, known_valid = _read(self.known, rows + self.patch, first, ends[:, None])
        return np.concatenate([values, known], axis=1), np.concatenate([valid, known_valid], axis=1)

    def context(self, origins: np.ndarray, length: int, horizon: int) -> dict[str, np.ndarray]:
        """Forecast inputs of each origin: `values`/`mask` (origins, variates, length) of the rows
        before it, and the known covariates' `future`/`future_mask` (origins, known, horizon)."""
        rows = origins[:, None] - length + np.arange(length)
        stop = origins[:, None] + horizon  # a known covariate: no row from origin + horizon on
        values, valid = _read(self.rows, rows, 0, _NEVER, covariates_from=1)
        known, known_valid = _read(self.known, rows + self.patch, 0, stop)
        known_valid[..., -self.patch :] = False  # as generate_test_window marks it
        future, future_valid = _read(self.known, origins[:, None] + np.arange(horizon) + self.patch, 0, stop)
        return {
            "values": np.concatenate([values, known], axis=1),
            "mask": np.concatenate([valid, known_valid], axis=1),
            "future": future,
            "future_mask": future_valid,
        }


def _read(x: np.ndarray, rows: np.ndarray, lo: int, hi: Any, covariates_from: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """x[:, rows] as (windows, variates, time) where lo <= row < hi, else zero and invalid.

    Variates from `covariates_from` on are covariates: a value that is not finite is missing.
    The target's values are read as they are, as in the univariate path.
    """
    inside = (rows >= lo) & (rows < hi) & (rows < x.shape[1])
    values = np.moveaxis(x[:, np.clip(rows, 0, max(x.shape[1] - 1, 0))], 0, 1)  # (windows, variates, time)
    valid = np.repeat(inside[:, None], x.shape[0], axis=1)
    valid[:, covariates_from:] &= np.isfinite(values[:, covariates_from:])
    return np.where(valid, values, 0.0).astype(np.float32), valid


def check_same_covariates(datas: list[UnitData]) -> None:
    """A global fit reads one layout of variates: every series must name the same covariates."""
    names = {(d.past_covariates, d.known_covariates) for d in datas}
    if len(names) > 1:
        raise CovariateMismatch(f"series fitted together must name the same covariates, got {sorted(names)}")


def series(data: UnitData, patch: int) -> np.ndarray | Variates:
    """The target's values (no covariates: the univariate path as it was), or the unit's Variates."""
    target = data.frame[data.target].to_numpy(dtype=np.float32)
    if not data.covariates:
        return target
    past = [data.frame[c].to_numpy(dtype=np.float32) for c in data.past_covariates]
    known = [data.frame[c].to_numpy(dtype=np.float32) for c in data.known_covariates]
    return Variates(
        rows=np.stack([target, *past]),
        known=np.stack(known) if known else np.zeros((0, len(target)), dtype=np.float32),
        patch=patch,
    )


class MaskedFuture:
    """A Toto backbone for `TotoForecaster` that marks invalid future known values as padding.

    The forecaster appends each decoded patch with a padding mask of True, also where it injects
    our zeros for known-covariate rows at or after origin + horizon; this sets those positions
    False (`future_mask`, padded to whole patches with False), so the causal scaler skips them.
    """

    def __init__(self, backbone: torch.nn.Module, future_mask: torch.Tensor) -> None:
        self.backbone = backbone
        self.patch_embed = backbone.patch_embed
        patch = backbone.patch_embed.patch_size
        rounded = -(-future_mask.shape[-1] // patch) * patch
        self.future_mask = torch.nn.functional.pad(future_mask, (0, rounded - future_mask.shape[-1]), value=False)

    def eval(self) -> MaskedFuture:
        self.backbone.eval()
        return self

    def allocate_kv_cache(self, *args: Any, **kwargs: Any) -> Any:
        return self.backbone.allocate_kv_cache(*args, **kwargs)

    def __call__(self, *, inputs: torch.Tensor, input_padding_mask: torch.Tensor, **kwargs: Any) -> Any:
        context = kwargs["scaling_prefix_length"]  # the forecaster passes its context's length
        decoded, known = inputs.shape[-1] - context, self.future_mask.shape[1]
        if decoded > 0 and known > 0:
            # Sampling repeats each origin as (samples, origins) rows.
            future = repeat(self.future_mask, "b v t -> (s b) v t", s=inputs.shape[0] // self.future_mask.shape[0])
            input_padding_mask = input_padding_mask.clone()
            input_padding_mask[:, -known:, context:] &= future[..., :decoded]
        return self.backbone(inputs=inputs, input_padding_mask=input_padding_mask, **kwargs)
