"""A real sweeps/all.py run: the four forecasters (tiny, random weights) and the baselines on the
embedded S&P 500, ending with the verdicts against the random walk and against the best baseline."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import TINY_FOLDS

from analysis.best import main as best_main
from analysis.results import Results, load_model
from sweeps import all as runner
from trainables import registry

pytestmark = pytest.mark.slow
FORECASTERS = ["toto", "kronos", "chronos2", "tft"]


@pytest.mark.usefixtures("ray_session")
def test_four_models_and_the_baselines_end_with_verdicts_against_the_best_baseline(tmp_path, capsys):
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({m: {"training_config": registry.get(m).spaces().TINY} for m in FORECASTERS}))
    storage = tmp_path / "r"
    argv = ["--models", ",".join(FORECASTERS), "--config", str(config), "--mode", "priority", "--max-runs", "1",
            "--init", "scratch", "--folds", "1", "--seeds", "1", "--horizon", "2", "--context", "64", "--gpus-per-trial", "0",
            "--storage", str(storage), "--name", "cmp", *TINY_FOLDS]  # fmt: skip
    assert runner.main(argv) == 0
    out = capsys.readouterr().out
    assert out.index("=== baselines: sweep cmp_baselines ===") < out.index("=== toto: sweep cmp_toto ===")

    compare = Results(str(storage)).compare(metric="val_pct_mae")
    bar = compare.attrs["verdicts"]["best_baseline"]
    methods = registry.get("baselines").spaces().METHODS
    assert sorted(compare.loc[compare["baseline"], "config"].map(lambda c: json.loads(c)["method"])) == sorted(methods)
    assert set(compare.loc[~compare["baseline"], "model"]) == set(FORECASTERS)
    # The bar is the best baseline on val: the first baseline row of the ranking.
    first = compare[compare["baseline"]].sort_values("rank").iloc[0]
    assert bar["config_id"] == first["config_id"] and bar["name"] == first["name"]
    for _, row in compare[~compare["baseline"]].iterrows():  # each model said against the bar, in words
        assert row["versus_bar"].split(" ")[0] in ("beats", "no", "worse", "untested"), row["versus_bar"]
        assert bar["name"] in row["versus_bar"]
        assert np.isfinite(row["test_dm_p_baseline"])
    assert "Beats the best baseline (" in out and "vs the best baseline" in out
    p = compare.attrs["verdicts"]["spa_pvalue_baseline"]["test"]
    assert p is not None and 0 <= p <= 1
    report = (storage / "comparison_cmp" / "report.md").read_text()
    assert f"Beats the best baseline ({bar['name']}, chosen on val)? test: " in report and "versus_bar" not in report

    # best.py names the bar; a baseline exported as the best model loads and forecasts.
    assert best_main(["--results", str(storage), "--metric", "val_pct_mae"]) == 0
    assert "vs the best baseline (the bar, chosen on val):" in capsys.readouterr().out
    exported = tmp_path / "best_baseline.json"
    record = Results(str(storage)).export(str(exported), model="baselines")
    assert record["versus_bar"].startswith("it is the bar") and record["bar"]["name"] == bar["name"]
    model = load_model(str(exported))
    assert (
        type(model.adapter).__name__ == "BaselinesAdapter"
        and model.config["method"] == json.loads(first["config"])["method"]
    )


@pytest.mark.usefixtures("ray_session")
def test_one_models_universe_sweep_with_baselines_counts_assets_beating_each_assets_best_baseline(tmp_path, capsys):
    from conftest import TINY_TFT

    from sweeps.cli import main

    config = tmp_path / "tiny.json"
    config.write_text(json.dumps({"training_config": TINY_TFT}))
    storage = tmp_path / "r"
    argv = ["--config", str(config), "--mode", "quick", "--max-runs", "1", "--folds", "1", "--seeds", "1",
            "--assets", "SPX,NDX", "--gpus-per-trial", "0", "--storage", str(storage), "--name", "u",
            "--baselines", *TINY_FOLDS]  # fmt: skip
    assert main("tft", argv) == 0
    out = capsys.readouterr().out
    assert "=== baselines: sweep u_baselines ===" in out and "=== tft: sweep u ===" in out
    assert "[baseline]" in out, "the baselines sweep's ranking marks its rows"
    ranked = Results(str(storage)).rank("val_pct_mae")
    tft = ranked[ranked["model"] == "tft"].iloc[0]
    assert tft["assets_beating_best_baseline"] in ("0/2", "1/2", "2/2")
    assert ranked.loc[ranked["baseline"], "assets_beating_best_baseline"].isna().all(), "baselines are the bar"
