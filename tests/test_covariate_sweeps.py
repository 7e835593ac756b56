"""Real tiny sweeps with covariates: SPX with VIX (and volume) as a sweep axis, answered by the
verdicts; a TFT universe fitted globally with a past and a known-ahead column; sweeps/all.py
running the models that take none without them."""

from __future__ import annotations

import glob
import json

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import TINY_TFT, synthetic_prices

from search_spaces.chronos2 import TINY as TINY_CHRONOS2
from sweeps import all as every
from sweeps.cli import main

pytestmark = pytest.mark.slow

FOLD = ["--folds", "1", "--val-size", "40", "--test-size", "40", "--seeds", "1", "--gpus-per-trial", "0"]


def _records(sweep) -> list[dict]:
    return [json.loads(open(p).read()) for p in glob.glob(str(sweep / "trial_*" / "units" / "*" / "record.json"))]


def test_spx_with_vix_as_a_covariate_axis_end_to_end(ray_session, tmp_path, capsys):  # noqa: ARG001
    config = tmp_path / "vix.json"
    tiny = {k: v for k, v in TINY_CHRONOS2.items() if k != "prediction_length"}
    config.write_text(
        json.dumps(
            {
                "covariates": ["vix=asset:VIX", "volume"],
                "training_config": {**tiny, "context_length": 32},
                "param_ranges": {"covariates": ["none", "vix", "vix+volume"]},
            }
        )
    )
    storage = tmp_path / "results"
    args = ["--config", str(config), "--mode", "ofat", "--storage", str(storage), "--name", "vix", *FOLD]
    assert main("chronos2", args) == 0
    out = capsys.readouterr().out
    assert "covariates: vix (VIX's close, past only), volume (column 'volume', past only)" in out
    assert "the sweep starts at 2014-01-03" in out  # VIX begins in 2014: SPX's earlier rows are left out
    sweep = storage / "vix"
    spec = json.loads((sweep / "sweep.json").read_text())["spec"]
    assert spec["covariates"] == ["vix=asset:VIX", "volume=volume"]
    sets = sorted(json.loads(open(p).read())["covariates"] for p in glob.glob(str(sweep / "trial_*" / "params.json")))
    assert sets == ["none", "vix", "vix+volume"]
    # The three sets differ in what they read, so their forecasts differ (same seed, same folds).
    runs = pd.read_parquet(sweep / "sweep_runs.parquet")
    assert runs["test_pct_mae"].nunique() == 3
    predictions = pd.read_parquet(glob.glob(str(sweep / "trial_*" / "units" / "*" / "predictions.parquet"))[0])
    assert predictions["origin"].min() > pd.Timestamp("2014-01-03")
    # "Do covariates help?": the two sets with covariates against the best without, on test.
    verdicts = json.loads((sweep / "summary.json").read_text())["verdicts"]
    reference = verdicts["no_covariates_reference"]
    ranked = pd.read_csv(sweep / "config_ranking.csv")
    none_id = ranked.loc[ranked["config"].str.contains('"covariates": "none"'), "config_id"].iloc[0]
    assert reference["config_id"] == none_id and reference["configurations"] == 2
    assert 0 <= verdicts["spa_pvalue_covariates"]["test"] <= 1
    judged = ranked[ranked["config_id"] != none_id]
    assert judged["test_dm_p_covariates"].between(0, 1).all()
    assert ranked.loc[ranked["config_id"] == none_id, "test_dm_p_covariates"].isna().all()
    assert "Do covariates help?" in out and "**Do covariates help?**" in (sweep / "report.md").read_text()
    # One factor at a time from the baseline (every covariate): the impact table has the set's row.
    impact = pd.read_csv(sweep / "param_impact_summary.csv")
    assert "covariates" in set(impact["param"])


def test_a_tft_universe_fitted_globally_reads_a_past_and_a_known_column(ray_session, tmp_path):  # noqa: ARG001
    frames = []
    for i, asset in enumerate(("A", "B")):
        f = synthetic_prices(420, seed=i)
        f["asset"] = asset
        f["flow"] = np.random.default_rng(i).normal(size=len(f))
        f.loc[5:9, "flow"] = np.nan  # a gap: carried forward from the past
        f["holiday"] = (f["timestamp"].dt.dayofweek == 4).astype(float)
        frames.append(f)
    data = tmp_path / "universe.csv"
    pd.concat(frames).to_csv(data, index=False)
    config = tmp_path / "tft.json"
    config.write_text(json.dumps({"training_config": TINY_TFT}))
    storage = tmp_path / "results"
    args = ["--data", str(data), "--assets", "A,B", "--fit", "global", "--covariates", "flow,holiday:known"]
    args += ["--config", str(config), "--storage", str(storage), "--name", "tft", "--mode", "quick", "--max-runs", "1"]
    args += ["--window", "rolling", "--train-size", "200", *FOLD]
    assert main("tft", args) == 0
    records = _records(storage / "tft")
    assert {r["asset"] for r in records} == {"A", "B"}
    assert all(np.isfinite(r["metrics"]["test_pct_mae"]) for r in records)
    (model_in,) = {r["model_in"] for r in records}  # one model for both assets
    (saved,) = glob.glob(str(storage / "tft" / "trial_*" / "units" / model_in / "model" / "dataset.pt"))
    params = torch.load(saved, weights_only=False)
    assert "cov_flow" in params["time_varying_unknown_reals"] and "cov_holiday" in params["time_varying_known_reals"]


def test_toto_fine_tunes_with_a_past_and_a_known_column_and_saves_its_variate_labels(ray_session, tmp_path):  # noqa: ARG001
    from search_spaces.toto import TINY as TINY_TOTO

    frame = synthetic_prices(420, seed=4)
    frame["flow"] = np.random.default_rng(4).normal(size=len(frame))
    frame["holiday"] = (frame["timestamp"].dt.dayofweek == 4).astype(float)
    data = tmp_path / "prices.parquet"
    frame.to_parquet(data)
    config = tmp_path / "toto.json"
    config.write_text(
        json.dumps({"training_config": TINY_TOTO, "param_ranges": {"covariates": ["none", "flow+holiday"]}})
    )
    storage = tmp_path / "results"
    args = ["--data", str(data), "--covariates", "flow,holiday:known", "--config", str(config), "--mode", "grid"]
    args += ["--storage", str(storage), "--name", "toto", "--window", "rolling", "--train-size", "200", *FOLD]
    assert main("toto", args) == 0
    records = _records(storage / "toto")
    assert len(records) == 2 and all(np.isfinite(r["metrics"]["test_pct_mae"]) for r in records)
    metas = [
        json.loads(open(p).read())
        for p in glob.glob(str(storage / "toto" / "trial_*" / "units" / "*" / "model" / "adapter.json"))
    ]
    # Known covariates fine-tuned: the exogenous variate labels are saved with that unit's model only.
    assert sorted(bool(m.get("variate_labels")) for m in metas) == [False, True]
    runs = pd.read_parquet(storage / "toto" / "sweep_runs.parquet")
    assert runs["test_pct_mae"].nunique() == 2


def test_all_runs_the_models_without_covariates_without_them(tmp_path, capsys):
    argv = ["--models", "kronos,chronos2", "--covariates", "asset:VIX", "--storage", str(tmp_path), "--dry-run"]
    argv += ["--seeds", "1", "--folds", "1", "--init", "scratch", "--size", "tiny"]
    assert every.main(argv) == 0
    captured = capsys.readouterr()
    assert "note: kronos takes no covariates (its tokenizer reads fixed K-line" in captured.err
    assert captured.out.count("Covariates: vix (VIX's close, past only)") == 1  # chronos2's dry run only
    assert not any(tmp_path.iterdir())  # a dry run writes nothing
