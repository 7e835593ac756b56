"""Chronos-2 adapter on a tiny randomly initialised model, loaded through the real weights path."""

from __future__ import annotations

import glob

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import synthetic_prices

from search_spaces.chronos2 import BASELINE as DEFAULTS
from trainables.adapter import UnitData, Window
from trainables.chronos2 import Chronos2Adapter, _min_past, build_pipeline
from trainables.weights import WeightsNotFound

torch.set_num_threads(1)

N_ROWS = 400
ORIGINS = np.arange(300, 346)  # val-window origins; each forecasts 5 steps


def _random_walk_frame(n: int = N_ROWS, seed: int = 0) -> pd.DataFrame:
    return synthetic_prices(n, seed)


def _unit(frame: pd.DataFrame) -> UnitData:
    return UnitData(frame, (), Window(0, 300), Window(300, 350), Window(350, N_ROWS))


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory) -> str:
    """A tiny random Chronos-2 saved like a downloaded checkpoint."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny_chronos2")
    build_pipeline({"init": "scratch", "size": "tiny"}).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def data() -> UnitData:
    return _unit(_random_walk_frame())


@pytest.fixture(scope="module")
def config(tiny_dir) -> dict:
    return {
        **DEFAULTS,
        "pretrained": tiny_dir,
        "init": "pretrained",
        "context_length": 64,
        "prediction_length": 5,
        "learning_rate": 1e-3,
        "num_steps": 3,
        "batch_size": 8,
    }


@pytest.fixture(scope="module")
def fitted(config, data, tmp_path_factory):
    log_dir = str(tmp_path_factory.mktemp("logs"))
    adapter = Chronos2Adapter(config, seed=7)
    facts = adapter.fit(data, log_dir)
    return adapter, facts, log_dir


def _scalars(log_dir: str) -> dict[str, list[float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(log_dir)
    acc.Reload()
    return {tag: [e.value for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_fit_writes_losses_to_tensorboard(fitted):
    _, facts, log_dir = fitted
    assert glob.glob(f"{log_dir}/events.out.tfevents.*")
    scalars = _scalars(log_dir)
    assert len(scalars["train/loss"]) == 3  # one per step
    assert scalars["eval/loss"] and np.all(np.isfinite(scalars["eval/loss"]))
    assert facts["num_steps"] == 3 and np.isfinite(facts["train_loss"]) and np.isfinite(facts["best_eval_loss"])
    assert facts["checkpoint_chosen_on"] == "val" and 1 <= facts["best_step"] <= 3
    # The Trainer's weight copies are removed; nothing is written under the CWD.
    assert not glob.glob(f"{log_dir}/chronos2_trainer/checkpoint-*")


def test_predict_shape_and_finite(fitted, data):
    adapter, _, _ = fitted
    forecast = adapter.predict(data, ORIGINS)
    assert forecast.shape == (len(ORIGINS), 5)
    assert np.all(np.isfinite(forecast))


def test_save_load_gives_identical_forecasts(fitted, data, tmp_path):
    adapter, _, _ = fitted
    adapter.save(str(tmp_path / "ckpt"))
    loaded = Chronos2Adapter.load(str(tmp_path / "ckpt"))
    assert loaded.config == adapter.config and loaded.seed == adapter.seed
    np.testing.assert_array_equal(loaded.predict(data, ORIGINS), adapter.predict(data, ORIGINS))


def test_no_leakage_from_values_at_or_after_origin(fitted, data):
    adapter, _, _ = fitted
    cut = 320
    frame = data.frame.copy()
    frame.loc[cut:, "close"] *= 3.0  # a huge change from the cut on
    before = adapter.predict(data, ORIGINS)
    after = adapter.predict(_unit(frame), ORIGINS)  # same batch mixes clean and changed contexts
    unaffected = ORIGINS <= cut
    np.testing.assert_array_equal(after[unaffected], before[unaffected])
    assert not np.allclose(after[~unaffected], before[~unaffected])  # the test can see a change


def test_fit_is_deterministic_for_a_seed(fitted, config, data):
    adapter, _, _ = fitted
    again = Chronos2Adapter(config, seed=7)
    again.fit(data, None)
    np.testing.assert_array_equal(again.predict(data, ORIGINS), adapter.predict(data, ORIGINS))


def test_zero_shot(config, data, tmp_path):
    adapter = Chronos2Adapter({**config, "num_steps": 0}, seed=0)
    assert adapter.fit(data, str(tmp_path)) == {"num_steps": 0.0, "checkpoint_chosen_on": "none"}
    forecast = adapter.predict(data, ORIGINS)
    assert forecast.shape == (len(ORIGINS), 5) and np.all(np.isfinite(forecast))


def test_lora_uses_peft(config, data, tmp_path):
    adapter = Chronos2Adapter({**config, "finetune_mode": "lora", "lora_r": 4, "lora_alpha": 8}, seed=0)
    adapter.fit(data, str(tmp_path / "logs"))
    names = [name for name, _ in adapter.pipeline.model.named_parameters()]
    assert any("lora" in name for name in names)
    forecast = adapter.predict(data, ORIGINS)
    assert np.all(np.isfinite(forecast))
    # Saved with LoRA merged in: loads without peft or the base checkpoint, same forecasts.
    adapter.save(str(tmp_path / "ckpt"))
    loaded = Chronos2Adapter.load(str(tmp_path / "ckpt"))
    assert not any("lora" in name for name, _ in loaded.pipeline.model.named_parameters())
    np.testing.assert_allclose(loaded.predict(data, ORIGINS), forecast, rtol=1e-4)


def test_missing_weights_raise(config):
    with pytest.raises(WeightsNotFound):
        Chronos2Adapter({**config, "pretrained": "/no/such/dir"}, seed=0).fit(_unit(_random_walk_frame()), None)


def test_fit_keeps_the_best_val_weights_without_writing_checkpoints(config, data, tmp_path, monkeypatch):
    from chronos.chronos2.trainer import Chronos2Trainer

    saves, evaluations = [], {}
    save, evaluate = Chronos2Trainer._save_checkpoint, Chronos2Trainer.evaluate

    def spy_save(self, *args, **kwargs):
        saves.append(self.state.global_step)
        return save(self, *args, **kwargs)

    def spy_evaluate(self, *args, **kwargs):
        metrics = evaluate(self, *args, **kwargs)
        weights = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        evaluations[self.state.global_step] = (metrics["eval_loss"], weights)
        return metrics

    monkeypatch.setattr(Chronos2Trainer, "_save_checkpoint", spy_save)
    monkeypatch.setattr(Chronos2Trainer, "evaluate", spy_evaluate)
    # A learning rate this high makes the later steps worse than an early one; 10 steps, 10 evaluations.
    adapter = Chronos2Adapter({**config, "learning_rate": 3e-2, "num_steps": 10}, seed=0)
    facts = adapter.fit(data, str(tmp_path))
    assert saves == []  # no Trainer checkpoint was ever written
    assert not glob.glob(f"{tmp_path}/chronos2_trainer/*/")  # nor is any directory left behind
    assert len(evaluations) == 10
    best = min(evaluations, key=lambda step: evaluations[step][0])
    assert best < 10, f"the last step was the best, the test cannot tell: {evaluations.keys()}"
    assert facts["best_step"] == best and facts["best_eval_loss"] == evaluations[best][0]
    kept = adapter.pipeline.model.state_dict()
    assert all(torch.equal(kept[k], v) for k, v in evaluations[best][1].items())


def test_training_contexts_are_as_long_as_evaluation_contexts(config, data, monkeypatch):
    from chronos.chronos2.dataset import Chronos2Dataset, DatasetMode

    lengths = []
    construct = Chronos2Dataset._construct_slice

    def spy(self, input_idx):
        out = construct(self, input_idx)
        if self.mode == DatasetMode.TRAIN:
            lengths.append(out[0].shape[-1])
        return out

    monkeypatch.setattr(Chronos2Dataset, "_construct_slice", spy)
    Chronos2Adapter({**config, "num_steps": 5}, seed=0).fit(data, None)
    assert len(lengths) == 5 * config["batch_size"] and set(lengths) == {config["context_length"]}


def test_a_short_training_window_falls_back_to_the_pipelines_min_past():
    assert _min_past(train_rows=300, context=64, horizon=5) == 64
    assert _min_past(train_rows=60, context=64, horizon=5) == 5


def _precision_during_predict(adapter: Chronos2Adapter, data: UnitData) -> set[tuple]:
    """(parameter dtype, CUDA autocast on, output dtype) of every forward pass of one predict."""
    seen = set()

    def record(module, _inputs, output):
        seen.add((next(module.parameters()).dtype, torch.is_autocast_enabled("cuda"), output.quantile_preds.dtype))

    hook = adapter.pipeline.model.register_forward_hook(record)
    try:
        assert np.all(np.isfinite(adapter.predict(data, ORIGINS)))
    finally:
        hook.remove()
    return seen


def test_predicts_in_float32_from_a_bf16_checkpoint(config, data, tmp_path):
    torch.manual_seed(0)
    pipeline = build_pipeline({"init": "scratch", "size": "tiny"})
    pipeline.model.to(torch.bfloat16)
    pipeline.save_pretrained(tmp_path)  # transformers 5 loads a checkpoint in its saved dtype
    adapter = Chronos2Adapter({**config, "pretrained": str(tmp_path), "num_steps": 0}, seed=0)
    adapter.fit(data, None)
    assert _precision_during_predict(adapter, data) == {(torch.float32, False, torch.float32)}


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU: bf16 training and autocast are CUDA-only")
def test_predicts_in_float32_on_a_gpu_after_bf16_training(config, data):
    adapter = Chronos2Adapter(config, seed=0, device="cuda")
    adapter.fit(data, None)  # the pipeline trains with bf16=True on sm80+
    assert _precision_during_predict(adapter, data) == {(torch.float32, False, torch.float32)}
