"""analysis/forecast.py: the next steps after the last row, as the sweep forecast from an origin inside its data."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest
from conftest import TINY_FOLDS, synthetic_prices

from analysis import model_dir
from analysis.forecast import Calendar, ForecastError, ForecastWarning, load_model, main
from trainables import quantiles, registry
from trainables.adapter import UnitData, Window
from trainables.features import add_features

MODELS = ["baselines", "tft", "toto", "chronos2", "kronos"]
Q = quantiles.columns()


def unit_data(prices: pd.DataFrame, features: str = "BASELINE_FEATURES") -> UnitData:
    frame, names = add_features(prices, features)
    n = len(frame)
    return UnitData(frame, names, Window(0, n - 40), Window(n - 40, n - 20), Window(n - 20, n))


def write_dir(path, weights: str, model: str, config: dict, prices: pd.DataFrame, **data) -> str:
    """A single-model directory around a saved adapter (what analysis/refit.py writes)."""
    shutil.copytree(weights, os.path.join(path, model_dir.WEIGHTS))
    cls = registry.get(model).adapter()
    info = {"source": "synthetic.csv", "asset": None, "features": "BASELINE_FEATURES", "columns": {}, **data}
    card = model_dir.ModelCard("single", model, config, cls.horizon({**cls(config, 0).config}),
                               model_dir.data_info(prices, info["source"], info["asset"], info["features"],
                                                   info["columns"]))  # fmt: skip
    return model_dir.write(str(path), card)


def fitted_dir(tmp_path, model: str, prices: pd.DataFrame, **config) -> str:
    cls = registry.get(model).adapter()
    adapter = cls({**registry.get(model).spaces().TINY, **config}, seed=3)
    adapter.fit(unit_data(prices), None)
    adapter.save(str(tmp_path / f"{model}_weights"))
    return write_dir(tmp_path / f"{model}_dir", str(tmp_path / f"{model}_weights"), model, adapter.config, prices)


def friday_origin(prices: pd.DataFrame, start: int) -> int:
    """The first origin at or after `start` whose last row is a Friday (its next steps skip the weekend)."""
    return next(o for o in range(start, len(prices)) if prices["timestamp"].iloc[o - 1].dayofweek == 4)


# ---------------------------------------------------------------------------- the key test


@pytest.mark.slow
@pytest.mark.parametrize("model", MODELS)
def test_the_forecast_after_the_last_row_is_the_units_forecast_at_that_origin(model, tmp_path):
    """prices[:o] forecast from their last row = the fitted unit's forecast at origin o of the whole
    frame (its future rows then real): point and every quantile level, exactly; and the unit's stored
    predictions.parquet rows for that origin (Kronos aside: it draws every origin of a call from one
    generator, so the sweep's batch of origins drew other paths)."""
    from trainables.unit import run_unit

    prices = synthetic_prices(300)
    data = unit_data(prices)
    entry, config = registry.get(model), registry.get(model).spaces().TINY
    unit = tmp_path / "unit"
    if model == "kronos":  # scoring every val/test origin with sampled paths is the slow part: fit only
        adapter = entry.adapter()(config, seed=3)
        adapter.fit(data, None)
        adapter.save(str(unit / "model"))
    else:
        run_unit(entry.adapter(), config, data, 3, str(unit), None)
    loaded = load_model(write_dir(tmp_path / "m", str(unit / "model"), model, config, prices))
    h = loaded.trained_horizon
    assert loaded.horizon(loaded.config) == h  # the adapter's own attributes, as load_model gave them
    o = friday_origin(prices, data.test.start)

    table = loaded.forecast(prices.iloc[:o], h)
    assert list(table.columns) == ["timestamp", "step", "point", *Q] and table["step"].tolist() == list(range(1, h + 1))
    assert table["timestamp"].tolist() == prices["timestamp"].iloc[o : o + h].tolist()  # Friday → Monday, …
    assert table["timestamp"].iloc[0].dayofweek == 0
    inside = loaded.forecast(data, np.array([o]))  # the adapter's own forecast on the whole frame
    np.testing.assert_array_equal(table["point"], inside.point[0])
    np.testing.assert_array_equal(table[Q].to_numpy(), quantiles.sort(inside.quantiles[0]))
    if model != "kronos":
        stored = pd.read_parquet(unit / "predictions.parquet")
        stored = stored[(stored["split"] == "test") & (stored["origin"] == prices["timestamp"].iloc[o])]
        np.testing.assert_allclose(table["point"], stored["y_pred"], rtol=1e-5, atol=0)
        np.testing.assert_allclose(table[Q].to_numpy(), stored[Q].to_numpy(), rtol=1e-5, atol=0)
    # Shorter horizons are the first steps; the context check: its rows work, one fewer is refused.
    pd.testing.assert_frame_equal(loaded.forecast(prices.iloc[:o], 1), table.iloc[:1])
    need = loaded.rows_needed(data.frame)
    assert need == loaded.context_rows + (1 if model == "tft" else 0)  # the TFT's log_return reads a row more
    if model == "tft":  # it numbers rows from the first one given: another time_idx, said in a warning
        with pytest.warns(ForecastWarning, match="time_idx"):
            assert np.isfinite(loaded.forecast(prices.iloc[o - need : o])["point"]).all()
    else:
        assert np.isfinite(loaded.forecast(prices.iloc[o - need : o])["point"]).all()
    with pytest.raises(
        ForecastError, match=f"has {need - 1} row\\(s\\): too few for the model, which reads the last {need}"
    ):
        loaded.forecast(prices.iloc[o - need + 1 : o])


@pytest.mark.slow
@pytest.mark.usefixtures("ray_session")
def test_a_best_model_json_from_a_real_sweep_forecasts_the_stored_unit_forecast(tmp_path, capsys):
    """A baselines sweep on a CSV with its own column names; the exported best_model.json, given the rows
    before a test origin in a CSV named the same way, forecasts exactly what the unit stored there."""
    from analysis.results import Results
    from analysis.results import load_model as results_load_model
    from sweeps.cli import main as sweep

    names = {"timestamp": "Date", "open": "Open", "high": "High", "low": "Low", "close": "Close", "volume": "Volume"}
    prices = synthetic_prices(400).rename(columns=names)
    prices.to_csv(tmp_path / "prices.csv", index=False)
    (tmp_path / "c.json").write_text(json.dumps({"training_config": {"context_length": 64, "prediction_length": 2}}))
    (tmp_path / "points.json").write_text(json.dumps([{"method": "auto_ets"}]))
    args = ["--config", str(tmp_path / "c.json"), "--configs", str(tmp_path / "points.json"), "--mode", "priority",
            "--data", str(tmp_path / "prices.csv"), "--max-runs", "1", "--folds", "1", "--seeds", "1",
            "--gpus-per-trial", "0", "--storage", str(tmp_path / "r"), "--name", "b", *TINY_FOLDS]  # fmt: skip
    assert sweep("baselines", args) == 0
    record = Results(str(tmp_path / "r")).export(str(tmp_path / "best_model.json"))
    stored = pd.read_parquet(os.path.join(os.path.dirname(record["checkpoint"]), "predictions.parquet"))
    stored = stored[stored["split"] == "test"]
    stamps = pd.to_datetime(prices["Date"])
    first = int(np.flatnonzero(stamps == stored["origin"].min())[0])
    o = friday_origin(prices.assign(timestamp=stamps), first)
    prices.iloc[:o].to_csv(tmp_path / "latest.csv", index=False)
    capsys.readouterr()

    argv = [str(tmp_path / "best_model.json"), "--data", str(tmp_path / "latest.csv"),
            "--out", str(tmp_path / "f.parquet"), "--plot", str(tmp_path / "fan.png")]  # fmt: skip
    assert main(argv) == 0
    table = pd.read_parquet(tmp_path / "f.parquet")
    at = stored[stored["origin"] == stamps.iloc[o]].sort_values("step")
    assert table["timestamp"].tolist() == at["timestamp"].tolist() and table["timestamp"].iloc[0].dayofweek == 0
    np.testing.assert_array_equal(table["point"], at["y_pred"])  # deterministic: exactly
    np.testing.assert_array_equal(table[Q].to_numpy(), at[Q].to_numpy())
    assert (tmp_path / "fan.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # load_model's existing callers: the adapter's attributes and its own predict / forecast.
    model = results_load_model(str(tmp_path / "best_model.json"))
    assert type(model.adapter).__name__ == "BaselinesAdapter" and model.config["method"] == "auto_ets"
    assert model.fitted_on.data == str(tmp_path / "prices.csv") and model.fitted_on.features == "BASELINE_FEATURES"
    frame, feats = add_features(prices.rename(columns={v: k for k, v in names.items()}), "BASELINE_FEATURES")
    frame["timestamp"] = pd.to_datetime(frame["timestamp"])
    data = UnitData(frame, feats, Window(0, 10), Window(10, 10), Window(10, len(frame)))
    np.testing.assert_array_equal(model.predict(data, np.array([o]))[0], at["y_pred"])
    np.testing.assert_array_equal(model.forecast(data, np.array([o])).point[0], at["y_pred"])


# ---------------------------------------------------------------------------- the calendar


def test_future_timestamps_follow_the_datas_own_calendar():
    friday = pd.Series(pd.bdate_range("2024-01-01", "2024-01-12"))  # ends on a Friday
    cal = Calendar.of(friday)
    assert cal.rule == "business days"
    assert list(cal.after(friday.iloc[-1], 3)) == list(pd.to_datetime(["2024-01-15", "2024-01-16", "2024-01-17"]))
    closes = pd.Series(pd.bdate_range("2024-03-04", "2024-03-15", tz="America/New_York") + pd.Timedelta("16h"))
    assert list(Calendar.of(closes).after(closes.iloc[-1], 1)) == [
        pd.Timestamp("2024-03-18 16:00", tz="America/New_York")
    ]
    every_day = pd.Series(pd.date_range("2024-01-01", periods=20, freq="D"))  # weekends too (crypto)
    assert Calendar.of(every_day).after(every_day.iloc[-1], 2)[0] == pd.Timestamp("2024-01-21")  # a Sunday
    month_ends = pd.Series(pd.date_range("2020-01-31", periods=12, freq="ME"))
    assert list(Calendar.of(month_ends).after(month_ends.iloc[-1], 2)) == list(
        pd.to_datetime(["2021-01-31", "2021-02-28"])
    )
    # Intraday: 5-minute bars 09:30–15:55 on weekdays: after Friday's last bar comes Monday's first.
    days = pd.bdate_range("2024-01-01", "2024-01-05")
    bars = pd.Series(pd.DatetimeIndex([t for d in days for t in pd.date_range(d + pd.Timedelta("9h30min"), d + pd.Timedelta("15h55min"), freq="5min")]))  # fmt: skip
    cal = Calendar.of(bars)
    assert cal.rule == "intraday" and cal.words() == "intraday, every 5min from 09:30 to 15:55 on Mon,Tue,Wed,Thu,Fri"
    assert list(cal.after(bars.iloc[-1], 2)) == list(pd.to_datetime(["2024-01-08 09:30", "2024-01-08 09:35"]))
    assert cal.after(bars.iloc[10], 1)[0] == bars.iloc[11]  # inside a session: the next bar
    assert cal.missing(bars.iloc[77], bars.iloc[78]) == 0  # overnight is no gap
    assert cal.missing(bars.iloc[0], bars.iloc[4]) == 3
    hourly = pd.Series(pd.date_range("2024-01-01", periods=24 * 9, freq="h", tz="UTC"))  # 24/7: a plain grid
    assert list(Calendar.of(hourly).after(hourly.iloc[-1], 2)) == list(
        pd.date_range("2024-01-10", periods=2, freq="h", tz="UTC")
    )


# ---------------------------------------------------------------------------- ensembles


def test_an_ensemble_directory_forecasts_the_weighted_mean_of_its_members(tmp_path):
    prices = synthetic_prices(300)
    members = [("rw", 2), ("drift", 3)]  # the drift member forecasts a step more: the ensemble, its shortest
    for i, (method, h) in enumerate(members):
        from trainables.baselines import BaselinesAdapter

        adapter = BaselinesAdapter({"method": method, "context_length": 64, "prediction_length": h}, seed=0)
        adapter.fit(unit_data(prices), None)
        adapter.save(str(tmp_path / f"w{i}"))
        write_dir(tmp_path / "ens" / "members" / str(i), str(tmp_path / f"w{i}"), "baselines", adapter.config, prices)
    weights = [0.3, 0.7]
    card = model_dir.ModelCard("ensemble", "ensemble", {}, 2, model_dir.data_info(prices, "synthetic.csv", None, "BASELINE_FEATURES", {}),
                               members=[{"dir": f"members/{i}", "weight": w} for i, w in enumerate(weights)])  # fmt: skip
    model_dir.write(str(tmp_path / "ens"), card)
    ensemble = load_model(str(tmp_path / "ens"))
    assert ensemble.kind == "ensemble" and ensemble.trained_horizon == 2 and ensemble.adapter is None
    table = ensemble.forecast(prices)
    parts = [load_model(str(tmp_path / "ens" / "members" / str(i))).forecast(prices, 2) for i in range(2)]
    for col in ["point", *Q]:
        np.testing.assert_allclose(table[col], weights[0] * parts[0][col] + weights[1] * parts[1][col], rtol=1e-12)
        assert not np.allclose(table[col], parts[0][col]) and not np.allclose(table[col], parts[1][col])
    assert table["timestamp"].tolist() == parts[0]["timestamp"].tolist()
    with pytest.raises(ForecastError, match="horizon 3 is beyond what the model forecasts: 2 step"):
        ensemble.forecast(prices, 3)
    assert ensemble.summary()["members"] == [
        {"model": "baselines", "weight": w, "horizon": h} for w, (_, h) in zip(weights, members)
    ]


# ---------------------------------------------------------------------------- bad input


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A drift baseline (reads close) and a tiny Kronos (reads OHLCV), fitted on synthetic prices."""
    tmp = tmp_path_factory.mktemp("models")
    prices = synthetic_prices(300)
    return {"drift": fitted_dir(tmp, "baselines", prices, method="drift"), "kronos": fitted_dir(tmp, "kronos", prices)}


def _csv(tmp_path, frame: pd.DataFrame, name: str = "latest.csv") -> str:
    frame.to_csv(tmp_path / name, index=False)
    return str(tmp_path / name)


def _gap(p: pd.DataFrame) -> pd.DataFrame:
    return p.drop(index=p.index[-20:-17])  # three business days in a row, inside the last 64 rows


BAD = {
    "too few rows": ("drift", lambda p: p.iloc[:40], [], "has 40 row(s): too few for the model, which reads the last 64"),
    "a missing column": ("kronos", lambda p: p[["timestamp", "close"]], [], "has no open, high, low, volume columns: the kronos model reads"),
    "another asset": ("drift", lambda p: p.assign(asset="NDX"), [], "holds asset 'NDX' but the model was fitted on 'SPX'"),
    "a gap": ("drift", _gap, [], "a gap in the rows the model reads (the last 64): no row for 2016-01-28 (3 business days missing between 2016-01-27 and 2016-02-02"),
    "a horizon too long": ("drift", lambda p: p, ["--horizon", "5"], "horizon 5 is beyond what the model forecasts: 2 step(s)"),
    "unsorted rows": ("drift", lambda p: p.iloc[[*range(250), 251, 250, *range(252, 300)]], [], "timestamps are not sorted (first out of order at row 251)"),
    "duplicate rows": ("drift", lambda p: pd.concat([p.iloc[:-1], p.iloc[-2:-1]]), [], "has duplicate timestamps (first 2016-02-23 00:00:00 at row 299)"),
    "a bad --out": ("drift", lambda p: p, ["--out", "{tmp}/forecast.txt"], "--out '{tmp}/forecast.txt' must end in .csv or .parquet"),
}  # fmt: skip


@pytest.mark.parametrize("case", BAD)
def test_bad_input_is_one_line_exit_2_and_nothing_written(case, models, tmp_path, capsys):
    model, change, extra, message = BAD[case]
    prices = synthetic_prices(300)
    if case == "another asset":  # the model was fitted on SPX
        card = model_dir.read(models[model])
        card.data.asset = "SPX"
        shutil.copytree(models[model], tmp_path / "spx")
        model_dir.write(str(tmp_path / "spx"), card)
    path = str(tmp_path / "spx") if case == "another asset" else models[model]
    data = _csv(tmp_path, change(prices))
    out = [a.format(tmp=tmp_path) for a in extra] if "--out" in extra else [*extra, "--out", str(tmp_path / "f.csv")]
    capsys.readouterr()
    assert main([path, "--data", data, *out, "--plot", str(tmp_path / "fan.png")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and message.format(tmp=tmp_path) in err, err
    assert sorted(os.listdir(tmp_path)) == sorted(["latest.csv", *(["spx"] if case == "another asset" else [])])
    if "--out" not in extra:  # the Python API: the same error, a named exception
        horizon = int(extra[1]) if extra else None
        with pytest.raises(ForecastError) as raised:
            load_model(path).forecast(data, horizon)
        assert message in str(raised.value) and "\n" not in str(raised.value)


def test_not_a_model_is_one_line_too(tmp_path, capsys):
    (tmp_path / "x.json").write_text('{"model": "tft"}')
    assert main([str(tmp_path / "x.json"), "--data", _csv(tmp_path, synthetic_prices(100))]) == 2
    assert capsys.readouterr().err == f"error: '{tmp_path / 'x.json'}' is not an exported best-model record\n"


def test_holidays_close_only_data_and_the_cli_outputs(models, tmp_path, capsys):
    """One missing weekday (a holiday) is no gap; a close-only file is refused for Kronos only when its data
    had every column (fitted on the embedded close-only WTI, it forecasts close-only data); the CLI's
    CSV, fan plot and printout are the Python forecast."""
    prices = synthetic_prices(300)
    holiday = prices.drop(index=[280])
    drift = load_model(models["drift"])
    assert len(drift.forecast(holiday)) == 2
    card = model_dir.read(models["kronos"])
    card.data.source, card.data.asset = "embedded (WTI)", "WTI"
    shutil.copytree(models["kronos"], tmp_path / "wti")
    model_dir.write(str(tmp_path / "wti"), card)
    close_only = load_model(str(tmp_path / "wti")).forecast(prices[["timestamp", "close"]])
    assert np.isfinite(close_only[["point", *Q]].to_numpy()).all()

    data = _csv(tmp_path, prices, "prices.csv")
    argv = [models["drift"], "--data", data, "--out", str(tmp_path / "f.csv"), "--plot", str(tmp_path / "fan.png")]
    assert main(argv) == 0
    written = pd.read_csv(tmp_path / "f.csv", parse_dates=["timestamp"])
    pd.testing.assert_frame_equal(written, drift.forecast(prices), check_dtype=False)
    assert (tmp_path / "fan.png").stat().st_size > 5_000
    capsys.readouterr()
    assert main([models["drift"], "--data", data, "--horizon", "1"]) == 0
    shown = capsys.readouterr().out
    assert "timestamp" in shown and "point" in shown and str(written["timestamp"].iloc[0].date()) in shown
