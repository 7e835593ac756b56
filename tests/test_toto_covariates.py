"""Toto with covariates on a tiny random model: which rows each covariate may read, the layout of
the authors' exogenous variates, fine-tuning on the target's loss only, variate labels on disk."""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import synthetic_prices
from toto.model.toto import Toto

from search_spaces.toto import BASELINE
from trainables.adapter import UnitData, Window
from trainables.toto import TotoAdapter
from trainables.toto_inputs import CovariateMismatch, MaskedFuture, Variates, series
from trainables.toto_training import TotoTraining, train_batch

torch.set_num_threads(1)

N_ROWS, PATCH, CONTEXT = 400, 16, 64
TRAIN, VAL, TEST = Window(0, 300), Window(300, 350), Window(350, N_ROWS)
ORIGINS = np.array([150, 260, 331])


def _frame(seed: int = 0) -> pd.DataFrame:
    frame = synthetic_prices(N_ROWS, seed)
    rng = np.random.default_rng(seed + 100)
    frame["cov_vix"] = 20 + np.cumsum(rng.normal(0, 1, N_ROWS))  # past-only
    frame["cov_cal"] = np.cumsum(rng.normal(0, 1, N_ROWS))  # known ahead
    return frame


def _unit(frame: pd.DataFrame, past=("cov_vix",), known=("cov_cal",), val: Window = VAL) -> UnitData:
    return UnitData(frame, (), TRAIN, val, TEST, past_covariates=past, known_covariates=known)


def _config(**over) -> dict:
    return {
        **BASELINE,
        "init": "scratch",
        "size": "tiny",
        "context_length": CONTEXT,
        "prediction_length": 20,  # more than a patch, not a whole number of patches
        "learning_rate": 1e-3,
        "warmup_steps": 1,
        "max_steps": 0,
        "batch_size": 8,
        "num_samples": 8,
        **over,
    }


@pytest.fixture(scope="module")
def tuned() -> TotoAdapter:
    """Fine-tuned with a past-only and a known covariate (so with variate labels)."""
    adapter = TotoAdapter(_config(max_steps=3), seed=7)
    adapter.fit(_unit(_frame()), None)
    return adapter


def _twin(adapter: TotoAdapter, **over) -> TotoAdapter:
    """The same model under other settings (num_samples, horizon)."""
    twin = TotoAdapter({**adapter.config, **over}, seed=adapter.seed)
    twin.model, twin.model_config = adapter._ensure_model(), adapter.model_config
    return twin


def _changed(frame: pd.DataFrame, column: str, rows: slice) -> pd.DataFrame:
    out = frame.copy()
    out.loc[rows, column] = out.loc[rows, column] * 3.0 + 50.0
    return out


def _same(a, b) -> bool:
    return np.array_equal(a.point, b.point) and np.array_equal(a.quantiles, b.quantiles, equal_nan=True)


def _assert_reads_only_its_rows(adapter: TotoAdapter) -> None:
    """Each origin's forecast: a past covariate up to origin - 1, a known one up to origin + h - 1."""
    frame, h = _frame(), adapter.horizon(adapter.config)
    for origin in ORIGINS:
        base = adapter.forecast(_unit(frame), [origin])
        for column, first_unread in (("cov_vix", origin), ("cov_cal", origin + h)):
            assert _same(adapter.forecast(_unit(_changed(frame, column, slice(first_unread, None))), [origin]), base)
        # ... and they are read up to there: the row before the origin, the horizon's first and
        # last known values (past a patch, the last one only through the future values decoded).
        for column, row in (("cov_vix", origin - 1), ("cov_cal", origin), ("cov_cal", origin + h - 1)):
            assert not np.allclose(
                adapter.forecast(_unit(_changed(frame, column, slice(row, row))), [origin]).point, base.point
            )


@pytest.mark.parametrize("horizon", [5, 20])  # within one patch, and past it
@pytest.mark.parametrize("num_samples", [8, 0])
def test_untrained_model_reads_each_covariate_only_where_allowed(horizon, num_samples):
    _assert_reads_only_its_rows(TotoAdapter(_config(prediction_length=horizon, num_samples=num_samples), seed=0))


@pytest.mark.parametrize("num_samples", [8, 0])
def test_fine_tuned_model_reads_each_covariate_only_where_allowed(tuned, num_samples):
    assert tuned.model.model.fusion is not None  # variate labels, as add_exogenous_features gives
    for horizon in (5, 20):
        _assert_reads_only_its_rows(_twin(tuned, num_samples=num_samples, prediction_length=horizon))


def test_the_layout_shifts_known_covariates_by_a_patch_and_masks_what_lies_past_the_horizon():
    n = 200
    index = np.arange(n, dtype=np.float32)
    v = Variates(rows=np.stack([index, -index]), known=(1000 + index)[None], patch=PATCH)
    origin, horizon = np.array([100]), 5
    x = v.context(origin, CONTEXT, horizon)
    rows = np.arange(100 - CONTEXT, 100)
    np.testing.assert_array_equal(x["values"][0, 0], rows)  # target, then the past covariate
    np.testing.assert_array_equal(x["values"][0, 1], -rows)
    source = rows + PATCH  # row r holds the known covariate of row r + patch ...
    readable = source < 100 + horizon  # ... if that row is inside the horizon
    np.testing.assert_array_equal(x["values"][0, 2], np.where(readable, 1000 + source, 0))
    np.testing.assert_array_equal(x["mask"][0, :2], True)
    np.testing.assert_array_equal(x["mask"][0, 2], readable & (rows < 100 - PATCH))  # last patch: padding
    assert x["future"].shape == (1, 1, horizon) and not x["future"].any() and not x["future_mask"].any()
    long = v.context(origin, CONTEXT, 20)
    np.testing.assert_array_equal(long["future"][0, 0], [1116, 1117, 1118, 1119, 0] + [0] * 15)
    np.testing.assert_array_equal(long["future_mask"][0, 0], np.arange(20) < 4)
    # Training windows: no row at or after the window's end, none before the training window.
    values, mask = v.windows(np.array([150]), CONTEXT + PATCH, first=80)
    rows = np.arange(150 - CONTEXT - PATCH, 150)
    np.testing.assert_array_equal(mask[0, 0], rows >= 80)
    np.testing.assert_array_equal(mask[0, 2], (rows + PATCH >= 80) & (rows + PATCH < 150))
    np.testing.assert_array_equal(values[0, 2], np.where(mask[0, 2], 1000 + rows + PATCH, 0))


def test_decoded_positions_of_unreadable_known_values_are_marked_padding():
    seen = []

    class Backbone:
        patch_embed = torch.nn.Conv1d(1, 1, 1)  # stands in: only patch_size is read
        patch_embed.patch_size = PATCH

        def __call__(self, **kwargs):
            seen.append(kwargs["input_padding_mask"])

    future_mask = torch.arange(20).expand(2, 1, 20) < 4  # 2 origins, 1 known covariate
    wrapped = MaskedFuture(Backbone(), future_mask)
    wrapped(
        inputs=torch.zeros(6, 3, CONTEXT + PATCH),
        input_padding_mask=torch.ones(6, 3, CONTEXT + PATCH, dtype=torch.bool),
        scaling_prefix_length=CONTEXT,
    )
    mask = seen[0]  # 3 samples × 2 origins
    assert mask[:, :2].all() and mask[:, 2, :CONTEXT].all()
    np.testing.assert_array_equal(mask[:, 2, CONTEXT:], np.broadcast_to(np.arange(PATCH) < 4, (6, PATCH)))


def test_the_loss_is_the_targets_alone():
    data = _unit(_frame())
    adapter = TotoAdapter(_config(), seed=0)
    training = TotoTraining(adapter._ensure_model(), adapter.config, PATCH, "cpu", 0)
    training.num_exogenous = 1
    values, mask = train_batch(series(data, PATCH), TRAIN, np.random.default_rng(0), CONTEXT, PATCH, 8)
    loss = training._window_loss(values, mask, last_patch_only=False)
    # The past covariate's last patch is a target only: were it in the loss, the loss would move.
    moved = values.copy()
    moved[:, 1, -PATCH:] *= 1000.0
    assert training._window_loss(moved, mask, last_patch_only=False) == loss
    huge = values.copy()
    huge[:, 1:] *= 1000.0
    assert torch.isfinite(training._window_loss(huge, mask, last_patch_only=False))


def test_fine_tuning_with_covariates_and_the_round_trip_with_variate_labels(tuned, tmp_path):
    path = str(tmp_path / "ckpt")
    tuned.save(path)
    with open(os.path.join(path, "adapter.json")) as f:
        assert json.load(f)["variate_labels"] is True
    # Why adapter.json says so: the package's own loader drops the labels.
    assert Toto.load_from_checkpoint(path, use_memory_efficient_attention=False).model.fusion is None
    loaded = TotoAdapter.load(path)
    for key, value in tuned.model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value), key
    data = _unit(_frame())
    assert _same(loaded.forecast(data, ORIGINS), tuned.forecast(data, ORIGINS))
    # Several variates, one generator per origin: an origin's paths do not depend on its batch.
    together = tuned.forecast(data, np.arange(300, 330))
    np.testing.assert_array_equal(tuned.forecast(data, np.arange(300, 330, 7)).point, together.point[::7])


def test_fitting_reads_no_covariate_row_after_the_training_window():
    frame = _frame()
    config = _config(max_steps=2)
    clean, changed = TotoAdapter(config, seed=3), TotoAdapter(config, seed=3)
    short_val = Window(300, 310)  # no val window: the last weights are kept, whatever val holds
    facts = clean.fit(_unit(frame, val=short_val), None)
    assert np.isfinite(facts["train_loss"])
    moved = frame
    for column in ("close", "cov_vix", "cov_cal"):
        moved = _changed(moved, column, slice(TRAIN.stop, None))
    changed.fit(_unit(moved, val=short_val), None)
    for key, value in clean.model.state_dict().items():
        assert torch.equal(changed.model.state_dict()[key], value), key


def test_variate_labels_come_with_known_covariates_only():
    past_only = TotoAdapter(_config(max_steps=1), seed=0)
    past_only.fit(_unit(_frame(), known=()), None)
    assert past_only.model.model.fusion is None
    zero_shot = TotoAdapter(_config(max_steps=0), seed=0)
    zero_shot.fit(_unit(_frame()), None)  # not fine-tuned: the model as it was given
    assert zero_shot.model.model.fusion is None


def test_a_global_fit_with_covariates():
    datas = {"a": _unit(_frame(0)), "b": _unit(_frame(1))}
    adapter = TotoAdapter(_config(max_steps=2), seed=1)
    facts = adapter.fit_many(datas, None)
    assert np.isfinite(facts["val_loss"]) and adapter.model.model.fusion is not None
    assert np.isfinite(adapter.forecast(datas["b"], ORIGINS).point).all()
    with pytest.raises(CovariateMismatch):
        adapter.fit_many({**datas, "c": _unit(_frame(2), known=())}, None)


def test_without_covariates_the_extra_columns_change_nothing():
    plain, extra = UnitData(synthetic_prices(N_ROWS, 0), (), TRAIN, VAL, TEST), _unit(_frame(), past=(), known=())
    forecasts = []
    for data in (plain, extra):
        adapter = TotoAdapter(_config(max_steps=2), seed=4)
        facts = adapter.fit(data, None)
        forecasts.append((facts, adapter.forecast(data, ORIGINS)))
    assert forecasts[0][0] == forecasts[1][0] and _same(forecasts[0][1], forecasts[1][1])
    assert isinstance(series(extra, PATCH), np.ndarray)  # the univariate path, as before covariates
