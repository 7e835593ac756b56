"""Analysis on synthetic tables and stores with known answers (no Ray, no training)."""

from __future__ import annotations

import json
import math
import os

import numpy as np
import pandas as pd
import pytest

from analysis import drift, impact
from analysis.best import main as best_main
from analysis.ensemble import unit_metrics
from analysis.logged import LogRunError
from analysis.ranking import rank_configs, shared_units
from analysis.results import Results
from analysis.runs import config_id, sweep_runs

FOLD_END = {"f1": "20200131", "f2": "20200228", "f3": "20200331"}


def runs_table(values: dict[str, dict[tuple[str, int], float]], metric: str = "val_pct_mae", **extra) -> pd.DataFrame:
    """A tidy table: config → {(fold, seed): metric value}; NaN marks a failed unit, None a missing one."""
    rows = []
    for cid, units in values.items():
        params = extra.get("params", {}).get(cid, {"name": cid})
        for (fold, seed), v in units.items():
            status = "missing" if v is None else "failed" if math.isnan(v) else "complete"
            v = np.nan if v is None else v
            rows.append(
                {
                    "model": extra.get("model", {}).get(cid, "tft"),
                    "sweep": extra.get("sweep", {}).get(cid, "s1"),
                    "trial_id": f"t_{cid}",
                    "config_id": cid,
                    "fold": fold,
                    "fold_id": fold,
                    "fold_end": FOLD_END[fold],
                    "seed": seed,
                    "unit": f"{fold}__seed{seed}",
                    "status": status,
                    "error": "RuntimeError: boom" if status == "failed" else "",
                    "config": json.dumps(params, sort_keys=True),
                    "trial_path": f"/r/s1/trial_{cid}",
                    "checkpoint": None if math.isnan(v) else f"/r/s1/trial_{cid}/units/{fold}__seed{seed}/model",
                    "started": "2026-01-01",
                    "train_seconds": 1.0,
                    metric: v,
                    **{f"config/{k}": p for k, p in params.items()},
                }
            )
    return pd.DataFrame(rows)


UNITS = [("f1", 7), ("f1", 11), ("f2", 7), ("f2", 11)]


def test_robust_score_is_mean_plus_population_std_and_ranks_best_first():
    runs = runs_table({"a": dict(zip(UNITS, [1, 3, 1, 3])), "b": dict(zip(UNITS, [2.5] * 4))})
    ranked = rank_configs(runs, "val_pct_mae")
    assert list(ranked["config_id"]) == ["b", "a"]  # a has the lower mean but the larger spread
    a = ranked.set_index("config_id").loc["a"]
    assert a["val_pct_mae"] == pytest.approx(2.0) and a["val_pct_mae_std"] == pytest.approx(1.0)
    assert a["robust_score"] == pytest.approx(3.0) and ranked["rank"].tolist() == [1, 2]
    assert ranked.set_index("config_id").loc["b", "robust_score"] == pytest.approx(2.5)


def test_a_metric_to_maximise_ranks_the_other_way():
    runs = runs_table(
        {
            "a": dict(zip(UNITS, [1, 3, 1, 3])),  # mean 2, std 1: robust −(2 − 1) = −1
            "b": dict(zip(UNITS, [1.8] * 4)),  # −1.8: best
            "c": dict(zip(UNITS, [0.5] * 4)),  # −0.5: worst
        },
        metric="val_sharpe",
    )
    ranked = rank_configs(runs, "val_sharpe")
    assert ranked.attrs["mode"] == "max"
    assert list(ranked["config_id"]) == ["b", "a", "c"]
    assert ranked["robust_score"].tolist() == pytest.approx([-1.8, -1.0, -0.5])
    # An explicit --mode min turns it round: mean + std 0.5 < 1.8 < 3.
    assert list(rank_configs(runs, "val_sharpe", mode="min")["config_id"]) == ["c", "b", "a"]


def test_failed_and_incomplete_configurations_are_flagged_and_ranked_last():
    runs = runs_table(
        {
            "ok": dict(zip(UNITS, [2.0] * 4)),
            "partial": {**dict(zip(UNITS[:3], [0.1] * 3)), UNITS[3]: None},  # better values, one unit missing
            "broken": {**dict(zip(UNITS[:2], [0.1, 0.1])), UNITS[2]: np.nan, UNITS[3]: np.nan},
        }
    )
    ranked = rank_configs(runs, "val_pct_mae").set_index("config_id")
    assert ranked.loc["ok", "rank"] == 1 and ranked.loc["ok", "status"] == "ok"
    assert ranked.loc["partial", "status"] == "incomplete" and not ranked.loc["partial", "complete"]
    assert ranked.loc["broken", "status"] == "failed" and ranked.loc["broken", "error"] == "RuntimeError: boom"
    assert ranked.loc["broken", "units_done"] == 2 and ranked.loc["broken", "units_expected"] == 4


def test_configurations_are_compared_only_on_the_units_they_share():
    small = {u: 2.0 for u in UNITS}
    big = {**{u: 1.0 for u in UNITS}, ("f3", 7): 100.0, ("f3", 11): 100.0}  # a longer sweep: one more fold
    runs = runs_table({"x": small, "y": big, "z": small}, sweep={"y": "s2"})
    units, configs = shared_units(runs)
    assert units == set(UNITS) and configs == {("tft", "x"), ("tft", "y"), ("tft", "z")}
    ranked = rank_configs(runs, "val_pct_mae").set_index("config_id")
    assert ranked.loc["y", "val_pct_mae"] == pytest.approx(1.0)  # f3 left out
    assert ranked.loc["y", "units_compared"] == 4 and ranked.loc["y", "units_done"] == 6
    assert ranked.loc["y", "rank"] == 1


def test_a_configuration_sharing_no_unit_is_not_comparable():
    runs = runs_table({"x": {u: 2.0 for u in UNITS}, "y": {u: 2.5 for u in UNITS}, "lone": {("f3", 7): 0.1}})
    ranked = rank_configs(runs, "val_pct_mae").set_index("config_id")
    assert ranked.loc["lone", "status"] == "not comparable" and ranked.loc["lone", "rank"] == 3


def test_config_id_is_stable_and_order_free():
    assert config_id({"a": 1, "b": 0.001}) == config_id({"b": 0.001, "a": 1})
    assert config_id({"a": 1}) != config_id({"a": 2}) and len(config_id({"a": 1})) == 10


OFAT = {
    "base": {"lr": 0.001, "hidden": 16},
    "lr_hi": {"lr": 0.01, "hidden": 16},
    "h8": {"lr": 0.001, "hidden": 8},
    "h32": {"lr": 0.001, "hidden": 32},
}


def test_ofat_deltas_against_the_baseline_unit_by_unit():
    values = {
        "base": dict(zip(UNITS, [2.0, 2.0, 3.0, 3.0])),
        "lr_hi": dict(zip(UNITS, [2.5, 2.5, 3.5, 3.5])),  # +0.5 everywhere
        "h8": dict(zip(UNITS, [1.0, 2.0, 3.0, 2.0])),  # −1, 0, 0, −1
        "h32": dict(zip(UNITS, [2.0, 2.0, 3.0, 3.0])),  # no effect
    }
    runs = runs_table(values, params=OFAT)
    assert impact.find_baseline(runs) == "base"  # differs from every other in one parameter only
    assert impact.find_baseline(runs, {"lr": 0.001, "hidden": 16}) == "base"
    assert impact.find_baseline(runs, {"lr": 1.0, "hidden": 1}, exact=True) is None
    detail = impact.impact_detail(runs, "val_pct_mae", "base")
    assert len(detail) == 12 and set(detail["param"]) == {"lr", "hidden"}
    h8 = detail[detail["config_id"] == "h8"].sort_values(["fold", "seed"])
    assert h8["delta"].tolist() == pytest.approx([-1.0, 0.0, 0.0, -1.0])
    summary = impact.impact_summary(detail).set_index(["param", "value"])
    assert summary.loc[("lr", "0.01"), "mean_delta"] == pytest.approx(0.5)
    assert summary.loc[("lr", "0.01"), "std_delta"] == pytest.approx(0.0)
    assert not summary.loc[("lr", "0.01"), "improves"] and summary.loc[("lr", "0.01"), "win_rate"] == 0
    assert summary.loc[("hidden", "8"), "mean_delta"] == pytest.approx(-0.5)
    assert summary.loc[("hidden", "8"), "std_delta"] == pytest.approx(0.5)
    assert summary.loc[("hidden", "8"), "improves"] and summary.loc[("hidden", "8"), "win_rate"] == 0.5
    assert summary.loc[("hidden", "8"), "mean_delta_pct"] == pytest.approx(np.mean([0, -50, -100 / 3, 0]))


def test_deltas_respect_a_metric_to_maximise():
    runs = runs_table({"base": {u: 1.0 for u in UNITS}, "lr_hi": {u: 1.5 for u in UNITS}}, "val_sharpe", params=OFAT)
    summary = impact.impact_summary(impact.impact_detail(runs, "val_sharpe", "base"))
    assert summary["mean_delta"].iloc[0] == pytest.approx(0.5) and summary["improves"].iloc[0]


def test_importances_find_the_parameter_that_matters():
    rng = np.random.default_rng(0)
    values, params = {}, {}
    for i, (lr, hidden) in enumerate([(a, b) for a in (1e-4, 1e-3, 1e-2, 1e-1) for b in (8, 16, 32)]):
        cid = f"c{i}"
        params[cid] = {"lr": lr, "hidden": hidden}
        values[cid] = {u: hidden / 8 + rng.normal(0, 0.01) for u in UNITS}
    ranked = rank_configs(runs_table(values, params=params), "val_pct_mae")
    table = impact.importances(ranked, "val_pct_mae").set_index("param")
    assert table.loc["hidden", "importance"] > 0.9 > table.loc["lr", "importance"]
    assert table["configs"].iloc[0] == 12
    # Below the minimum the forest would decide the shares: none are computed.
    few = ranked[ranked["config_id"].isin(list(params)[: impact.MIN_IMPORTANCE_CONFIGS - 1])]
    assert impact.importances(few, "val_pct_mae").empty


def test_psi_and_ks_against_hand_computed_values():
    train = np.arange(1, 11, dtype=float)  # cut at the median 5.5 with bins=2
    other = np.array([1, 2, 3, 7, 8, 9, 10, 11], dtype=float)  # 3 below, 5 above
    e, a = np.array([5.5, 5.5]) / 11, np.array([3.5, 5.5]) / 9  # (count + ½) / (n + ½·bins)
    assert drift.psi(train, other, bins=2) == pytest.approx(np.sum((a - e) * np.log(a / e)))
    assert drift.psi(train, train, bins=2) == pytest.approx(0.0)
    stat, p = drift.ks([1, 2, 3, 4], [3, 4, 5, 6])
    assert stat == pytest.approx(0.5)  # ECDFs differ by 2/4 at x = 2
    assert 0 < p <= 1
    assert drift.psi_level(0.05) == "stable" and drift.psi_level(0.2) == "moderate" and drift.psi_level(1) == "large"


def test_drift_table_flags_the_shifted_variable_only():
    from trainables.adapter import Window

    rng = np.random.default_rng(1)
    n = 600
    frame = pd.DataFrame(
        {"steady": rng.normal(0, 1, n), "shifted": np.r_[rng.normal(0, 1, 400), rng.normal(3, 1, 200)]}
    )
    windows = {"f1": (Window(0, 400), Window(400, 500), Window(500, 600))}
    table = drift.drift_table(frame, windows, ["steady", "shifted"]).set_index(["split", "variable"])
    assert table.loc[("test", "shifted"), "psi_level"] == "large" and table.loc[("test", "shifted"), "ks_pvalue"] < 1e-6
    assert table.loc[("test", "steady"), "psi"] < 0.25 and table.loc[("test", "steady"), "ks_pvalue"] > 0.01
    summary = drift.drift_summary(table.reset_index())
    assert summary["worst"]["variable"] == "shifted" and summary["market_shifted"] == ["shifted"]


def test_ensemble_of_opposite_errors_is_exact():
    rows = []
    for member, err in (("a", 1.0), ("b", -1.0)):
        for origin in range(5):
            for step in (1, 2):
                truth = 100.0 + origin + step
                rows.append(
                    {
                        "config_id": member,
                        "fold": "f1",
                        "seed": 7,
                        "origin": origin,
                        "step": step,
                        "y_true": truth,
                        "y_pred": truth + err,
                        "y_naive": 100.0 + origin,
                    }  # fmt: skip
                )
    metrics = unit_metrics(pd.DataFrame(rows), ["a", "b"]).set_index("member")
    assert metrics.loc["ensemble_mean", "test_pct_mae"] == pytest.approx(0.0)
    assert metrics.loc["a", "test_mae"] == pytest.approx(1.0) and metrics.loc["b", "test_mae"] == pytest.approx(1.0)
    assert metrics.loc["a", "origins"] == 5


# A tiny store in the real on-disk format, to test reading, caching and the CLI without a sweep.
def write_store(root, trials: int = 3, failed: int | None = 2) -> str:
    sweep = os.path.join(root, "syn")
    folds = [
        {
            "name": f"wf_{i}",
            "train_start": "20100104",
            "train_end": "20150101",
            "val_start": "20150102",
            "val_end": f"2015020{i}",
            "test_start": f"2015030{i}",
            "test_end": f"2015040{i}",
        }  # fmt: skip
        for i in (1, 2)
    ]
    spec = {"model": "tft", "mode": "ofat", "name": "syn", "seeds": [7], "metric": "val_pct_mae", "columns": {}}
    os.makedirs(sweep)
    with open(os.path.join(sweep, "sweep.json"), "w") as f:
        json.dump({"spec": spec, "folds": folds, "started": "2026-01-01"}, f)
    for t in range(trials):
        trial = os.path.join(sweep, f"trial_x_{t:05d}")
        os.makedirs(trial)
        with open(os.path.join(trial, "params.json"), "w") as f:
            json.dump({"hidden_size": 8 * (t + 1), "learning_rate": 0.001}, f)
        for i, fold in enumerate(folds):
            if t == failed and i == 1:
                with open(os.path.join(trial, "error.txt"), "w") as f:
                    f.write("Traceback (most recent call last):\n  ...\nValueError: hidden too big\n")
                continue
            unit = os.path.join(trial, "units", f"{fold['name']}__seed7")
            os.makedirs(unit)
            metrics = {"val_pct_mae": 1.0 + t + i, "test_pct_mae": 2.0 + t, "val_sharpe": 1.0 - t}
            with open(os.path.join(unit, "record.json"), "w") as f:
                json.dump({"fold": fold["name"], "seed": 7, "unit": f"{fold['name']}__seed7", "metrics": metrics}, f)
            os.makedirs(os.path.join(unit, "model"))
    return sweep


def test_tidy_table_from_files_flags_failed_units_with_the_last_error_line(tmp_path):
    runs = sweep_runs(write_store(tmp_path))
    assert len(runs) == 6 and set(runs["status"]) == {"complete", "failed"}
    failed = runs[runs["status"] == "failed"]
    assert len(failed) == 1 and failed["error"].iloc[0] == "ValueError: hidden too big"
    assert failed["fold"].iloc[0] == "wf_2" and pd.isna(failed["val_pct_mae"].iloc[0])
    assert runs["config/hidden_size"].tolist() == [8, 8, 16, 16, 24, 24]
    assert runs["config_id"].nunique() == 3 and (runs["fold_end"] != "").all()


def test_tidy_table_cache_is_used_until_the_sweep_changes(tmp_path, monkeypatch):
    from analysis import runs as runs_mod

    sweep = write_store(tmp_path)
    first = sweep_runs(sweep)
    assert os.path.isfile(os.path.join(sweep, "sweep_runs.parquet"))

    def never(*_args, **_kwargs):
        pytest.fail("cache not used")

    monkeypatch.setattr(runs_mod, "build_runs", never)
    pd.testing.assert_frame_equal(sweep_runs(sweep), first)
    monkeypatch.undo()
    os.makedirs(os.path.join(sweep, "trial_x_00009"))  # a new trial: the cache is stale
    with open(os.path.join(sweep, "trial_x_00009", "params.json"), "w") as f:
        json.dump({"hidden_size": 99, "learning_rate": 0.1}, f)
    assert len(sweep_runs(sweep)) == 8


def test_best_cli_ranks_exports_and_rejects_bad_input(tmp_path, capsys):
    write_store(tmp_path)
    out = tmp_path / "best.json"
    assert best_main(["--results", str(tmp_path), "--top-k", "3", "--export-path", str(out)]) == 0
    best = json.loads(out.read_text())
    assert best["config"] == {"hidden_size": 8, "learning_rate": 0.001} and best["checkpoint"].endswith("model")
    assert best["checkpoint_unit"]["fold"] == "wf_2" and best["metrics"]["val_pct_mae"] == pytest.approx(1.5)
    assert best_main(["--results", str(tmp_path), "--metric", "val_sharpe"]) == 0
    assert "by val_sharpe (maximise)" in capsys.readouterr().out
    bad = [
        (["--metric", "val_nope"], "not a known metric"),
        (["--metric", "test_pct_mae"], "must be a validation metric"),
        (["--results", str(tmp_path / "missing")], "is not a directory"),
        (["--results", str(tmp_path / "syn" / "trial_x_00000")], "no sweeps found"),
        (["--model", "nope"], "not a known model"),
        (["--top-k", "0"], "--top-k"),
    ]
    for argv, message in bad:
        assert best_main(["--results", str(tmp_path), *argv] if "--results" not in argv else argv) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and message in err and "\n" not in err


def test_log_run_is_validated_stored_apart_and_competes(tmp_path):
    write_store(tmp_path)
    res = Results(str(tmp_path))
    with pytest.raises(LogRunError, match="not a tft hyperparameter"):
        res.log_run("tft", {"nope": 1}, {"val_pct_mae": 1.0})
    with pytest.raises(LogRunError, match="not a known metric"):
        res.log_run("tft", {"hidden_size": 8}, {"val_wat": 1.0})
    with pytest.raises(LogRunError, match="finite"):
        res.log_run("tft", {"hidden_size": 8}, {"val_pct_mae": float("nan")})
    with pytest.raises(LogRunError, match="does not exist"):
        res.log_run("tft", {"hidden_size": 8}, {"val_pct_mae": 1.0}, checkpoint_path=str(tmp_path / "nope"))
    with pytest.raises(LogRunError, match="not a fold"):
        res.log_run("tft", {"hidden_size": 8}, {"val_pct_mae": 1.0}, sweep="syn", fold="wf_9")
    before = sorted(os.listdir(tmp_path / "syn"))
    for fold in ("wf_1", "wf_2"):
        res.log_run(
            "tft", {"hidden_size": 4}, {"val_pct_mae": 0.5, "test_pct_mae": 0.7}, sweep="syn", fold=fold, seed=7
        )
    assert sorted(os.listdir(tmp_path / "syn")) == before  # Tune's files untouched
    assert len(os.listdir(tmp_path / "_logged")) == 2
    best = res.best("val_pct_mae")
    assert best["sweep"] == "_logged" and best["metrics"]["val_pct_mae"] == pytest.approx(0.5)
    assert res.top_k(2)["config_id"].iloc[1] != best["config_id"]


def test_labels_name_what_differs_and_the_ofat_baseline():
    from analysis.ranking import config_labels

    runs = runs_table({c: {u: 1.0 for u in UNITS} for c in OFAT}, params=OFAT)
    ranked = rank_configs(runs, "val_pct_mae").set_index("config_id")
    labels = dict(zip(ranked.index, config_labels(ranked.reset_index())))
    assert labels == {"base": "baseline", "lr_hi": "lr=0.01", "h8": "hidden=8", "h32": "hidden=32"}


def test_optuna_top_k_file_is_what_the_sweep_cli_reads(tmp_path):
    from analysis.optuna_handoff import top_configs
    from sweeps.cli import _read_points

    runs = runs_table({c: {u: float(i) for u in UNITS} for i, c in enumerate(OFAT)}, params=OFAT)
    top = top_configs(rank_configs(runs, "val_pct_mae"), "val_pct_mae", 2)
    path = tmp_path / "optuna_top_k_configs.json"
    path.write_text(json.dumps({"metric": "val_pct_mae", "configs": top}))
    assert _read_points(str(path)) == [OFAT["base"], OFAT["lr_hi"]]


def test_all_models_runner_routes_flags_and_checks_before_running(tmp_path, capsys):
    from sweeps import all as runner

    config = tmp_path / "per_model.json"
    config.write_text(json.dumps({"tft": {"training_config": {"hidden_size": 8}}, "chronos2": {"notes": "c"}}))
    models, own, rest = runner._split(["--models", "tft,chronos2", "--init", "scratch", "--config", str(config)])
    assert models == ["tft", "chronos2"] and own.name is None
    tft = runner.model_argv("tft", own, rest, str(tmp_path))
    chronos = runner.model_argv("chronos2", own, rest, str(tmp_path))
    assert "--init" not in tft and chronos[:2] == ["--init", "scratch"]  # tft has no `init` setting
    assert json.loads(open(tft[tft.index("--config") + 1]).read()) == {"training_config": {"hidden_size": 8}}
    assert runner.main(["--models", "tft,nope"]) == 2
    with pytest.raises(SystemExit) as bad_flag:  # argparse's own usage error, as sweeps/tft.py gives
        runner.main(["--models", "tft", "--mode", "nope", "--storage", str(tmp_path)])
    assert bad_flag.value.code == 2
    assert runner.main(["--models", "tft", "--metric", "val_nope", "--storage", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "unknown model 'nope'" in err and "val_nope" in err


def _sweep_at(root, name: str, model: str, params: list[dict]) -> None:
    """A stored sweep of `model` with one complete one-fold unit per configuration."""
    fold = {"name": "wf_1", "train_start": "20100104", "train_end": "20150101", "val_start": "20150102",
            "val_end": "20150201", "test_start": "20150301", "test_end": "20150401"}  # fmt: skip
    sweep = os.path.join(root, name)
    os.makedirs(sweep)
    spec = {"model": model, "mode": "grid", "name": name, "seeds": [7], "metric": "val_pct_mae", "columns": {}}
    with open(os.path.join(sweep, "sweep.json"), "w") as f:
        json.dump({"spec": spec, "folds": [fold], "started": "2026-01-01"}, f)
    for t, p in enumerate(params):
        unit = os.path.join(sweep, f"trial_{name}_{t}", "units", "wf_1__seed7")
        os.makedirs(os.path.join(unit, "model"))
        with open(os.path.join(sweep, f"trial_{name}_{t}", "params.json"), "w") as f:
            json.dump(p, f)
        with open(os.path.join(unit, "record.json"), "w") as f:
            json.dump({"fold": "wf_1", "seed": 7, "unit": "wf_1__seed7", "metrics": {"val_pct_mae": 1.0 + t}}, f)


def test_models_are_compared_at_one_horizon_and_the_rest_is_named(tmp_path, capsys):
    _sweep_at(tmp_path, "tft_h1", "tft", [{"max_prediction_length": 1, "hidden_size": h} for h in (8, 16)])
    _sweep_at(tmp_path, "chronos_h5", "chronos2", [{"prediction_length": 5, "learning_rate": 0.1}])
    res = Results(str(tmp_path))
    compare = res.compare(metric="val_pct_mae")
    assert compare.attrs["horizon"] == 1 and list(compare["model"]) == ["tft"]
    assert compare.attrs["left_out"] == ["chronos_h5: horizon 5 ≠ 1"]
    at5 = res.compare(metric="val_pct_mae", horizon=5)
    assert list(at5["model"]) == ["chronos2"] and at5.attrs["left_out"] == ["tft_h1: horizon 1 ≠ 5"]
    assert "Compared at a horizon of 1 step(s); left out (another horizon): chronos_h5" in res.report()
    assert best_main(["--results", str(tmp_path), "--horizon", "5"]) == 0
    out = capsys.readouterr().out
    assert "horizon 5 steps" in out and "Best: chronos2" in out and "left out (another horizon" in out
    assert best_main(["--results", str(tmp_path), "--horizon", "3"]) == 2
    assert "no runs with horizon 3" in capsys.readouterr().err
