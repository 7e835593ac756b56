"""Contract tests over the registry: every forecaster through the same real paths."""

from __future__ import annotations

import glob
import json
import os

import numpy as np
import pytest
from conftest import TINY, ZERO_SHOT, synthetic_prices

from sweeps.cli import main
from trainables import registry
from trainables.adapter import UnitData, Window
from trainables.features import add_features
from trainables.unit import origins

pytestmark = pytest.mark.slow
FOUNDATION = [m for m in registry.MODELS if m != "tft"]
FOLDS = ["--window", "rolling", "--train-size", "200", "--val-size", "20", "--test-size", "20"]


def _unit_data(frame) -> UnitData:
    framed, feats = add_features(frame, "BASELINE_FEATURES")
    n = len(framed)
    return UnitData(framed, feats, Window(0, n - 80), Window(n - 80, n - 40), Window(n - 40, n))


def _save_random_model(model: str, directory: str) -> list[str]:
    """A tiny randomly initialised model saved to `directory`; returns the CLI flags that load it."""
    cls = registry.get(model).adapter()
    adapter = cls({**TINY[model], **ZERO_SHOT[model], "init": "scratch", "size": "tiny"}, seed=0)
    adapter.fit(_unit_data(synthetic_prices(300)), None)
    adapter.save(directory)
    if model == "kronos":
        return ["--pretrained", f"{directory}/predictor", "--tokenizer", f"{directory}/tokenizer"]
    return ["--pretrained", directory]


@pytest.mark.parametrize("model", registry.MODELS)
def test_no_forecast_reads_values_after_its_origin(model):
    cls = registry.get(model).adapter()
    config = {**cls({}, 0).config, **TINY[model]} if model != "tft" else TINY[model]
    if model != "tft":
        config.update(init="scratch", size="tiny")
    else:
        config = {**registry.get("tft").spaces().BASELINE, **config}
    frame = synthetic_prices(320)
    data = _unit_data(frame)
    adapter = cls(config, seed=0)
    adapter.fit(data, None)
    origin = data.test.start
    before = adapter.predict(data, np.array([origin]))
    changed = frame.copy()
    changed.loc[origin:, ["open", "high", "low", "close"]] *= 3
    changed.loc[origin:, "volume"] *= 5
    after = adapter.predict(_unit_data(changed), np.array([origin]))
    np.testing.assert_allclose(before, after, rtol=1e-6)
    # A control: changing the context does move the forecast, so the test can fail.
    ctx = frame.copy()
    ctx.loc[origin - 5 : origin - 1, ["open", "high", "low", "close"]] *= 1.5
    assert not np.allclose(before, adapter.predict(_unit_data(ctx), np.array([origin])))


@pytest.mark.usefixtures("ray_session")
@pytest.mark.parametrize("model", FOUNDATION)
def test_pretrained_dir_sweep_fine_tunes_and_saves_a_loadable_model(model, tmp_path):
    flags = _save_random_model(model, str(tmp_path / "weights"))
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"training_config": TINY[model], "param_ranges": {"learning_rate": [1e-4]}}))
    args = [
        "--config",
        str(config),
        *flags,
        "--init",
        "pretrained",
        "--mode",
        "grid",
        "--folds",
        "2",
        "--seeds",
        "1",
        "--storage",
        str(tmp_path / "r"),
        "--name",
        "s",
        "--gpus-per-trial",
        "0",
        *FOLDS,
    ]
    assert main(model, args) == 0
    trial = glob.glob(str(tmp_path / "r" / "s" / "trial_*"))[0]
    with open(os.path.join(trial, "result.json")) as f:
        last = json.loads(f.read().strip().splitlines()[-1])
    assert last["folds_done"] == 2 and last["units_done"] == 2
    assert np.isfinite(last["val_pct_mae"]) and np.isfinite(last["test_pct_mae"])
    tb = glob.glob(os.path.join(trial, "tensorboard", "*", "**", "events.*"), recursive=True)
    assert len({p.split(os.sep + "tensorboard" + os.sep)[1].split(os.sep)[0] for p in tb}) == 2
    # The unit's saved model loads again and forecasts.
    unit = sorted(glob.glob(os.path.join(trial, "units", "*")))[0]
    loaded = registry.get(model).adapter().load(os.path.join(unit, "model"))
    data = _unit_data(synthetic_prices(300))
    h, ctx = loaded.horizon(loaded.config), loaded.context_length(loaded.config)
    pred = loaded.predict(data, origins(data.test, ctx, h)[:2])
    assert pred.shape == (2, h) and np.isfinite(pred).all()


@pytest.mark.usefixtures("ray_session")
def test_two_half_gpu_trials_share_one_gpu_at_the_same_time(tmp_path, tiny_config):
    """With one (fake) GPU, --gpus-per-trial 0.5 lets two trials run side by side."""
    args = [
        "--config",
        tiny_config,
        "--mode",
        "quick",
        "--max-runs",
        "2",
        "--folds",
        "2",
        "--seeds",
        "1",
        "--gpus-per-trial",
        "0.5",
        "--storage",
        str(tmp_path / "r"),
        "--name",
        "g",
        *FOLDS,
    ]
    assert main("tft", args) == 0
    spans = []
    for trial in glob.glob(str(tmp_path / "r" / "g" / "trial_*")):
        with open(os.path.join(trial, "result.json")) as f:
            rows = [json.loads(line) for line in f if line.strip()]
        end = rows[-1]["timestamp"]
        spans.append((end - rows[-1]["time_total_s"], end))
    (s1, e1), (s2, e2) = sorted(spans)
    assert s2 < e1, f"trials ran one after the other: {spans}"


@pytest.mark.parametrize("model", registry.MODELS)
def test_same_configuration_fold_and_seed_give_the_same_metrics(model, tmp_path):
    from trainables.unit import run_unit

    cls = registry.get(model).adapter()
    config = {**registry.get(model).spaces().BASELINE, **TINY[model]}
    if model != "tft":
        config.update(init="scratch", size="tiny")
    data = _unit_data(synthetic_prices(320))
    first = run_unit(cls, config, data, 11, str(tmp_path / "a"), None)["metrics"]
    again = run_unit(cls, config, data, 11, str(tmp_path / "b"), None)["metrics"]
    assert first == again
