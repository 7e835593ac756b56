"""A real tiny sweep on a log-return series (values ≤ 0) at a forced horizon: it runs end to end."""

from __future__ import annotations

import glob
import json

import numpy as np
import pandas as pd
import pytest
from conftest import TINY_TFT, synthetic_prices

from sweeps.cli import main

pytestmark = pytest.mark.slow


def test_log_return_series_with_rel_mae_runs_to_its_report(ray_session, tmp_path, capsys):  # noqa: ARG001
    frame = synthetic_prices(700)
    frame["close"] = np.log(frame["close"]).diff().fillna(0.0)
    data = tmp_path / "returns.parquet"
    frame.to_parquet(data)
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({"training_config": TINY_TFT}))
    storage = tmp_path / "results"
    args = ["--data", str(data), "--config", str(config), "--storage", str(storage), "--gpus-per-trial", "0"]
    args += ["--window", "rolling", "--train-size", "300", "--val-size", "90", "--test-size", "90", "--folds", "1"]
    args += ["--seeds", "1", "--mode", "quick", "--max-runs", "1", "--horizon", "3", "--metric", "val_rel_mae"]
    assert main("tft", [*args, "--name", "returns"]) == 0
    out = capsys.readouterr()
    assert "warning:" not in out.err  # 90 rows, an origin on every row but the last 2: enough for the DM test
    sweep = storage / "returns"
    (params,) = [json.loads(open(p).read()) for p in glob.glob(str(sweep / "trial_*" / "params.json"))]
    assert params["max_prediction_length"] == 3  # --horizon overrides the space's baseline of 1
    (unit,) = glob.glob(str(sweep / "trial_*" / "units" / "*"))
    record = json.loads(open(f"{unit}/record.json").read())
    assert np.isnan(record["metrics"]["val_pct_mae"]) and np.isnan(record["metrics"]["test_sharpe"])
    assert np.isfinite(record["metrics"]["val_rel_mae"]) and np.isfinite(record["metrics"]["test_mase"])
    assert record["mase_scale"] > 0
    assert pd.read_parquet(f"{unit}/predictions.parquet")["step"].max() == 3
    ranked = pd.read_csv(sweep / "config_ranking.csv")
    assert ranked["status"].tolist() == ["ok"] and np.isfinite(ranked["robust_score"].iloc[0])
    summary = json.loads((sweep / "summary.json").read_text())
    assert summary["verdicts"]["origins"] == {"val": 88, "test": 88} and summary["verdicts"]["horizon"] == 3
    assert summary["spa_pvalue"]["test"] is not None
    # Not a positive price: the random walk's and GARCH's distributions are additive, and judged.
    assert np.isfinite(record["metrics"]["test_ql"]) and np.isfinite(record["metrics"]["test_rel_ql"])
    assert summary["verdicts"]["spa_pvalue_garch"]["test"] is not None
    runs = pd.read_parquet(sweep / "sweep_runs.parquet")
    assert set(runs["horizon"]) == {3}
    assert "## Does anything beat the random walk?" in (sweep / "report.md").read_text()
    assert (
        "change" in json.loads((sweep / "drift_ks_psi_overall_summary.json").read_text())["by_variable"][0]["variable"]
    )
