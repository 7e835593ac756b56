"""Price files as users have them: a Yahoo CSV, a parquet index, intraday bars; their mistakes as one-line errors."""

import json
import re

import numpy as np
import pandas as pd
import pytest

from trainables.data import Columns, DataError, fallback_warning, load_prices, read_prices
from trainables.folds import Fold, check_dates, generate, is_day, parse_fold, windows

FOLDS = ["--folds", "1", "--val-size", "60", "--test-size", "60"]  # ≥ 30 origins each: no few-origins warning


def _spx(n: int = 300) -> pd.DataFrame:
    return load_prices(None, "SPX").tail(n).reset_index(drop=True)


def _yahoo(n: int = 300) -> pd.DataFrame:
    """The columns of a Yahoo Finance download, from the embedded S&P 500."""
    spx = _spx(n)
    return pd.DataFrame(
        {
            "Date": spx["timestamp"].dt.strftime("%Y-%m-%d"),
            "Open": spx["open"],
            "High": spx["high"],
            "Low": spx["low"],
            "Close": spx["close"],
            "Adj Close": spx["close"] * 0.97,
            "Volume": spx["volume"].astype("int64"),
        }
    )


def _bars(days: int = 40) -> pd.DataFrame:
    """30-minute bars, 09:30-15:30 New York time, in winter (one UTC offset), ISO timestamps."""
    stamps = [
        day + pd.Timedelta(minutes=570 + 30 * k)
        for day in pd.bdate_range("2018-01-02", periods=days)
        for k in range(13)
    ]
    ts = pd.DatetimeIndex(stamps).tz_localize("America/New_York")
    close = 100 * np.exp(np.cumsum(np.random.default_rng(0).normal(0, 0.001, len(ts))))
    return pd.DataFrame(
        {"timestamp": [t.isoformat() for t in ts], "open": close * 1.001, "high": close * 1.002,
         "low": close * 0.998, "close": close, "volume": 100.0}
    )  # fmt: skip


def _main(args, capsys):
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""
    from sweeps.cli import main

    try:
        code = main("tft", args)
    except SystemExit as exc:  # argparse errors
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("target", ["adj_close", "Adj Close", "ADJ_CLOSE"])
def test_yahoo_csv_uses_adj_close_and_every_ohlcv_column(tmp_path, target):
    yahoo = _yahoo()
    yahoo.to_csv(tmp_path / "SPY.csv", index=False)
    got, reading = read_prices(str(tmp_path / "SPY.csv"), None, Columns(close=target))
    np.testing.assert_allclose(got["close"], yahoo["Adj Close"])
    for field, column in (("open", "Open"), ("high", "High"), ("low", "Low"), ("volume", "Volume")):
        np.testing.assert_allclose(got[field], yahoo[column])
    assert (got["open"] != got["close"]).any()
    assert reading.fed["timestamp"] == "Date" and reading.fallbacks == () and reading.unused == ("Close",)
    assert fallback_warning(reading) is None
    # Without --target-col the default 'close' is the file's Close.
    np.testing.assert_allclose(load_prices(str(tmp_path / "SPY.csv"), None)["close"], yahoo["Close"])


@pytest.mark.parametrize("index_name", [None, "Date"])
def test_parquet_with_a_datetime_index(tmp_path, index_name):
    spx = _spx()
    frame = spx.set_index("timestamp").rename_axis(index_name)
    frame.to_parquet(tmp_path / "p.parquet")
    got, reading = read_prices(str(tmp_path / "p.parquet"), None)
    pd.testing.assert_series_equal(got["timestamp"], spx["timestamp"], check_freq=False)
    np.testing.assert_allclose(got["open"], spx["open"])
    assert reading.fed["timestamp"] in reading.from_index


def test_intraday_tz_aware_bars_fold_on_timestamps(tmp_path):
    _bars().to_csv(tmp_path / "bars_30m.csv", index=False)
    frame = load_prices(str(tmp_path / "bars_30m.csv"), None)
    ts = frame["timestamp"]
    assert ts.dt.tz is not None and len(ts) == 40 * 13
    folds = generate(ts, 2, val_size=100, test_size=100)
    check_dates(folds, ts)
    for fold in folds:
        assert not any(is_day(getattr(fold, k)) for k in ("train_end", "val_start", "test_end"))
        train, val, test = windows(fold, ts)
        assert len(train) and len(val) == len(test) == 100
        assert train.start == 0 and train.stop == val.start and val.stop == test.start
        assert ts.iloc[val.start] == pd.Timestamp(fold.val_start)
        assert ts.iloc[test.stop - 1] == pd.Timestamp(fold.test_end)
        stored = json.loads(json.dumps(fold.as_dict()))  # as sweep.json stores it
        assert Fold(**stored) == fold and parse_fold(stored, "walk_forward.folds[0]") == fold
        assert windows(Fold(**stored), ts) == (train, val, test)
    assert windows(folds[-1], ts)[2].stop == len(ts)
    # The cut falls inside a day (100 bars is not a whole number of 13-bar days): dates alone could not order it.
    assert any(pd.Timestamp(f.train_end).date() == pd.Timestamp(f.val_start).date() for f in folds)


def test_daily_folds_stay_yyyymmdd():
    folds = generate(_spx()["timestamp"], 2, val_size=50, test_size=50)
    assert all(re.fullmatch(r"\d{8}", v) for f in folds for k, v in f.as_dict().items() if k != "name")


def test_intraday_dry_run(tmp_path, capsys):
    _bars().to_parquet(tmp_path / "bars_30m.parquet")
    storage = tmp_path / "results"
    args = ["--data", str(tmp_path / "bars_30m.parquet"), "--folds", "2", "--val-size", "100", "--test-size", "100"]
    code, out, err = _main([*args, "--dry-run", "--storage", str(storage)], capsys)
    assert code == 0, err
    assert "520 rows, 2018-01-02 09:30:00-05:00 .. 2018-02-26 15:30:00-05:00" in out
    assert re.search(r"val +100 rows  \S+ \S+-05:00 \.\. ", out)
    assert not storage.exists()


def test_a_missing_open_high_low_volume_is_one_warning_line(tmp_path, capsys):
    _spx()[["timestamp", "close"]].to_csv(tmp_path / "close.csv", index=False)
    storage = tmp_path / "results"
    code, out, err = _main(
        ["--data", str(tmp_path / "close.csv"), *FOLDS, "--dry-run", "--storage", str(storage)], capsys
    )
    assert code == 0, err
    assert err.strip().splitlines() == [
        f"warning: {str(tmp_path / 'close.csv')!r} has no open, high, low, volume columns: they fall back to "
        "close (open/high/low) and 0 (volume); features built on them are constant"
    ]
    assert "fell back: open, high, low <- close; volume <- 0 (no such columns)" in out


def test_a_universe_file_warns_once_for_all_its_assets(tmp_path, capsys):
    a, b = _spx().assign(asset="A"), _spx().assign(asset="B")
    pd.concat([a, b])[["asset", "timestamp", "close", "open", "high", "low"]].to_csv(tmp_path / "u.csv", index=False)
    code, out, err = _main(["--data", str(tmp_path / "u.csv"), "--assets", "all", *FOLDS, "--dry-run",
                            "--storage", str(tmp_path / "r")], capsys)  # fmt: skip
    assert code == 0, err
    assert len(err.strip().splitlines()) == 1 and "has no volume column: it falls back to 0 (volume)" in err
    assert "  A: 300 rows" in out and "  B: 300 rows" in out


def _thousands(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(Close=[f"{v:,.1f}" for v in frame["Close"]])


def _duplicate(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(Date=[*frame["Date"].iloc[:5], frame["Date"].iloc[4], *frame["Date"].iloc[6:]])


def _mixed_zones(frame: pd.DataFrame) -> pd.DataFrame:
    stamps = [f"{d}T16:00:00-05:00" for d in frame["Date"]]
    stamps[7] = stamps[7].replace("-05:00", "+00:00")
    return frame.assign(Date=stamps)


def _naive_and_aware(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(Date=[f"{d}T16:00:00" + ("-05:00" if i != 3 else "") for i, d in enumerate(frame["Date"])])


@pytest.mark.parametrize(
    "mutate, message",
    [
        (_thousands, r"column 'Close' of '.*d\.csv' is not numeric \(value '2,\d{3}\.\d' at row 0\): thousands "),
        (_duplicate, r"column 'Date' of '.*d\.csv' has duplicate timestamps \(first 2017-\S+ 00:00:00 at row 5\)"),
        (_mixed_zones, r"column 'Date' of '.*d\.csv' mixes time zones \('\S+-05:00' at row 0, '\S+\+00:00' at row 7\)"),
        (
            _naive_and_aware,
            r"column 'Date' of '.*d\.csv' mixes time zones \('\S+-05:00' at row 0, '\S+T16:00:00' at row 3\)",
        ),
        (
            lambda f: f.assign(close=f["Close"]),
            r"target column 'close' is ambiguous in '.*d\.csv': columns 'Close' and",
        ),
    ],
)
def test_bad_files_exit_2_with_one_line_and_write_nothing(tmp_path, capsys, mutate, message):
    mutate(_yahoo()).to_csv(tmp_path / "d.csv", index=False)
    storage = tmp_path / "results"
    code, _, err = _main(["--data", str(tmp_path / "d.csv"), *FOLDS, "--storage", str(storage)], capsys)
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1 and re.search(message, err), err
    assert not storage.exists()


def test_a_bad_value_names_the_file_row_in_a_multi_asset_file(tmp_path):
    a, b = _spx(20).assign(asset="A"), _spx(20).assign(asset="B")
    b["close"] = b["close"].astype(object)
    b.loc[3, "close"] = "12.5.1"
    pd.concat([a, b], ignore_index=True).to_csv(tmp_path / "two.csv", index=False)
    with pytest.raises(DataError, match=r"column 'close' of '.*two\.csv' is not numeric \(value '12.5.1' at row 23\)"):
        load_prices(str(tmp_path / "two.csv"), "B")


@pytest.mark.parametrize(
    "extra, expected",
    [
        ([], "Configurations: 4 (mode quick); units: 2 folds × 2 seeds = 4 each, 16 in all"),
        (["--mode", "optuna"], "Configurations: Optuna: up to --num-samples 20 (mode optuna)"),
        (["--assets", "SPX,NDX"], "    NDX test     126 rows  2018-07-02 .. 2018-12-31"),
    ],
)
def test_dry_run_prints_data_folds_and_counts_and_starts_nothing(tmp_path, extra, expected):
    """In a fresh process (the test session's own Ray would hide one the dry run started)."""
    import subprocess
    import sys

    from conftest import ROOT

    storage = tmp_path / "results"
    args = [*extra, "--dry-run", "--storage", str(storage)]
    code = (
        f"import sys; sys.path.insert(0, {str(ROOT)!r}); from sweeps.cli import main; rc = main('tft', {args!r}); "
        "import ray; print('ray started:', ray.is_initialized()); sys.exit(rc)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=ROOT)
    out = proc.stdout
    assert proc.returncode == 0, proc.stderr
    assert "5031 rows, 1999-01-04 .. 2018-12-31" in out and "Folds (2):" in out
    assert re.search(r"wf_2: 19990104 \.\. 20181231\n +(SPX )?train +4779 rows  1999-01-04 \.\. 2017-12-28", out)
    assert expected in out, out
    assert not storage.exists() and out.rstrip().endswith("ray started: False")
