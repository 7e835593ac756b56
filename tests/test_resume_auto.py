"""`--resume auto`: the same command line, run again after a kill, continues its own sweep."""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter

import pytest
from conftest import ROOT, TINY_TFT, moto_s3, run_cli, sweep_args

from sweeps import resume
from sweeps.cli import main, parser, spec_from_args
from sweeps.resume import ResumeError
from trainables import store

BUCKET = "auto"
UNITS = {("wf_1", 7), ("wf_1", 11), ("wf_2", 7), ("wf_2", 11)}


@pytest.fixture(scope="module")
def s3_env():
    """A moto S3 server on loopback and the AWS variables that point at it."""
    with moto_s3(BUCKET) as (aws, _):
        yield aws


@pytest.fixture(params=["local", "s3"])
def storage(request, tmp_path, monkeypatch) -> str:
    """An empty results root, on local disk or on the moto S3 server."""
    if request.param == "local":
        return str(tmp_path / "results")
    for key, value in request.getfixturevalue("s3_env").items():
        monkeypatch.setenv(key, value)
    return f"s3://{BUCKET}/{uuid.uuid4().hex}"


def _spec(storage: str, *flags: str):
    args = parser("tft").parse_args(["--storage", storage, "--name", "a", "--folds", "2", "--seeds", "2", *flags])
    return spec_from_args("tft", args)


def _store_sweep(spec, *files: str) -> str:
    """A stored sweep.json of `spec` plus empty `files` (relative to the sweep); returns the sweep dir."""
    meta = {"spec": spec.to_json(), "folds": [], "started": "2026-11-30T00:00:00+00:00"}
    store.write_text(f"{spec.sweep_dir}/sweep.json", store.dumps(meta))
    for name in files:
        store.write_text(f"{spec.sweep_dir}/{name}", "{}")
    return spec.sweep_dir


def test_nothing_stored_starts_the_sweep(storage, capsys):
    spec = _spec(storage)
    assert resume.auto(spec) == spec
    assert "starting it" in capsys.readouterr().out


def test_same_configuration_with_a_tune_experiment_is_restored(storage):
    _store_sweep(_spec(storage), "tuner.pkl", "experiment_state-2026-11-30_00-00-00.json")
    # Flags that say where and how it runs may differ (merge.RUNTIME).
    spec = _spec(storage, "--max-concurrent", "3", "--gpus-per-trial", "0.5", "--notes", "restarted")
    out = resume.auto(spec)
    assert out.resume and not out.overwrite and out.max_concurrent == 3


def test_restoring_a_merged_sweep_keeps_skipping_the_units_of_earlier_trials(storage):
    _store_sweep(_spec(storage).with_(merge=True), "tuner.pkl", "experiment_state-x.json")
    assert resume.auto(_spec(storage)).merge


@pytest.mark.parametrize("files", [(), ("tuner.pkl",)])
def test_sweep_json_without_a_tune_snapshot_starts_over(storage, files, capsys):
    # The driver died between writing sweep.json and Tune's first experiment snapshot.
    _store_sweep(_spec(storage), *files)
    out = resume.auto(_spec(storage))
    assert out.overwrite and not out.resume
    assert "starting it over" in capsys.readouterr().out


def test_finished_units_without_a_tune_experiment_are_never_dropped(storage):
    sweep = _store_sweep(_spec(storage), "trial_x/params.json")
    store.write_text(f"{sweep}/trial_x/units/wf_1__seed7/record.json", '{"fold": "wf_1", "seed": 7}')
    with pytest.raises(ResumeError, match="holds finished units but no restorable Tune experiment"):
        resume.auto(_spec(storage))


def test_a_directory_that_is_not_a_sweep_is_refused(storage):
    store.write_text(f"{_spec(storage).sweep_dir}/notes.txt", "mine")
    with pytest.raises(ResumeError, match="holds no sweep.json"):
        resume.auto(_spec(storage))


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--seeds", "3"], "seeds is [7, 11] in the stored sweep, [7, 11, 13] now"),
        (["--folds", "3"], "folds.n is 2 in the stored sweep, 3 now"),
        (["--mode", "full"], "mode is 'quick' in the stored sweep, 'full' now"),
        (["--asset", "NDX"], "asset is unset in the stored sweep, 'NDX' now"),
        (["--metric", "val_rmse"], "metric is 'val_pct_mae' in the stored sweep, 'val_rmse' now"),
    ],
)
def test_a_different_configuration_is_refused_naming_the_field(storage, flags, message):
    _store_sweep(_spec(storage), "tuner.pkl", "experiment_state-x.json")
    with pytest.raises(ResumeError) as caught:
        resume.auto(_spec(storage, *flags))
    assert str(caught.value).startswith(f"--resume auto: {message} (")
    assert "--overwrite" in str(caught.value) and "\n" not in str(caught.value)


def test_a_nested_difference_names_the_nested_field(tmp_path):
    config = tmp_path / "c.json"
    config.write_text(json.dumps({"training_config": TINY_TFT}))
    _store_sweep(_spec(str(tmp_path / "r"), "--config", str(config)), "tuner.pkl", "experiment_state-x.json")
    config.write_text(json.dumps({"training_config": {**TINY_TFT, "hidden_size": 16}}))
    with pytest.raises(ResumeError, match=r"training_config\.hidden_size is 8 in the stored sweep, 16 now"):
        resume.auto(_spec(str(tmp_path / "r"), "--config", str(config)))


def test_resume_refuses_when_the_data_moved_the_folds(tmp_path):
    from sweeps import driver

    spec = _spec(str(tmp_path / "r"))
    folds = [f.as_dict() for f in driver.prepare(spec).folds]
    moved = [folds[0], {**folds[1], "test_end": "20181228"}]  # as if the data had ended earlier
    store.write_text(f"{spec.sweep_dir}/sweep.json", store.dumps({"spec": spec.to_json(), "folds": moved}))
    for name in ("tuner.pkl", "experiment_state-x.json"):
        store.write_text(f"{spec.sweep_dir}/{name}", "{}")
    for resumed in (spec.with_(resume=True), resume.auto(spec)):
        with pytest.raises(ResumeError, match=r"--resume: folds\[1\]\.test_end is '20181228' in the stored sweep"):
            driver.prepare(resumed)


def test_tune_file_names_are_tunes_own():
    from ray.tune.execution.tune_controller import TuneController
    from ray.tune.impl.tuner_internal import _TUNER_PKL

    assert resume.TUNER_FILE == _TUNER_PKL
    assert resume.STATE_FILES == TuneController.CKPT_FILE_TMPL.format("*")


def test_resume_alone_and_resume_auto_parse():
    p = parser("tft")
    assert p.parse_args([]).resume is False
    assert p.parse_args(["--resume"]).resume is True
    assert p.parse_args(["--resume", "--name", "x"]).resume is True
    assert p.parse_args(["--resume", "auto"]).resume == "auto"
    with pytest.raises(SystemExit):
        p.parse_args(["--resume", "latest"])


# --- real sweeps: kill the driver, run the same command line again ---------------------------


def _records(sweep) -> dict[str, int]:
    return {p: os.stat(p).st_mtime_ns for p in glob.glob(str(sweep / "trial_*" / "units" / "*" / "record.json"))}


def _unit_runs(sweep) -> Counter:
    """How many times each unit started training: each start writes one TensorBoard event file."""
    files = glob.glob(str(sweep / "trial_*" / "tensorboard" / "*" / "events.*"))
    return Counter(os.path.basename(os.path.dirname(f)) for f in files)


def _kill_when(args: list[str], log, ready) -> None:
    """Start `python sweeps/tft.py ARGS`, SIGKILL it as soon as ready() holds."""
    # Unbuffered: a SIGKILL must not swallow what the driver printed (its --resume auto decision).
    proc = subprocess.Popen([sys.executable, str(ROOT / "sweeps" / "tft.py"), *args], cwd=ROOT, stdout=log,
                            stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})  # fmt: skip
    deadline = time.time() + 240
    while not ready():
        assert proc.poll() is None, "the sweep ended before it could be killed"
        assert time.time() < deadline, "no progress within 240 s"
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.fixture(scope="module")
def restarted(ray_session, tmp_path_factory) -> dict:
    """One sweep (1 configuration × 3 folds) run by the same command line four times:
    killed after its first fold, killed again after its second, run to the end, run once more."""
    root = tmp_path_factory.mktemp("auto")
    (root / "tiny.json").write_text(json.dumps({"training_config": TINY_TFT}))
    sweep = root / "r" / "auto"
    args = sweep_args(root / "r", str(root / "tiny.json"), "--mode", "priority", "--max-runs", "1", "--folds", "3",
                      "--seeds", "1", "--name", "auto", "--resume", "auto",
                      "--address", ray_session.get_runtime_context().gcs_address)  # fmt: skip
    out: dict = {"args": args, "sweep": sweep, "records": []}
    for n in (1, 2):
        with open(root / f"run{n}.log", "w") as log:
            _kill_when(args, log, lambda n=n: len(_records(sweep)) >= n)
        out["records"].append(_records(sweep))
        out[f"run{n}"] = (root / f"run{n}.log").read_text()
    out["runs_before_end"] = _unit_runs(sweep)
    out["run3"] = run_cli(*args)
    out["final"], out["final_runs"] = _records(sweep), _unit_runs(sweep)
    out["results"] = {t: open(os.path.join(t, "result.json")).read() for t in glob.glob(str(sweep / "trial_*"))}
    out["run4"] = run_cli(*args)
    return out


@pytest.mark.slow
def test_killed_twice_the_same_command_line_finishes_every_unit_once(restarted):
    assert "--resume auto: no sweep stored" in restarted["run1"]
    assert "restoring it" in restarted["run2"]
    first, second = restarted["records"]
    assert len(first) == 1 and len(second) == 2, "each kill came after one more fold"
    done = restarted["run3"]
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "restoring it" in done.stdout
    sweep = restarted["sweep"]
    trials = glob.glob(str(sweep / "trial_*"))
    assert len(trials) == 1, "every restart continued the same trial"
    units = [json.loads(open(p).read()) for p in restarted["final"]]
    assert sorted((u["fold"], u["seed"]) for u in units) == [("wf_1", 7), ("wf_2", 7), ("wf_3", 7)]
    # A unit stored before a kill was never trained again, nor its record rewritten.
    assert all(restarted["final"][p] == mtime for p, mtime in second.items())
    # Counted against the starts up to the last kill: a unit a kill interrupted before it was
    # stored (run 1 may be killed just after the next unit began) rightly started again then.
    stored_before = {os.path.basename(os.path.dirname(p)) for p in second}
    before, final = restarted["runs_before_end"], restarted["final_runs"]
    assert all(final[u] == before[u] >= 1 for u in stored_before), (before, final)


@pytest.mark.slow
def test_the_same_command_line_on_a_finished_sweep_runs_nothing_and_ranks(restarted):
    again = restarted["run4"]
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "restoring it" in again.stdout and "Sweep auto: 1 configurations, 1 complete" in again.stdout
    sweep = restarted["sweep"]
    assert _records(sweep) == restarted["final"] and _unit_runs(sweep) == restarted["final_runs"]
    now = {t: open(os.path.join(t, "result.json")).read() for t in glob.glob(str(sweep / "trial_*"))}
    assert now == restarted["results"], "no trial reported again"


def _tree(path) -> dict[str, bytes]:
    return {os.path.relpath(os.path.join(d, f), path): open(os.path.join(d, f), "rb").read()
            for d, _, fs in os.walk(path) for f in fs}  # fmt: skip


@pytest.mark.slow
def test_a_different_command_line_exits_2_and_writes_nothing(restarted, capsys):
    storage = restarted["sweep"].parent
    before = _tree(storage)
    assert main("tft", [*restarted["args"], "--seeds", "2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith("error: --resume auto: seeds is [7] in the stored sweep, [7, 11] now (")
    assert _tree(storage) == before


@pytest.mark.slow
def test_on_s3_a_sweep_that_never_snapshotted_starts_over(s3_env, tmp_path, tiny_config):
    import boto3

    storage = f"s3://{BUCKET}/e2e"
    args = sweep_args(storage, tiny_config, "--mode", "priority", "--max-runs", "1", "--folds", "1", "--seeds", "1",
                      "--name", "s")  # fmt: skip
    env = {**os.environ, **s3_env}
    client = boto3.client("s3", endpoint_url=s3_env["AWS_ENDPOINT_URL"], region_name="us-east-1",
                          aws_access_key_id="k", aws_secret_access_key="s")  # fmt: skip

    def keys() -> list[str]:
        return [o["Key"] for o in client.list_objects_v2(Bucket=BUCKET, Prefix="e2e/s/").get("Contents", [])]

    # What a driver killed right after writing sweep.json leaves behind, plus a stale trial directory.
    spec = spec_from_args("tft", parser("tft").parse_args(args))
    meta = {"spec": spec.to_json(), "folds": [], "started": "2026-11-30T00:00:00+00:00"}
    client.put_object(Bucket=BUCKET, Key="e2e/s/sweep.json", Body=store.dumps(meta).encode())
    client.put_object(Bucket=BUCKET, Key="e2e/s/trial_stale/params.json", Body=b"{}")

    # (Restoring on S3 is decided by the tests above and run by test_storage.py's kill/--resume.)
    done = subprocess.run([sys.executable, str(ROOT / "sweeps" / "tft.py"), *args, "--resume", "auto"], env=env,
                           cwd=tmp_path, capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "starting it over" in done.stdout
    stored = keys()
    assert not any("trial_stale" in k for k in stored), "the never-snapshotted attempt was cleared"
    assert len([k for k in stored if k.endswith("record.json")]) == 1
    assert "Sweep s: 1 configurations, 1 complete" in done.stdout
