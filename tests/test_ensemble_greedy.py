"""Greedy weighted ensembles (analysis/greedy.py, analysis/greedy_report.py, `analysis/ensemble.py --greedy`):
Caruana's selection on hand-made forecasts with known answers, then a real run over a tiny TFT sweep and its
baselines sweep: selected on val, judged on test with the single models' verdicts, exported as a model directory."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import TINY_FOLDS, TINY_TFT

from analysis import ensemble, greedy, greedy_report, model_dir
from trainables import quantiles, registry
from trainables.metrics import dm_test

Y = np.array([10.0, 20.0, 30.0, 40.0])


def test_two_members_whose_errors_cancel_get_equal_weights_and_beat_either():
    sel = greedy.select(np.stack([Y + 1, Y - 1]), Y, iterations=25)
    # Pick 1: both lose 1, the tie goes to the better-ranked first. Pick 2: the first again loses 1,
    # the second 0. Pick 3: (2a + b) / 3 and (a + 2b) / 3 both lose 1/3 (a tie: the first). Only
    # the first two picks are kept: the lowest loss, first reached at pick 2.
    assert sel.order[:3] == [0, 1, 0]
    assert sel.trajectory[:4] == pytest.approx([1.0, 0.0, 1 / 3, 0.0])
    assert sel.kept == 2 and len(sel.trajectory) == 25
    np.testing.assert_array_equal(sel.weights, [0.5, 0.5])
    np.testing.assert_allclose(greedy.combine(sel.weights, np.stack([Y + 1, Y - 1])), Y)


def test_a_dominated_member_gets_no_weight_even_when_ranked_first():
    # Errors +3 (ranked first), +1, −1: adding +3 never helps more than adding +1.
    sel = greedy.select(np.stack([Y + 3, Y + 1, Y - 1]), Y)
    np.testing.assert_array_equal(sel.weights, [0.0, 0.5, 0.5])
    np.testing.assert_array_equal(sel.counts, [0, 1, 1])


def test_with_replacement_a_strong_member_gets_more_than_half():
    # Errors −3 (ranked first) and +1: the mix w·1 + (1 − w)·(−3) is exact at w = 3/4. By hand: pick 1
    # the second (loss 1 vs 3); pick 2 both give loss 1 (|−3 + 1| / 2 and 1): the tie goes to the one
    # already picked, not to the better-ranked; pick 3 the first ((2 − 3) / 3: loss 1/3 vs 1);
    # pick 4 the second ((3 − 3) / 4 = 0 vs |2 − 6| / 4 = 1).
    sel = greedy.select(np.stack([Y - 3, Y + 1]), Y)
    assert sel.order[:4] == [1, 1, 0, 1]
    assert sel.trajectory[:4] == pytest.approx([1.0, 1.0, 1 / 3, 0.0])
    assert sel.kept == 4
    np.testing.assert_array_equal(sel.weights, [0.25, 0.75])


def test_a_copy_of_a_member_gets_no_weight_of_its_own():
    sel = greedy.select(np.stack([Y + 1, Y - 1, Y - 1]), Y)  # the third forecasts exactly as the second
    np.testing.assert_array_equal(sel.weights, [0.5, 0.5, 0.0])


def test_the_loss_averages_each_units_mae_over_units_as_val_mae_does():
    # Unit A has one point, unit B three: per point weights 1/2 and 1/6. The first member errs 4 on
    # A's point (equal weights: loss 1; per unit: 2), the second 2 on each of B's (1.5; per unit: 1).
    origins = pd.to_datetime(["2020-01-01", "2020-01-02", "2020-01-03", "2020-01-06"])
    keys = pd.DataFrame({"asset": "", "fold_id": ["A", "B", "B", "B"], "fold_end": "", "seed": 0, "origin": origins})
    keys["step"] = 1
    y = np.zeros(4)
    preds = np.array([[4.0, 0, 0, 0], [0, 2.0, 2.0, 2.0]])
    s = greedy.Split(keys, y, y, preds, np.full((2, 4, len(quantiles.LEVELS)), np.nan), np.zeros((4, 11)))
    np.testing.assert_allclose(s.point_weights, [1 / 2, 1 / 6, 1 / 6, 1 / 6])
    assert [s.loss(p) for p in preds] == pytest.approx([2.0, 1.0])
    assert greedy.select(preds, y).order[0] == 0  # equal weights: the first member looks better
    assert greedy.select(preds, y, s.point_weights).order[0] == 1


def test_quantiles_combine_level_by_level_and_a_member_without_weight_adds_no_nan():
    q = np.array([[[1.0, 2.0, 3.0]], [[3.0, 6.0, 11.0]], [[np.nan, np.nan, np.nan]]])  # 3 members, 1 point, 3 levels
    np.testing.assert_allclose(greedy.combine(np.array([0.75, 0.25, 0.0]), q), [[1.5, 3.0, 5.0]])
    assert np.isnan(greedy.combine(np.array([0.5, 0.0, 0.5]), q)).all()  # a point-only member with weight: no quantiles


def test_selection_refuses_what_it_cannot_select_from():
    with pytest.raises(ValueError, match="iterations"):
        greedy.select(np.stack([Y]), Y, iterations=0)
    with pytest.raises(ValueError, match="preds must be"):
        greedy.select(np.stack([Y[:3]]), Y)
    one = greedy.select(np.stack([Y + 2]), Y)  # one candidate: weight 1 after one pick
    assert one.weights.tolist() == [1.0] and one.kept == 1


def test_the_cli_refuses_bad_greedy_arguments(tmp_path, capsys):
    assert ensemble.main(["--greedy", "--results", str(tmp_path), "--candidates", "1"]) == 2
    assert ensemble.main(["--greedy", "--results", str(tmp_path), "--iterations", "0"]) == 2
    assert ensemble.main(["--greedy", "--results", str(tmp_path), "--metric", "test_mae"]) == 2
    assert ensemble.main(["--greedy", "--results", str(tmp_path / "nowhere")]) == 2
    assert ensemble.main([]) == 2  # no sweep and no --greedy
    err = capsys.readouterr().err
    assert err.count("error:") == 5 and "--candidates must be at least 2" in err and "does not exist" in err


# ------------------------------------------------------------------ a real run


@pytest.fixture(scope="module")
def swept(ray_session, tmp_path_factory):  # noqa: ARG001 (needs the session's Ray)
    """Under one results root: a one-configuration tiny TFT sweep and a baselines sweep of the random
    walk and drift (two trials: one round on two CPUs), 1 fold × 1 seed, both at horizon 2."""
    from sweeps.cli import main

    root = tmp_path_factory.mktemp("greedy")
    tft, baselines = root / "tft.json", root / "baselines.json"
    tft.write_text(json.dumps({"training_config": TINY_TFT}))
    baselines.write_text(json.dumps({"param_ranges": {"method": ["rw", "drift"]}}))
    common = ["--folds", "1", "--seeds", "1", "--gpus-per-trial", "0", "--storage", str(root / "r"), *TINY_FOLDS]
    assert main("tft", ["--config", str(tft), "--mode", "quick", "--max-runs", "1", "--name", "g", *common]) == 0
    argv = ["--config", str(baselines), "--mode", "grid", "--horizon", "2", "--name", "g_baselines", *common]
    assert main("baselines", argv) == 0
    return root / "r"


def _stored(runs: pd.DataFrame, model: str, cid: str, split: str) -> pd.DataFrame:
    unit = runs[(runs["model"] == model) & (runs["config_id"] == cid) & (runs["status"] == "complete")].iloc[0]
    table = pd.read_parquet(f"{unit['trial_path']}/units/{unit['unit']}/predictions.parquet")
    return table[table["split"] == split].sort_values(["origin", "step"]).reset_index(drop=True)


@pytest.mark.slow
def test_a_greedy_ensemble_of_tft_and_the_baselines_is_judged_and_exported(swept, tmp_path, capsys):
    from analysis.runs import load_runs

    export = tmp_path / "model"
    argv = ["--greedy", "--results", str(swept), "--export", str(export), "--bootstrap-reps", "200"]
    assert ensemble.main(argv) == 0
    out = capsys.readouterr().out
    base = swept / greedy_report.OUT_DIR
    result = json.loads((base / "ensemble.json").read_text())
    weights = pd.read_csv(base / "weights.csv")
    summary = pd.read_csv(base / "ensemble_summary.csv")
    runs = load_runs(str(swept))

    # The candidates: both models' configurations (1 TFT + 2 baselines); the weights sum to 1.
    assert set(weights["model"]) == {"tft", "baselines"} and len(weights) == 3
    assert weights["weight"].sum() == pytest.approx(1.0)
    assert (weights["picks"] / result["picks_kept"]).to_numpy() == pytest.approx(weights["weight"].to_numpy())
    assert result["points"] == {"val": 38, "test": 38} and result["units"] == {"val": 1, "test": 1}

    # Every point is shared here: each candidate's loss is its ranking's val_mae (one unit).
    by_config = runs.drop_duplicates("config_id").set_index("config_id")["val_mae"]
    assert weights["val_loss"].to_numpy() == pytest.approx(by_config[weights["config_id"]].to_numpy())

    # The ensemble's forecasts recomputed from the members' own files, by hand.
    members = weights[weights["weight"] > 0]
    for split in ("val", "test"):
        tables = [_stored(runs, m, c, split) for m, c in zip(members["model"], members["config_id"])]
        y = tables[0]["y_true"].to_numpy()
        pred = sum(w * t["y_pred"].to_numpy() for w, t in zip(members["weight"], tables))
        assert result["metrics"][f"{split}_mae"] == pytest.approx(np.mean(np.abs(pred - y)))
        if split == "val":  # greedy never does worse than its first pick, the best single on val
            assert result["val_loss"] == pytest.approx(np.mean(np.abs(pred - y)))
            assert result["val_loss"] <= weights["val_loss"].min() * (1 + 1e-9)
            assert result["best_single"]["val_loss"] == pytest.approx(weights["val_loss"].min())
    # Its test verdict against the random walk: the one-sided DM test on its own per-origin losses.
    naive = tables[0]["y_naive"].to_numpy()
    d = (np.abs(pred - y) - np.abs(naive - y)).reshape(-1, 2).mean(axis=1)
    assert result["verdicts"]["test_dm_p_pooled"] == pytest.approx(dm_test(d, 2)[1])

    # The test verdict columns are filled, with the bar (the best baseline) named in words.
    v = result["verdicts"]
    assert v["beats_naive"] in (True, False) and v["in_mcs"] in (True, False) and v["test_in_mcs"] in (True, False)
    assert v["beats_best_baseline"] in (True, False) and 0 <= v["test_dm_p_baseline"] <= 1
    assert 0 <= v["test_dm_p_prob"] <= 1 and 0 <= v["test_dm_p_garch"] <= 1 and v["calibration"] != "untested"
    assert result["bar"]["model"] == "baselines" and result["bar"]["name"] in v["versus_bar"]
    ens = summary[summary["kind"] == "ensemble"].iloc[0]
    assert ens["verdict"] in ("beats naive", "not better than naive", "worse than naive")
    assert "greedy ensemble" in out and "Against the best baseline:" in out and "the best single" in out

    # The export: an ensemble model directory whose members load with their adapters.
    card = model_dir.read(str(export))
    assert card.kind == "ensemble" and card.model == "ensemble" and card.horizon == 2
    assert sum(m["weight"] for m in card.members) == pytest.approx(1.0)
    assert sorted(m["config_id"] for m in card.members) == sorted(members["config_id"])
    for m in card.members:
        member = model_dir.read(str(export / m["dir"]))
        assert member.kind == "single" and member.model == m["model"] and member.source["config_id"] == m["config_id"]
        assert member.data.rows == 200 and member.data.source == "embedded (SPX)"  # the fold's training window
        adapter = registry.get(member.model).adapter().load(str(export / m["dir"] / model_dir.WEIGHTS))
        assert type(adapter).__name__ == registry.get(m["model"]).adapter_path.split(":")[1]
        assert json.loads(json.dumps(adapter.config, default=str)) == member.config
    assert (export / model_dir.CARD).is_file() and "Members:" in (export / model_dir.CARD).read_text()
