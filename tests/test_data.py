"""Loading and validating price data: every problem is a DataError naming it."""

import numpy as np
import pytest
from conftest import synthetic_prices

from trainables.data import Columns, DataError, load_prices
from trainables.features import FEATURE_SETS, add_features


def test_embedded_series_load():
    spx = load_prices(None, "SPX")
    ndx = load_prices(None, "NDX")
    assert len(spx) == len(ndx) == 5031
    assert list(spx.columns) == ["timestamp", "open", "high", "low", "close", "volume"]
    assert spx["timestamp"].iloc[0].year == 1999 and spx["timestamp"].iloc[-1].year == 2018
    assert not np.allclose(spx["close"].to_numpy(), ndx["close"].to_numpy())


@pytest.mark.parametrize("asset, module", [("SPX", "sp500"), ("NDX", "nasdaq")])
def test_embedded_series_equal_arch_own_loader(asset, module):
    """The CSV is read without importing arch; it must give exactly what arch's loader gives."""
    import importlib

    import pandas as pd

    theirs = importlib.import_module(f"arch.data.{module}").load().rename(columns=str.lower)
    theirs = theirs.reset_index(names="timestamp")[list(load_prices(None, asset).columns)]
    pd.testing.assert_frame_equal(load_prices(None, asset), theirs.astype({"volume": "float64"}))


def test_parquet_and_csv_with_custom_columns(tmp_path):
    frame = synthetic_prices(50).rename(columns={"timestamp": "Date", "close": "Adj Close"})
    frame["ticker"] = "AAPL"
    frame.to_parquet(tmp_path / "p.parquet")
    frame.to_csv(tmp_path / "p.csv", index=False)
    cols = Columns(timestamp="Date", asset="ticker", close="Adj Close")
    a = load_prices(str(tmp_path / "p.parquet"), "AAPL", cols)
    b = load_prices(str(tmp_path / "p.csv"), "AAPL", cols)
    assert len(a) == len(b) == 50
    np.testing.assert_allclose(a["close"], b["close"])


def test_multi_asset_file_selects_one(tmp_path):
    a, b = synthetic_prices(30, 1), synthetic_prices(30, 2)
    a["asset"], b["asset"] = "A", "B"
    path = tmp_path / "two.csv"
    a.merge(b, how="outer").sort_values(["asset", "timestamp"]).to_csv(path, index=False)
    got = load_prices(str(path), "B")
    np.testing.assert_allclose(got["close"], b["close"])
    with pytest.raises(DataError, match="several assets"):
        load_prices(str(path), None)


def _write(tmp_path, frame, name="d.csv"):
    path = tmp_path / name
    frame.to_csv(path, index=False)
    return str(path)


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda f: f.drop(columns=["close"]), "target column 'close' missing"),
        (lambda f: f.drop(columns=["timestamp"]), "timestamp column 'timestamp' missing"),
        (lambda f: f.assign(close=["x"] + [1.0] * (len(f) - 1)), "column 'close' .* not numeric"),
        (lambda f: f.assign(close=[np.nan] + [1.0] * (len(f) - 1)), "NaN/inf"),
        (lambda f: f.assign(close=[np.inf] + [1.0] * (len(f) - 1)), "NaN/inf"),
        (
            lambda f: f.assign(timestamp=[f["timestamp"].iloc[1]] + list(f["timestamp"].iloc[1:])),
            "duplicate timestamps",
        ),
        (lambda f: f.iloc[::-1], "not sorted"),
        (lambda f: f.assign(timestamp="not a date"), "not a timestamp"),
    ],
)
def test_bad_files_name_the_problem(tmp_path, mutate, message):
    with pytest.raises(DataError, match=message):
        load_prices(_write(tmp_path, mutate(synthetic_prices(20))), None)


def test_missing_file_unknown_asset_and_bad_extension(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_prices(str(tmp_path / "nope.csv"), None)
    with pytest.raises(DataError, match="not in the embedded data"):
        load_prices(None, "FTSE")
    (tmp_path / "x.xlsx").write_text("x")
    with pytest.raises(DataError, match="must be .parquet or .csv"):
        load_prices(str(tmp_path / "x.xlsx"), None)
    path = _write(tmp_path, synthetic_prices(10).assign(asset="A"))
    with pytest.raises(DataError, match="asset 'B' not found"):
        load_prices(path, "B")


def test_features_use_no_future_rows():
    frame = synthetic_prices(60)
    base, names = add_features(frame, "BASELINE_FEATURES")
    changed = frame.copy()
    changed.loc[40:, ["close", "high", "low", "volume"]] *= 3
    after, _ = add_features(changed, "BASELINE_FEATURES")
    assert names == FEATURE_SETS["BASELINE_FEATURES"]
    np.testing.assert_allclose(base.loc[:39, list(names)], after.loc[:39, list(names)])


def test_a_close_only_file_takes_open_high_low_from_close_and_volume_zero(tmp_path):
    prices = synthetic_prices(50)[["timestamp", "close"]]
    prices.to_csv(tmp_path / "close.csv", index=False)
    got = load_prices(str(tmp_path / "close.csv"), None)
    np.testing.assert_allclose(got["close"].to_numpy(), prices["close"].to_numpy(), rtol=1e-12)
    for name in ("open", "high", "low"):
        np.testing.assert_array_equal(got[name].to_numpy(), got["close"].to_numpy())
    assert (got["volume"] == 0).all()
