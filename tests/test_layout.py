"""trainables.store (the one file-I/O module) and trainables.layout (the sweep directory), directly.

That the layout's paths are those a real tiny sweep writes is covered by the sweep tests (test_analysis,
test_resume_auto, test_storage, …), which read real sweeps through these modules.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest
from conftest import moto_s3

from trainables import layout, store


class _Unserialisable:
    def tolist(self):
        raise RuntimeError("cannot serialise")


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = str(tmp_path / "sweep" / "sweep.json")
    store.write_json(path, {"spec": {"model": "tft"}})
    with pytest.raises(RuntimeError, match="cannot serialise"):
        store.write_json(path, {"spec": {"model": _Unserialisable()}})
    assert store.read_json(path) == {"spec": {"model": "tft"}}
    assert os.listdir(tmp_path / "sweep") == ["sweep.json"]


def test_a_write_that_fails_midway_removes_its_temporary_file(tmp_path, monkeypatch):
    path = str(tmp_path / "record.json")
    store.write_text(path, "old")

    def broken(*_):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        store.write_text(path, "new")
    monkeypatch.undo()
    assert store.read_text(path) == "old"
    assert os.listdir(tmp_path) == ["record.json"]


def test_missing_files_raise_missing_file_and_the_maybe_reads_answer_none(tmp_path):
    path = str(tmp_path / "nope" / "record.json")
    for read in (store.read_text, store.read_bytes, store.read_json):
        with pytest.raises(store.MissingFile) as info:
            read(path)
        assert isinstance(info.value, FileNotFoundError) and info.value.path == path
    assert store.maybe_read_text(path) is None and store.maybe_read_bytes(path) is None
    assert store.maybe_read_parquet(path) is None
    assert store.maybe_read_many([path, path]) == [None, None]
    assert store.subdirs(path) == [] and store.entries(path) == {} and store.mtime(path) is None
    assert not store.exists(path) and not store.is_dir(path)
    with pytest.raises(store.MissingFile):
        layout.SweepDir(str(tmp_path)).read_meta()
    assert layout.SweepDir(str(tmp_path)).maybe_read_meta() is None


def test_numpy_values_are_written_as_plain_json(tmp_path):
    path = str(tmp_path / "summary.json")
    store.write_json(path, {"x": np.float64(1.5), "n": np.int64(3), "a": np.arange(2)})
    assert json.loads(open(path).read()) == {"x": 1.5, "n": 3, "a": [0, 1]}


def _exercise(root: str) -> None:
    """Read, write, exists and list through the layout on `root` (a local path or an s3:// URI)."""
    sweep = layout.SweepDir(root)
    assert not sweep.is_sweep() and sweep.trial_names() == []
    sweep.write_meta({"spec": {"model": "tft"}, "folds": []})
    assert sweep.is_sweep() and sweep.read_meta()["spec"]["model"] == "tft"
    assert sweep.sweep_json == f"{root.rstrip('/')}/sweep.json"
    trial = sweep.trial(layout.trial_dirname("abc_00000"))
    store.write_json(trial.params, {"lr": 0.1})
    for key in ("wf_2__seed7", "wf_1__seed7"):
        trial.unit(key).write_record({"fold": key[:4], "seed": 7, "unit": key})
    store.write_parquet(trial.unit("wf_1__seed7").predictions, pd.DataFrame({"y": [1.0, 2.0]}), {"v": "1"})
    store.write_text(sweep.file("notes.txt"), "not a trial")
    assert sweep.trial_names() == ["trial_abc_00000"] and layout.trial_id(trial.name) == "abc_00000"
    assert trial.read_params() == {"lr": 0.1}
    assert trial.unit_keys() == ["wf_1__seed7", "wf_2__seed7"]
    assert sorted(r["unit"] for r in trial.finished_records()) == ["wf_1__seed7", "wf_2__seed7"]
    assert trial.unit("wf_1__seed7").read_record()["fold"] == "wf_1"
    frame, meta = store.maybe_read_parquet(trial.unit("wf_1__seed7").predictions)
    assert frame["y"].tolist() == [1.0, 2.0] and meta == {"v": "1"}
    assert trial.unit("wf_1__seed7").model.endswith("/units/wf_1__seed7/model")
    listing = store.entries(sweep.root)
    assert listing["trial_abc_00000"][0] and not listing["sweep.json"][0]
    assert [s.root for s in layout.sweeps_in(sweep.root)] == [sweep.root]
    parent = sweep.root.rsplit("/", 1)[0]
    assert [s.root for s in layout.sweeps_in(parent)] == [sweep.root]
    with pytest.raises(store.MissingFile):
        trial.unit("wf_3__seed7").read_record()
    assert store.maybe_read_many([trial.unit(k).record for k in ("wf_1__seed7", "wf_3__seed7")])[1] is None
    store.delete_file(sweep.file("notes.txt"))
    store.delete_file(sweep.file("notes.txt"))  # already gone: nothing
    assert not store.exists(sweep.file("notes.txt"))


def test_layout_reads_and_writes_a_local_sweep(tmp_path):
    _exercise(str(tmp_path / "res" / "sweep"))


def test_layout_reads_and_writes_a_sweep_on_s3(monkeypatch):
    with moto_s3("layout") as (env, _):
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        _exercise("s3://layout/res/sweep")
        with pytest.raises(store.MissingFile):
            store.read_text("s3://layout/res/sweep/missing.json")
        assert store.maybe_read_text("s3://layout/res/sweep/missing.json") is None
