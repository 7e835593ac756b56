"""`--merge`: a stored sweep grows by seeds, folds and param_ranges values; nothing else may change."""

from __future__ import annotations

import copy
import glob
import hashlib
import json
import os
import shutil

import pandas as pd
import pytest
from conftest import TINY_TFT

from analysis.runs import sweep_runs
from sweeps.cli import main

FOLD_1 = {"name": "wf_1", "train_start": "20150101", "train_end": "20161231", "val_start": "20170101",
          "val_end": "20170331", "test_start": "20170401", "test_end": "20170630"}  # fmt: skip
FOLD_2 = {"name": "wf_2", "train_start": "20150101", "train_end": "20170331", "val_start": "20170401",
          "val_end": "20170630", "test_start": "20170701", "test_end": "20170930"}  # fmt: skip
BASE = {
    "output_subdir": "grow",
    "training_config": TINY_TFT,
    "replica_seeds": [7],
    "walk_forward": {"enabled": True, "folds": [FOLD_1]},
    "param_ranges": {"hidden_size": [4, 8]},
}
GROWN = {**BASE, "replica_seeds": [7, 11], "walk_forward": {"enabled": True, "folds": [FOLD_1, FOLD_2]},
         "param_ranges": {"hidden_size": [4, 8, 16]}}  # fmt: skip


def _args(tmp, storage, config: dict, *extra: str) -> list[str]:
    path = os.path.join(tmp, f"sweep_{hashlib.sha1(json.dumps(config).encode()).hexdigest()[:8]}.json")
    with open(path, "w") as f:
        json.dump(config, f)
    return ["--config", path, "--mode", "grid", "--storage", str(storage), "--gpus-per-trial", "0", *extra]


def _records(sweep) -> dict[str, dict]:
    return {p: json.loads(open(p).read()) for p in glob.glob(str(sweep / "trial_*" / "units" / "*" / "record.json"))}


@pytest.fixture(scope="module")
def grown(ray_session, tmp_path_factory):  # noqa: ARG001 (needs the session's Ray)
    """A 2-configuration × 1-fold × 1-seed sweep, then merged into 3 × 2 × 2."""
    tmp = tmp_path_factory.mktemp("merge")
    assert main("tft", _args(tmp, tmp / "r", BASE)) == 0
    sweep = tmp / "r" / "grow"
    before = _records(sweep)
    stored = tmp / "stored_sweep.json"
    shutil.copy(sweep / "sweep.json", stored)
    assert main("tft", _args(tmp, tmp / "r", GROWN, "--merge")) == 0
    return sweep, before, json.loads(stored.read_text())


def test_merge_runs_only_the_missing_units(grown):
    sweep, before, _ = grown
    after = _records(sweep)
    assert len(before) == 2 and len(after) == 12
    for path, record in before.items():
        assert after[path] == record, "a stored unit was run again"
    units = []
    for path in after:
        params = json.loads(open(os.path.join(path.split("/units/")[0], "params.json")).read())
        units.append((params["hidden_size"], after[path]["fold"], after[path]["seed"]))
    assert sorted(units) == sorted((h, f, s) for h in (4, 8, 16) for f in ("wf_1", "wf_2") for s in (7, 11))
    meta = json.loads((sweep / "sweep.json").read_text())
    added = meta["merges"][-1]["added"]
    assert added == {"replica_seeds": [11], "folds": ["wf_2"], "param_ranges": {"hidden_size": [16]}}
    assert [f["name"] for f in meta["folds"]] == ["wf_1", "wf_2"] and meta["spec"]["seeds"] == [7, 11]


def test_analysis_sees_one_consolidated_sweep(grown):
    sweep, _, _ = grown
    runs = sweep_runs(str(sweep), refresh=True)
    assert (runs["status"] == "complete").all() and len(runs) == 12
    assert runs.groupby("config_id").size().tolist() == [4, 4, 4]
    ranking = pd.read_csv(sweep / "config_ranking.csv")
    assert len(ranking) == 3 and set(ranking["status"]) == {"ok"}
    assert ranking["units_done"].tolist() == [4, 4, 4]


def _files(root) -> dict[str, bytes]:
    return {p: open(p, "rb").read() for p in glob.glob(f"{root}/**", recursive=True) if os.path.isfile(p)}


def _changed(**changes) -> dict:
    config = copy.deepcopy(GROWN)
    for key, value in changes.items():
        config[key] = value
    return config


FOLD_1_MOVED = {**FOLD_1, "val_end": "20170228", "test_start": "20170301"}
REFUSED = {
    "seed removed": (_changed(replica_seeds=[11]), (), "replica_seeds: seed 7 is in the sweep"),
    "fold moved": (
        _changed(walk_forward={"enabled": True, "folds": [FOLD_1_MOVED, FOLD_2]}),
        (),
        "fold 'wf_1' has val_end 20170331 in the sweep, 20170228 now",
    ),
    "fold removed": (
        _changed(walk_forward={"enabled": True, "folds": [FOLD_2]}),
        (),
        "fold 'wf_1' is in the sweep but missing now",
    ),
    "value removed": (_changed(param_ranges={"hidden_size": [4, 16]}), (), "param_ranges.hidden_size: value 8"),
    "new parameter": (
        _changed(param_ranges={"hidden_size": [4, 8], "dropout": [0.1, 0.2]}),
        (),
        "param_ranges.dropout is a new parameter",
    ),
    "training changed": (
        _changed(training_config={**TINY_TFT, "learning_rate": 0.01}),
        (),
        "training_config.learning_rate is unset in the sweep, 0.01 now",
    ),
    "mode changed": (GROWN, ("--mode", "ofat"), "mode is 'grid' in the sweep, 'ofat' now"),
    "asset changed": (GROWN, ("--asset", "NDX"), "asset is unset in the sweep, 'NDX' now"),
    "features changed": (_changed(features="RETURNS_ONLY"), (), "features is 'BASELINE_FEATURES' in the sweep"),
    "with --overwrite": (GROWN, ("--overwrite",), "--merge and --overwrite cannot be used together"),
}


@pytest.mark.parametrize("case", REFUSED)
def test_merge_refuses_anything_but_additions(grown, tmp_path, capsys, case):
    _, _, stored = grown
    config, extra, message = REFUSED[case]
    sweep = tmp_path / "r" / "grow"
    sweep.mkdir(parents=True)
    (sweep / "sweep.json").write_text(json.dumps(stored))
    before = _files(tmp_path / "r")
    capsys.readouterr()
    assert main("tft", _args(tmp_path, tmp_path / "r", config, "--merge", *extra)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert _files(tmp_path / "r") == before


def test_merge_needs_a_stored_sweep(tmp_path, capsys):
    assert main("tft", _args(tmp_path, tmp_path / "r", GROWN, "--merge")) == 2
    assert "--merge: no sweep at" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()
