"""Toto adapter on a tiny randomly initialised model, loaded through the real weights path."""

from __future__ import annotations

import glob
import math

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import synthetic_prices
from toto.model.toto import Toto

from search_spaces.toto import BASELINE as DEFAULTS
from trainables.adapter import TrainingDiverged, UnitData, Window
from trainables.toto import TotoAdapter
from trainables.toto_training import TotoTraining, crps, train_batch, val_ends
from trainables.weights import WeightsNotFound

torch.set_num_threads(1)

N_ROWS = 400
TRAIN, VAL, TEST = Window(0, 300), Window(300, 350), Window(350, N_ROWS)
HORIZON = 5
ORIGINS = np.arange(300, 346)  # val-window origins; each forecasts HORIZON steps


def _random_walk_frame(n: int = N_ROWS, seed: int = 0) -> pd.DataFrame:
    return synthetic_prices(n, seed)


def _unit(frame: pd.DataFrame) -> UnitData:
    return UnitData(frame, (), TRAIN, VAL, TEST)


def _scalars(log_dir: str) -> dict[str, list[float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(log_dir)
    acc.Reload()
    return {tag: [e.value for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> str:
    """A tiny random Toto written by the adapter's own save, like a downloaded checkpoint."""
    path = str(tmp_path_factory.mktemp("tiny_toto"))
    scratch = {**DEFAULTS, "init": "scratch", "size": "tiny", "context_length": 64, "max_steps": 0}
    adapter = TotoAdapter(scratch, seed=0)
    adapter.fit(_unit(_random_walk_frame()), None)  # max_steps 0: the random init as is
    adapter.save(path)
    return path


@pytest.fixture(scope="module")
def data() -> UnitData:
    return _unit(_random_walk_frame())


@pytest.fixture(scope="module")
def config(tiny_dir) -> dict:
    return {
        **DEFAULTS,
        "pretrained": tiny_dir,
        "init": "pretrained",
        "context_length": 64,  # 4 patches of 16
        "prediction_length": HORIZON,
        "learning_rate": 1e-3,
        "warmup_steps": 1,
        "max_steps": 3,
        "batch_size": 8,
        "num_samples": 8,
    }


@pytest.fixture(scope="module")
def fitted(config, data, tmp_path_factory):
    log_dir = str(tmp_path_factory.mktemp("logs"))
    adapter = TotoAdapter(config, seed=7)
    facts = adapter.fit(data, log_dir)
    return adapter, facts, log_dir


def test_tiny_model_has_the_released_layout_and_size(tiny_dir):
    model = Toto.load_from_checkpoint(tiny_dir, use_memory_efficient_attention=False)
    assert 100_000 < sum(p.numel() for p in model.parameters()) < 200_000
    assert model.model.patch_embed.patch_size == 16


@pytest.mark.parametrize("loss", ["nll", "quantile", "huber"])
def test_fit_each_loss_writes_losses_to_tensorboard(config, data, tmp_path, loss):
    adapter = TotoAdapter({**config, "loss": loss}, seed=1)
    before = {k: v.clone() for k, v in adapter._ensure_model().state_dict().items()}
    facts = adapter.fit(data, str(tmp_path))
    assert glob.glob(f"{tmp_path}/events.out.tfevents.*")
    scalars = _scalars(str(tmp_path))
    assert len(scalars["train/loss"]) == 3  # one per step
    assert len(scalars["val/loss"]) >= 2  # before training and at the end
    assert np.all(np.isfinite(scalars["train/loss"])) and np.all(np.isfinite(scalars["val/loss"]))
    assert facts["max_steps"] == 3 and np.isfinite(facts["train_loss"]) and np.isfinite(facts["val_loss"])
    after = adapter.model.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)  # it really trained


def test_predict_shape_and_finite(fitted, data):
    adapter, _, _ = fitted
    forecast = adapter.predict(data, ORIGINS)
    assert forecast.shape == (len(ORIGINS), HORIZON)
    assert np.all(np.isfinite(forecast))


def test_save_load_gives_identical_forecasts(fitted, data, tmp_path):
    adapter, _, _ = fitted
    adapter.save(str(tmp_path / "ckpt"))
    loaded = TotoAdapter.load(str(tmp_path / "ckpt"))
    assert loaded.config == adapter.config and loaded.seed == adapter.seed
    np.testing.assert_array_equal(loaded.predict(data, ORIGINS), adapter.predict(data, ORIGINS))
    # The files are the package's own format: Toto.load_from_checkpoint reads the same weights.
    model = Toto.load_from_checkpoint(str(tmp_path / "ckpt"), use_memory_efficient_attention=False)
    for key, value in adapter.model.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key


@pytest.mark.parametrize("num_samples", [8, 0])  # sampled median, and Toto's mean path
def test_no_leakage_from_values_at_or_after_origin(fitted, data, num_samples):
    fitted_adapter, _, _ = fitted
    adapter = TotoAdapter({**fitted_adapter.config, "num_samples": num_samples}, seed=fitted_adapter.seed)
    adapter.model, adapter.model_config = fitted_adapter.model, fitted_adapter.model_config
    cut = 320
    frame = data.frame.copy()
    frame.loc[cut:, "close"] *= 3.0  # a huge change from the cut on
    before = adapter.predict(data, ORIGINS)
    after = adapter.predict(_unit(frame), ORIGINS)  # one call mixes clean and changed contexts
    unaffected = ORIGINS <= cut
    np.testing.assert_array_equal(after[unaffected], before[unaffected])
    assert not np.allclose(after[~unaffected], before[~unaffected])  # the test can see a change


def test_fit_reads_no_row_after_the_training_window(config, data):
    frame = data.frame.copy()
    frame.loc[TRAIN.stop :, "close"] *= 3.0
    clean, changed = TotoAdapter(config, seed=3), TotoAdapter(config, seed=3)
    clean.fit(data, None)
    changed.fit(_unit(frame), None)  # only the (unlogged) val loss reads the changed rows
    np.testing.assert_array_equal(changed.predict(data, ORIGINS[:8]), clean.predict(data, ORIGINS[:8]))


def test_fit_is_deterministic_for_a_seed(fitted, config, data):
    adapter, _, _ = fitted
    again = TotoAdapter(config, seed=7)
    again.fit(data, None)
    np.testing.assert_array_equal(again.predict(data, ORIGINS), adapter.predict(data, ORIGINS))


def test_zero_shot(config, data, tiny_dir, tmp_path):
    adapter = TotoAdapter({**config, "max_steps": 0}, seed=0)
    facts = adapter.fit(data, str(tmp_path))
    assert facts["max_steps"] == 0 and np.isfinite(facts["val_loss"])
    assert facts["checkpoint_chosen_on"] == "none"
    assert _scalars(str(tmp_path))["val/loss"]  # the zero-shot val loss is on the board too
    reference = Toto.load_from_checkpoint(tiny_dir, use_memory_efficient_attention=False).state_dict()
    assert all(torch.equal(reference[k], v) for k, v in adapter.model.state_dict().items())
    forecast = adapter.predict(data, ORIGINS)
    assert forecast.shape == (len(ORIGINS), HORIZON) and np.all(np.isfinite(forecast))


def test_predict_without_fit_and_short_history(config, data):
    adapter = TotoAdapter({**config, "num_samples": 0}, seed=0)
    forecast = adapter.predict(data, np.array([10, 40]))  # fewer rows than the context: padded
    assert forecast.shape == (2, HORIZON) and np.all(np.isfinite(forecast))


def test_quantile_loss_estimates_the_crps():
    torch.manual_seed(0)
    target = torch.zeros(50_000)
    estimate = crps(torch.distributions.Normal(torch.zeros_like(target), 1.0), target).mean().item()
    exact = 2 / math.sqrt(2 * math.pi) - 1 / math.sqrt(math.pi)  # CRPS of N(0, 1) at its mean
    assert abs(estimate - exact) < 0.01


def test_context_must_be_a_multiple_of_the_patch(config, data):
    with pytest.raises(ValueError, match="multiple"):
        TotoAdapter({**config, "context_length": 60}, seed=0).fit(data, None)


def test_missing_weights_raise(config, data):
    with pytest.raises(WeightsNotFound):
        TotoAdapter({**config, "pretrained": "/no/such/dir"}, seed=0).fit(data, None)


def test_a_diverging_fit_stops_with_a_clear_reason(config, data):
    # A learning rate of 1e12 turns the weights into inf/NaN after a step or two.
    adapter = TotoAdapter({**config, "learning_rate": 1e12, "warmup_steps": 0, "max_steps": 10}, seed=1)
    with pytest.raises(
        TrainingDiverged, match=r"training diverged: (loss is (nan|inf)|the model's outputs are no longer finite)"
    ):
        adapter.fit(data, None)


def _val_curve(log_dir: str) -> dict[int, float]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(log_dir)
    acc.Reload()
    return {e.step: e.value for e in acc.Scalars("val/loss")}


def test_fit_keeps_the_weights_of_the_best_val_loss(config, data, tmp_path):
    # A learning rate this high makes the later steps worse than an early one.
    adapter = TotoAdapter({**config, "learning_rate": 3e-2, "warmup_steps": 0, "max_steps": 10}, seed=1)
    facts = adapter.fit(data, str(tmp_path))
    curve = _val_curve(str(tmp_path))
    tuned = {step: loss for step, loss in curve.items() if step > 0}  # step 0 is the zero-shot model
    best = min(tuned, key=tuned.get)
    assert best < 10, f"the last step was the best, the test cannot tell: {curve}"
    assert facts["checkpoint_chosen_on"] == "val" and facts["best_step"] == best
    assert facts["val_loss"] == pytest.approx(tuned[best])  # TensorBoard keeps float32
    # The weights it kept score that val loss again.
    training = TotoTraining(adapter.model, adapter.config, 16, "cpu", adapter.seed)
    assert training.val_loss(data, val_ends(data.val, 16)) == facts["val_loss"]


def test_fit_without_val_windows_keeps_the_last_weights(config, data):
    short_val = UnitData(data.frame, (), TRAIN, Window(300, 310), TEST)  # shorter than a patch
    facts = TotoAdapter(config, seed=0).fit(short_val, None)
    assert facts["checkpoint_chosen_on"] == "none" and "best_step" not in facts


def test_training_windows_cover_every_end_when_the_window_is_short():
    y = np.arange(1000, dtype=np.float32)  # a row's value is its index
    train = Window(100, 160)  # 60 rows: shorter than context 64 + patch 16
    values, mask = train_batch(y, train, np.random.default_rng(0), context=64, patch=16, size=3000)
    ends = values[:, -1].astype(int) + 1
    # Every end with at least one real input patch and one target patch, all equally likely.
    assert set(ends) == set(range(100 + 2 * 16, 160 + 1))
    for row, end in zip(values[:50], ends[:50], strict=True):
        np.testing.assert_array_equal(row[-(end - 100) :], np.arange(100, end))  # real rows, right-aligned
        assert not row[: 80 - (end - 100)].any()  # left-padded with zeros
    assert np.array_equal(mask, values > 0)  # padding is masked out, every training row is in


def test_default_sample_paths_are_the_authors_256():
    assert TotoAdapter({}, seed=0).config["num_samples"] == 256


def test_sampled_forecasts_are_batched_over_origins_and_independent_of_the_batch(fitted, data):
    adapter, _, _ = fitted
    calls = []
    hook = adapter.model.model.register_forward_hook(lambda *_: calls.append(1))
    try:
        together = adapter.predict(data, ORIGINS)
    finally:
        hook.remove()
    assert len(calls) == 1  # all origins × samples in one forward pass (one decoded patch)
    # Each origin draws from its own generator: the same paths in any batch.
    np.testing.assert_array_equal(adapter.predict(data, ORIGINS[::3]), together[::3])
    np.testing.assert_array_equal(adapter.predict(data, ORIGINS[7:8]), together[7:8])


def test_a_global_batch_draws_windows_from_every_series_inside_its_training_window():
    from trainables.toto_training import train_batch_many

    ys = [np.arange(400, dtype=np.float32), 1000 + np.arange(300, dtype=np.float32)]
    trains = [Window(0, 300), Window(100, 200)]
    values, mask = train_batch_many(ys, trains, np.random.default_rng(0), context=32, patch=16, size=4000)
    from_b = values.max(axis=1) >= 1000
    # Every valid (series, end) pair equally likely: B has 69 of the 69 + 269 possible ends.
    assert abs(from_b.mean() - 69 / (69 + 269)) < 0.03
    assert (values[from_b][mask[from_b]] >= 1100).all() and (values[from_b][mask[from_b]] < 1200).all()
    assert (values[~from_b][mask[~from_b]] < 300).all()


def test_the_mean_path_has_no_distribution_and_few_paths_resolve_only_the_middle_levels(config, data):
    from trainables import quantiles

    mean = TotoAdapter({**config, "num_samples": 0}, seed=0).forecast(data, ORIGINS[:3])
    assert np.isfinite(mean.point).all() and np.isnan(mean.quantiles).all()
    eight = TotoAdapter({**config, "num_samples": 8}, seed=0).forecast(data, ORIGINS[:3])
    resolved = [t for t in quantiles.LEVELS if 1 <= t * 9 <= 8]  # 8 draws: levels 1/9 … 8/9
    for j, level in enumerate(quantiles.LEVELS):
        assert np.isfinite(eight.quantiles[..., j]).all() == (level in resolved), level
    assert resolved == [0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8]
