"""KronosAdapter on a tiny random model loaded back through the real pretrained path (no Ray)."""

from __future__ import annotations

import glob
import os
from functools import partial

import numpy as np
import pandas as pd
import pytest
import torch

from search_spaces.kronos import BASELINE as DEFAULTS
from trainables.adapter import UnitData, Window
from trainables.kronos import KronosAdapter, _features, _normalise, _sample, _sample_paths, build_models

torch.set_num_threads(1)

ROWS, CONTEXT, HORIZON = 360, 32, 4
ORIGINS = np.array([240, 256, 272, 288])
COLUMNS = ["open", "high", "low", "close", "volume", "amount"]


def _random_walk(rows: int = ROWS, seed: int = 0) -> pd.DataFrame:
    """Daily OHLCV random walk, no `amount` column (the adapter derives it)."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, rows)))
    open_ = close * np.exp(rng.normal(0, 0.003, rows))
    return pd.DataFrame(
        {
            "timestamp": pd.bdate_range("2021-01-04", periods=rows),
            "open": open_,
            "high": np.maximum(open_, close) * (1 + rng.uniform(0, 0.01, rows)),
            "low": np.minimum(open_, close) * (1 - rng.uniform(0, 0.01, rows)),
            "close": close,
            "volume": rng.lognormal(13, 0.3, rows),
        }
    )


def _unit(frame: pd.DataFrame) -> UnitData:
    return UnitData(frame=frame, features=(), train=Window(0, 220), val=Window(220, 300), test=Window(300, ROWS))


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory) -> str:
    """A tiny randomly initialised tokenizer + predictor saved as hub-style directories."""
    path = str(tmp_path_factory.mktemp("kronos_tiny"))
    torch.manual_seed(0)
    tokenizer, model = build_models({**DEFAULTS, "init": "scratch", "size": "tiny"})
    tokenizer.save_pretrained(os.path.join(path, "tokenizer"))
    model.save_pretrained(os.path.join(path, "predictor"))
    return path


@pytest.fixture(scope="module")
def config(weights_dir) -> dict:
    return {
        "pretrained": os.path.join(weights_dir, "predictor"),
        "tokenizer": os.path.join(weights_dir, "tokenizer"),
        "init": "pretrained",
        "context_length": CONTEXT,
        "prediction_length": HORIZON,
        "learning_rate": 1e-3,
        "tokenizer_steps": 5,
        "predictor_steps": 5,
        "batch_size": 8,
        "num_samples": 5,
    }


@pytest.fixture(scope="module")
def fitted(config, tmp_path_factory):
    log_dir = str(tmp_path_factory.mktemp("kronos_logs"))
    adapter = KronosAdapter(config, seed=3)
    info = adapter.fit(_unit(_random_walk()), log_dir)
    return adapter, info, log_dir


def _scalars(log_dir: str) -> dict[str, int]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(log_dir)
    events.Reload()
    return {tag: len(events.Scalars(tag)) for tag in events.Tags()["scalars"]}


def test_amount_is_derived_when_missing():
    frame = _random_walk(10)
    feats = _features(frame)
    np.testing.assert_allclose(feats[:, 5], frame["close"] * frame["volume"])
    np.testing.assert_allclose(_features(frame.assign(amount=1.0))[:, 5], 1.0)


def test_training_windows_normalise_on_context_rows_only():
    x = np.random.default_rng(1).normal(size=(2, 10, 6))
    changed = x.copy()
    changed[:, 7:] *= 100  # target rows
    a, mean_a, std_a = _normalise(x, 7)
    b, mean_b, std_b = _normalise(changed, 7)
    np.testing.assert_array_equal(mean_a, mean_b)
    np.testing.assert_array_equal(std_a, std_b)
    np.testing.assert_array_equal(a[:, :7], b[:, :7])


def test_fit_trains_both_stages_and_logs_them(fitted, config):
    adapter, info, log_dir = fitted
    assert info["tokenizer_steps"] == 5 and info["predictor_steps"] == 5
    assert info["checkpoint_chosen_on"] == "val"
    assert np.isfinite([info["tokenizer_train_loss"], info["predictor_best_val_loss"]]).all()
    assert glob.glob(os.path.join(log_dir, "events.out.tfevents.*"))
    scalars = _scalars(log_dir)
    for stage in ("tokenizer", "predictor"):
        assert scalars[f"{stage}/train_loss"] == 5  # one per step
        assert scalars[f"{stage}/val_loss"] >= 1
    assert {"tokenizer/bsq_loss", "tokenizer/recon_loss", "predictor/s1_loss", "predictor/s2_loss"} <= set(scalars)
    # the weights moved away from the saved initial ones
    _, initial = build_models(config)
    moved = [
        not torch.equal(a, b)
        for a, b in zip(adapter.model.state_dict().values(), initial.state_dict().values(), strict=True)
    ]
    assert any(moved)


def test_predict_shape_finite_and_deterministic(fitted):
    adapter, _, _ = fitted
    data = _unit(_random_walk())
    first = adapter.predict(data, ORIGINS)
    assert first.shape == (len(ORIGINS), HORIZON)
    assert np.isfinite(first).all()
    np.testing.assert_array_equal(first, adapter.predict(data, ORIGINS))


def test_save_load_gives_identical_predictions(fitted, tmp_path):
    adapter, _, _ = fitted
    data = _unit(_random_walk())
    adapter.save(str(tmp_path))
    assert {"tokenizer", "predictor", "adapter.json"} <= set(os.listdir(tmp_path))
    loaded = KronosAdapter.load(str(tmp_path))
    assert loaded.config == adapter.config and loaded.seed == adapter.seed
    np.testing.assert_array_equal(loaded.predict(data, ORIGINS), adapter.predict(data, ORIGINS))


def test_forecast_ignores_rows_at_and_after_its_origin(fitted):
    adapter, _, _ = fitted
    frame = _random_walk()
    frame["amount"] = frame["close"] * frame["volume"] * 1.01
    origin = int(ORIGINS[-1])
    future = frame.copy()
    future.loc[origin:, COLUMNS] = future.loc[origin:, COLUMNS].to_numpy() * 7.0 + 1.0
    before = adapter.predict(_unit(frame), ORIGINS)
    after = adapter.predict(_unit(future), ORIGINS)
    np.testing.assert_array_equal(before, after)  # every origin ≤ the changed rows
    # Control: changing the context does change the forecast, so the check above has teeth.
    past = frame.copy()
    past.loc[origin - CONTEXT : origin - 1, COLUMNS] *= 1.5
    assert not np.array_equal(adapter.predict(_unit(past), ORIGINS)[-1], before[-1])


def test_zero_shot_keeps_the_weights(config):
    adapter = KronosAdapter({**config, "tokenizer_steps": 0, "predictor_steps": 0}, seed=0)
    info = adapter.fit(_unit(_random_walk()), None)
    assert info == {"tokenizer_steps": 0.0, "predictor_steps": 0.0, "checkpoint_chosen_on": "none"}
    _, initial = build_models(config)
    assert all(
        torch.equal(a, b)
        for a, b in zip(adapter.model.state_dict().values(), initial.state_dict().values(), strict=True)
    )
    forecast = adapter.predict(_unit(_random_walk()), ORIGINS)
    assert forecast.shape == (len(ORIGINS), HORIZON) and np.isfinite(forecast).all()


@pytest.mark.parametrize("limit", [512, 21])  # 21 < 20 context + 4 steps: the window slides
def test_sampler_matches_upstream_inference_when_deterministic(config, limit):
    from kronos_finance._vendor.kronos_model.kronos import auto_regressive_inference

    tokenizer, model = build_models(config)
    x, stamp = torch.randn(3, 20, 6), torch.randint(0, 7, (3, 24, 5)).float()
    # top_p → 0 keeps only the most likely code, so both samplers are greedy and must agree.
    upstream = auto_regressive_inference(tokenizer, model, x, stamp[:, :20], stamp[:, 20:], limit, 4, top_p=1e-9)
    draw = partial(_sample, temperature=1.0, top_p=1e-9, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = _sample_paths(tokenizer, model, x, stamp, 4, limit, draw)
    np.testing.assert_allclose(ours.numpy(), upstream[:, -4:], atol=1e-6)


def test_context_longer_than_the_model_allows_is_refused():
    with pytest.raises(ValueError, match="context_length"):
        KronosAdapter({"context_length": 1024}, seed=0)  # Kronos-small: 512
