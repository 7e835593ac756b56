"""Walk-forward folds: explicit date ranges or generated, validated against the data."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from trainables.adapter import Window

DATE_FIELDS = ("train_start", "train_end", "val_start", "val_end", "test_start", "test_end")
_DAY = re.compile(r"\d{8}")
_TIME_OF_DAY = re.compile(r"\d[T ]\d{1,2}:\d{2}")  # "2018-01-12T15:30", "2018-01-12 15:30"


class FoldError(ValueError):
    """A fold is malformed or does not fit the data; the message names the fold and field."""


@dataclass(frozen=True)
class Fold:
    """One walk-forward split; every bound is inclusive: a day YYYYMMDD (daily data, a whole
    day) or an ISO timestamp (intraday data, that instant)."""

    name: str
    train_start: str
    train_end: str
    val_start: str
    val_end: str
    test_start: str
    test_end: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def is_day(bound: str) -> bool:
    """Whether a fold bound is a whole day (YYYYMMDD) rather than a timestamp."""
    return bool(_DAY.fullmatch(bound))


def parse_fold(raw: dict, where: str) -> Fold:
    """Build a Fold from a config dict, checking its keys and date formats."""
    if not isinstance(raw, dict):
        raise FoldError(f"{where}: a fold must be an object, got {type(raw).__name__}")
    unknown = set(raw) - {"name", *DATE_FIELDS}
    if unknown:
        raise FoldError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    missing = [k for k in DATE_FIELDS if k not in raw]
    if missing:
        raise FoldError(f"{where}: missing {missing[0]!r}")
    dates = {k: _date(raw[k], f"{where}.{k}") for k in DATE_FIELDS}
    return Fold(name=str(raw.get("name", where)), **dates)


def _date(value: object, where: str) -> str:
    """A day as YYYYMMDD; a value written with a time of day or a zone stays a timestamp (ISO)."""
    try:
        stamp = pd.Timestamp(str(value))
    except (ValueError, TypeError):
        stamp = pd.NaT
    if stamp is pd.NaT:
        raise FoldError(f"{where}: {value!r} is not a date (use YYYYMMDD, or an ISO timestamp for intraday data)")
    if stamp.tz is not None or _TIME_OF_DAY.search(str(value)):
        return stamp.isoformat()
    return stamp.strftime("%Y%m%d")


def _in_zone(stamp: pd.Timestamp, tz, where: str) -> pd.Timestamp:
    """`stamp` comparable with timestamps in `tz`: a day or wall time without a zone is in the data's."""
    if tz is None:
        if stamp.tz is not None:
            raise FoldError(f"{where} has a time zone, the data's timestamps have none")
        return stamp
    if stamp.tz is None:
        return stamp.tz_localize(tz, ambiguous=True, nonexistent="shift_forward")
    return stamp.tz_convert(tz)


def _span(bound: str, tz, where: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """(first instant, first instant after) a bound covers: a whole day, or one timestamp."""
    start = _in_zone(pd.Timestamp(bound), tz, where)
    if is_day(bound):  # the next midnight in the zone: a daylight-saving day is 23 or 25 hours
        return start, _in_zone(pd.Timestamp(bound) + pd.Timedelta(days=1), tz, where)
    return start, start + pd.Timedelta(1, "ns")


def _nanos(timestamps: pd.Series) -> tuple[np.ndarray, object]:
    """Sorted timestamps as int64 ns (UTC for tz-aware ones, whatever their unit), and their zone."""
    index = pd.DatetimeIndex(timestamps)
    return index.as_unit("ns").asi8, index.tz


def windows(fold: Fold, timestamps: pd.Series) -> tuple[Window, Window, Window]:
    """Row windows (train, val, test) of `fold` in a frame with these sorted timestamps."""
    ns, tz = _nanos(timestamps)

    def rows(part: str) -> Window:
        start, end = f"{part}_start", f"{part}_end"
        first = _span(getattr(fold, start), tz, f"fold {fold.name!r}: {start}")[0]
        after = _span(getattr(fold, end), tz, f"fold {fold.name!r}: {end}")[1]
        return Window(int(np.searchsorted(ns, first.value, "left")), int(np.searchsorted(ns, after.value, "left")))

    return rows("train"), rows("val"), rows("test")


class ShortAsset(FoldError):
    """One asset of a universe lacks the rows a fold needs (`--drop-short-assets` leaves it out)."""

    def __init__(self, message: str, asset: str) -> None:
        super().__init__(message)
        self.asset = asset


def validate(folds: list[Fold], timestamps: pd.Series, context: int, horizon: int) -> None:
    """Raise FoldError unless every fold is ordered, inside the data and long enough."""
    check_dates(folds, timestamps)
    check_rows(folds, timestamps, context, horizon)


def check_dates(folds: list[Fold], timestamps: pd.Series) -> None:
    """Unique names, ordered dates, inside the calendar `timestamps` (a universe: every asset's days)."""
    names = [f.name for f in folds]
    if len(set(names)) != len(names):
        raise FoldError(f"fold names must be unique, {names}")
    stamps = pd.DatetimeIndex(timestamps)
    for fold in folds:
        _check_order(fold, stamps.tz)
        _check_inside(fold, stamps[0], stamps[-1])


def _check_order(fold: Fold, tz) -> None:
    """Each split's start before its end, each end before the next split's start (days compare as days)."""
    span = {k: _span(getattr(fold, k), tz, f"fold {fold.name!r}: {k}") for k in DATE_FIELDS}
    for a, b in zip(DATE_FIELDS, DATE_FIELDS[1:]):
        # a start must not begin after its end's last instant; an end's last instant must precede the next start
        bad = span[a][0] >= span[b][1] if a.endswith("_start") else span[a][1] > span[b][0]
        if bad:
            raise FoldError(f"fold {fold.name!r}: {a} {getattr(fold, a)} must come before {b} {getattr(fold, b)}")


def _check_inside(fold: Fold, first: pd.Timestamp, last: pd.Timestamp) -> None:
    start = _span(fold.train_start, first.tz, f"fold {fold.name!r}: train_start")[0]
    end = _span(fold.test_end, first.tz, f"fold {fold.name!r}: test_end")[0]
    daily = is_day(fold.train_start) and is_day(fold.test_end)
    if start < (first.normalize() if is_day(fold.train_start) else first) or end > last:
        shown = f"{first:%Y%m%d}..{last:%Y%m%d}" if daily else f"{first.isoformat()}..{last.isoformat()}"
        raise FoldError(
            f"fold {fold.name!r}: dates {fold.train_start}..{fold.test_end} fall outside the data ({shown})"
        )


def check_rows(folds: list[Fold], timestamps: pd.Series, context: int, horizon: int, asset: str | None = None) -> None:
    """Each fold's windows in these rows (one asset's) hold context + horizon to train on and a
    horizon to forecast; ShortAsset naming the asset and fold when `asset` is given."""
    for fold in folds:
        train, val, test = windows(fold, timestamps)
        need = {"train": (train, context + horizon), "val": (val, horizon), "test": (test, horizon)}
        for part, (win, rows) in need.items():
            if len(win) >= rows:
                continue
            least = f"{rows} (context {context} + horizon {horizon})" if part == "train" else f"horizon {horizon}"
            short = f"fold {fold.name!r}: {part} window has {len(win)} rows, needs at least {least}"
            if asset is None:
                raise FoldError(short)
            raise ShortAsset(f"asset {asset!r}, {short}; leave the asset out with --drop-short-assets", asset)


def calendar(frames: dict[str, pd.DataFrame]) -> pd.Series:
    """The universe's trading days: every asset's timestamps, up to the earliest last day (so the
    last test window has rows of every asset). Folds are dates on it; each asset's windows are
    its own rows between those dates."""
    stamps = [f["timestamp"] for f in frames.values()]
    # Assets in different zones meet in UTC (naive mixed with tz-aware is refused at load).
    if len({str(s.dt.tz) for s in stamps}) > 1:
        stamps = [s.dt.tz_convert("UTC") for s in stamps]
    end = min(s.iloc[-1] for s in stamps)
    days = pd.Series(pd.concat(stamps, ignore_index=True).unique()).sort_values(ignore_index=True)
    return days[days <= end].reset_index(drop=True)


def intraday(timestamps: pd.Series) -> bool:
    """Several rows on one calendar day (bars), not one row a day."""
    return bool(pd.DatetimeIndex(timestamps).normalize().duplicated().any())


def generate(
    timestamps: pd.Series, n: int, val_size: int, test_size: int, window: str = "expanding", train_size: int = 1000
) -> list[Fold]:
    """`n` walk-forward folds ending at the last row; each test window follows the previous one.

    Expanding folds train from the first row; rolling folds on the last `train_size` rows. Daily
    data's bounds are days (YYYYMMDD); intraday data's the rows' ISO timestamps.
    """
    total = len(timestamps)
    as_text = _iso if intraday(timestamps) else _yyyymmdd
    folds = []
    for i in range(n):
        test_stop = total - (n - 1 - i) * test_size
        val_start = test_stop - test_size - val_size
        train_start = 0 if window == "expanding" else val_start - train_size
        if train_start < 0 or val_start <= train_start:
            raise FoldError(
                f"--folds {n}: not enough rows ({total}) for {n} folds with val {val_size}, test {test_size}"
                + (f", train {train_size}" if window == "rolling" else "")
            )
        bounds = [
            train_start,
            val_start - 1,
            val_start,
            test_stop - test_size - 1,
            test_stop - test_size,
            test_stop - 1,
        ]
        folds.append(Fold(f"wf_{i + 1}", *(as_text(timestamps.iloc[b]) for b in bounds)))
    return folds


def _yyyymmdd(stamp: pd.Timestamp) -> str:
    return stamp.strftime("%Y%m%d")


def _iso(stamp: pd.Timestamp) -> str:
    return pd.Timestamp(stamp).isoformat()
