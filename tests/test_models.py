"""Contract tests over the registry: every forecaster through the same real paths.

Each test takes a model name, so a model registered from test code alone runs through them too
(tests/test_fifth_model.py).
"""

from __future__ import annotations

import glob
import json
import os

import numpy as np
import pytest
from conftest import synthetic_prices

from sweeps.cli import main
from trainables import registry
from trainables.adapter import Adapter, UnitData, Window
from trainables.features import add_features
from trainables.unit import origins

pytestmark = pytest.mark.slow
FOUNDATION = [m for m in registry.MODELS if registry.pretrained(m)]
FOLDS = ["--window", "rolling", "--train-size", "200", "--val-size", "20", "--test-size", "20"]


def tiny(model: str, **extra) -> dict:
    """The model's tiny configuration (its search-space module's TINY) with `extra` on top."""
    return {**registry.get(model).spaces().TINY, **extra}


def _unit_data(frame) -> UnitData:
    framed, feats = add_features(frame, "BASELINE_FEATURES")
    n = len(framed)
    return UnitData(framed, feats, Window(0, n - 80), Window(n - 80, n - 40), Window(n - 40, n))


def save_random_model(model: str, directory: str) -> list[str]:
    """A tiny randomly initialised model saved to `directory`; returns the CLI flags that load it."""
    entry = registry.get(model)
    adapter = entry.adapter()(tiny(model, **entry.spaces().ZERO_SHOT), seed=0)
    adapter.fit(_unit_data(synthetic_prices(300)), None)
    adapter.save(directory)
    flags = []
    for key, sub in entry.weight_keys.items():
        flags += [f"--{key}", os.path.join(directory, sub) if sub else directory]
    return flags


@pytest.mark.parametrize("model", registry.MODELS)
def test_no_forecast_reads_values_after_its_origin(model):
    frame = synthetic_prices(320)
    data = _unit_data(frame)
    adapter = registry.get(model).adapter()(tiny(model), seed=0)
    adapter.fit(data, None)
    origin = data.test.start
    before = adapter.forecast(data, np.array([origin]))
    # The tiny configuration resolves every level; only a model without `forecast` has none.
    dist = np.isfinite(before.quantiles).all()
    assert dist or type(adapter).forecast is Adapter.forecast
    np.testing.assert_array_equal(before.point, adapter.predict(data, np.array([origin])))
    changed = frame.copy()
    changed.loc[origin:, ["open", "high", "low", "close"]] *= 3
    changed.loc[origin:, "volume"] *= 5
    after = adapter.forecast(_unit_data(changed), np.array([origin]))
    np.testing.assert_allclose(before.point, after.point, rtol=1e-6)
    np.testing.assert_allclose(before.quantiles, after.quantiles, rtol=1e-6)  # the distribution too (NaN = NaN)
    # A control: changing the context does move the forecast and its quantiles, so the test can fail.
    ctx = frame.copy()
    ctx.loc[origin - 5 : origin - 1, ["open", "high", "low", "close"]] *= 1.5
    moved = adapter.forecast(_unit_data(ctx), np.array([origin]))
    assert not np.allclose(before.point, moved.point)
    assert not dist or not np.allclose(before.quantiles, moved.quantiles)


@pytest.mark.parametrize("model", registry.MODELS)
def test_fit_writes_the_learning_curve_tags_its_registry_entry_declares(model, tmp_path):
    """The learning-curve plot reads exactly these tags (analysis/curves.py)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    adapter = registry.get(model).adapter()(tiny(model), seed=0)
    adapter.fit(_unit_data(synthetic_prices(320)), str(tmp_path / "tb"))
    acc = EventAccumulator(str(tmp_path / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    written = set(acc.Tags()["scalars"])
    missing = set(registry.get(model).curve_tags) - written
    assert not missing, f"{model} declares {sorted(missing)} but wrote {sorted(written)}"


@pytest.mark.parametrize("model", registry.MODELS)
def test_fit_reports_each_validation_within_its_planned_steps(model):
    """What the trial reports to ASHA and the progress line (trainables.nested._Live)."""
    cls = registry.get(model).adapter()
    config = tiny(model)
    adapter, seen = cls(config, seed=0), []
    adapter.on_validation = lambda step, loss: seen.append((step, loss))
    adapter.fit(_unit_data(synthetic_prices(320)), None)
    planned = cls.planned_steps(adapter.config)
    if planned == 0:
        assert seen == [], f"{model} plans no steps but reported validations"
        return
    steps = [s for s, _ in seen]
    assert steps and steps == sorted(set(steps)) and 0 < steps[0] and steps[-1] <= planned, (steps, planned)
    assert all(np.isfinite(loss) for _, loss in seen)
    zero = cls(tiny(model, **registry.get(model).spaces().ZERO_SHOT), seed=0) if registry.pretrained(model) else None
    if zero is not None:  # released weights, no training: nothing to validate
        assert cls.planned_steps(zero.config) == 0


@pytest.mark.parametrize("model", [m for m in registry.MODELS if registry.get(m).global_fit])
def test_a_global_fit_learns_from_every_series(model):
    """fit_many on two assets gives another model than a fit on the first alone (the second series
    is trained on); for the models whose fit is fit_many of one series, that fit is exactly fit."""
    from dataclasses import replace

    cls = registry.get(model).adapter()
    a = replace(_unit_data(synthetic_prices(320)), asset="A")  # a global model knows its series by name
    b = replace(_unit_data(synthetic_prices(320, seed=5)), asset="B")
    one = cls(tiny(model), seed=3)
    one.fit(a, None)
    where = origins(a.test, one.context_length(one.config), one.horizon(one.config))[:3]
    both = cls(tiny(model), seed=3)
    both.fit_many({"A": a, "B": b}, None)
    forecast = both.predict(a, where)
    assert forecast.shape == (len(where), both.horizon(both.config)) and np.isfinite(forecast).all()
    assert not np.allclose(forecast, one.predict(a, where))
    if model in FOUNDATION:  # TFT's global dataset adds the series id as an input: not its plain fit
        alone = cls(tiny(model), seed=3)
        alone.fit_many({"A": a}, None)
        np.testing.assert_array_equal(alone.predict(a, where), one.predict(a, where))


@pytest.mark.parametrize("model", registry.MODELS)
def test_a_saved_unit_model_loads_and_forecasts_the_same(model, tmp_path):
    cls = registry.get(model).adapter()
    data = _unit_data(synthetic_prices(320))
    adapter = cls(tiny(model), seed=3)
    adapter.fit(data, None)
    where = origins(data.test, adapter.context_length(adapter.config), adapter.horizon(adapter.config))[:3]
    adapter.save(str(tmp_path / "m"))
    loaded = cls.load(str(tmp_path / "m"))
    np.testing.assert_allclose(loaded.predict(data, where), adapter.predict(data, where), rtol=1e-5)


@pytest.mark.parametrize("model", registry.MODELS)
def test_train_tail_early_stopping_never_reads_the_val_window(model):
    """--early-stop-on train-tail: the fit (weights, checkpoint, epochs) is the same whatever the val
    window holds; checked on forecasts that read training rows only."""
    from trainables.unit import fit_data

    frame = synthetic_prices(320)
    data = _unit_data(frame)
    changed = frame.copy()
    prices = ["open", "high", "low", "close"]
    changed.loc[data.val.start : data.val.stop - 1, prices] *= np.linspace(1.0, 1.5, len(data.val))[:, None]
    origin = np.array([data.train.stop - 10])
    forecasts = []
    for f in (frame, changed):
        adapter = registry.get(model).adapter()(tiny(model), seed=0)
        info = adapter.fit(fit_data(_unit_data(f), "train-tail"), None)
        assert info["checkpoint_chosen_on"] in ("val", "none")  # run_unit renames "val" to "train-tail"
        forecasts.append(adapter.predict(_unit_data(f), origin))
    np.testing.assert_allclose(forecasts[0], forecasts[1], rtol=1e-6)


def weight_files(directory: str) -> list[str]:
    """The weight files under a saved model directory (any depth)."""
    pattern = ("*.safetensors", "*.bin", "*.ckpt", "*.pt")
    return [f for p in pattern for f in glob.glob(os.path.join(directory, "**", p), recursive=True)]


@pytest.mark.usefixtures("ray_session")
@pytest.mark.parametrize("model", FOUNDATION)
def test_pretrained_dir_sweep_fine_tunes_refers_to_unchanged_weights_and_shares_seed_free_units(model, tmp_path):
    """A fine-tuned and a zero-shot configuration from local weights, 1 fold × 2 seeds: fine-tuned
    units save their weights and curves; zero-shot units store a reference, not a copy; a seed-free
    zero-shot unit runs once and is recorded for both seeds."""
    from analysis.results import Results, load_model
    from analysis.runs import sweep_runs

    entry = registry.get(model)
    flags = save_random_model(model, str(tmp_path / "weights"))
    (tmp_path / "c.json").write_text(json.dumps({"training_config": tiny(model)}))
    (tmp_path / "points.json").write_text(json.dumps([{}, entry.spaces().ZERO_SHOT]))
    args = ["--config", str(tmp_path / "c.json"), "--configs", str(tmp_path / "points.json"), *flags,
            "--init", "pretrained", "--mode", "priority", "--folds", "1", "--seeds", "1,2",
            "--storage", str(tmp_path / "r"), "--name", "s", "--gpus-per-trial", "0", *FOLDS]  # fmt: skip
    assert main(model, args) == 0
    runs = sweep_runs(str(tmp_path / "r" / "s"))
    assert (runs["status"] == "complete").sum() == 4
    steps = runs["config"].map(lambda c: int(json.loads(c)[entry.steps_key]))
    tuned, zero = runs[steps > 0], runs[steps == 0]
    for _, unit in tuned.iterrows():
        assert unit["checkpoint_chosen_on"] == "val" and weight_files(unit["checkpoint"])
        tb = os.path.join(unit["trial_path"], "tensorboard", unit["unit"])
        assert glob.glob(os.path.join(tb, "**", "events.*"), recursive=True)
    for _, unit in zero.iterrows():
        assert unit["checkpoint_chosen_on"] == "none"
        assert not weight_files(unit["checkpoint"]), "a zero-shot unit copied the pretrained weights"
    shared = zero["shared_from"].notna().sum()
    assert shared == (1 if entry.adapter().seed_free(json.loads(zero["config"].iloc[0])) else 0)
    if shared:  # the same forecasts, recorded twice, run once
        assert zero["val_pct_mae"].nunique() == 1 and sorted(zero["train_seconds"] == 0) == [False, True]
    # The sweep ends with verdicts on its distribution: vs the random walk and GARCH, and calibration.
    from analysis.report import generate

    report = generate(str(tmp_path / "r" / "s"), draw=False)
    verdict, summary = report.best["verdict"], report.summary["verdicts"]
    assert np.isfinite(report.best["metrics"]["test_ql"])
    assert isinstance(verdict["beats_naive_prob"], bool) and isinstance(verdict["beats_garch"], bool)
    assert verdict["calibration"] in ("calibrated", "untested") or verdict["calibration"].startswith("miscalibrated: ")
    assert 0 <= summary["spa_pvalue_garch"]["test"] <= 1
    # The best unit and a zero-shot one load again through the Python API and forecast.
    data = _unit_data(synthetic_prices(300))
    for adapter in (
        load_model(Results(str(tmp_path / "r")).best("val_pct_mae")),
        entry.adapter().load(zero["checkpoint"].iloc[0]),
    ):
        h, ctx = adapter.horizon(adapter.config), adapter.context_length(adapter.config)
        pred = adapter.predict(data, origins(data.test, ctx, h)[:2])
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
    data = _unit_data(synthetic_prices(320))
    first = run_unit(cls, tiny(model), data, 11, str(tmp_path / "a"), None)["metrics"]
    again = run_unit(cls, tiny(model), data, 11, str(tmp_path / "b"), None)["metrics"]
    np.testing.assert_equal(first, again)  # NaN (a level too few draws resolve) equals NaN


@pytest.mark.usefixtures("ray_session")
@pytest.mark.parametrize("model", FOUNDATION)
def test_global_fit_sweep_trains_one_model_on_every_asset(model, tmp_path):
    """`--fit global` through a real sweep: one model per (fold, seed) on the embedded SPX and VIX,
    stored once, scored on each asset from that asset's own rows."""
    from analysis.results import Results, load_model
    from analysis.runs import sweep_runs

    (tmp_path / "c.json").write_text(json.dumps({"training_config": tiny(model)}))
    folds = ["--window", "rolling", "--train-size", "600", "--val-size", "20", "--test-size", "20"]  # Kronos reads 512
    args = ["--config", str(tmp_path / "c.json"), "--mode", "priority", "--max-runs", "1", "--folds", "1",
            "--seeds", "1", "--assets", "SPX,VIX", "--fit", "global", "--features", "NONE",
            "--storage", str(tmp_path / "r"), "--name", "g", "--gpus-per-trial", "0", *folds]  # fmt: skip
    assert main(model, args) == 0
    runs = sweep_runs(str(tmp_path / "r" / "g"))
    assert sorted(runs["asset"]) == ["SPX", "VIX"] and (runs["status"] == "complete").all()
    assert runs["checkpoint"].nunique() == 1 and weight_files(runs["checkpoint"].iloc[0])
    assert runs.groupby("asset")["mase_scale"].first()["SPX"] > 5 * runs.groupby("asset")["mase_scale"].first()["VIX"]
    assert load_model(Results(str(tmp_path / "r")).best("val_pct_mae")) is not None
