"""Real tiny Ray Tune sweeps of the TFT on the embedded S&P 500 series."""

from __future__ import annotations

import glob
import json
import os
import re
import signal
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
from conftest import ROOT, sweep_args

from sweeps.cli import main
from trainables.tft import TFTAdapter

pytestmark = pytest.mark.slow


def _last_progress(trial_dir: str) -> list[dict]:
    last = sorted(glob.glob(os.path.join(trial_dir, "checkpoint_*")))[-1]
    with open(os.path.join(last, "progress.json")) as f:
        units = json.load(f)["units"]
    records = glob.glob(os.path.join(trial_dir, "units", "*", "record.json"))
    assert len(records) == len(units), "every reported unit has its stored record"
    return units


def _last_result(trial_dir: str) -> dict:
    with open(os.path.join(trial_dir, "result.json")) as f:
        return json.loads(f.read().strip().splitlines()[-1])


def _event_tags(directory: str) -> set[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(directory)
    acc.Reload()
    return set(acc.Tags()["scalars"])


@pytest.fixture(scope="module")
def quick_sweep(ray_session, tmp_path_factory):  # noqa: ARG001 (needs the session's Ray)
    """2 configurations × 2 folds × 2 seeds, run once for the tests below."""
    root = tmp_path_factory.mktemp("quick")
    config = root / "tiny.json"
    from conftest import TINY_TFT

    config.write_text(json.dumps({"training_config": TINY_TFT}))
    args = sweep_args(
        root / "results",
        str(config),
        "--mode",
        "quick",
        "--max-runs",
        "2",
        "--folds",
        "2",
        "--seeds",
        "2",
        "--name",
        "quick",
        "--notes",
        "from the tests",
    )
    assert main("tft", args) == 0
    return root / "results" / "quick"


def test_every_unit_runs_once_and_aggregates_match(quick_sweep):
    trials = sorted(glob.glob(str(quick_sweep / "trial_*")))
    assert len(trials) == 2
    for trial in trials:
        units = _last_progress(trial)
        assert sorted((u["fold"], u["seed"]) for u in units) == [("wf_1", 7), ("wf_1", 11), ("wf_2", 7), ("wf_2", 11)]
        result = _last_result(trial)
        vals = np.array([u["metrics"]["val_pct_mae"] for u in units])
        assert result["val_pct_mae"] == pytest.approx(vals.mean())
        assert result["val_pct_mae_std"] == pytest.approx(vals.std())
        assert result["robust_score"] == pytest.approx(vals.mean() + vals.std())
        assert result["folds_done"] == 2 and result["units_done"] == 4
        tests = [u["metrics"]["test_pct_mae"] for u in units]
        assert result["test_pct_mae"] == pytest.approx(np.mean(tests))
        assert 0 <= result["val_dm_pvalue_vs_naive"] <= 1


def test_unit_files_hold_predictions_and_a_loadable_model(quick_sweep):
    from trainables.adapter import UnitData
    from trainables.data import load_prices
    from trainables.features import add_features
    from trainables.folds import Fold, windows
    from trainables.unit import origins

    trial = sorted(glob.glob(str(quick_sweep / "trial_*")))[0]
    units = glob.glob(os.path.join(trial, "units", "*"))
    assert len(units) == 4
    preds = pd.read_parquet(os.path.join(units[0], "predictions.parquet"))
    assert set(preds["split"]) == {"val", "test"}
    assert {"origin", "timestamp", "y_true", "y_pred", "y_naive"} <= set(preds.columns)
    assert np.isfinite(preds["y_pred"]).all()
    # The saved model loads and reproduces its own test forecasts.
    meta = json.loads((quick_sweep / "sweep.json").read_text())
    fold_name = os.path.basename(units[0]).split("__")[0]
    fold = Fold(**next(f for f in meta["folds"] if f["name"] == fold_name))
    frame, feats = add_features(load_prices(None, "SPX"), "BASELINE_FEATURES")
    data = UnitData(frame, feats, *windows(fold, frame["timestamp"]))
    model = TFTAdapter.load(os.path.join(units[0], "model"))
    where = origins(data.test, model.context_length(model.config), model.horizon(model.config))
    again = model.predict(data, where).ravel()
    np.testing.assert_allclose(again, preds[preds["split"] == "test"]["y_pred"].to_numpy(), rtol=1e-4)


def test_tensorboard_curves_per_unit_and_per_trial(quick_sweep):
    trial = sorted(glob.glob(str(quick_sweep / "trial_*")))[0]
    unit_dirs = sorted(glob.glob(os.path.join(trial, "tensorboard", "*")))
    assert [os.path.basename(d) for d in unit_dirs] == ["wf_1__seed11", "wf_1__seed7", "wf_2__seed11", "wf_2__seed7"]
    for d in unit_dirs:
        tags = _event_tags(d)
        assert "val_loss" in tags and any(t.startswith("train_loss") for t in tags), tags
    # The trial's own run: one point per reported fold, and its configuration as hparams.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    acc = EventAccumulator(trial)
    acc.Reload()
    assert {"ray/tune/val_pct_mae", "ray/tune/robust_score"} <= set(acc.Tags()["scalars"])
    assert [e.step for e in acc.Scalars("ray/tune/robust_score")] == [1, 2]
    assert acc.Scalars("ray/tune/robust_score")[-1].value == pytest.approx(_last_result(trial)["robust_score"])
    content = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    hparams = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    params = json.loads(open(os.path.join(trial, "params.json")).read())
    assert hparams["hidden_size"].number_value == params["hidden_size"]


def test_sweep_records_provenance_ranking_plot_and_best(quick_sweep):
    meta = json.loads((quick_sweep / "sweep.json").read_text())
    assert meta["notes"] == "from the tests"
    assert len(meta["git_sha"] or "") == 40 and isinstance(meta["git_dirty"], bool)
    assert meta["versions"]["ray"] and meta["versions"]["pytorch-forecasting"]
    assert meta["spec"]["mode"] == "quick" and meta["spec"]["seeds"] == [7, 11]
    ranking = pd.read_csv(quick_sweep / "config_ranking.csv")
    assert list(ranking["rank"]) == [1, 2] and ranking["complete"].all()
    assert ranking["robust_score"].is_monotonic_increasing
    best = json.loads((quick_sweep / "best_model.json").read_text())
    assert best["metrics"]["robust_score"] == pytest.approx(ranking["robust_score"].iloc[0])
    assert len(best["unit_models"]) == 4 and all(os.path.isdir(p) for p in best["unit_models"].values())
    assert isinstance(best["config"]["hidden_size"], int)
    assert (quick_sweep / "plots" / "ranking.png").stat().st_size > 10_000
    # The distribution is judged too: vs the probabilistic random walk and GARCH, and its calibration.
    assert np.isfinite(best["metrics"]["test_ql"]) and np.isfinite(best["metrics"]["test_rel_ql"])
    verdict = best["verdict"]
    assert isinstance(verdict["beats_naive_prob"], bool) and isinstance(verdict["beats_garch"], bool)
    assert 0 <= verdict["test_dm_p_garch"] <= 1
    assert re.fullmatch(r"calibrated|untested|miscalibrated: .+", verdict["calibration"])
    summary = json.loads((quick_sweep / "summary.json").read_text())["verdicts"]
    assert 0 <= summary["spa_pvalue_prob"]["test"] <= 1 and 0 <= summary["spa_pvalue_garch"]["test"] <= 1
    assert set(summary["calibration_reference"]) == {"random walk", "GARCH(1,1)-t"}
    assert (quick_sweep / "sweep_garch.parquet").exists()
    assert "The forecast distributions" in (quick_sweep / "report.md").read_text()
    assert (quick_sweep / "plots" / "calibration.png").stat().st_size > 10_000


@pytest.mark.usefixtures("ray_session")
def test_failing_configuration_is_recorded_and_the_sweep_goes_on(tmp_path, tiny_config, capsys):
    # attention_head_size 0 cannot build a TFT (it raises); learning rate 1e6 blows the loss up
    # at the second step (it diverges). Both are recorded with their reason; the baseline completes.
    cfg = json.loads(open(tiny_config).read())
    cfg["param_ranges"] = {"attention_head_size": [1, 0], "learning_rate": [1e6]}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(cfg))
    args = sweep_args(
        tmp_path / "r",
        str(path),
        "--mode",
        "ofat",
        "--folds",
        "1",
        "--seeds",
        "1",
        "--name",
        "f",
        "--max-failures",
        "0",
    )
    assert main("tft", args) == 0
    ranking = pd.read_csv(tmp_path / "r" / "f" / "config_ranking.csv").fillna("")
    assert list(ranking["complete"]) == [True, False, False]
    errors = dict(zip(zip(ranking["config/learning_rate"], ranking["config/attention_head_size"]), ranking["error"]))
    assert errors[(0.001, 1)] == ""
    assert "training diverged" in errors[(1e6, 1)] and "ZeroDivisionError" in errors[(0.001, 0)], errors
    # What the user watched (sweeps.progress, not Tune's tables): a header, one line per finished
    # unit, one line per failure with its reason, a progress line.
    out = capsys.readouterr().out
    assert "Sweep tft · mode ofat · 3 configurations × 1 folds × 1 seeds = 3 units" in out
    assert len(re.findall(r"^  ✓ \w{10}  wf_1 +seed 7 +val_pct_mae [\d.]+  [\d.]+s$", out, re.M)) == 1
    failures = re.findall(r"^  ✗ \w{10} failed: (.+)$", out, re.M)
    assert sorted(f.split(":")[0] for f in failures) == ["ZeroDivisionError", "trainables.adapter.TrainingDiverged"]
    assert re.search(r"\] 1/1 units", out)
    assert "Trial status" not in out and "╭" not in out


@pytest.mark.usefixtures("ray_session")
def test_parallel_units_run_as_tasks_in_the_trial(tmp_path, tiny_config):
    args = sweep_args(
        tmp_path / "r",
        tiny_config,
        "--mode",
        "priority",
        "--max-runs",
        "1",
        "--folds",
        "1",
        "--seeds",
        "2",
        "--parallel-units",
        "2",
        "--cpus-per-trial",
        "0.5",
        "--name",
        "p",
    )
    assert main("tft", args) == 0
    trial = glob.glob(str(tmp_path / "r" / "p" / "trial_*"))[0]
    assert len(_last_progress(trial)) == 2
    units = glob.glob(os.path.join(trial, "units", "*", "model", "tft.ckpt"))
    assert len(units) == 2


@pytest.mark.usefixtures("ray_session")
def test_optuna_sweep_keeps_its_study_in_sqlite(tmp_path, tiny_config):
    import optuna

    args = sweep_args(
        tmp_path / "r",
        tiny_config,
        "--mode",
        "optuna",
        "--num-samples",
        "3",
        "--folds",
        "1",
        "--seeds",
        "1",
        "--name",
        "o",
        "--metric",
        "val_sql",  # selecting on the distribution (fev-bench's scaled quantile loss)
    )
    assert main("tft", args) == 0
    db = tmp_path / "r" / "o" / "optuna_study.db"
    study = optuna.load_study(study_name="o", storage=f"sqlite:///{db}")
    assert len([t for t in study.trials if t.state.is_finished()]) == 3
    ranking = pd.read_csv(tmp_path / "r" / "o" / "config_ranking.csv")
    assert ranking["val_sql"].notna().all()
    assert study.best_value == pytest.approx(ranking["robust_score"].min())
    assert len(glob.glob(str(tmp_path / "r" / "o" / "trial_*"))) == 3


def test_killed_sweep_resumes_without_rerunning_finished_units(ray_session, tmp_path, tiny_config):
    """SIGKILL the driver after its first fold checkpoint; --resume finishes every unit exactly once."""
    storage = tmp_path / "r"
    args = sweep_args(
        storage,
        tiny_config,
        "--mode",
        "priority",
        "--max-runs",
        "1",
        "--folds",
        "3",
        "--seeds",
        "1",
        "--name",
        "k",
        "--address",
        ray_session.get_runtime_context().gcs_address,
    )
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "sweeps" / "tft.py"), *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 240
    while not glob.glob(str(storage / "k" / "trial_*" / "units" / "*" / "record.json")):
        assert proc.poll() is None, "the sweep ended before it could be killed"
        assert time.time() < deadline, "no checkpoint within 240 s"
        time.sleep(0.5)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    trial = glob.glob(str(storage / "k" / "trial_*"))[0]
    before = {p: os.stat(p).st_mtime_ns for p in glob.glob(os.path.join(trial, "units", "*", "record.json"))}
    assert 1 <= len(before) < 3, "killed too late to test resume"

    assert main("tft", ["--resume", "--name", "k", "--storage", str(storage)]) == 0
    units = _last_progress(trial)
    assert sorted(u["fold"] for u in units) == ["wf_1", "wf_2", "wf_3"]
    # Units finished before the kill were not run again: same record, one TensorBoard run each.
    for path, mtime in before.items():
        assert os.stat(path).st_mtime_ns == mtime
        key = os.path.basename(os.path.dirname(path))
        assert len(glob.glob(os.path.join(trial, "tensorboard", key, "events.*"))) == 1, key


@pytest.mark.usefixtures("ray_session")
def test_ctrl_c_stops_cleanly_and_leaves_a_resumable_sweep(tmp_path, tiny_config):
    from ray import tune

    storage = tmp_path / "r"
    args = sweep_args(storage, tiny_config, "--mode", "quick", "--max-runs", "1", "--folds", "3", "--seeds", "1",
                      "--name", "c")  # fmt: skip
    proc = subprocess.Popen([sys.executable, str(ROOT / "sweeps" / "tft.py"), *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    deadline = time.time() + 240
    while not glob.glob(str(storage / "c" / "trial_*" / "units" / "*" / "record.json")):
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.5)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out[-2000:]
    assert "--resume --name c" in out
    assert tune.Tuner.can_restore(str(storage / "c"))
    assert main("tft", ["--resume", "--name", "c", "--storage", str(storage)]) == 0
    trial = glob.glob(str(storage / "c" / "trial_*"))[0]
    assert sorted(u["fold"] for u in _last_progress(trial)) == ["wf_1", "wf_2", "wf_3"]


@pytest.mark.usefixtures("ray_session")
def _kill_after_first_unit(sweep, killed: dict):
    """A thread that SIGKILLs the trial process as soon as the first unit record appears under
    `sweep`, noting in `killed` that unit, its pid and how many records were stored then."""
    import threading

    def watch():
        deadline = time.time() + 240
        while time.time() < deadline:
            records = glob.glob(str(sweep / "trial_*" / "units" / "*" / "record.json"))
            if records:
                record = json.loads(open(records[0]).read())
                killed.update(unit=record["unit"], pid=record["pid"], stored=len(records))
                os.kill(record["pid"], signal.SIGKILL)
                return
            time.sleep(0.1)

    watcher = threading.Thread(target=watch)
    watcher.start()
    return watcher


def test_killed_trial_process_is_retried_from_its_last_fold(tmp_path, tiny_config):
    """SIGKILL the trial's worker process mid-sweep: Tune retries it, finished units are kept."""
    storage, killed = tmp_path / "r", {}
    watcher = _kill_after_first_unit(storage / "w", killed)
    args = sweep_args(storage, tiny_config, "--mode", "quick", "--max-runs", "1", "--folds", "3", "--seeds", "1",
                      "--name", "w", "--max-failures", "2")  # fmt: skip
    assert main("tft", args) == 0
    watcher.join()
    assert killed, "no unit finished to kill after"
    trial = glob.glob(str(storage / "w" / "trial_*"))[0]
    units = _last_progress(trial)
    assert sorted(u["fold"] for u in units) == ["wf_1", "wf_2", "wf_3"]
    assert {u["pid"] for u in units if u["unit"] != killed["unit"]} != {killed["pid"]}, (
        "later units ran in a new process"
    )
    assert len(glob.glob(os.path.join(trial, "tensorboard", killed["unit"], "events.*"))) == 1, "not rerun"


def test_a_trial_killed_mid_fold_keeps_the_units_it_finished(tmp_path, tiny_config):
    """Records are written as each unit ends, not per fold: SIGKILL between a fold's two seeds, and
    the retried trial runs only the unit that was running."""
    storage, seen = tmp_path / "r", {}
    watcher = _kill_after_first_unit(storage / "m", seen)
    args = sweep_args(storage, tiny_config, "--mode", "quick", "--max-runs", "1", "--folds", "1", "--seeds", "2",
                      "--name", "m", "--max-failures", "2")  # fmt: skip
    assert main("tft", args) == 0
    watcher.join()
    assert seen.get("stored") == 1, f"the first unit's record was not alone when the trial was killed: {seen}"
    trial = glob.glob(str(storage / "m" / "trial_*"))[0]
    assert len(_last_progress(trial)) == 2
    assert len(glob.glob(os.path.join(trial, "tensorboard", seen["unit"], "events.*"))) == 1, "the finished unit reran"


@pytest.mark.usefixtures("ray_session")
def test_keep_top_k_bounds_the_disk_to_the_best_models(tmp_path, tiny_config):
    storage = tmp_path / "r"
    args = sweep_args(storage, tiny_config, "--mode", "quick", "--max-runs", "3", "--folds", "3", "--seeds", "1",
                      "--name", "d", "--keep-top-k", "1")  # fmt: skip
    assert main("tft", args) == 0
    ranking = pd.read_csv(storage / "d" / "config_ranking.csv")
    best = json.loads((storage / "d" / "best_model.json").read_text())
    models = glob.glob(str(storage / "d" / "trial_*" / "units" / "*" / "model"))
    records = glob.glob(str(storage / "d" / "trial_*" / "units" / "*" / "record.json"))
    assert len(records) == 3 * 3 and len(models) == 3, "models of one configuration × 3 units remain"
    # Each trial reported 3 folds, each with a checkpoint; Tune kept the newest 2 (num_to_keep).
    for trial in glob.glob(str(storage / "d" / "trial_*")):
        kept = sorted(os.path.basename(c) for c in glob.glob(os.path.join(trial, "checkpoint_*")))
        assert kept == ["checkpoint_000001", "checkpoint_000002"] and _last_result(trial)["folds_done"] == 3
    assert {os.path.dirname(os.path.dirname(os.path.dirname(m))) for m in models} == {best["trial_path"]}
    assert ranking["rank"].iloc[0] == 1 and os.path.isdir(best["checkpoint"])
    size = sum(os.path.getsize(os.path.join(d, f)) for m in models for d, _, fs in os.walk(m) for f in fs)
    largest = max(sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(m) for f in fs) for m in models)
    assert size <= 1 * 3 * largest  # the README's bound: K configurations × folds × seeds × model size


@pytest.mark.usefixtures("ray_session")
def test_fail_fast_stops_at_the_first_failure(tmp_path, tiny_config):
    cfg = json.loads(open(tiny_config).read())
    cfg["param_ranges"] = {"attention_head_size": [1, 0, 2, 4]}
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(cfg))
    args = sweep_args(tmp_path / "r", str(path), "--mode", "ofat", "--folds", "2", "--seeds", "1", "--name", "ff",
                      "--max-failures", "0", "--fail-fast", "--max-concurrent", "1")  # fmt: skip
    assert main("tft", args) == 1
    errors = glob.glob(str(tmp_path / "r" / "ff" / "trial_*" / "error.txt"))
    ran = {
        p.split("/units/")[0] for p in glob.glob(str(tmp_path / "r" / "ff" / "trial_*" / "units" / "*" / "record.json"))
    }
    assert len(errors) == 1
    assert len(ran) == 1, "only the baseline ran; the configurations after the failure never started"


@pytest.mark.usefixtures("ray_session")
def test_asha_prunes_over_folds_and_ranks_only_complete_configurations(tmp_path, tiny_config):
    cfg = json.loads(open(tiny_config).read())
    cfg["param_ranges"] = {"learning_rate": [1e-4, 1e-3, 1e-2, 1e-1]}
    path = tmp_path / "a.json"
    path.write_text(json.dumps(cfg))
    args = sweep_args(tmp_path / "r", str(path), "--mode", "grid", "--folds", "3", "--seeds", "1", "--name", "asha",
                      "--scheduler", "asha", "--max-concurrent", "1", "--metric", "val_rel_ql")  # fmt: skip
    assert main("tft", args) == 0
    ranking = pd.read_csv(tmp_path / "r" / "asha" / "config_ranking.csv")
    assert ranking["val_rel_ql"].notna().all()  # ASHA's rungs and the ranking read the distribution metric
    done = ranking["units_done"].to_numpy()
    assert (done < 3).any(), "ASHA stopped at least one configuration before its last fold"
    assert ranking.loc[ranking["units_done"] < 3, "status"].ne("ok").all()
    assert ranking["status"].iloc[0] == "ok" and ranking["units_done"].iloc[0] == 3


@pytest.mark.usefixtures("ray_session")
def test_asha_stops_a_diverging_configuration_after_its_first_epoch_and_does_not_rank_it(tmp_path, tiny_config, capsys):
    """Learning rate 10 stays finite (val loss ~300 against ~1.8) but is hopeless: ASHA compares
    the first unit's val loss after its first epoch and stops it there, inside its first unit."""
    cfg = json.loads(open(tiny_config).read())
    cfg["training_config"].update(max_epochs=4, early_stopping_patience=99)
    cfg["param_ranges"] = {"learning_rate": [1e-3, 10.0]}
    path = tmp_path / "a.json"
    path.write_text(json.dumps(cfg))
    args = sweep_args(tmp_path / "r", str(path), "--mode", "grid", "--folds", "2", "--seeds", "2", "--name", "asha",
                      "--scheduler", "asha", "--max-concurrent", "1")  # fmt: skip
    assert main("tft", args) == 0
    sweep = tmp_path / "r" / "asha"
    results = {}
    for trial in glob.glob(str(sweep / "trial_*")):
        lr = json.load(open(os.path.join(trial, "params.json")))["learning_rate"]
        results[lr] = [json.loads(line) for line in open(os.path.join(trial, "result.json"))]
    good, bad = results[1e-3], results[10.0]
    # The good configuration ran every unit: per-epoch reports of each unit, then a report per fold.
    assert good[-1]["units_done"] == 4 and sum("intermediate" not in r or not r["intermediate"] for r in good) == 2
    assert [r["unit_step"] for r in good if r.get("intermediate")][:4] == [3, 6, 9, 12]
    # The diverging one: stopped at its first validation (step 3 of 12), finite, before any unit ended.
    assert len(bad) == 1 and bad[0]["intermediate"] and bad[0]["unit_step"] == 3
    assert 50 < bad[0]["unit_val_loss"] < np.inf
    ranking = pd.read_csv(sweep / "config_ranking.csv")
    row = ranking.set_index("config/learning_rate").loc[10.0]
    assert row["status"] == "incomplete" and row["units_done"] == 0 and row["in_mcs"] != True  # noqa: E712
    assert ranking["status"].iloc[0] == "ok" and ranking["config/learning_rate"].iloc[0] == 1e-3
    out = capsys.readouterr().out
    assert re.search(r"⏹ \S+ stopped by ASHA after 0/4 units \(last validation: .*step 3/12", out)
