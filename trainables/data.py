"""Load price series (parquet, CSV or the embedded series the `arch` package ships) and validate them."""

from __future__ import annotations

import os
import re
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

PRICE_COLUMNS = ("open", "high", "low", "close", "volume")
# Embedded asset -> the `arch.data` dataset. WTI (FRED, 1986-2019) and VIX (2014-2019) are
# close-only and mark days without a price with "."; those days are missing rows, never NaN.
EMBEDDED = {"SPX": "sp500", "NDX": "nasdaq", "WTI": "wti", "VIX": "vix"}
ALL = "all"  # --assets all: every asset of --data
# The names a timestamp column goes by in downloads, tried in this order when --timestamp-col is left alone.
TIMESTAMP_NAMES = ("timestamp", "datetime", "date", "time")
# A trailing UTC offset of an ISO timestamp ("Z", "+01:00", "-0500").
_OFFSET = re.compile(r"(Z|[+-]\d{2}:?\d{2})$")
_THOUSANDS = re.compile(r"\s*[+-]?\d{1,3}(,\d{3})+(\.\d*)?\s*")


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


@dataclass(frozen=True)
class Reading:
    """How a source was read: the source column behind each field (None: it fell back)."""

    source: str  # the file as the messages name it, or "embedded data (SPX)"
    fed: dict[str, str | None]  # "timestamp", "asset" and PRICE_COLUMNS -> the column read
    unused: tuple[str, ...] = ()  # the file's columns no field reads
    from_index: tuple[str, ...] = ()  # columns that were the parquet file's index
    embedded: bool = False

    @property
    def fallbacks(self) -> tuple[str, ...]:
        return tuple(name for name in PRICE_COLUMNS if self.fed.get(name) is None)


def load_prices(path: str | None, asset: str | None, columns: Columns = Columns()) -> pd.DataFrame:
    """One asset's validated frame: timestamp + OHLCV, sorted, default integer index.

    `path=None` loads the embedded series (`asset` one of EMBEDDED, default SPX).
    """
    return read_prices(path, asset, columns)[0]


def read_prices(
    path: str | None, asset: str | None, columns: Columns = Columns(), extra: tuple[str, ...] = ()
) -> tuple[pd.DataFrame, Reading]:
    """load_prices' frame, and how it was read; `extra` columns of the file are kept too, numeric,
    under the names given (covariates: trainables.covariates), gaps as NaN."""
    if path is None:
        if extra:
            raise DataError(f"column {extra[0]!r} needs --data: the embedded series have {', '.join(PRICE_COLUMNS)}")
        frame, reading = _embedded(asset or "SPX", "embedded data")
        return _validate(frame, reading.source, reading), reading
    raw, reading = _read(path, columns)
    frame = _select_asset(raw, path, asset, columns, reading.fed["asset"])
    return _validate(_standardise(frame, path, reading, extra), repr(path), reading), reading


def load_universe(path: str | None, assets: tuple[str, ...], columns: Columns = Columns()) -> dict[str, pd.DataFrame]:
    """Each asset's validated frame (as load_prices gives it), in the order asked; `assets == ("all",)`
    takes every asset of the file, sorted. The file is read once."""
    return read_universe(path, assets, columns)[0]


def read_universe(
    path: str | None, assets: tuple[str, ...], columns: Columns = Columns(), extra: tuple[str, ...] = ()
) -> tuple[dict[str, pd.DataFrame], dict[str, Reading]]:
    """load_universe's frames, and how each asset was read (a file: one Reading shared by all);
    `extra` as in read_prices."""
    if path is None:
        if extra:
            raise DataError(f"column {extra[0]!r} needs --data: the embedded series have {', '.join(PRICE_COLUMNS)}")
        if assets == (ALL,):
            raise DataError(f"--assets all needs --data with an asset column; embedded assets: {', '.join(EMBEDDED)}")
        unknown = [a for a in assets if a not in EMBEDDED]
        if unknown:
            raise DataError(f"asset {unknown[0]!r} is not in the embedded data (choose from {', '.join(EMBEDDED)})")
        read = {a: _embedded(a, f"embedded data ({a})") for a in assets}
        return {a: _validate(f, r.source, r) for a, (f, r) in read.items()}, {a: r for a, (_, r) in read.items()}
    raw, reading = _read(path, columns)
    name = reading.fed["asset"]
    if name is None:
        where = f"asset column {columns.asset!r} missing from" if columns.asset else "no asset column in"
        raise DataError(f"--assets needs an asset column: {where} {path!r} (name it with --asset-col)")
    ids = raw[name].astype(str)
    present = sorted(ids.unique())
    wanted = tuple(present) if assets == (ALL,) else assets
    for asset in wanted:
        check_asset_name(asset, f"asset {asset!r} in column {name!r} of {path!r}")
        if asset not in set(present):
            shown = ", ".join(present[:8]) + (", ..." if len(present) > 8 else "")
            raise DataError(f"asset {asset!r} not found in column {name!r} of {path!r} (it holds {shown})")
    frames = {
        a: _validate(_standardise(raw[ids == a], path, reading, extra), f"{path!r} (asset {a})", reading)
        for a in wanted
    }
    _check_zones_agree(frames, path, reading.fed["timestamp"])
    return frames, dict.fromkeys(wanted, reading)


def fallback_warning(reading: Reading) -> str | None:
    """The one warning line for the prices `reading` had to make up (None: every one was read, or
    an embedded close-only series, documented as such)."""
    missing = reading.fallbacks
    if not missing or reading.embedded:
        return None
    prices = [m for m in missing if m != "volume"]
    to = ([f"close ({'/'.join(prices)})"] if prices else []) + (["0 (volume)"] if "volume" in missing else [])
    plural = len(missing) > 1
    # hl_spread / range need both high and low; log_volume needs volume (trainables.features).
    constant = "volume" in missing or {"high", "low"} <= set(missing)
    effect = "are constant" if constant else "read close in their place"
    return (
        f"warning: {reading.source} has no {', '.join(missing)} column{'s' if plural else ''}: "
        f"{'they fall' if plural else 'it falls'} back to {' and '.join(to)}; "
        f"features built on {'them' if plural else 'it'} {effect}"
    )


def check_asset_name(asset: str, where: str) -> None:
    """An asset id names directories (units/<asset>__<fold>__seed<s>, assets/<asset>/): keep it plain."""
    if not asset or "/" in asset or "\\" in asset or "__" in asset or asset.startswith(".") or asset != asset.strip():
        raise DataError(f"{where} cannot name a directory (no '/', '\\', '__', leading '.' or spaces)")


def _embedded(asset: str, source: str) -> tuple[pd.DataFrame, Reading]:
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
    fed = {"timestamp": "timestamp", "asset": None, **{c: c if c in frame.columns else None for c in PRICE_COLUMNS}}
    frame["close"] = pd.to_numeric(frame["close"], errors="coerce")
    frame = frame[frame["close"].notna()]  # a day without a price is a missing row
    for col in PRICE_COLUMNS:
        if col not in frame.columns:
            frame[col] = frame["close"] if col != "volume" else 0.0
    prices = frame[list(PRICE_COLUMNS)].apply(pd.to_numeric, errors="coerce").astype("float64")
    frame = pd.concat([frame[["timestamp"]], prices], axis=1).reset_index(drop=True)
    return frame, Reading(source, fed, embedded=True)


def _read(path: str, columns: Columns) -> tuple[pd.DataFrame, Reading]:
    """The file's rows, and which of its columns feed which field."""
    raw, from_index = _read_file(path)
    fed = {"timestamp": _timestamp_column(raw, path, columns.timestamp), "asset": _asset_column(raw, path, columns)}
    for name in PRICE_COLUMNS:
        fed[name] = _find(raw, getattr(columns, name), path, "target column" if name == "close" else "column")
    if fed["close"] is None:
        shown = ", ".join(map(str, raw.columns[:8])) + (", ..." if len(raw.columns) > 8 else "")
        raise DataError(
            f"target column {columns.close!r} missing from {path!r} (it has {shown}: choose one with --target-col)"
        )
    unused = tuple(str(c) for c in raw.columns if c not in set(fed.values()))
    return raw, Reading(repr(path), fed, unused, from_index)


def _norm(name: object) -> str:
    """Names compare without case, spaces or underscores: 'Adj Close' is adj_close."""
    return re.sub(r"[\s_]+", "_", str(name).strip().lower())


def _find(raw: pd.DataFrame, wanted: str, path: str, what: str) -> str | None:
    """The one column of `raw` named `wanted` (normalised), None if there is none."""
    hits = [c for c in raw.columns if _norm(c) == _norm(wanted)]
    if len(hits) > 1:
        raise DataError(
            f"{what} {wanted!r} is ambiguous in {path!r}: columns {hits[0]!r} and {hits[1]!r} both match "
            "(rename or drop one)"
        )
    return hits[0] if hits else None


def _timestamp_column(raw: pd.DataFrame, path: str, name: str) -> str:
    names = TIMESTAMP_NAMES if name == "timestamp" else (name,)
    for candidate in names:
        found = _find(raw, candidate, path, "timestamp column")
        if found is not None:
            return found
    also = f" (nor {', '.join(TIMESTAMP_NAMES[1:])} or a datetime index)" if name == "timestamp" else ""
    raise DataError(f"timestamp column {name!r} missing from {path!r}{also}: name it with --timestamp-col")


def _asset_column(raw: pd.DataFrame, path: str, columns: Columns) -> str | None:
    """The asset-id column: --asset-col, else one named 'asset' if there is one."""
    return _find(raw, columns.asset or "asset", path, "asset column")


def _read_file(path: str) -> tuple[pd.DataFrame, tuple[str, ...]]:
    if not os.path.isfile(path):
        raise DataError(f"data file {path!r} does not exist")
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext in (".parquet", ".pq"):
            return _index_to_columns(pd.read_parquet(path))
        if ext in (".csv", ".txt"):
            return pd.read_csv(path), ()
    except Exception as exc:  # a broken file is a user error, not a crash
        raise DataError(f"cannot read data file {path!r}: {exc}".splitlines()[0]) from None
    raise DataError(f"data file {path!r} must be .parquet or .csv, not {ext or 'no extension'!r}")


def _index_to_columns(raw: pd.DataFrame) -> tuple[pd.DataFrame, tuple[str, ...]]:
    """Parquet keeps pandas' index: a named one (levels) or a DatetimeIndex is data; return it as
    columns (and their names). An unnamed other index is a leftover row number: dropped."""
    index = raw.index
    if isinstance(index, pd.RangeIndex):
        return raw, ()
    if all(n is None for n in index.names):
        if not isinstance(index, pd.DatetimeIndex):
            return raw.reset_index(drop=True), ()
        taken = {_norm(c) for c in raw.columns}
        names = ["timestamp" if "timestamp" not in taken else "index"]
    else:
        names = [str(n) if n is not None else f"level_{i}" for i, n in enumerate(index.names)]
    return raw.reset_index(names=names, allow_duplicates=True), tuple(names)


def _select_asset(raw: pd.DataFrame, path: str, asset: str | None, columns: Columns, name: str | None) -> pd.DataFrame:
    if name is None:
        if columns.asset is not None:
            raise DataError(f"asset column {columns.asset!r} missing from {path!r}")
        if asset is not None:
            raise DataError(f"--asset {asset!r} given but {path!r} has no asset column (use --asset-col)")
        return raw
    assets = raw[name].astype(str)
    if asset is None:
        if assets.nunique() > 1:
            names = ", ".join(sorted(assets.unique())[:5])
            raise DataError(f"{path!r} holds several assets ({names}, ...): choose one with --asset")
        return raw
    if asset not in set(assets):
        raise DataError(f"asset {asset!r} not found in column {name!r} of {path!r}")
    return raw[assets == asset]


def _standardise(raw: pd.DataFrame, path: str, reading: Reading, extra: tuple[str, ...] = ()) -> pd.DataFrame:
    """Timestamp + OHLCV under their standard names (and the `extra` columns under the names
    asked for); the file's row numbers kept for the messages."""
    fed = reading.fed
    out = pd.DataFrame({"timestamp": _parse_time(raw[fed["timestamp"]], path, fed["timestamp"])}, index=raw.index)
    close = _numeric(raw[fed["close"]], path, fed["close"])  # first: the other prices fall back to it
    for name in PRICE_COLUMNS:
        source = fed[name]
        if name == "close":
            out[name] = close
        elif source is not None:
            out[name] = _numeric(raw[source], path, source)
        else:  # only the target is mandatory: fallback_warning says what was made up
            out[name] = close if name != "volume" else 0.0
    for name in extra:
        source = _find(raw, name, path, "column")
        if source is None:
            shown = ", ".join(map(str, raw.columns[:8])) + (", ..." if len(raw.columns) > 8 else "")
            raise DataError(f"column {name!r} missing from {path!r} (it has {shown})")
        out[name] = _numeric(raw[source], path, source)
    return out


def _parse_time(col: pd.Series, path: str, name: str) -> pd.Series:
    """Datetimes as the file has them: naive, or tz-aware in one zone (parquet keeps its zone)."""
    if pd.api.types.is_datetime64_any_dtype(col):
        return col
    if pd.api.types.is_integer_dtype(col):  # 20100104-style dates
        try:
            return pd.to_datetime(col.astype(str), format="%Y%m%d")
        except ValueError as exc:
            raise DataError(f"column {name!r} of {path!r} is not a timestamp: {exc}".splitlines()[0]) from None
    try:
        # pandas' notices ("could not infer format", mixed zones) would be extra lines: the errors say it.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            parsed = pd.to_datetime(col)
    except (ValueError, TypeError, OverflowError) as exc:
        _check_offsets(col, path, name)  # mixed zones fail to parse too: name them precisely
        raise DataError(f"column {name!r} of {path!r} is not a timestamp: {exc}".splitlines()[0]) from None
    if not pd.api.types.is_datetime64_any_dtype(parsed):  # pandas 2 parses mixed offsets to objects
        _check_offsets(col, path, name)
        raise DataError(f"column {name!r} of {path!r} mixes time zones: write every timestamp in one zone (e.g. UTC)")
    return parsed


def _check_offsets(col: pd.Series, path: str, name: str) -> None:
    """One UTC offset for the whole column (or none): DataError naming the first row that differs."""
    text = col.dropna().astype(str).str.strip()
    found = text.str.extract(_OFFSET, expand=False)
    if found.isna().all():
        return
    offsets = found.str.replace("Z", "+00:00").str.replace(r"^([+-]\d{2})(\d{2})$", r"\1:\2", regex=True)
    offsets = offsets.fillna("no zone")
    differs = offsets.ne(offsets.iloc[0])
    if not differs.any():
        return
    row = differs.idxmax()
    first = f"{text.iloc[0]!r} at row {text.index[0]}"
    raise DataError(
        f"column {name!r} of {path!r} mixes time zones ({first}, {text[row]!r} at row {row}): write every "
        "timestamp in one zone (e.g. UTC), or save the data as parquet, which keeps a zone with daylight saving"
    )


def _numeric(col: pd.Series, path: str, name: str) -> np.ndarray:
    if not pd.api.types.is_numeric_dtype(col):
        values = pd.to_numeric(col, errors="coerce")
        bad = values.isna() & col.notna()  # an empty cell is a NaN, which _validate judges
        if bad.any():
            row = bad.idxmax()
            value = col[row]
            hint = ""
            if isinstance(value, str) and _THOUSANDS.fullmatch(value):
                hint = f": thousands separators are not read, write {value.strip().replace(',', '')}"
            raise DataError(f"column {name!r} of {path!r} is not numeric (value {value!r} at row {row}){hint}")
        col = values
    return col.to_numpy(dtype="float64")


def _validate(frame: pd.DataFrame, source: str, reading: Reading) -> pd.DataFrame:
    close_name, ts_name = reading.fed["close"], reading.fed["timestamp"]
    close = frame["close"].to_numpy()
    bad = ~np.isfinite(close)
    if bad.any():
        at = frame["timestamp"].iloc[int(np.argmax(bad))]
        raise DataError(f"target column {close_name!r} of {source} has NaN/inf ({int(bad.sum())} rows, first at {at})")
    ts = frame["timestamp"]
    if ts.isna().any():
        raise DataError(f"column {ts_name!r} of {source} has an empty timestamp (first at row {ts.isna().idxmax()})")
    if ts.duplicated().any():
        row = ts.duplicated().idxmax()
        raise DataError(
            f"column {ts_name!r} of {source} has duplicate timestamps (first {ts[row]} at row {row}): "
            "one row per timestamp (and asset, with --asset-col)"
        )
    if not ts.is_monotonic_increasing:
        raise DataError(f"{source} timestamps are not sorted (first out of order at row {_first_unsorted(ts)})")
    for name in ("open", "high", "low", "volume"):
        frame[name] = frame[name].fillna(frame["close"] if name != "volume" else 0.0)
    return frame.reset_index(drop=True)


def _first_unsorted(ts: pd.Series) -> object:
    """The file's row number of the first timestamp earlier than the one before it."""
    return ts.index[int(np.argmax(ts.diff().dt.total_seconds().to_numpy()[1:] < 0)) + 1]


def _check_zones_agree(frames: dict[str, pd.DataFrame], path: str, name: str) -> None:
    """A universe's assets may each keep their zone, but not mix naive and tz-aware timestamps."""
    aware = {a: f["timestamp"].dt.tz is not None for a, f in frames.items()}
    if len(set(aware.values())) > 1:
        with_tz = next(a for a, v in aware.items() if v)
        without = next(a for a, v in aware.items() if not v)
        raise DataError(
            f"column {name!r} of {path!r} mixes time zones: asset {with_tz!r} has one, {without!r} none "
            "(write every timestamp in one zone, e.g. UTC)"
        )
