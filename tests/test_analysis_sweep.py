"""Analysis of one real tiny TFT sweep: OFAT over hidden_size plus a failing configuration.

The sweep runs once (module fixture, through `sweeps.cli.main`, so the end-of-sweep hook writes
every artefact); the tests read what it left, as a user would, with Ray no longer needed.
"""

from __future__ import annotations

import glob
import json
import os

import numpy as np
import pandas as pd
import pytest
from conftest import TINY_TFT, sweep_args

from analysis import report
from analysis.best import main as best_main
from analysis.results import Results, load_model
from sweeps.cli import main
from trainables.metrics import METRICS_VERSION

pytestmark = pytest.mark.slow

ARTEFACTS = [
    "sweep_runs.parquet",
    "sweep_runs.csv",
    "sweep_runs.json",
    "config_ranking.csv",
    "all_models_ranked.csv",
    "param_impact_detail.csv",
    "param_impact_summary.csv",
    "drift_ks_psi_by_fold.csv",
    "drift_ks_psi_overall_summary.json",
    "summary.json",
    "best_model.json",
    "report.md",
    "folds/wf_1/config_ranking.csv",
    "folds/wf_2/param_impact_summary.csv",
    "folds/wf_2/plots/ranking.png",
]
PLOTS = ["ranking", "param_impact", "metric_by_fold", "learning_curves", "forecast_best", "drift"]


@pytest.fixture(scope="module")
def swept(ray_session, tmp_path_factory):  # noqa: ARG001 (needs the session's Ray)
    """Baseline, hidden_size 16, and attention_head_size 0 (fails to build) × 2 folds × 1 seed."""
    root = tmp_path_factory.mktemp("analysis")
    config = root / "ofat.json"
    ranges = {"hidden_size": [8, 16], "attention_head_size": [1, 0]}
    config.write_text(json.dumps({"training_config": TINY_TFT, "param_ranges": ranges}))
    args = sweep_args(root / "results", str(config), "--mode", "ofat", "--folds", "2", "--seeds", "1")
    assert main("tft", [*args, "--name", "ofat", "--max-failures", "0"]) == 0
    return root / "results" / "ofat"


def _records(sweep) -> pd.DataFrame:
    rows = []
    for path in glob.glob(str(sweep / "trial_*" / "units" / "*" / "record.json")):
        rec = json.loads(open(path).read())
        params = json.loads(open(os.path.join(path.split("/units/")[0], "params.json")).read())
        rows.append({"fold": rec["fold"], "hidden": params["hidden_size"], **rec["metrics"]})
    return pd.DataFrame(rows)


def test_the_sweep_ends_with_every_artefact(swept):
    for name in ARTEFACTS:
        assert (swept / name).is_file(), name
    for name in PLOTS:
        assert (swept / "plots" / f"{name}.png").stat().st_size > 10_000, name
    text = (swept / "report.md").read_text()
    best = json.loads((swept / "best_model.json").read_text())
    assert best["config_id"] in text and "## Drift" in text and "plots/forecast_best.png" in text


def test_tidy_table_matches_the_unit_records(swept):
    runs = pd.read_parquet(swept / "sweep_runs.parquet")
    assert len(runs) == 3 * 2 and runs["config_id"].nunique() == 3
    failed = runs[runs["status"] == "failed"]
    assert len(failed) == 2 and (failed["config/attention_head_size"] == 0).all()
    assert failed["error"].str.contains("ZeroDivisionError").all()
    done = runs[runs["status"] == "complete"]
    records = _records(swept)
    assert sorted(done["val_pct_mae"]) == pytest.approx(sorted(records["val_pct_mae"]))
    assert all(os.path.isdir(p) for p in done["checkpoint"])
    assert done["git_sha"].str.len().eq(40).all()


def test_ranking_agrees_with_the_trials_own_aggregates(swept):
    ranked = pd.read_csv(swept / "config_ranking.csv").fillna({"error": ""})
    assert list(ranked["status"]) == ["ok", "ok", "failed"]
    for _, row in ranked[ranked["status"] == "ok"].iterrows():
        last = open(os.path.join(row["trial_path"], "result.json")).read().strip().splitlines()[-1]
        assert row["robust_score"] == pytest.approx(json.loads(last)["robust_score"])
    summary = json.loads((swept / "summary.json").read_text())
    assert summary["status_counts"] == {"ok": 2, "failed": 1}
    assert summary["errors"][0]["configurations"] == 1 and "ZeroDivisionError" in summary["errors"][0]["error"]
    assert summary["best_overall"]["config_id"] == ranked["config_id"].iloc[0]


def test_impact_is_the_unit_by_unit_difference_to_the_baseline(swept):
    detail = pd.read_csv(swept / "param_impact_detail.csv")
    assert set(detail["param"]) == {"hidden_size"} and len(detail) == 2  # the failed config has no units
    records = _records(swept).set_index(["fold", "hidden"])["val_pct_mae"]
    for _, row in detail.iterrows():
        assert row["delta"] == pytest.approx(records[(row["fold"], 16)] - records[(row["fold"], 8)])
    summary = pd.read_csv(swept / "param_impact_summary.csv")
    assert summary["mean_delta"].iloc[0] == pytest.approx(detail["delta"].mean())


def test_drift_covers_every_fold_split_and_feature(swept):
    table = pd.read_csv(swept / "drift_ks_psi_by_fold.csv")
    assert len(table) == 2 * 2 * 5  # folds × (val, test) × (log_return + 4 more BASELINE_FEATURES)
    assert table["ks_pvalue"].between(0, 1).all() and (table["psi"] >= 0).all()


def test_best_export_loads_in_two_lines_and_reproduces_its_forecasts(swept, capsys):
    out = swept.parent / "exported.json"
    assert best_main(["--results", str(swept.parent), "--export-path", str(out)]) == 0
    assert "load it:" in capsys.readouterr().out
    model = load_model(str(out))  # the two lines: import, then this
    best = json.loads(out.read_text())
    preds = pd.read_parquet(os.path.join(os.path.dirname(best["checkpoint"]), "predictions.parquet"))
    assert model.config["hidden_size"] == best["config"]["hidden_size"]
    from trainables.adapter import UnitData
    from trainables.data import load_prices
    from trainables.features import add_features
    from trainables.folds import Fold, windows
    from trainables.unit import origins

    meta = json.loads((swept / "sweep.json").read_text())
    fold = Fold(**next(f for f in meta["folds"] if f["name"] == best["checkpoint_unit"]["fold"]))
    frame, feats = add_features(load_prices(None, "SPX"), "BASELINE_FEATURES")
    data = UnitData(frame, feats, *windows(fold, frame["timestamp"]))
    where = origins(data.test, model.context_length(model.config), model.horizon(model.config))
    expected = preds[preds["split"] == "test"]["y_pred"].to_numpy()
    np.testing.assert_allclose(model.predict(data, where).ravel(), expected, rtol=1e-4)


def test_interactive_pick_exports_the_chosen_configuration(swept, capsys, monkeypatch):
    import io

    out = swept.parent / "picked.json"
    monkeypatch.setattr("sys.stdin", io.StringIO("2\n"))
    assert best_main(["--results", str(swept.parent), "--interactive", "--export-path", str(out)]) == 0
    assert "Pick a configuration" in capsys.readouterr().out
    ranking = pd.read_csv(swept / "config_ranking.csv")
    assert json.loads(out.read_text())["config_id"] == ranking["config_id"].iloc[1]


def test_results_api_over_the_store(swept):
    res = Results(str(swept.parent))
    best = res.best()
    assert best["model"] == "tft" and best["units_compared"] == 2
    assert len(res.top_k(5)) == 2
    compare = res.compare(["val_pct_mae", "test_pct_mae"])
    assert list(compare["model"]) == ["tft"] and compare["config_id"].iloc[0] == best["config_id"]
    impact = res.impact("tft", "hidden_size")
    assert list(impact["value"]) == ["16"] and impact["units"].iloc[0] == 2
    assert "Winner: **tft**" in res.report()


def test_ensemble_from_checkpoints_matches_stored_forecasts(swept):
    from analysis import ensemble

    stored = ensemble.run(str(swept), top_k=2, stored=True)
    loaded = ensemble.run(str(swept), top_k=2)
    cols = ["member", "test_pct_mae"]
    pd.testing.assert_frame_equal(stored["summary"][cols], loaded["summary"][cols], rtol=1e-4)
    ranked = pd.read_csv(swept / "config_ranking.csv").set_index("config_id")
    by = stored["summary"].set_index("member")
    for member in stored["members"]:  # the member's metrics over its units = the ranking's test mean
        assert by.loc[member, "test_pct_mae"] == pytest.approx(ranked.loc[member, "test_pct_mae"])
    assert (swept / "ensemble" / "ensemble.json").is_file()


def test_report_cli_regenerates_from_the_files_alone(swept, capsys):
    before = (swept / "config_ranking.csv").read_text()
    (swept / "report.md").unlink()
    (swept / "plots" / "drift.png").unlink()
    assert report.main([str(swept)]) == 0
    assert (swept / "report.md").is_file() and (swept / "plots" / "drift.png").is_file()
    assert (swept / "config_ranking.csv").read_text() == before
    capsys.readouterr()
    assert report.main([str(swept), "--metric", "val_nope"]) == 2
    assert report.main([str(swept / "nowhere")]) == 2
    assert capsys.readouterr().err.count("error:") == 2


def test_report_shows_spa_mcs_and_beats_naive_of_the_real_sweep(swept):
    summary = json.loads((swept / "summary.json").read_text())
    for split in ("val", "test"):
        assert 0 <= summary["spa_pvalue"][split] <= 1
    assert summary["verdicts"]["configurations_tested"] == {"val": 2, "test": 2}
    assert summary["verdicts"]["origins"] == {"val": 38, "test": 38}  # 2 folds × 19 two-step origins, one row apart
    ranked = pd.read_csv(swept / "config_ranking.csv")
    ok = ranked[ranked["status"] == "ok"]
    assert ok["in_mcs"].isin([True, False]).all() and ok["in_mcs"].any()  # the best is always in its MCS
    assert ok["beats_naive"].isin([True, False]).all()
    for _, row in ok.iterrows():  # the words follow the one-sided p-value
        p = row["test_dm_p_pooled"]
        assert row["verdict"] == (
            "beats naive" if p < 0.05 else "worse than naive" if p > 0.95 else "not better than naive"
        )
    failed = ranked[ranked["status"] == "failed"]
    assert failed["in_mcs"].isna().all()  # only complete configurations are judged
    text = (swept / "report.md").read_text()
    assert "## Does anything beat the random walk?" in text and "SPA p" in text and "in MCS (val)" in text
    assert summary["answer"][1:] in text


def test_pooled_dm_is_recomputed_from_the_stored_forecasts(swept):
    from trainables.metrics import dm_test

    ranked = pd.read_csv(swept / "config_ranking.csv").set_index("config_id")
    best = json.loads((swept / "best_model.json").read_text())
    tables = []
    for unit in best["unit_models"].values():
        tables.append(pd.read_parquet(os.path.join(os.path.dirname(unit), "predictions.parquet")))
    test = pd.concat(tables).query("split == 'test'")
    d = (test["y_pred"] - test["y_true"]).abs() - (test["y_naive"] - test["y_true"]).abs()
    per_origin = d.groupby(test["origin"]).mean().sort_index()  # one seed: nothing to average
    stat, p = dm_test(per_origin.to_numpy(), 2)  # two-step forecasts: HAC with one lag
    assert ranked.loc[best["config_id"], "test_dm_stat_pooled"] == pytest.approx(stat)
    assert ranked.loc[best["config_id"], "test_dm_p_pooled"] == pytest.approx(p)
    assert best["verdict"]["test_dm_p_pooled"] == pytest.approx(p)


def _copy(swept, tmp_path):
    import shutil

    dest = tmp_path / "copy" / swept.name
    shutil.copytree(swept, dest)
    return dest


def test_recompute_metrics_rewrites_old_records_and_keeps_their_originals(swept, tmp_path, capsys):
    sweep = _copy(swept, tmp_path)
    paths = sorted(glob.glob(str(sweep / "trial_*" / "units" / "*" / "record.json")))
    originals = [json.loads(open(p).read()) for p in paths]
    old = dict(originals[0])  # what a record written before this change held: no scale, two-sided p
    old["metrics"] = {k: v for k, v in old["metrics"].items() if not k.endswith(("rel_mae", "mase", "dm_stat"))}
    old["metrics"]["val_dm_pvalue_vs_naive"] = 0.0123
    for key in ("metrics_version", "mase_scale"):
        old.pop(key)
    open(paths[0], "w").write(json.dumps(old))
    assert report.main([str(sweep), "--recompute-metrics", "--no-plots"]) == 0
    out = capsys.readouterr().out
    assert f"metrics recomputed for {len(paths)} of {len(paths)} complete units" in out
    again = json.loads(open(paths[0]).read())
    assert again["metrics_v1"] == old["metrics"] and again["metrics_version"] == METRICS_VERSION
    assert again["mase_scale"] == pytest.approx(originals[0]["mase_scale"])  # rebuilt from the data
    for key, value in originals[0]["metrics"].items():  # the same numbers as when the unit ran
        assert again["metrics"][key] == pytest.approx(value, nan_ok=True), key
    current = json.loads(open(paths[1]).read())
    assert "metrics_v1" not in current and current["metrics"] == pytest.approx(originals[1]["metrics"], nan_ok=True)
    assert report.main([str(tmp_path / "copy"), "--recompute-metrics"]) == 0  # a results root: every sweep in it
    assert report.main([str(tmp_path / "copy" / "nothing_here"), "--recompute-metrics"]) == 2
    (tmp_path / "empty").mkdir()
    assert report.main([str(tmp_path / "empty"), "--recompute-metrics"]) == 2
    assert "no sweep under" in capsys.readouterr().err


def test_report_survives_corrupt_records_missing_and_all_nan_metrics(swept, tmp_path, capsys):
    sweep = _copy(swept, tmp_path)
    paths = sorted(glob.glob(str(sweep / "trial_*" / "units" / "*" / "record.json")))
    text = open(paths[0]).read()
    open(paths[0], "w").write(text[: len(text) // 2])  # truncated by a crash
    record = json.loads(open(paths[1]).read())
    record["metrics"].pop("val_pct_mae")  # a missing metric column
    open(paths[1], "w").write(json.dumps(record))
    for path in paths[2:]:
        record = json.loads(open(path).read())
        record["metrics"]["val_pct_mae"] = float("nan")
        open(path, "w").write(json.dumps(record))
    capsys.readouterr()
    assert report.main([str(sweep)]) == 0
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err and "warning:" in captured.err
    md = (sweep / "report.md").read_text()
    unit = paths[0].split("/units/")[1].split("/")[0]
    assert "## Flagged units" in md and "record.json unreadable" in md and unit in md
    assert "no value for val_pct_mae" in md
    runs = pd.read_parquet(sweep / "sweep_runs.parquet")
    assert (runs["status"] == "unreadable").sum() == 1
    assert report.main([str(sweep), "--metric", "val_rel_mae", "--no-plots"]) == 0  # another metric still ranks
    for path in paths[1:]:
        record = json.loads(open(path).read())
        record["metrics"] = {k: v for k, v in record["metrics"].items() if "rel_mae" not in k}
        open(path, "w").write(json.dumps(record))
    assert report.main([str(sweep), "--metric", "val_rel_mae", "--no-plots"]) == 0  # no unit has it at all
    assert "note: no unit records val_rel_mae" in capsys.readouterr().err


def test_best_prints_spa_and_mcs_next_to_the_winner(swept, capsys):
    assert best_main(["--results", str(swept.parent), "--metric", "val_rel_mae", "--bootstrap-reps", "200"]) == 0
    out = capsys.readouterr().out
    assert "vs naive on test:" in out and "in the 90 % MCS on val:" in out
    assert "Beats the random walk? val:" in out and "SPA p =" in out and "Model Confidence Set" in out
    assert ", horizon 2 steps" in out
    for bad, message in (
        (["--bootstrap-reps", "5"], "--bootstrap-reps must be at least 100"),
        (["--mcs-size", "0"], "--mcs-size must be between 0 and 1"),
        (["--block-size", "0"], "--block-size must be at least 1"),
        (["--horizon", "0"], "--horizon must be at least 1"),
    ):
        assert best_main(["--results", str(swept.parent), *bad]) == 2
        assert message in capsys.readouterr().err
