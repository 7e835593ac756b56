"""A fifth forecaster registered from test code alone runs through the contract kit and a sweep.

Adding a model must touch only its adapter, its search-space module, its entry script and one
registry line: here the first two are tests/fifth_model.py, the entry script is `cli.main`.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import TINY_FOLDS, synthetic_prices
from contract import AdapterContract, unit_data

from sweeps.cli import main
from trainables import registry
from trainables.unit import run_unit

pytestmark = pytest.mark.slow
NAME = "drift"
ENTRY = registry.ModelEntry(
    NAME, "fifth_model:DriftAdapter", "fifth_model", "numpy", "pip install numpy", curve_tags=("val/loss",),
    no_covariates="a drift of the target alone",
)  # fmt: skip


@pytest.fixture()
def fifth():
    registry.register(ENTRY)
    yield NAME
    registry.MODELS.pop(NAME)


class TestDriftContract(AdapterContract):
    """Every contract test, on a model the registry knows only while they run."""

    entry = ENTRY


def test_a_model_without_a_global_fit_is_refused_global_at_the_door(fifth, tmp_path, capsys):
    assert main(fifth, ["--storage", str(tmp_path / "r"), "--assets", "SPX,NDX", "--fit", "global"]) == 2
    assert f"--fit global is not built for {fifth} yet" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()  # the adapter's own NoGlobalFit: the contract kit


def test_val_early_stopping_reads_the_val_window_and_train_tail_does_not(fifth, tmp_path):
    """The control of the train-tail contract test: with "val" the same change does move the fit."""
    cls = registry.get(fifth).adapter()
    frame = synthetic_prices(320)
    data = unit_data(frame)
    changed = frame.copy()
    changed.loc[data.val.start : data.val.stop - 1, "close"] *= np.linspace(1.0, 1.5, len(data.val))
    shrinks = {}
    for how in ("val", "train-tail"):
        for name, f in (("same", frame), ("changed", changed)):
            record = run_unit(cls, {}, unit_data(f), 0, str(tmp_path / how / name), None, "cpu", how)
            shrinks[how, name] = record["info"]["shrink"]
            assert record["info"]["checkpoint_chosen_on"] == how
    assert shrinks["val", "same"] != shrinks["val", "changed"]
    assert shrinks["train-tail", "same"] == shrinks["train-tail", "changed"]


@pytest.mark.usefixtures("ray_session")
def test_the_fifth_model_sweeps_and_is_ranked(fifth, tmp_path):
    from analysis.report import generate
    from analysis.runs import sweep_runs

    args = ["--mode", "grid", "--folds", "2", "--seeds", "1,2", "--early-stop-on", "train-tail",
            "--storage", str(tmp_path / "r"), "--name", "s", "--gpus-per-trial", "0", *TINY_FOLDS]  # fmt: skip
    assert main(fifth, args) == 0
    runs = sweep_runs(str(tmp_path / "r" / "s"))
    assert len(runs) == 3 * 2 * 2 and (runs["status"] == "complete").all()
    assert (runs["checkpoint_chosen_on"] == "train-tail").all()
    # Seed-free: one run per (configuration, fold), recorded for both seeds.
    assert runs["shared_from"].notna().sum() == 3 * 2
    summary = generate(str(tmp_path / "r" / "s"), draw=False)
    assert summary.best["model"] == fifth and summary.summary["best_overall"]["config_id"] == summary.best["config_id"]
    # Only `predict`: NaN distribution metrics and untested distribution verdicts, never a crash.
    assert runs["val_ql"].isna().all() and runs["test_cov80_err"].isna().all()
    assert summary.best["verdict"]["calibration"] == "untested"
    assert summary.best["verdict"].get("beats_naive_prob") is None
    assert summary.summary["verdicts"]["spa_pvalue_prob"]["test"] is None
    assert summary.best["verdict"]["beats_naive"] is not None  # the point verdicts still stand
    spec = json.loads((tmp_path / "r" / "s" / "sweep.json").read_text())["spec"]
    assert spec["early_stop_on"] == "train-tail"
