"""analysis/refit.py: a tiny real sweep per model, its best exported, refitted on every row.

Each refit is checked against what the sweep's units recorded (the stopping numbers, by hand), the
data it read (last row, a newer --data file), and its weights (loaded with the adapter's own `load`,
forecasting from the origin after the last row). Bad input: one line, exit 2, nothing written.
"""

from __future__ import annotations

import glob
import json
import math
import os
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import TINY_FOLDS, synthetic_prices

from analysis import best, model_dir
from analysis.refit import main as refit_main
from analysis.refit import refit
from sweeps.cli import main as sweep_main
from trainables import registry
from trainables.adapter import UnitData, Window
from trainables.features import add_features

pytestmark = pytest.mark.slow
ROWS, MORE = 300, 10
# On top of each model's TINY: settings whose units stop at different epochs / steps.
CONFIG = {
    "tft": {"max_epochs": 4, "early_stopping_patience": 0, "learning_rate": 0.05},
    "toto": {"max_steps": 6, "learning_rate": 1e-2},
    "kronos": {"learning_rate": 1e-2, "tokenizer_learning_rate": 1e-2, "tokenizer_steps": 3, "predictor_steps": 3},
}
# Several units: a real median (an even count for kronos); tft's seed 11 early-stops (7 runs all 4 epochs).
SEEDS = {"tft": [11], "toto": [1, 2, 3], "kronos": [1, 2]}
# These units stop before their configured epochs / steps (so a refit that trained as configured fails).
STOP_EARLY = {"tft", "toto", "kronos"}
# The record.json info field each stopping number is the median of (the module doc's rules).
FIELDS = {
    "tft": {"max_epochs": "epochs"},
    "toto": {"max_steps": "best_step"},
    "chronos2": {"num_steps": "best_step"},
    "kronos": {"tokenizer_steps": "tokenizer_best_step", "predictor_steps": "predictor_best_step"},
    "baselines": {},
}
# What the refit's own fit says it trained for (stopping.refit_info).
TRAINED = {"tft": "epochs", "toto": "max_steps", "chronos2": "num_steps"}


def _universe(n: int) -> pd.DataFrame:
    """Assets A (n rows) and B (n + 20 rows, a later last day) in one file."""
    a = synthetic_prices(n, seed=1).assign(asset="A")
    b = synthetic_prices(n + 20, seed=2).assign(asset="B")
    return pd.concat([a, b], ignore_index=True)


@pytest.fixture(scope="module")
def files_(tmp_path_factory):
    """The sweeps' price files and their newer versions (MORE rows more, the old rows a prefix)."""
    root = tmp_path_factory.mktemp("refit_data")
    longer = synthetic_prices(ROWS + MORE)
    longer.iloc[:ROWS].to_parquet(root / "p.parquet")
    longer.to_parquet(root / "newer.parquet")
    u = _universe(ROWS + MORE)
    u[u.groupby("asset").cumcount(ascending=False) >= MORE].to_parquet(root / "u.parquet")
    u.to_parquet(root / "u_newer.parquet")
    u.groupby("asset").head(30).to_parquet(root / "short.parquet")
    return root


def _sweep(model: str, root, data: str, *extra: str, points: list[dict] | None = None) -> str:
    """A tiny sweep of `model` on `data`; returns its directory."""
    config = {**registry.get(model).spaces().TINY, **CONFIG.get(model, {})}
    (root / f"{model}.json").write_text(json.dumps({"training_config": config, "replica_seeds": SEEDS.get(model, [7])}))
    (root / f"{model}_points.json").write_text(json.dumps(points or [{}]))
    args = ["--config", str(root / f"{model}.json"), "--configs", str(root / f"{model}_points.json"),
            "--mode", "priority", "--data", data, "--storage", str(root / "r"), "--name", model,
            "--gpus-per-trial", "0", "--folds", "1", "--point-only",
            *extra, *TINY_FOLDS]  # fmt: skip
    assert sweep_main(model, args) == 0
    return str(root / "r" / model)


@pytest.fixture(scope="module")
def baseline_sweep(files_, tmp_path_factory):
    """A universe sweep (A, B) of two baselines, AutoETS and drift; its best exported."""
    root = tmp_path_factory.mktemp("refit_baselines")
    sweep = _sweep("baselines", root, str(files_ / "u.parquet"), "--assets", "A,B",
                   points=[{}, {"method": "drift"}])  # fmt: skip
    assert best.main(["--results", sweep, "--export-path", str(root / "best_model.json")]) == 0
    return sweep, str(root / "best_model.json")


def _records(sweep: str) -> list[dict]:
    """Every fit's record.json of the sweep's one configuration (seed-free copies left out)."""
    records = [
        json.loads(open(p).read()) for p in glob.glob(os.path.join(sweep, "trial_*", "units", "*", "record.json"))
    ]
    return [r for r in records if not r.get("shared_from")]


def _median(values: list[float]) -> float:
    s, n = sorted(values), len(values)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def _forecast_after_last_row(out: str, model: str, frame: pd.DataFrame, features: str):
    """The refit weights through the adapter's `load`, forecasting from origin n (the frame extended by
    `horizon` copies of its last row: the contract says rows at and after the origin are not read)."""
    card = model_dir.read(out)
    adapter = registry.get(model).adapter().load(os.path.join(out, model_dir.WEIGHTS))
    framed, names = add_features(frame, features)
    n, h = len(framed), card.horizon
    extended = pd.concat([framed, framed.iloc[[-1] * h]], ignore_index=True)
    data = UnitData(extended, names, Window(0, n), Window(n, n), Window(n, n + h))
    forecast = adapter.forecast(data, np.array([n]))
    assert forecast.point.shape == (1, h) and np.isfinite(forecast.point).all()
    return adapter


@pytest.mark.usefixtures("ray_session")
@pytest.mark.parametrize("model", ["tft", "toto", "chronos2", "kronos", "baselines"])
def test_refit_on_every_row_stops_where_the_units_did_and_forecasts_tomorrow(model, files_, tmp_path, capsys, request):
    if model == "baselines":
        sweep, exported = request.getfixturevalue("baseline_sweep")
        data, newer = files_ / "u.parquet", files_ / "u_newer.parquet"
    else:
        sweep = _sweep(model, tmp_path, str(files_ / "p.parquet"))
        exported = str(tmp_path / "best_model.json")
        assert best.main(["--results", sweep, "--export-path", exported]) == 0
        data, newer = files_ / "p.parquet", files_ / "newer.parquet"
    record = json.loads(open(exported).read())
    capsys.readouterr()

    out = str(tmp_path / "model")
    assert refit_main([exported, "--out", out]) == 0
    printed = capsys.readouterr().out
    assert f"refit {model} {record['config_id']}" in printed and "stopping:" in printed and f"written: {out}" in printed
    assert all(os.path.exists(os.path.join(out, f)) for f in (model_dir.META, model_dir.WEIGHTS, model_dir.CARD))
    card = model_dir.read(out)
    assert card.kind == "single" and card.model == model and card.config == record["config"]
    assert card.source["config_id"] == record["config_id"] and card.source["exported"] == exported
    assert (
        card.verdicts["versus_bar"] == record["versus_bar"] and card.verdicts["verdict"] == record["verdict"]["verdict"]
    )
    assert card.horizon == record["config"][registry.get(model).horizon_key] and card.git_sha and card.versions

    # The data: every row of the sweep's file (a universe: the chosen unit's asset alone, said so).
    frame = pd.read_parquet(data)
    asset = record["checkpoint_unit"].get("asset")
    if model == "baselines":
        assert asset in ("A", "B") and card.data.asset == asset and f"refitting asset {asset} alone" in printed
        frame = frame[frame["asset"] == asset].drop(columns="asset").reset_index(drop=True)
    assert card.data.rows == len(frame) and card.data.last_timestamp == str(frame["timestamp"].iloc[-1])
    assert card.data.fingerprint == model_dir.fingerprint(frame)

    # The stopping numbers: the median of what the units recorded, by hand.
    stop = card.stopping
    assert stop["rule"] and stop["why"]
    records = _records(sweep) if model != "baselines" else []
    expected_units = {"toto": 3, "kronos": 2}.get(model, 1)
    for key, info_field in FIELDS[model].items():
        values = [float(r["info"][info_field]) for r in records]
        assert len(values) == expected_units and sorted(stop["per_unit"][key]) == sorted(values)
        assert stop["override"][key] == math.floor(_median(values) + 0.5)
        assert stop["checkpoint_chosen_on"] == ["val"]
    if model in STOP_EARLY:
        assert any(stop["override"][k] < stop["configured"][k] for k in FIELDS[model]), stop
    assert stop["refit_info"]["checkpoint_chosen_on"] == "none"  # no val window in a refit
    if model in TRAINED:
        (key,) = FIELDS[model]
        assert stop["refit_info"][TRAINED[model]] == stop["override"][key]
    if model == "baselines":
        assert stop["rule"].startswith("none") and stop["override"] == {}

    adapter = _forecast_after_last_row(out, model, frame, card.data.features)
    for key, value in stop.get("override", {}).items():
        assert adapter.config[key] == value  # the weights were trained as the rule says
    if model == "baselines":
        assert adapter.fitted["n_train"] == len(frame)  # every row

    if model == "chronos2":  # zero-shot: nothing trained, the released weights referred to, not copied
        _zero_shot(record, tmp_path, frame)

    # A newer file of the same columns: MORE rows more, a later last row.
    later = str(tmp_path / "later")
    assert refit_main([exported, "--data", str(newer), "--out", later]) == 0
    again = model_dir.read(later)
    assert again.data.rows == len(frame) + MORE and again.data.source == str(newer)
    assert pd.Timestamp(again.data.last_timestamp) > pd.Timestamp(card.data.last_timestamp)
    assert again.stopping["override"] == stop["override"] and again.stopping["rule"] == stop["rule"]


def _zero_shot(record: dict, tmp_path, frame: pd.DataFrame) -> None:
    """The record's configuration as zero-shot from local "released" weights (a random tiny model)."""
    from contract import save_random_model

    (flag, released), weights_dir = save_random_model("chronos2", str(tmp_path / "released")), tmp_path / "zs"
    assert flag == "--pretrained"
    config = {**record["config"], "init": "pretrained", "pretrained": released, "num_steps": 0}
    out = refit({**record, "config": config}, out=str(weights_dir), echo=None)
    card = model_dir.read(out)
    assert card.weights_ref == released and card.stopping["rule"].startswith("none: zero-shot")
    assert card.stopping["override"] == {} and card.stopping["refit_info"]["num_steps"] == 0
    assert not glob.glob(str(weights_dir / "weights" / "**" / "*.safetensors"), recursive=True)
    _forecast_after_last_row(out, "chronos2", frame, card.data.features)


@pytest.mark.usefixtures("ray_session")
def test_an_ensemble_directory_is_refitted_member_by_member_with_the_same_weights(baseline_sweep, files_, tmp_path):
    sweep, _ = baseline_sweep
    records = best.best_runs(results=sweep, k=2)
    assert sorted(r["config"]["method"] for r in records) == ["auto_ets", "drift"]
    ens = tmp_path / "ensemble"
    singles = [refit(r, out=str(tmp_path / f"single{i}"), echo=None) for i, r in enumerate(records)]
    for i, single in enumerate(singles):
        shutil.copytree(single, ens / model_dir.MEMBERS / str(i))
    # Member 1 as analysis/greedy_report.py exports one: a unit checkpoint's card, no stopping numbers, its sweep by trial.
    greedy_like = model_dir.read(singles[1])
    greedy_like.stopping = {"rule": "as swept: the checkpoint of one unit", "checkpoint_chosen_on": "none"}
    greedy_like.source = {k: records[1][k] for k in ("config_id", "checkpoint", "trial_path")}
    model_dir.write(str(ens / model_dir.MEMBERS / "1"), greedy_like)
    first = model_dir.read(singles[0])
    weights = [0.75, 0.25]
    model_dir.write(str(ens), model_dir.ModelCard(
        kind="ensemble", model="ensemble", config={}, horizon=first.horizon, data=first.data,
        members=[{"dir": f"members/{i}", "weight": w} for i, w in enumerate(weights)]))  # fmt: skip

    out = refit(str(ens), data=str(files_ / "u_newer.parquet"), out=str(tmp_path / "new"), echo=None)
    card = model_dir.read(out)
    assert card.kind == "ensemble" and [m["weight"] for m in card.members] == weights
    assert card.source["refit_of"] == str(ens)
    for i, m in enumerate(card.members):
        member, before = model_dir.read(os.path.join(out, m["dir"])), model_dir.read(singles[i])
        assert member.kind == "single" and member.config == records[i]["config"]
        assert member.data.asset == before.data.asset and member.data.rows == before.data.rows + MORE
        assert pd.Timestamp(member.data.last_timestamp) > pd.Timestamp(before.data.last_timestamp)
        assert member.source["refit_of"] == str(ens / model_dir.MEMBERS / str(i))
        assert member.source["seed"] == records[i]["checkpoint_unit"]["seed"] and member.stopping["override"] == {}
        loaded = registry.get("baselines").adapter().load(os.path.join(out, m["dir"], model_dir.WEIGHTS))
        assert loaded.method == records[i]["config"]["method"] and loaded.fitted["n_train"] == member.data.rows
    assert card.data.last_timestamp == model_dir.read(os.path.join(out, "members/0")).data.last_timestamp


@pytest.mark.usefixtures("ray_session")
def test_bad_input_is_one_line_and_exit_2_with_nothing_written(baseline_sweep, files_, tmp_path, capsys):
    _, exported = baseline_sweep
    (tmp_path / "not_a_record.json").write_text(json.dumps({"model": "tft"}))
    (tmp_path / "not_json.json").write_text("{")
    out = tmp_path / "out"
    cases = {
        "not an exported best-model record": [str(tmp_path / "not_a_record.json")],
        "is not JSON": [str(tmp_path / "not_json.json")],
        "does not exist": [str(tmp_path / "missing.json")],
        "--data file": [exported, "--data", str(tmp_path / "missing.parquet")],
        "too few to refit": [exported, "--data", str(files_ / "short.parquet")],
        "not a model directory": [str(files_)],
    }
    for words, args in cases.items():
        capsys.readouterr()
        assert refit_main([*args, "--out", str(out)]) == 2, words
        captured = capsys.readouterr()
        assert captured.err.startswith("error: ") and words in captured.err, (words, captured.err)
        assert len(captured.err.strip().splitlines()) == 1 and not out.exists(), words
    # An existing model directory is kept unless --overwrite.
    assert refit_main([exported, "--out", str(out)]) == 0
    capsys.readouterr()
    assert refit_main([exported, "--out", str(out)]) == 2 and "--overwrite" in capsys.readouterr().err
    assert refit_main([exported, "--out", str(out), "--overwrite"]) == 0
