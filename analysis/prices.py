"""The prices a forecast is made from: read as the model's own data was, the calendar of the
timestamps after their last row, and the gap check.

The prices are read as the sweep read them (trainables.data: columns matched without case, validated,
the model's column names).

The calendar of the future timestamps (the data's own):
- daily data (the most common spacing between rows is one day) whose rows all fall on weekdays:
  business days, Monday to Friday (a Friday's next steps are Monday, Tuesday, …). Exchange holidays
  are not known: a holiday ahead gets a step like any weekday;
- other data spaced a day or more apart: the frequency pandas infers from the last 64 rows (weekly,
  month end, …), else the most common spacing;
- intraday data (the most common spacing under a day): steps of that spacing, inside the sessions the
  data shows: a step onto a time of day or a weekday that no row has moves to the earliest time of
  day seen, on the next weekday seen (5-minute bars 09:30–15:55 on weekdays: after Friday 15:55 comes
  Monday 09:30); data with every hour and weekday (24/7) is a plain grid. Worked out on the wall
  clock of the data's zone.

A gap in the rows the model reads is bad input (ForecastError): more than `max_gap` (default
MAX_GAP, `--max-gap` in analysis/forecast.py) consecutive calendar steps without a row (one or two
missing weekdays are taken as exchange holidays, e.g. Good Friday and Easter Monday).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from functools import cached_property
from typing import Any

import numpy as np
import pandas as pd

from trainables import data as prices_io
from trainables import store
from trainables.data import PRICE_COLUMNS, Columns, DataError

MAX_GAP = 2  # consecutive calendar steps that may lack a row (holidays) in the rows the model reads


class ForecastError(ValueError):
    """A forecast cannot be made from this input; the one-line message names the problem."""


# ---------------------------------------------------------------------------- what a model was fitted on


@dataclass(frozen=True)
class FittedOn:
    """How the model's data was read and prepared: what a forecast's data must match."""

    features: str = "BASELINE_FEATURES"  # trainables.features.FEATURE_SETS name
    columns: dict | None = None  # trainables.data.Columns as a dict (the file's names)
    asset: str | None = None  # the asset the model was fitted on (None: unnamed)
    global_fit: bool = False  # a model of several series: the forecast names its asset
    data: str | None = None  # the training file (None: embedded data)
    embedded: str | None = None  # the embedded asset (SPX, ...) when the data was embedded

    @property
    def column_names(self) -> Columns:
        known = {f.name for f in fields(Columns)}
        return Columns(**{k: v for k, v in (self.columns or {}).items() if k in known and v is not None})

    @cached_property  # read once per model, not at every forecast (a served model answers many)
    def made_up(self) -> set[str]:
        """The price columns the training data lacked (trainables.data fell back to close / 0 for them)."""
        try:
            if self.embedded or self.data is None:
                return set(prices_io._embedded(self.embedded or self.asset or "SPX", "embedded")[1].fallbacks)
            if not store.is_remote(self.data) and os.path.isfile(self.data):
                return set(prices_io._read(self.data, self.column_names)[1].fallbacks)
        except DataError:
            pass
        return set()  # not readable here: taken as having every column


# ---------------------------------------------------------------------------- reading the prices


def _reading(raw: pd.DataFrame, name: str, columns: Columns, from_index: tuple[str, ...]) -> prices_io.Reading:
    """trainables.data._read's column matching, for a table already in memory."""
    fed = {
        "timestamp": prices_io._timestamp_column(raw, name, columns.timestamp),
        "asset": prices_io._asset_column(raw, name, columns),
    }
    for col in PRICE_COLUMNS:
        fed[col] = prices_io._find(raw, getattr(columns, col), name, "target column" if col == "close" else "column")
    if fed["close"] is None:
        shown = ", ".join(map(str, raw.columns[:8])) + (", ..." if len(raw.columns) > 8 else "")
        raise DataError(f"target column {columns.close!r} missing from {name!r} (it has {shown})")
    unused = tuple(str(c) for c in raw.columns if c not in set(fed.values()))
    return prices_io.Reading(repr(name), fed, unused, from_index)


def read_prices(
    source: str | os.PathLike | pd.DataFrame, fitted: FittedOn, asset: str | None = None
) -> tuple[pd.DataFrame, prices_io.Reading, str | None]:
    """One asset's validated prices (trainables.data.read_prices' steps, on a file or a DataFrame),
    how they were read, and the asset they are (None: unnamed). Without `asset`, a file holding the
    model's asset gives it, and a file of one other asset is refused (another asset's prices)."""
    columns = fitted.column_names
    try:
        if isinstance(source, pd.DataFrame):
            name = "the prices"
            raw, from_index = prices_io._index_to_columns(source.copy())
            reading = _reading(raw, name, columns, from_index)
        elif isinstance(source, str | os.PathLike):
            name = os.fspath(source)
            raw, reading = prices_io._read(name, columns)
        else:
            raise ForecastError(f"prices must be a file path or a DataFrame, not {type(source).__name__}")
        column = reading.fed["asset"]
        chosen = asset
        if column is not None:
            present = sorted(raw[column].astype(str).unique())
            if asset is None and fitted.asset in present:
                chosen = fitted.asset
            elif asset is None and len(present) == 1 and fitted.asset is not None and not fitted.global_fit:
                raise ForecastError(
                    f"{name!r} holds asset {present[0]!r} but the model was fitted on {fitted.asset!r}: "
                    f"pass --asset {present[0]} to forecast it anyway"
                )
            frame = prices_io._select_asset(raw, name, chosen, columns, column)
            if chosen is None and len(present) == 1:
                chosen = present[0]
        else:
            frame = raw
        frame = prices_io._validate(prices_io._standardise(frame, name, reading), repr(name), reading)
    except DataError as exc:
        raise ForecastError(str(exc)) from None
    return frame, reading, chosen


# ---------------------------------------------------------------------------- the data's calendar


@dataclass(frozen=True)
class Calendar:
    """The timestamps a series' rows fall on (the module doc's rule), to step past its last row."""

    rule: str  # "business days" | "every <frequency>" | "intraday"
    step: Any  # a pandas offset or Timedelta
    times: tuple[pd.Timedelta, ...] = ()  # intraday: the times of day rows have
    days: frozenset[int] = frozenset()  # intraday: the weekdays rows fall on
    tz: Any = None

    @classmethod
    def of(cls, timestamps: pd.Series) -> Calendar:
        ts = pd.DatetimeIndex(timestamps)
        if len(ts) < 2:
            raise ForecastError("the prices need at least two rows to tell their calendar")
        modal = pd.Series(ts[1:] - ts[:-1]).mode().min()  # the smallest of the most common spacings
        if pd.Timedelta(hours=20) <= modal <= pd.Timedelta(hours=28) and bool((ts.dayofweek < 5).all()):
            return cls("business days", pd.offsets.BDay(), tz=ts.tz)
        if modal >= pd.Timedelta(hours=20):
            try:
                freq = pd.infer_freq(ts[-64:]) if len(ts) >= 3 else None
            except (TypeError, ValueError):
                freq = None
            step = pd.tseries.frequencies.to_offset(freq) if freq else modal
            return cls(f"every {freq or modal}", step, tz=ts.tz)
        wall = ts.tz_localize(None) if ts.tz is not None else ts
        times = tuple(sorted(set(wall - wall.normalize())))
        return cls("intraday", modal, times, frozenset(int(d) for d in wall.dayofweek), ts.tz)

    @property
    def unit(self) -> str:
        return "business day" if self.rule == "business days" else "step"

    def after(self, last: pd.Timestamp, k: int) -> pd.DatetimeIndex:
        """The k timestamps after `last`."""
        if self.rule != "intraday":
            out, t = [], last
            for _ in range(k):
                t = t + self.step
                out.append(t)
            return pd.DatetimeIndex(out)
        t, out = self._wall(last), []
        for _ in range(k):
            t = self._next_wall(t)
            out.append(t)
        index = pd.DatetimeIndex(out)
        return index if self.tz is None else index.tz_localize(self.tz, ambiguous=False, nonexistent="shift_forward")

    def missing(self, a: pd.Timestamp, b: pd.Timestamp, cap: int = 10_000) -> int:
        """Calendar steps strictly between consecutive rows `a` and `b` (rows that should be there)."""
        if self.rule == "business days":
            day = np.datetime64(self._wall(a).date()), np.datetime64(self._wall(b).date())
            return max(int(np.busday_count(day[0] + 1, day[1])), 0)
        step = self._next_wall if self.rule == "intraday" else (lambda t: t + self.step)
        t = self._wall(a) if self.rule == "intraday" else a
        end = self._wall(b) if self.rule == "intraday" else b
        count = 0
        while count < cap:
            t = step(t)
            if t >= end:
                return count
            count += 1
        return count

    def _wall(self, t: pd.Timestamp) -> pd.Timestamp:
        return t.tz_localize(None) if t.tzinfo is not None else t

    def _next_wall(self, t: pd.Timestamp) -> pd.Timestamp:
        """The next intraday timestamp after wall-clock `t`: a step, moved into the next session."""
        first, last = self.times[0], self.times[-1]
        seen = set(self.times)
        c = t + self.step
        for _ in range(100_000):
            tod = c - c.normalize()
            if c.dayofweek in self.days and tod in seen:
                return c
            if tod > last or c.dayofweek not in self.days:
                c = c.normalize() + pd.Timedelta(days=1) + first  # the next day's first time of day
            elif tod < first:
                c = c.normalize() + first
            else:  # inside the session, off the times rows have: the next step
                c = c + self.step
        raise ForecastError(f"no next timestamp on the data's intraday calendar after {t}")

    def words(self) -> str:
        if self.rule != "intraday":
            return self.rule

        def clock(t: pd.Timedelta) -> str:
            return f"{t.components.hours:02d}:{t.components.minutes:02d}"

        days = ",".join(("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")[d] for d in sorted(self.days))
        return f"intraday, every {pd.tseries.frequencies.to_offset(self.step).freqstr} from {clock(self.times[0])} to {clock(self.times[-1])} on {days}"


def when(t: pd.Timestamp, calendar: Calendar | None = None) -> str:
    """A date alone for a timestamp at midnight (not on an intraday calendar), else the timestamp."""
    intraday = calendar is not None and calendar.rule == "intraday"
    return str(t.date()) if not intraday and t == t.normalize() else str(t)


def check_gaps(stamps: pd.Series, calendar: Calendar, max_gap: int, needed: int) -> None:
    ts = pd.DatetimeIndex(stamps)
    for a, b in zip(ts[:-1], ts[1:]):
        missing = calendar.missing(a, b)
        if missing > max_gap:
            first = calendar.after(a, 1)[0]
            unit = calendar.unit + ("s" if missing > 1 else "")
            raise ForecastError(
                f"a gap in the rows the model reads (the last {needed}): no row for {when(first, calendar)} "
                f"({missing} {unit} missing between {when(a, calendar)} and {when(b, calendar)}; "
                f"at most {max_gap} in a row are taken as holidays)"
            )
