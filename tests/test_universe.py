"""Universe sweeps: assets as a unit axis (per-asset fit), calendars, per-asset analysis, merge."""

from __future__ import annotations

import glob
import json
import os

import numpy as np
import pandas as pd
import pytest
from conftest import TINY_TFT, run_cli, sweep_args, synthetic_prices

from analysis.best import main as best_main
from analysis.report import generate
from analysis.runs import sweep_runs
from sweeps.cli import main
from trainables.unit import table_metrics

ONE = ["--folds", "1", "--seeds", "1", "--features", "NONE"]


def _universe_file(tmp_path, scale_c_from: str | None = None) -> str:
    """Five assets, one file: A, D on business days; B with every 7th day missing; C from a later
    start (and, given `scale_c_from`, tripled from that date on); E only the last 30 days, F the last 25."""
    base = synthetic_prices(420, seed=1)
    parts = []
    for name, seed in (("A", 1), ("B", 2), ("C", 3), ("D", 4), ("E", 5), ("F", 6)):
        frame = synthetic_prices(420, seed=seed).assign(timestamp=base["timestamp"], asset=name)
        if name == "B":
            frame = frame[np.arange(len(frame)) % 7 != 3]
        if name == "C":
            frame = frame.iloc[60:].copy()
            if scale_c_from:
                frame.loc[frame["timestamp"] >= pd.Timestamp(scale_c_from), "close"] *= 3.0
        if name in ("E", "F"):
            frame = frame.iloc[-30 if name == "E" else -25 :]
        parts.append(frame)
    path = tmp_path / ("prices.parquet" if scale_c_from is None else "prices_changed.parquet")
    pd.concat(parts).sort_values(["timestamp", "asset"]).to_parquet(path)  # assets interleaved, each in time order
    return str(path)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--assets", "SPX,FOO"], "asset 'FOO' is not in the embedded data"),
        (["--assets", "SPX,NDX", "--asset", "SPX"], "--asset and --assets cannot be used together"),
        (["--assets", "SPX,NDX,SPX"], "names asset 'SPX' twice"),
        (["--assets", "all"], "--assets all needs --data with an asset column"),
        (["--assets", "A,B", "--data", "{plain}"], "--assets needs an asset column"),
        (["--assets", "A,Z", "--data", "{file}"], "asset 'Z' not found in column 'asset'"),
        (["--assets", "A,E", "--data", "{file}"], "asset 'E', fold 'wf_1': train window has 0 rows"),
        (
            [
                "--assets",
                "E,F",
                "--data",
                "{file}",
                "--drop-short-assets",
                "--window",
                "expanding",
                "--val-size",
                "5",
                "--test-size",
                "5",
            ],
            "every asset is too short",
        ),  # fmt: skip
    ],
)
def test_bad_universe_input_is_one_line_exit_2_nothing_written(tmp_path, tiny_config, capsys, args, words):
    plain = tmp_path / "plain.csv"
    synthetic_prices(300).to_csv(plain, index=False)
    args = [a.format(plain=plain, file=_universe_file(tmp_path)) for a in args]
    out = tmp_path / "results"
    assert main("tft", [*sweep_args(out, tiny_config, *ONE), *args]) == 2
    error = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and words in error[0]
    assert not out.exists()


def test_bad_universe_input_message(tmp_path, tiny_config):
    done = run_cli(*sweep_args(tmp_path / "r", tiny_config, "--assets", "A,E", "--data", _universe_file(tmp_path)))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "asset 'E', fold 'wf_1'" in lines[0] and "--drop-short-assets" in lines[0]
    assert not (tmp_path / "r").exists()


def test_embedded_wti_and_vix_are_close_only_with_gaps_as_missing_rows():
    import arch.data.vix
    import arch.data.wti

    from trainables.data import load_prices

    for asset, module in (("WTI", arch.data.wti), ("VIX", arch.data.vix)):
        ours = load_prices(None, asset)
        theirs = module.load().iloc[:, 0].dropna()  # arch reads "." (no price that day) as NaN
        assert len(ours) == len(theirs) and ours["close"].notna().all()
        np.testing.assert_array_equal(ours["close"].to_numpy(), theirs.to_numpy())
        np.testing.assert_array_equal(ours["timestamp"].to_numpy(), theirs.index.to_numpy())
        assert (ours[["open", "high", "low"]].to_numpy() == ours[["close"]].to_numpy()).all()
        assert (ours["volume"] == 0).all()


@pytest.fixture(scope="module")
def embedded(ray_session, tmp_path_factory):  # noqa: ARG001 (needs the session's Ray)
    root = tmp_path_factory.mktemp("universe")
    config = root / "tiny.json"
    config.write_text(json.dumps({"training_config": TINY_TFT}))
    args = sweep_args(root / "results", str(config), *ONE, "--mode", "quick", "--max-runs", "2", "--name", "u")
    assert main("tft", [*args, "--assets", "SPX,NDX,WTI,VIX", "--metric", "val_rel_mae"]) == 0
    return root / "results" / "u"


def test_embedded_universe_runs_every_asset_fold_seed_unit(embedded):
    meta = json.loads((embedded / "sweep.json").read_text())
    assert meta["assets"] == ["SPX", "NDX", "WTI", "VIX"] and meta["dropped_assets"] == {}
    records = [json.loads(open(p).read()) for p in glob.glob(str(embedded / "trial_*" / "units" / "*" / "record.json"))]
    assert len(records) == 2 * 4
    assert sorted({(r["asset"], r["unit"]) for r in records}) == sorted(
        {(a, f"{a}__wf_1__seed7") for a in ("SPX", "NDX", "WTI", "VIX")}
    )
    runs = sweep_runs(str(embedded), refresh=True)
    assert sorted(runs["asset"].unique()) == ["NDX", "SPX", "VIX", "WTI"]
    assert runs["fold_id"].nunique() == 4  # one fold, four assets: four units per configuration
    # Each asset's metrics, recomputed from its stored forecasts, are the ones recorded; each
    # asset forecast its own prices (WTI's level is not the S&P's).
    for _, unit in runs.iterrows():
        table = pd.read_parquet(os.path.join(os.path.dirname(unit["checkpoint"]), "predictions.parquet"))
        again = table_metrics(table, unit["mase_scale"])
        assert again["val_rel_mae"] == pytest.approx(unit["val_rel_mae"])
        assert again["test_pct_mae"] == pytest.approx(unit["test_pct_mae"])
    level = runs.groupby("asset")["mase_scale"].mean()
    assert level["SPX"] > 5 * level["VIX"]


def test_universe_report_has_per_asset_verdicts_rankings_and_heatmap(embedded, capsys):
    report = generate(str(embedded), settings=None)
    ranked = report.tables.ranked
    ok = ranked[ranked["status"] == "ok"]
    assert len(ok) == 2 and ok["units_compared"].eq(4).all()
    for _, row in ok.iterrows():
        k, n = (int(x) for x in row["assets_beating_naive"].split("/"))
        assert 0 <= k <= n <= 4 and k == row["assets_beating_naive_k"]
        assert row["worst_asset"] in ("SPX", "NDX", "WTI", "VIX")
        # The worst asset is the one with the highest val_rel_mae for this configuration.
        per = report.tables.runs[report.tables.runs["config_id"] == row["config_id"]].groupby("asset")["val_rel_mae"]
        assert row["worst_asset"] == per.mean().idxmax()
        assert row["worst_asset_val_rel_mae"] == pytest.approx(per.mean().max())
    for asset in ("SPX", "NDX", "WTI", "VIX"):
        table = pd.read_csv(embedded / "assets" / asset / "config_ranking.csv")
        assert len(table) == 2 and table["units_compared"].eq(1).all()
    assert (embedded / "plots" / "rel_mae_by_asset.png").stat().st_size > 10_000
    assert any("averaged over 4 assets" in n for n in report.summary["verdicts"]["notes"])
    assert best_main(["--results", str(embedded.parent), "--metric", "val_rel_mae", "--per-asset"]) == 0
    out = capsys.readouterr().out
    assert "Best per asset" in out
    assert (
        sum(line.strip().split()[0] in ("SPX", "NDX", "WTI", "VIX") for line in out.splitlines() if line.strip()) >= 4
    )


def test_universe_verdicts_average_scaled_losses_over_assets_per_date(embedded):
    from analysis.losses import losses_of
    from analysis.verdicts import over_assets

    runs = sweep_runs(str(embedded))
    losses, bad = losses_of(runs)
    assert bad == [] and set(losses["asset"]) == {"SPX", "NDX", "WTI", "VIX"}
    configs = list(dict.fromkeys(zip(losses["model"], losses["config_id"])))
    series = over_assets(losses, configs)
    one = series[(series["config_id"] == configs[0][1]) & (series["split"] == "test")]
    # By hand at one date: the mean over the assets trading that day of loss / mase_scale.
    raw = losses[(losses["config_id"] == configs[0][1]) & (losses["split"] == "test")]
    day = raw["origin"].value_counts().idxmax()
    at = raw[raw["origin"] == day]
    expected = (at["loss"] / at["mase_scale"]).mean()
    assert one.loc[one["origin"] == day, "loss"].item() == pytest.approx(expected)
    assert len(one) == raw["origin"].nunique()


def _units(sweep) -> dict[str, pd.DataFrame]:
    """unit key → its stored predictions."""
    out = {}
    for path in glob.glob(str(sweep / "trial_*" / "units" / "*" / "predictions.parquet")):
        out[os.path.basename(os.path.dirname(path))] = pd.read_parquet(path)
    return out


def _rerun_with_c_changed(tmp_path, tiny_config, units: dict, name: str, *extra: str) -> tuple:
    """The A,B,C sweep again with C tripled from the middle of the test window on; asserts that no
    forecast of any asset at an earlier origin moved. Returns (the cut, the new units)."""
    test_days = sorted(units["A__wf_1__seed7"].query("split == 'test'")["origin"])
    cut = test_days[len(test_days) // 2]
    changed = _universe_file(tmp_path, scale_c_from=str(cut.date()))
    args = sweep_args(tmp_path / "results", tiny_config, *ONE, "--mode", "quick", "--max-runs", "1", "--data", changed)
    assert main("tft", [*args, *extra, "--name", name, "--assets", "A,B,C"]) == 0
    again = _units(tmp_path / "results" / name)
    for key, table in units.items():
        before = table.query("origin < @cut").sort_values(["split", "origin", "step"])["y_pred"].to_numpy()
        after = again[key].query("origin < @cut").sort_values(["split", "origin", "step"])["y_pred"].to_numpy()
        np.testing.assert_allclose(after, before, rtol=1e-6)
    return cut, again


def test_synthetic_universe_calendars_drop_leakage_and_merge(ray_session, tmp_path, tiny_config):  # noqa: ARG001
    path = _universe_file(tmp_path)
    out = tmp_path / "results"
    base = sweep_args(out, tiny_config, *ONE, "--mode", "quick", "--max-runs", "1", "--data", path)
    assert main("tft", [*base, "--name", "s", "--assets", "A,B,C,E", "--drop-short-assets"]) == 0
    meta = json.loads((out / "s" / "sweep.json").read_text())
    assert meta["assets"] == ["A", "B", "C"] and "asset 'E', fold 'wf_1'" in meta["dropped_assets"]["E"]
    units = _units(out / "s")
    assert sorted(units) == ["A__wf_1__seed7", "B__wf_1__seed7", "C__wf_1__seed7"]
    # Each asset's windows are its own rows between the fold's dates: B's forecasts sit on B's days.
    raw = pd.read_parquet(path)
    b_days = set(raw.loc[raw["asset"] == "B", "timestamp"])
    assert set(units["B__wf_1__seed7"]["timestamp"]) <= b_days
    fold = meta["folds"][0]
    test_days = units["A__wf_1__seed7"].query("split == 'test'")["origin"]
    assert test_days.min() >= pd.Timestamp(fold["test_start"]) and test_days.max() <= pd.Timestamp(fold["test_end"])

    # Leakage: C tripled from a day inside the test window changes no forecast of any asset at an
    # origin up to that day (per-asset fit: every other asset is untouched everywhere).
    cut, again = _rerun_with_c_changed(tmp_path, tiny_config, units, "leak")
    c_after = again["C__wf_1__seed7"].query("origin > @cut")["y_pred"].to_numpy()
    c_before = units["C__wf_1__seed7"].query("origin > @cut")["y_pred"].to_numpy()
    assert not np.allclose(c_after, c_before)  # the change is visible after the cut

    # Merge: adding asset D runs only D's units; the stored units stay as they were.
    stamps = {p: os.path.getmtime(p) for p in glob.glob(str(out / "s" / "trial_*" / "units" / "*" / "record.json"))}
    assert main("tft", [*base, "--name", "s", "--assets", "A,B,C,D,E", "--drop-short-assets", "--merge"]) == 0
    after = _units(out / "s")
    assert sorted(after) == ["A__wf_1__seed7", "B__wf_1__seed7", "C__wf_1__seed7", "D__wf_1__seed7"]
    assert all(os.path.getmtime(p) == t for p, t in stamps.items())
    merged = json.loads((out / "s" / "sweep.json").read_text())
    assert merged["assets"] == ["A", "B", "C", "D"] and merged["merges"][-1]["added"]["assets"] == ["D"]
    runs = sweep_runs(str(out / "s"), refresh=True)
    assert (runs["status"] == "complete").sum() == 4 and sorted(runs["asset"]) == ["A", "B", "C", "D"]

    # Removing an asset is not a merge.
    assert main("tft", [*base, "--name", "s", "--assets", "A,B", "--merge"]) == 2


def test_global_fit_one_model_per_fold_seed_scored_per_asset(ray_session, tmp_path, tiny_config):  # noqa: ARG001
    from analysis.results import Results, load_model
    from trainables.adapter import UnitData
    from trainables.data import load_universe
    from trainables.folds import Fold, windows

    path = _universe_file(tmp_path)
    out = tmp_path / "results"
    base = sweep_args(out, tiny_config, *ONE, "--mode", "quick", "--max-runs", "1", "--data", path, "--fit", "global")
    assert main("tft", [*base, "--name", "g", "--assets", "A,B,C"]) == 0
    units = _units(out / "g")
    assert sorted(units) == ["A__wf_1__seed7", "B__wf_1__seed7", "C__wf_1__seed7"]
    models = glob.glob(str(out / "g" / "trial_*" / "units" / "*" / "model"))
    assert [os.path.basename(os.path.dirname(m)) for m in models] == ["A__wf_1__seed7"]  # one model, stored once
    records = {os.path.basename(os.path.dirname(p)): json.loads(open(p).read())
               for p in glob.glob(str(out / "g" / "trial_*" / "units" / "*" / "record.json"))}  # fmt: skip
    assert {r["model_in"] for r in records.values()} == {"A__wf_1__seed7"}
    assert records["B__wf_1__seed7"]["train_seconds"] == 0.0 < records["A__wf_1__seed7"]["train_seconds"]

    # The one model forecasts each asset from that asset's own rows: loaded back, it reproduces
    # every asset's stored test forecasts.
    meta = json.loads((out / "g" / "sweep.json").read_text())
    frames = load_universe(path, ("A", "B", "C"))
    model = load_model(Results(str(out)).best("val_pct_mae"))
    fold = Fold(**meta["folds"][0])
    for asset, frame in frames.items():
        from trainables.features import add_features

        frame, feats = add_features(frame, "NONE")
        data = UnitData(frame, feats, *windows(fold, frame["timestamp"]), asset=asset)
        stored = units[f"{asset}__wf_1__seed7"].query("split == 'test' and step == 1").sort_values("origin")
        rows = frame.index[frame["timestamp"].isin(stored["origin"])].to_numpy()
        np.testing.assert_allclose(model.predict(data, rows)[:, 0], stored["y_pred"].to_numpy(), rtol=1e-5)
    assert not np.allclose(units["A__wf_1__seed7"]["y_pred"].mean(), units["C__wf_1__seed7"]["y_pred"].mean())

    # Leakage: C tripled from a day inside the test window changes no forecast at an earlier origin.
    _rerun_with_c_changed(tmp_path, tiny_config, units, "g_leak", "--fit", "global")

    # Adding an asset would change the one model of every (fold, seed): refused, nothing written.
    before = sorted(glob.glob(str(out / "g" / "**"), recursive=True))
    assert main("tft", [*base, "--name", "g", "--assets", "A,B,C,D", "--merge"]) == 2
    assert sorted(glob.glob(str(out / "g" / "**"), recursive=True)) == before


@pytest.mark.parametrize(
    ("model", "args", "words"),
    [
        ("tft", ["--fit", "global"], "--fit global fits one model on a universe: give --assets"),
    ],
)
def test_global_fit_refused_at_the_door(tmp_path, capsys, model, args, words):
    assert main(model, ["--storage", str(tmp_path / "r"), *args]) == 2
    assert words in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_embedded_universe_global_fit(ray_session, tmp_path, tiny_config):  # noqa: ARG001
    out = tmp_path / "results"
    args = sweep_args(out, tiny_config, *ONE, "--mode", "quick", "--max-runs", "1", "--name", "eg", "--fit", "global")
    assert main("tft", [*args, "--assets", "SPX,NDX,WTI,VIX", "--metric", "val_rel_mae"]) == 0
    sweep = out / "eg"
    assert len(glob.glob(str(sweep / "trial_*" / "units" / "*" / "model"))) == 1
    runs = sweep_runs(str(sweep), refresh=True)
    assert sorted(runs["asset"]) == ["NDX", "SPX", "VIX", "WTI"] and (runs["status"] == "complete").all()
    assert runs["checkpoint"].nunique() == 1 and (runs["fit"] == "global").all()
    ranked = generate(str(sweep), settings=None, draw=False).tables.ranked
    k, n = (int(x) for x in ranked.loc[0, "assets_beating_naive"].split("/"))
    assert ranked.loc[0, "units_compared"] == 4 and 0 <= k <= n <= 4
