"""Kronos trained as its authors train it: honest checkpoint choice, tokenizer optimiser, fp32 tokenizer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import synthetic_prices

import trainables.kronos as kronos
from search_spaces.kronos import BASELINE, OPTUNA, PARAM_RANGES
from trainables.adapter import UnitData, Window
from trainables.kronos import KronosAdapter, _features, _normalise, _stamps
from trainables.kronos_training import predictor_val_loss

torch.set_num_threads(1)

CONTEXT, HORIZON, VAL_START = 32, 4, 220
TINY = {
    "init": "scratch",
    "size": "tiny",
    "context_length": CONTEXT,
    "prediction_length": HORIZON,
    "learning_rate": 1e-3,
    "tokenizer_steps": 1,
    "predictor_steps": 1,
    "batch_size": 4,
    "num_samples": 2,
}


def _unit(val_rows: int) -> UnitData:
    """Train [0, 220), then `val_rows` val rows, then test."""
    frame = synthetic_prices(300)
    val = Window(VAL_START, VAL_START + val_rows)
    return UnitData(frame=frame, features=(), train=Window(0, VAL_START), val=val, test=Window(val.stop, 300))


def _one_step_loss(tokenizer, model, x: torch.Tensor, stamp: torch.Tensor, first: int) -> float:
    """Reference: for each target row j >= first, codes from rows <= j only, then the sampler's
    s1 and s2 logits from the tokens before j only; (mean s1 CE + mean s2 CE) / 2."""
    ce_s1, ce_s2 = [], []
    with torch.no_grad():
        for j in range(first, x.size(1)):
            s1, s2 = tokenizer.encode(x[:, : j + 1], half=True)
            s1_logits, context = model.decode_s1(s1[:, :j], s2[:, :j], stamp[:, :j])
            ce_s1.append(F.cross_entropy(s1_logits[:, -1], s1[:, j], reduction="none"))
            s2_logits = model.decode_s2(context, s1[:, j : j + 1])[:, -1]
            ce_s2.append(F.cross_entropy(s2_logits, s2[:, j], reduction="none"))
    return float((torch.cat(ce_s1).mean() + torch.cat(ce_s2).mean()) / 2)


def test_predictor_val_loss_scores_each_target_from_earlier_tokens_only():
    """Upstream's eval() loss lets s2 at t see the token at t + 1 (issue #199) and scores every position."""
    torch.manual_seed(0)
    tokenizer, model = kronos.build_models({**BASELINE, **TINY})
    x, stamp = torch.randn(3, 14, 6), torch.randint(0, 7, (3, 14, 5)).float()
    with torch.no_grad():
        ours = float(predictor_val_loss(model, x, stamp, tokenizer=tokenizer, first=10))
    assert ours == pytest.approx(_one_step_loss(tokenizer, model, x, stamp, first=10), abs=1e-5)


def test_checkpoint_is_chosen_on_val_targets_only():
    """One val origin (val = one horizon): the val losses that chose the checkpoints are those of
    the 4 val rows, each from its context, not of the 32 training rows before them."""
    data = _unit(HORIZON)
    adapter = KronosAdapter(TINY, seed=0)
    info = adapter.fit(data, None)
    rows = np.arange(VAL_START - CONTEXT, VAL_START + HORIZON)
    x, _, _ = _normalise(_features(data.frame)[rows][None], CONTEXT)
    x = torch.tensor(x, dtype=torch.float32)
    stamp = torch.tensor(_stamps(data.frame, 0)[rows][None])
    expected = _one_step_loss(adapter.tokenizer, adapter.model, x, stamp, first=CONTEXT)
    assert info["predictor_best_val_loss"] == pytest.approx(expected, abs=1e-5)
    with torch.no_grad():
        (_, z), _, _, _ = adapter.tokenizer(x)
    assert info["tokenizer_best_val_loss"] == pytest.approx(float(F.mse_loss(z[:, CONTEXT:], x[:, CONTEXT:])), abs=1e-6)
    assert info["checkpoint_chosen_on"] == "val"


def test_no_val_horizon_means_no_checkpoint_choice():
    info = KronosAdapter(TINY, seed=0).fit(_unit(HORIZON - 1), None)
    assert info["checkpoint_chosen_on"] == "none"
    assert not any(key.endswith("best_val_loss") for key in info)


def test_each_stage_uses_upstreams_optimiser(monkeypatch):
    """finetune/train_tokenizer.py: AdamW(lr 2e-4, wd 0.1), default betas; train_predictor.py:
    AdamW(predictor lr, betas (0.9, 0.95), wd 0.1)."""
    built = []

    class Recording(torch.optim.AdamW):
        def __init__(self, params, **kwargs):
            super().__init__(params, **kwargs)
            built.append({**self.defaults, "params": {id(p) for g in self.param_groups for p in g["params"]}})

    monkeypatch.setattr(torch.optim, "AdamW", Recording)
    adapter = KronosAdapter(TINY, seed=0)  # no tokenizer_learning_rate: the default
    adapter.fit(_unit(40), None)
    tokenizer, predictor = built
    assert tokenizer["params"] == {id(p) for p in adapter.tokenizer.parameters()}
    assert (tokenizer["lr"], tokenizer["betas"], tokenizer["weight_decay"]) == (2e-4, (0.9, 0.999), 0.1)
    assert (predictor["lr"], predictor["betas"], predictor["weight_decay"]) == (1e-3, (0.9, 0.95), 0.1)


def test_tokenizer_runs_in_fp32_under_autocast(monkeypatch):
    """Whatever autocast encloses fit and predict, every tokenizer layer computes in fp32; the
    predictor's layers do follow the autocast (the control)."""
    dtypes = {"tokenizer": set(), "predictor": set()}
    build = kronos.build_models

    def build_and_watch(config, device="cpu"):
        models = build(config, device)
        for name, module in zip(dtypes, models, strict=True):
            for layer in module.modules():
                if isinstance(layer, torch.nn.Linear):
                    layer.register_forward_hook(lambda _m, _i, out, name=name: dtypes[name].add(out.dtype))
        return models

    monkeypatch.setattr(kronos, "build_models", build_and_watch)
    data = _unit(40)
    adapter = KronosAdapter(TINY, seed=0)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        adapter.fit(data, None)
        forecast = adapter.predict(data, np.array([VAL_START, VAL_START + 8]))
    assert np.isfinite(forecast).all()
    assert dtypes["tokenizer"] == {torch.float32}
    assert torch.bfloat16 in dtypes["predictor"]


def test_enough_sample_paths_by_default_and_searchable():
    assert KronosAdapter({}, seed=0).config["num_samples"] >= 50
    assert BASELINE["num_samples"] in PARAM_RANGES["num_samples"]
    assert "num_samples" in OPTUNA and "tokenizer_learning_rate" in OPTUNA
