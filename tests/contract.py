"""The adapter contract kit: what every forecaster must do, as one class a model's tests subclass once.

    from contract import AdapterContract

    class TestTotoContract(AdapterContract):
        model = "toto"  # a name in trainables.registry.MODELS

pytest then runs every `test_*` method of `AdapterContract` on that model, with its search-space
module's TINY configuration: the leakage rule (a forecast reads rows before its origin only, a
past covariate too), the shapes of `forecast`, save/load and pickle round trips of the adapter,
the Tune trainable and its plan through Ray's cloudpickle, `seed_free`, `planned_steps` and the
validations `fit` reports, the learning-curve tags, `fit_many` (or `NoGlobalFit`), train-tail
early stopping, determinism and, for a pretrained model, real sweeps from local weights. A test
that does not apply to the model (a global fit for a model without one, covariates for a model
that takes none) is skipped with the reason.

A model registered from test code sets `entry` (its ModelEntry) instead: the class registers it
for its tests and removes it afterwards (tests/test_fifth_model.py). tests/test_models.py holds
the subclasses of the registered models and fails when a model in `registry.MODELS` has none.
"""

from __future__ import annotations

import glob
import json
import os
import pickle
from dataclasses import dataclass, replace
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
from conftest import TINY_FOLDS, synthetic_prices

from trainables import registry
from trainables.adapter import Adapter, NoGlobalFit, UnitData, Window
from trainables.features import add_features
from trainables.quantiles import LEVELS, Forecast
from trainables.unit import origins

# ---------------------------------------------------------------------------- helpers


def tiny(model: str, **extra) -> dict:
    """The model's tiny configuration (its search-space module's TINY) with `extra` on top."""
    return {**registry.get(model).spaces().TINY, **extra}


def unit_data(frame: pd.DataFrame, **fields) -> UnitData:
    """`frame` with the baseline features: train on all but the last 80 rows, then 40 val, 40 test."""
    framed, feats = add_features(frame, "BASELINE_FEATURES")
    n = len(framed)
    return UnitData(framed, feats, Window(0, n - 80), Window(n - 80, n - 40), Window(n - 40, n), **fields)


def save_random_model(model: str, directory: str) -> list[str]:
    """A tiny randomly initialised model saved to `directory`; returns the CLI flags that load it."""
    entry = registry.get(model)
    adapter = entry.adapter()(tiny(model, **entry.spaces().ZERO_SHOT), seed=0)
    adapter.fit(unit_data(synthetic_prices(300)), None)
    adapter.save(directory)
    flags = []
    for key, sub in entry.weight_keys.items():
        flags += [f"--{key}", os.path.join(directory, sub) if sub else directory]
    return flags


def weight_files(directory: str) -> list[str]:
    """The weight files under a saved model directory (any depth)."""
    pattern = ("*.safetensors", "*.bin", "*.ckpt", "*.pt")
    return [f for p in pattern for f in glob.glob(os.path.join(directory, "**", p), recursive=True)]


def subclasses() -> list[type[AdapterContract]]:
    """Every subclass of AdapterContract imported so far (at any depth)."""
    found, todo = [], list(AdapterContract.__subclasses__())
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo += cls.__subclasses__()
    return found


def _assert_same(a: Forecast, b: Forecast, rtol: float = 0.0) -> None:
    """The same point forecast and quantiles (NaN = NaN)."""
    np.testing.assert_allclose(a.point, b.point, rtol=rtol, atol=0)
    np.testing.assert_allclose(a.quantiles, b.quantiles, rtol=rtol, atol=0)


def _moved(a: Forecast, b: Forecast) -> bool:
    """Whether the point forecast or the (finite) quantiles differ."""
    return not np.allclose(a.point, b.point) or not np.allclose(a.quantiles, b.quantiles, equal_nan=True)


@dataclass
class Fitted:
    """The class's one fitted adapter (TINY, seed 3, asset "A") and what its fit saw and wrote."""

    adapter: Adapter
    frame: pd.DataFrame  # the prices before features
    data: UnitData
    where: np.ndarray  # three test origins
    facts: dict
    log_dir: str
    validations: list[tuple[int, float]]


# ---------------------------------------------------------------------------- the kit


class AdapterContract:
    """The contract tests of one model; subclass once with `model` (or `entry`) set."""

    pytestmark = pytest.mark.slow
    model: ClassVar[str] = ""
    # A model registered from test code: its entry, registered for the class's tests only.
    entry: ClassVar[registry.ModelEntry | None] = None

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if cls.entry is not None and not cls.model:
            cls.model = cls.entry.name

    # --------------------------------------------------------------- fixtures and shorthands

    @pytest.fixture(scope="class", autouse=True)
    def registered(self):
        """The model's registry entry, for the class's tests (a test-defined one registered meanwhile)."""
        entry = type(self).entry
        if entry is None:
            assert self.model in registry.MODELS, f"{type(self).__name__}: {self.model!r} is not registered"
            yield registry.get(self.model)
            return
        registry.register(entry)
        try:
            yield entry
        finally:
            registry.MODELS.pop(entry.name, None)

    @pytest.fixture(scope="class")
    def fitted(self, registered, tmp_path_factory) -> Fitted:
        """One fit (TINY, seed 3) shared by the tests that only read the fitted adapter."""
        frame = synthetic_prices(320)
        data = replace(unit_data(frame), asset="A")  # named: also the one-series fit of the global-fit test
        adapter, seen = registered.adapter()(tiny(self.model), seed=3), []
        adapter.on_validation = lambda step, loss: seen.append((step, loss))
        log_dir = str(tmp_path_factory.mktemp(f"{self.model}_tb"))
        facts = adapter.fit(data, log_dir)
        del adapter.on_validation  # back to the class's None: what a unit leaves behind
        where = origins(data.test, adapter.context_length(adapter.config), adapter.horizon(adapter.config))[:3]
        return Fitted(adapter, frame, data, where, facts, log_dir, seen)

    def adapter_class(self) -> type[Adapter]:
        return registry.get(self.model).adapter()

    # --------------------------------------------------------------- what a forecast may read

    def test_no_forecast_reads_values_after_its_origin(self, fitted):
        adapter, frame, data = fitted.adapter, fitted.frame, fitted.data
        origin = data.test.start
        before = adapter.forecast(data, np.array([origin]))
        # The tiny configuration resolves every level; only a model without `forecast` has none.
        dist = np.isfinite(before.quantiles).all()
        assert dist or type(adapter).forecast is Adapter.forecast
        np.testing.assert_array_equal(before.point, adapter.predict(data, np.array([origin])))
        changed = frame.copy()
        changed.loc[origin:, ["open", "high", "low", "close"]] *= 3
        changed.loc[origin:, "volume"] *= 5
        after = adapter.forecast(unit_data(changed), np.array([origin]))
        _assert_same(before, after, rtol=1e-6)  # the distribution too (NaN = NaN)
        # A control: changing the context does move the forecast and its quantiles, so the test can fail.
        ctx = frame.copy()
        ctx.loc[origin - 5 : origin - 1, ["open", "high", "low", "close"]] *= 1.5
        moved = adapter.forecast(unit_data(ctx), np.array([origin]))
        assert not np.allclose(before.point, moved.point)
        assert not dist or not np.allclose(before.quantiles, moved.quantiles)

    def test_a_past_covariate_is_read_before_the_origin_only(self, registered):
        """Cheap: one past-only covariate at one origin (deeper: tests/test_covariates.py,
        tests/test_toto_covariates.py)."""
        if registered.no_covariates:
            pytest.skip(f"{self.model} takes no covariates: {registered.no_covariates}")
        frame = synthetic_prices(320)
        frame["cov_past"] = 20 + np.cumsum(np.random.default_rng(5).normal(0, 1, len(frame)))
        data = unit_data(frame, past_covariates=("cov_past",))
        adapter = self.adapter_class()(tiny(self.model), seed=0)
        adapter.fit(data, None)
        origin = data.test.start
        at = np.array([origin])
        base = adapter.forecast(data, at)

        def changed(rows) -> UnitData:
            out = frame.copy()
            out.loc[rows, "cov_past"] = out.loc[rows, "cov_past"] * 3 + 7
            return unit_data(out, past_covariates=("cov_past",))

        _assert_same(adapter.forecast(changed(slice(origin, None)), at), base)
        assert _moved(adapter.forecast(changed(origin - 1), at), base), "the covariate before the origin is not read"

    # --------------------------------------------------------------- forecasts, fits, their records

    def test_forecast_gives_a_point_and_quantiles_per_origin_and_step(self, fitted, registered):
        """Shapes and finiteness (the sweep sorts crossing quantile heads itself: trainables.unit.score)."""
        adapter, data, where = fitted.adapter, fitted.data, fitted.where
        h, ctx = adapter.horizon(adapter.config), adapter.context_length(adapter.config)
        # What --horizon and --context set is what the adapter reads.
        assert (h, ctx) == (adapter.config[registered.horizon_key], adapter.config[registered.context_key])
        forecast = adapter.forecast(data, where)
        assert len(where) == 3 and forecast.point.shape == (3, h) and np.isfinite(forecast.point).all()
        assert forecast.quantiles.shape == (3, h, len(LEVELS))
        if type(adapter).forecast is Adapter.forecast:
            assert np.isnan(forecast.quantiles).all()
        else:
            assert np.isfinite(forecast.quantiles).all()  # TINY resolves every level
        np.testing.assert_array_equal(forecast.point, adapter.predict(data, where))

    def test_fit_writes_the_learning_curve_tags_its_registry_entry_declares(self, fitted, registered):
        """The learning-curve plot reads exactly these tags (analysis/curves.py)."""
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        acc = EventAccumulator(fitted.log_dir, size_guidance={"scalars": 0})
        acc.Reload()
        written = set(acc.Tags()["scalars"])
        missing = set(registered.curve_tags) - written
        assert not missing, f"{self.model} declares {sorted(missing)} but wrote {sorted(written)}"
        assert fitted.facts["checkpoint_chosen_on"] in ("val", "none")

    def test_fit_reports_each_validation_within_its_planned_steps(self, fitted, registered):
        """What the trial reports to ASHA and the progress line (trainables.nested._Live)."""
        cls, config, seen = type(fitted.adapter), fitted.adapter.config, fitted.validations
        planned = cls.planned_steps(config)
        spaces = registered.spaces()
        if hasattr(spaces, "planned_steps"):  # the driver's count without importing the model
            assert spaces.planned_steps(config) == planned
        if registry.pretrained(self.model):  # released weights, no training: nothing to validate
            assert cls.planned_steps(tiny(self.model, **spaces.ZERO_SHOT)) == 0
        if planned == 0:
            assert seen == [], f"{self.model} plans no steps but reported validations"
            return
        steps = [s for s, _ in seen]
        assert steps and steps == sorted(set(steps)) and 0 < steps[0] and steps[-1] <= planned, (steps, planned)
        assert all(np.isfinite(loss) for _, loss in seen)

    def test_seed_free_says_whether_the_seed_changes_the_forecasts(self, fitted):
        """A seed-free configuration runs once for every seed: its forecasts must not depend on it;
        one that is not really depends on it (or it wastes a run per seed)."""
        cls = self.adapter_class()
        other = cls(tiny(self.model), seed=1)
        other.fit(fitted.data, None)
        a, b = fitted.adapter.forecast(fitted.data, fitted.where), other.forecast(fitted.data, fitted.where)
        if cls.seed_free(tiny(self.model)):
            _assert_same(a, b)
        else:
            assert _moved(a, b), f"{self.model}: not seed_free, yet seeds 3 and 1 forecast the same"

    def test_a_global_fit_learns_from_every_series(self, registered, fitted):
        """fit_many on two assets gives another model than a fit on the first alone (the second series
        is trained on); for the models whose fit is fit_many of one series, that fit is exactly fit."""
        cls = self.adapter_class()
        assert (cls.fit_many is not Adapter.fit_many) == registered.global_fit, "global_fit ≠ fit_many defined"
        if not registered.global_fit:
            pytest.skip(f"{self.model} has no global fit (test_without_a_global_fit_fit_many_is_refused)")
        a, where, one = fitted.data, fitted.where, fitted.adapter  # a global model knows its series by name
        b = replace(unit_data(synthetic_prices(320, seed=5)), asset="B")
        both = cls(tiny(self.model), seed=3)
        both.fit_many({"A": a, "B": b}, None)
        forecast = both.predict(a, where)
        assert forecast.shape == (len(where), both.horizon(both.config)) and np.isfinite(forecast).all()
        assert not np.allclose(forecast, one.predict(a, where))
        if registry.pretrained(self.model):  # TFT's global dataset adds the series id as an input: not its plain fit
            alone = cls(tiny(self.model), seed=3)
            alone.fit_many({"A": a}, None)
            np.testing.assert_array_equal(alone.predict(a, where), one.predict(a, where))

    def test_without_a_global_fit_fit_many_is_refused(self, registered):
        if registered.global_fit:
            pytest.skip(f"{self.model} has a global fit (test_a_global_fit_learns_from_every_series)")
        data = unit_data(synthetic_prices(320))
        with pytest.raises(NoGlobalFit, match="no global fit"):
            self.adapter_class()(tiny(self.model), seed=0).fit_many({"A": data}, None)

    def test_train_tail_early_stopping_never_reads_the_val_window(self):
        """--early-stop-on train-tail: the fit (weights, checkpoint, epochs) is the same whatever the val
        window holds; checked on forecasts that read training rows only."""
        from trainables.unit import fit_data

        frame = synthetic_prices(320)
        data = unit_data(frame)
        changed = frame.copy()
        prices = ["open", "high", "low", "close"]
        changed.loc[data.val.start : data.val.stop - 1, prices] *= np.linspace(1.0, 1.5, len(data.val))[:, None]
        origin = np.array([data.train.stop - 10])
        forecasts = []
        for f in (frame, changed):
            adapter = self.adapter_class()(tiny(self.model), seed=0)
            info = adapter.fit(fit_data(unit_data(f), "train-tail"), None)
            assert info["checkpoint_chosen_on"] in ("val", "none")  # run_unit renames "val" to "train-tail"
            forecasts.append(adapter.predict(unit_data(f), origin))
        np.testing.assert_allclose(forecasts[0], forecasts[1], rtol=1e-6)

    def test_same_configuration_fold_and_seed_give_the_same_metrics(self, tmp_path):
        from trainables.unit import run_unit

        cls = self.adapter_class()
        data = unit_data(synthetic_prices(320))
        first = run_unit(cls, tiny(self.model), data, 11, str(tmp_path / "a"), None)["metrics"]
        again = run_unit(cls, tiny(self.model), data, 11, str(tmp_path / "b"), None)["metrics"]
        np.testing.assert_equal(first, again)  # NaN (a level too few draws resolve) equals NaN

    # --------------------------------------------------------------- round trips

    def test_a_saved_unit_model_loads_and_forecasts_the_same(self, fitted, tmp_path):
        adapter, data, where = fitted.adapter, fitted.data, fitted.where
        adapter.save(str(tmp_path / "m"))
        loaded = type(adapter).load(str(tmp_path / "m"))
        assert type(loaded) is type(adapter)
        _assert_same(loaded.forecast(data, where), adapter.forecast(data, where), rtol=1e-5)

    def test_the_adapter_class_and_a_fitted_adapter_survive_a_pickle_round_trip(self, fitted):
        """The class by reference (pickle and Ray's cloudpickle); a fitted adapter through cloudpickle,
        as Ray ships objects (plain pickle fails inside pytorch-forecasting and toto-ts)."""
        from ray import cloudpickle

        adapter = fitted.adapter
        assert pickle.loads(pickle.dumps(type(adapter))) is type(adapter)
        assert cloudpickle.loads(cloudpickle.dumps(type(adapter))) is type(adapter)
        again = cloudpickle.loads(cloudpickle.dumps(adapter))
        assert type(again) is type(adapter) and again.config == adapter.config and again.seed == adapter.seed
        _assert_same(again.forecast(fitted.data, fitted.where), adapter.forecast(fitted.data, fitted.where))

    def test_the_trainable_and_its_plan_survive_ray_cloudpickle(self, fitted, registered, monkeypatch, tmp_path):
        """What `tune.with_parameters(train, plan=..., frames=...)` ships to every trial: the
        function, the sweep's Plan (carrying the model's entry) and the frames."""
        from ray import cloudpickle

        from trainables.folds import Fold
        from trainables.nested import Plan, train

        cls, config = type(fitted.adapter), fitted.adapter.config
        fold = Fold("fold_0", "20150101", "20151231", "20160101", "20160131", "20160201", "20160229")
        plan = Plan(model=self.model, entry=registered, folds=(fold,), seeds=(1, 2), features=fitted.data.features,
                    unit_steps=cls.planned_steps(config), experiment_path=str(tmp_path / "s"))  # fmt: skip
        shipped = cloudpickle.dumps((train, plan, {None: fitted.frame}))
        monkeypatch.delitem(registry.MODELS, self.model)  # a worker knows the models the plan carries only
        function, arrived, frames = cloudpickle.loads(shipped)
        assert function is train and arrived == plan
        assert arrived.entry.adapter() is cls and arrived.entry.adapter().planned_steps(config) == plan.unit_steps
        pd.testing.assert_frame_equal(frames[None], fitted.frame)

    # --------------------------------------------------------------- real sweeps (pretrained models)

    def test_pretrained_dir_sweep_fine_tunes_refers_to_unchanged_weights_and_shares_seed_free_units(
        self, registered, request, tmp_path
    ):
        """A fine-tuned and a zero-shot configuration from local weights, 1 fold × 2 seeds: fine-tuned
        units save their weights and curves; zero-shot units store a reference, not a copy; a seed-free
        zero-shot unit runs once and is recorded for both seeds."""
        if not registry.pretrained(self.model):
            pytest.skip(f"{self.model} loads no released weights")
        request.getfixturevalue("ray_session")
        from analysis.report import generate
        from analysis.results import Results, load_model
        from analysis.runs import sweep_runs
        from sweeps.cli import main

        model, entry = self.model, registered
        flags = save_random_model(model, str(tmp_path / "weights"))
        (tmp_path / "c.json").write_text(json.dumps({"training_config": tiny(model)}))
        (tmp_path / "points.json").write_text(json.dumps([{}, entry.spaces().ZERO_SHOT]))
        args = ["--config", str(tmp_path / "c.json"), "--configs", str(tmp_path / "points.json"), *flags,
                "--init", "pretrained", "--mode", "priority", "--folds", "1", "--seeds", "1,2",
                "--storage", str(tmp_path / "r"), "--name", "s", "--gpus-per-trial", "0", *TINY_FOLDS]  # fmt: skip
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
        report = generate(str(tmp_path / "r" / "s"), draw=False)
        verdict, summary = report.best["verdict"], report.summary["verdicts"]
        assert np.isfinite(report.best["metrics"]["test_ql"])
        assert isinstance(verdict["beats_naive_prob"], bool) and isinstance(verdict["beats_garch"], bool)
        assert verdict["calibration"] in ("calibrated", "untested") or verdict["calibration"].startswith(
            "miscalibrated: "
        )
        assert 0 <= summary["spa_pvalue_garch"]["test"] <= 1
        # The best unit and a zero-shot one load again through the Python API and forecast.
        data = unit_data(synthetic_prices(300))
        for adapter in (
            load_model(Results(str(tmp_path / "r")).best("val_pct_mae")),
            entry.adapter().load(zero["checkpoint"].iloc[0]),
        ):
            h, ctx = adapter.horizon(adapter.config), adapter.context_length(adapter.config)
            pred = adapter.predict(data, origins(data.test, ctx, h)[:2])
            assert pred.shape == (2, h) and np.isfinite(pred).all()

    def test_global_fit_sweep_trains_one_model_on_every_asset(self, registered, request, tmp_path):
        """`--fit global` through a real sweep: one model per (fold, seed) on the embedded SPX and VIX,
        stored once, scored on each asset from that asset's own rows."""
        if not (registry.pretrained(self.model) and registered.global_fit):
            pytest.skip(f"{self.model}: the global sweep runs for pretrained models with a global fit")
        request.getfixturevalue("ray_session")
        from analysis.results import Results, load_model
        from analysis.runs import sweep_runs
        from sweeps.cli import main

        (tmp_path / "c.json").write_text(json.dumps({"training_config": tiny(self.model)}))
        folds = [
            "--window",
            "rolling",
            "--train-size",
            "600",
            "--val-size",
            "20",
            "--test-size",
            "20",
        ]  # Kronos reads 512
        args = ["--config", str(tmp_path / "c.json"), "--mode", "priority", "--max-runs", "1", "--folds", "1",
                "--seeds", "1", "--assets", "SPX,VIX", "--fit", "global", "--features", "NONE",
                "--storage", str(tmp_path / "r"), "--name", "g", "--gpus-per-trial", "0", *folds]  # fmt: skip
        assert main(self.model, args) == 0
        runs = sweep_runs(str(tmp_path / "r" / "g"))
        assert sorted(runs["asset"]) == ["SPX", "VIX"] and (runs["status"] == "complete").all()
        assert runs["checkpoint"].nunique() == 1 and weight_files(runs["checkpoint"].iloc[0])
        scale = runs.groupby("asset")["mase_scale"].first()
        assert scale["SPX"] > 5 * scale["VIX"]
        assert load_model(Results(str(tmp_path / "r")).best("val_pct_mae")) is not None
