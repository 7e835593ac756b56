"""Load price series (parquet, CSV or the embedded series the `arch` package ships) and validate them."""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd

PRICE_COLUMNS = ("open", "high", "low", "close", "volume")
# Embedded asset -> the `arch.data` dataset. WTI (FRED, 1986-2019) and VIX (2014-2019) are
# close-only and mark days without a price with "."; those days are missing rows, never NaN.
EMBEDDED = {"SPX": "sp500", "NDX": "nasdaq", "WTI": "wti", "VIX": "vix"}
ALL = "all"  # --assets all: every asset of --data


class DataError(ValueError):
    """Input data is unusable; the message names the file, column or value."""


@dataclass(frozen=True)
class Columns:
    """Names of the columns in the user's file; standard names inside the project."""

    timestamp: str = "timestamp"
    asset: str | None = None
    open: str = "open"
    high: str = "high"
    low: str = "low"
    close: str = "close"
    volume: str = "volume"


def load_prices(path: str | None, asset: str | None, columns: Columns = Columns()) -> pd.DataFrame:
    """One asset's validated frame: timestamp + OHLCV, sorted, default integer index.

    `path=None` loads the embedded series (`asset` one of EMBEDDED, default SPX).
    """
    if path is None:
        return _validate(_embedded(asset or "SPX"), "embedded data", "close")
    raw = _read_file(path)
    frame = _select_asset(raw, path, asset, columns)
    return _validate(_standardise(frame, path, columns), path, columns.close)


def _embedded(asset: str) -> pd.DataFrame:
    if asset not in EMBEDDED:
        raise DataError(f"--asset {asset!r} is not in the embedded data (choose from {', '.join(EMBEDDED)})")
    # The CSV that `arch.data.<name>.load()` reads, read directly: importing `arch` imports
    # scipy.stats and its volatility models, ~2 s that every CLI start would pay for.
    import importlib.util

    spec = importlib.util.find_spec("arch")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the embedded data needs the `arch` package (pip install arch), or pass --data")
    name = EMBEDDED[asset]
    csv = os.path.join(spec.submodule_search_locations[0], "data", name, f"{name}.csv.gz")
    if os.path.isfile(csv):
        frame = pd.read_csv(csv).rename(columns=str.lower).rename(columns={"date": "timestamp"})
        frame["timestamp"] = pd.to_datetime(frame["timestamp"])
    else:  # another arch layout: its own loader
        import importlib

        frame = importlib.import_module(f"arch.data.{name}").load().rename(columns=str.lower)
        frame = frame.reset_index(names="timestamp")
    if "close" not in frame.columns:  # close-only series (WTI, VIX): their one value column
        frame = frame.rename(columns={frame.columns[1]: "close"})
    frame["close"] = pd.to_numeric(frame["close"], errors="coerce")
    frame = frame[frame["close"].notna()]  # a day without a price is a missing row
    for col in PRICE_COLUMNS:
        if col not in frame.columns:
            frame[col] = frame["close"] if col != "volume" else 0.0
    prices = frame[list(PRICE_COLUMNS)].apply(pd.to_numeric, errors="coerce").astype("float64")
    return pd.concat([frame[["timestamp"]], prices], axis=1).reset_index(drop=True)


def load_universe(path: str | None, assets: tuple[str, ...], columns: Columns = Columns()) -> dict[str, pd.DataFrame]:
    """Each asset's validated frame (as load_prices gives it), in the order asked; `assets == ("all",)`
    takes every asset of the file, sorted. The file is read once."""
    if path is None:
        if assets == (ALL,):
            raise DataError(f"--assets all needs --data with an asset column; embedded assets: {', '.join(EMBEDDED)}")
        unknown = [a for a in assets if a not in EMBEDDED]
        if unknown:
            raise DataError(f"asset {unknown[0]!r} is not in the embedded data (choose from {', '.join(EMBEDDED)})")
        return {a: _validate(_embedded(a), f"embedded data ({a})", "close") for a in assets}
    raw = _read_file(path)
    name = columns.asset or ("asset" if "asset" in raw.columns else None)
    if name is None or name not in raw.columns:
        where = f"asset column {name!r} missing from" if name else "no asset column in"
        raise DataError(f"--assets needs an asset column: {where} {path!r} (name it with --asset-col)")
    ids = raw[name].astype(str)
    present = sorted(ids.unique())
    wanted = tuple(present) if assets == (ALL,) else assets
    for asset in wanted:
        check_asset_name(asset, f"asset {asset!r} in column {name!r} of {path!r}")
        if asset not in set(present):
            shown = ", ".join(present[:8]) + (", ..." if len(present) > 8 else "")
            raise DataError(f"asset {asset!r} not found in column {name!r} of {path!r} (it holds {shown})")
    return {
        a: _validate(_standardise(raw[ids == a], path, columns), f"{path} (asset {a})", columns.close) for a in wanted
    }


def check_asset_name(asset: str, where: str) -> None:
    """An asset id names directories (units/<asset>__<fold>__seed<s>, assets/<asset>/): keep it plain."""
    if not asset or "/" in asset or "\\" in asset or "__" in asset or asset.startswith(".") or asset != asset.strip():
        raise DataError(f"{where} cannot name a directory (no '/', '\\', '__', leading '.' or spaces)")


def _read_file(path: str) -> pd.DataFrame:
    if not os.path.isfile(path):
        raise DataError(f"data file {path!r} does not exist")
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if ext in (".csv", ".txt"):
            return pd.read_csv(path)
    except Exception as exc:  # a broken file is a user error, not a crash
        raise DataError(f"cannot read data file {path!r}: {exc}".splitlines()[0]) from None
    raise DataError(f"data file {path!r} must be .parquet or .csv, not {ext or 'no extension'!r}")


def _select_asset(raw: pd.DataFrame, path: str, asset: str | None, columns: Columns) -> pd.DataFrame:
    name = columns.asset or ("asset" if "asset" in raw.columns else None)
    if name is None:
        if asset is not None:
            raise DataError(f"--asset {asset!r} given but {path!r} has no asset column (use --asset-col)")
        return raw
    if name not in raw.columns:
        raise DataError(f"asset column {name!r} missing from {path!r}")
    assets = raw[name].astype(str)
    if asset is None:
        if assets.nunique() > 1:
            names = ", ".join(sorted(assets.unique())[:5])
            raise DataError(f"{path!r} holds several assets ({names}, ...): choose one with --asset")
        return raw
    if asset not in set(assets):
        raise DataError(f"asset {asset!r} not found in column {name!r} of {path!r}")
    return raw[assets == asset]


def _standardise(raw: pd.DataFrame, path: str, columns: Columns) -> pd.DataFrame:
    wanted = {"timestamp": columns.timestamp, **{c: getattr(columns, c) for c in PRICE_COLUMNS}}
    # Only the target (close) is mandatory; missing O/H/L fall back to close, volume to NaN-free 0.
    if columns.timestamp not in raw.columns:
        raise DataError(f"timestamp column {columns.timestamp!r} missing from {path!r}")
    if columns.close not in raw.columns:
        raise DataError(f"target column {columns.close!r} missing from {path!r}")
    out = pd.DataFrame({"timestamp": _parse_time(raw[columns.timestamp], path, columns.timestamp)})
    close = _numeric(raw[columns.close], path, columns.close)  # first: the other prices fall back to it
    for name in PRICE_COLUMNS:
        source = wanted[name]
        if name == "close":
            out[name] = close
        elif source in raw.columns:
            out[name] = _numeric(raw[source], path, source)
        else:
            out[name] = close if name != "volume" else 0.0
    return out


def _parse_time(col: pd.Series, path: str, name: str) -> np.ndarray:
    try:
        if pd.api.types.is_integer_dtype(col):  # 20100104-style dates
            return pd.to_datetime(col.astype(str), format="%Y%m%d").to_numpy()
        return pd.to_datetime(col).to_numpy()
    except (ValueError, TypeError) as exc:
        raise DataError(f"column {name!r} of {path!r} is not a timestamp: {exc}".splitlines()[0]) from None


def _numeric(col: pd.Series, path: str, name: str) -> np.ndarray:
    if not pd.api.types.is_numeric_dtype(col):
        values = pd.to_numeric(col, errors="coerce")
        if values.isna().any():
            bad = col[values.isna()].iloc[0]
            raise DataError(f"column {name!r} of {path!r} is not numeric (value {bad!r})")
        col = values
    return col.to_numpy(dtype="float64")


def _validate(frame: pd.DataFrame, source: str, close_name: str) -> pd.DataFrame:
    close = frame["close"].to_numpy()
    bad = ~np.isfinite(close)
    if bad.any():
        at = frame["timestamp"].iloc[int(np.argmax(bad))]
        raise DataError(f"target column {close_name!r} of {source} has NaN/inf ({int(bad.sum())} rows, first at {at})")
    ts = frame["timestamp"]
    if ts.duplicated().any():
        raise DataError(f"{source} has duplicate timestamps (first {ts[ts.duplicated()].iloc[0]})")
    if not ts.is_monotonic_increasing:
        raise DataError(f"{source} timestamps are not sorted (first out of order at row {_first_unsorted(ts)})")
    for name in ("open", "high", "low", "volume"):
        frame[name] = frame[name].fillna(frame["close"] if name != "volume" else 0.0)
    return frame.reset_index(drop=True)


def _first_unsorted(ts: pd.Series) -> int:
    return int(np.argmax(ts.diff().dt.total_seconds().to_numpy()[1:] < 0)) + 1
