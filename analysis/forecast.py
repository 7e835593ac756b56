"""Forecast the next H steps after the last row of a price table, from an exported model.

    python analysis/forecast.py models/spx --data latest.csv --horizon 5 --out forecast.csv --plot fan.png
    python analysis/forecast.py results/best_model.json --data latest.parquet      # prints the table

    from analysis.results import load_model
    model = load_model("models/spx")             # a model directory (analysis/model_dir.py) or a best_model.json
    table = model.forecast("latest.csv", 5)      # or a DataFrame of prices; horizon default: the model's

The model is a model directory (analysis/refit.py, analysis/ensemble.py: model.json + weights/, or an
ensemble of member directories, which forecasts the weighted mean of its members' points and of each
quantile level) or a best_model.json (analysis/best.py: the chosen unit's model; the feature set and
column names come from its sweep's sweep.json). The prices are read as the sweep read them
(trainables.data: columns matched without case, validated, the model's column names).

The table: `timestamp`, `step` (1..H), `point`, and `q0.025` … `q0.975` (trainables.quantiles.LEVELS)
when the model gives a distribution. It holds no NaN: a level the model's draws cannot resolve (fewer
than 39 sampled paths leave 0.025 and 0.975 open) is left out, and a point-only model has no q column.

How: H future rows follow the last row (timestamps on the calendar below, prices copied from the last
row) and the adapter forecasts from origin n = the number of real rows, exactly as a sweep forecasts
from an origin inside its data: the adapter contract lets no forecast read a row at or after its
origin, except the known-ahead calendar features (trainables.features.KNOWN_AHEAD), which are computed
for the future rows (the TFT's decoder reads them; Kronos reads the future timestamps).

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

Bad input is one line (ForecastError; exit code 2 here, HTTP 400 in analysis/serve.py), and nothing
is written: a horizon beyond the model's, too few rows for its context, a column the model reads
missing (it falls back to close in trainables.data; an error here unless the model was fitted on data
that lacked it too), another asset than the model's, unsorted or duplicate timestamps, and a gap in
the rows the model reads: more than `--max-gap` (default 2) consecutive calendar steps without a row
(one or two missing weekdays are taken as exchange holidays, e.g. Good Friday and Easter Monday).
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import json
import os
import warnings
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import pandas as pd

from analysis import files, model_dir
from analysis.runs import ResultsError, Sweep, read_sweep
from trainables import data as prices_io
from trainables import quantiles, registry
from trainables.adapter import Adapter, UnitData, Window
from trainables.data import PRICE_COLUMNS, Columns, DataError
from trainables.features import add_features, feature_names

MAX_GAP = 2  # consecutive calendar steps that may lack a row (holidays) in the rows the model reads
PLOT_HISTORY = 120  # rows of history the fan plot shows at least (more when the context is longer)
OUT_EXTENSIONS = (".csv", ".parquet", ".pq")
# The price columns a model reads itself (besides its features): the univariate ones the target
# only, Kronos its six K-line columns (amount = close × volume). Any other model: the target and
# what its features are computed from.
OWN_COLUMNS = {
    "toto": ("close",),
    "chronos2": ("close",),
    "baselines": ("close",),
    "kronos": PRICE_COLUMNS,
}
FEATURE_COLUMNS = {
    "log_return": ("close",),
    "change": ("close",),
    "hl_spread": ("high", "low"),
    "log_volume": ("volume",),
    "range": ("high", "low", "close"),
}
DIFFERENCED = {"log_return", "change"}  # a feature of row t reading row t - 1 too


class ForecastError(ValueError):
    """A forecast cannot be made from this input; the one-line message names the problem."""


class ForecastWarning(UserWarning):
    """The forecast is made but may differ from the one the model would make on its own data."""


class ModelSourceError(ForecastError, ResultsError):
    """Not a model directory or an exported best-model record (a ResultsError too, as load_model raised)."""


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


def _when(t: pd.Timestamp, calendar: Calendar | None = None) -> str:
    """A date alone for a timestamp at midnight (not on an intraday calendar), else the timestamp."""
    intraday = calendar is not None and calendar.rule == "intraday"
    return str(t.date()) if not intraday and t == t.normalize() else str(t)


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

    def made_up(self) -> set[str]:
        """The price columns the training data lacked (trainables.data fell back to close / 0 for them)."""
        try:
            if self.embedded or self.data is None:
                return set(prices_io._embedded(self.embedded or self.asset or "SPX", "embedded")[1].fallbacks)
            if not files.is_remote(self.data) and os.path.isfile(self.data):
                return set(prices_io._read(self.data, self.column_names)[1].fallbacks)
        except DataError:
            pass
        return set()  # not readable here: taken as having every column


def _fitted_on_card(card: model_dir.ModelCard) -> FittedOn:
    d, src = card.data, dict(card.source or {})
    embedded = None
    if str(d.source).startswith("embedded"):
        embedded = d.asset or str(d.source).partition("(")[2].rstrip(")") or "SPX"
    data = src.get("data") if "data" in src else (None if embedded else d.source)
    return FittedOn(d.features, dict(d.columns or {}), d.asset, False, data, embedded)


def _record_sweep(record: dict) -> Sweep | None:
    """The sweep the record's checkpoint lives in (climbing from <sweep>/<trial>/units/<unit>/model)."""
    candidates, path = [], str(record.get("checkpoint") or "").rstrip("/")
    for _ in range(4):
        path = path.rsplit("/", 1)[0] if "/" in path else ""
        if path and not path.endswith(":/"):
            candidates.append(path)
    if record.get("trial_path"):
        candidates.append(str(record["trial_path"]).rstrip("/").rsplit("/", 1)[0])
    for path in candidates:
        if files.exists(files.join(path, "sweep.json")):
            try:
                return read_sweep(path)
            except ResultsError:
                return None
    return None


def _fitted_on_record(record: dict) -> FittedOn:
    sweep = _record_sweep(record)
    if sweep is None:  # a logged run or a moved checkpoint: the sweeps' defaults
        return FittedOn()
    spec, unit = sweep.spec, record.get("checkpoint_unit") or {}
    asset = unit.get("asset") or (sweep.assets[0] if len(sweep.assets) == 1 else None) or sweep.asset_name(None)
    data = spec.get("data")
    return FittedOn(
        spec.get("features") or "BASELINE_FEATURES",
        dict(spec.get("columns") or {}),
        asset or None,
        spec.get("fit") == "global",
        data,
        (asset or "SPX") if data is None else None,
    )


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


# ---------------------------------------------------------------------------- the model


class Forecaster:
    """A fitted model as loaded from a model directory or a best_model.json.

    `forecast(prices, horizon)` gives the next `horizon` steps after the last row of `prices` (a
    price file or DataFrame) as a tidy table; `forecast(UnitData, origins)` and `predict` are the
    adapter's own (an ensemble: its members' weighted mean). Any other attribute is the adapter's
    (`.config`, `.seed`, …); `.adapter` is the adapter itself (None for an ensemble).
    """

    def __init__(
        self,
        adapter: Adapter | None,
        model: str,
        fitted: FittedOn,
        card: model_dir.ModelCard | None = None,
        record: dict | None = None,
        members: list[tuple[Forecaster, float]] | None = None,
        path: str | None = None,
    ) -> None:
        self.adapter, self.model_name, self.fitted_on = adapter, model, fitted
        self.card, self.record, self.members, self.path = card, record, list(members or []), path

    def __getattr__(self, name: str) -> Any:
        adapter = self.__dict__.get("adapter")
        if name.startswith("__") or adapter is None:
            raise AttributeError(name)
        return getattr(adapter, name)

    def __repr__(self) -> str:
        return f"Forecaster({self.kind} {self.model_name}, horizon {self.trained_horizon}, from {self.path!r})"

    @property
    def kind(self) -> str:
        return "ensemble" if self.members else "single"

    @property
    def trained_horizon(self) -> int:
        """The steps the model forecasts (its trained horizon; an ensemble: its shortest member's)."""
        if self.members:
            return min(m.trained_horizon for m, _ in self.members)
        return int(self.adapter.horizon(self.adapter.config))

    @property
    def context_rows(self) -> int:
        if self.members:
            return max(m.context_rows for m, _ in self.members)
        return int(self.adapter.context_length(self.adapter.config))

    def reads_features(self) -> bool:
        return not self.members and self.model_name not in OWN_COLUMNS

    def feature_list(self, frame: pd.DataFrame) -> tuple[str, ...]:
        return feature_names(frame, self.fitted_on.features) if self.reads_features() else ()

    def rows_needed(self, frame: pd.DataFrame) -> int:
        """Rows before the origin the forecast reads: the context, and one before it for a
        differenced feature (so its first value is not the fill of a missing row)."""
        extra = 1 if set(self.feature_list(frame)) & DIFFERENCED else 0
        return max(self.context_rows, 1) + extra

    def columns_needed(self, frame: pd.DataFrame) -> set[str]:
        if self.model_name in OWN_COLUMNS:
            return set(OWN_COLUMNS[self.model_name])
        return {"close", *(c for f in self.feature_list(frame) for c in FEATURE_COLUMNS.get(f, ()))}

    # ------------------------------------------------------------------ the adapter's forecasts

    def forecast(self, data: Any, horizon: Any = None, **options: Any) -> Any:
        """`forecast(prices, horizon=None, asset=None, max_gap=2)`: the next steps after the last row
        (a DataFrame); `forecast(UnitData, origins)`: the adapter's Forecast at those origins."""
        if isinstance(data, UnitData):
            origins = options.pop("origins", horizon)
            if origins is None or options:
                raise TypeError("forecast(UnitData, origins) takes the origins and nothing else")
            return self.forecast_data(data, np.asarray(origins))
        return self.forecast_from(data, horizon, **options)[0]

    def forecast_data(self, data: UnitData, origins: np.ndarray) -> quantiles.Forecast:
        if not self.members:
            return self.adapter.forecast(data, origins)
        parts = [(m.forecast_data(data, origins), w) for m, w in self.members]
        h = min(f.point.shape[1] for f, _ in parts)
        point = sum(w * f.point[:, :h] for f, w in parts)
        return quantiles.Forecast(point, sum(w * f.quantiles[:, :h] for f, w in parts))

    def predict(self, data: UnitData, origins: np.ndarray) -> np.ndarray:
        if not self.members:
            return self.adapter.predict(data, origins)
        return self.forecast_data(data, origins).point

    # ------------------------------------------------------------------ from the last row

    def check_horizon(self, horizon: int | None) -> int:
        h = self.trained_horizon if horizon is None else horizon
        if isinstance(h, bool) or not isinstance(h, int | np.integer):
            raise ForecastError(f"horizon must be a whole number of steps, got {horizon!r}")
        if h < 1:
            raise ForecastError(f"horizon must be at least 1, got {h}")
        if h > self.trained_horizon:
            raise ForecastError(
                f"horizon {h} is beyond what the model forecasts: {self.trained_horizon} step(s) (its trained horizon)"
            )
        return int(h)

    def forecast_from(
        self, prices: str | os.PathLike | pd.DataFrame, horizon: int | None = None,
        asset: str | None = None, max_gap: int = MAX_GAP,
    ) -> tuple[pd.DataFrame, pd.DataFrame]:  # fmt: skip
        """(the forecast table, the prices it was made from) — see the module doc."""
        h = self.check_horizon(horizon)
        if self.members:
            return self._ensemble_from(prices, h, asset, max_gap)
        frame, reading, chosen = read_prices(prices, self.fitted_on, asset)
        source = reading.source
        self._check_columns(frame, reading)
        n, needed = len(frame), self.rows_needed(frame)
        if n < needed:
            why = f"its context of {self.context_rows} row(s)" + (
                ", and one before it for the returns feature" if needed > self.context_rows else ""
            )
            raise ForecastError(
                f"{source} has {n} row(s): too few for the model, which reads the last {needed} ({why})"
            )
        calendar = Calendar.of(frame["timestamp"])
        _check_gaps(frame["timestamp"].iloc[-needed:], calendar, max_gap, needed)
        self._check_start(frame)
        full = self.trained_horizon  # the adapter forecasts its whole horizon (the TFT's decoder reads them all)
        future = calendar.after(frame["timestamp"].iloc[-1], full)
        data = self._unit_data(frame, future, chosen)
        result = self.adapter.forecast(data, np.array([n]))
        return tidy(future[:h], result.point[0, :h], result.quantiles[0, :h]), frame

    def _check_columns(self, frame: pd.DataFrame, reading: prices_io.Reading) -> None:
        lacking = set(reading.fallbacks) & self.columns_needed(frame)
        if lacking:
            lacking -= self.fitted_on.made_up()  # fitted on data without them too: read as the sweep did
        if lacking:
            names = ", ".join(c for c in PRICE_COLUMNS if c in lacking)
            reads = ", ".join(c for c in PRICE_COLUMNS if c in self.columns_needed(frame))
            raise ForecastError(
                f"{reading.source} has no {names} column{'s' if len(lacking) > 1 else ''}: the {self.model_name} model "
                f"reads {reads} and was fitted on prices that had them"
            )

    def _check_start(self, frame: pd.DataFrame) -> None:
        """The TFT reads each row's number (time_idx, a known input scaled on its training rows): its
        forecast is the one it would make on its own data only when the prices start where those did."""
        if self.model_name != "tft" or self.card is None:
            return
        first, fitted = frame["timestamp"].iloc[0], pd.Timestamp(self.card.data.first_timestamp)
        if first != fitted:
            warnings.warn(
                f"the TFT numbers rows from the first one it is given (time_idx, one of its inputs): these prices "
                f"start on {first}, the {self.card.data.rows} rows it was fitted on on {fitted}; give them from "
                "there for the forecast it makes on its own data",
                ForecastWarning,
                stacklevel=3,
            )

    def _unit_data(self, frame: pd.DataFrame, future: pd.DatetimeIndex, asset: str | None) -> UnitData:
        """The real rows, then one row per future timestamp with the last row's prices."""
        n, h = len(frame), len(future)
        last = frame.iloc[-1]
        ahead = pd.DataFrame({"timestamp": future, **{c: np.full(h, last[c], dtype="float64") for c in PRICE_COLUMNS}})
        ahead["timestamp"] = ahead["timestamp"].astype(frame["timestamp"].dtype)
        extended = pd.concat([frame, ahead], ignore_index=True)
        framed, names = add_features(extended, self.fitted_on.features)
        series = (asset or self.fitted_on.asset) if self.fitted_on.global_fit else None
        return UnitData(framed, names, Window(0, n), Window(n, n), Window(n, n + h), asset=series)

    def _ensemble_from(self, prices, h: int, asset: str | None, max_gap: int) -> tuple[pd.DataFrame, pd.DataFrame]:
        tables, frame = [], None
        for member, _ in self.members:
            table, read = member.forecast_from(prices, h, asset, max_gap)
            tables.append(table)
            frame = read if frame is None else frame
        for t in tables[1:]:
            if not t["timestamp"].equals(tables[0]["timestamp"]):
                raise ForecastError("the ensemble's members forecast different timestamps")
        weights = [w for _, w in self.members]
        shared = [c for c in quantiles.columns() if all(c in t for t in tables)]
        out = tables[0][["timestamp", "step"]].copy()
        for col in ["point", *shared]:
            out[col] = sum(w * t[col].to_numpy() for t, w in zip(tables, weights))
        return out, frame

    # ------------------------------------------------------------------ what it is

    def summary(self) -> dict:
        """What the model is, in plain JSON (GET / of analysis/serve.py)."""
        out: dict[str, Any] = {
            "model": self.model_name,
            "kind": self.kind,
            "horizon": self.trained_horizon,
            "context_length": self.context_rows,
            "quantiles": list(quantiles.LEVELS),
            "path": self.path,
        }
        if not self.members:
            out.update(features=self.fitted_on.features, asset=self.fitted_on.asset, config=self.adapter.config)
        else:
            out["members"] = [
                {"model": m.model_name, "weight": w, "horizon": m.trained_horizon} for m, w in self.members
            ]
        if self.card is not None:
            d = self.card.data
            out["trained_on"] = {"source": d.source, "asset": d.asset, "rows": d.rows, "first": d.first_timestamp,
                                 "last": d.last_timestamp, "fingerprint": d.fingerprint}  # fmt: skip
            out.update(verdicts=self.card.verdicts, created=self.card.created, git_sha=self.card.git_sha)
        if self.record is not None:
            r = self.record
            out.update(config_id=r.get("config_id"), sweep=r.get("sweep"), checkpoint_unit=r.get("checkpoint_unit"),
                       verdict=r.get("verdict"), versus_bar=r.get("versus_bar"))  # fmt: skip
        return json.loads(json.dumps(out, default=_plain))


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def _check_gaps(stamps: pd.Series, calendar: Calendar, max_gap: int, needed: int) -> None:
    ts = pd.DatetimeIndex(stamps)
    for a, b in zip(ts[:-1], ts[1:]):
        missing = calendar.missing(a, b)
        if missing > max_gap:
            first = calendar.after(a, 1)[0]
            unit = calendar.unit + ("s" if missing > 1 else "")
            raise ForecastError(
                f"a gap in the rows the model reads (the last {needed}): no row for {_when(first, calendar)} "
                f"({missing} {unit} missing between {_when(a, calendar)} and {_when(b, calendar)}; "
                f"at most {max_gap} in a row are taken as holidays)"
            )


def tidy(future: pd.DatetimeIndex, point: np.ndarray, q: np.ndarray) -> pd.DataFrame:
    """The forecast table: timestamp, step, point and each quantile level resolved at every step."""
    table = pd.DataFrame({"timestamp": future, "step": np.arange(1, len(future) + 1), "point": point})
    q = quantiles.sort(q)  # as the sweep stores them (unit.score)
    for i, col in enumerate(quantiles.columns()):
        if np.isfinite(q[:, i]).all():
            table[col] = q[:, i]
    if not np.isfinite(table["point"]).all():
        raise ForecastError("the model's forecast is not finite (NaN or inf)")
    return table


# ---------------------------------------------------------------------------- loading


def load_model(source: str | os.PathLike | dict, device: str = "cpu") -> Forecaster:
    """A Forecaster from a model directory (analysis/model_dir.py) or an exported best-model record
    (a best_model.json path or its dict)."""
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if isinstance(source, str) and model_dir.is_model_dir(source):
        return _from_dir(source, device)
    if isinstance(source, str):
        text = files.read_text(source)
        if text is None:
            raise ModelSourceError(f"{source!r} is neither a model directory (no model.json) nor a best_model.json")
        try:
            record = json.loads(text)
        except json.JSONDecodeError:
            raise ModelSourceError(f"{source!r} is not an exported best-model record (not JSON)") from None
    else:
        record = source
    if not isinstance(record, dict) or "checkpoint" not in record or "model" not in record:
        raise ModelSourceError(f"{source!r} is not an exported best-model record")
    try:
        entry = registry.get(record["model"])
    except registry.UnknownModel as exc:
        raise ModelSourceError(str(exc).strip("\"'")) from None
    adapter = entry.adapter().load(files.local_copy(record["checkpoint"]), device)
    path = source if isinstance(source, str) else None
    return Forecaster(adapter, record["model"], _fitted_on_record(record), record=record, path=path)


def _from_dir(path: str, device: str) -> Forecaster:
    try:
        card = model_dir.read(path)
    except model_dir.ModelDirError as exc:
        raise ModelSourceError(str(exc)) from None
    if card.kind == "ensemble":
        if not card.members:
            raise ModelSourceError(f"{path!r}: an ensemble model directory without members")
        members = [(_from_dir(files.join(path, m["dir"]), device), float(m["weight"])) for m in card.members]
        total = sum(w for _, w in members)
        if any(w < 0 for _, w in members) or not np.isclose(total, 1.0, atol=1e-6):
            raise ModelSourceError(f"{path!r}: ensemble weights must be ≥ 0 and sum to 1, not {total:g}")
        return Forecaster(None, "ensemble", FittedOn(), card=card, members=members, path=path)
    if card.kind != "single":
        raise ModelSourceError(f"{path!r}: unknown model directory kind {card.kind!r}")
    try:
        entry = registry.get(card.model)
    except registry.UnknownModel as exc:
        raise ModelSourceError(str(exc).strip("\"'")) from None
    adapter = entry.adapter().load(files.local_copy(files.join(path, model_dir.WEIGHTS)), device)
    return Forecaster(adapter, card.model, _fitted_on_card(card), card=card, path=path)


# ---------------------------------------------------------------------------- writing, plotting


def write_table(table: pd.DataFrame, path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    if ext == ".csv":
        files.write_text(path, table.to_csv(index=False))
    elif ext in (".parquet", ".pq"):
        files.write_parquet(path, table)
    else:
        raise ForecastError(f"--out {path!r} must end in .csv or .parquet")
    return path


def fan_plot(history: pd.DataFrame, table: pd.DataFrame, title: str, path: str) -> str:
    """The recent closes, then the forecast's point with its 80 % and 95 % bands (where the model has them)."""
    import matplotlib.dates as mdates

    from analysis.plots import BLUE, RED, _save, plt

    fig, ax = plt.subplots(figsize=(10, 4.2))
    ax.plot(history["timestamp"], history["close"], color="black", lw=1.3, label="close")
    last_t, last_y = history["timestamp"].iloc[-1], float(history["close"].iloc[-1])
    t = pd.DatetimeIndex([last_t, *table["timestamp"]])
    for band, (lo, hi) in sorted(quantiles.BANDS.items(), reverse=True):  # the wide band under the narrow one
        low, high = quantiles.column(lo), quantiles.column(hi)
        if low in table and high in table:
            alpha = 0.18 if band == 95 else 0.32
            ax.fill_between(t, [last_y, *table[low]], [last_y, *table[high]], color=BLUE, alpha=alpha, lw=0,
                            label=f"{band} % band")  # fmt: skip
    ax.plot(t, [last_y, *table["point"]], color=RED, lw=1.6, marker="o", ms=3, label="forecast (point)")
    ax.axvline(last_t, color="grey", ls=":", lw=1)
    locator = mdates.AutoDateLocator(maxticks=8)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    ax.set_ylabel("price")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="upper left")
    return _save(fig, path)


# ---------------------------------------------------------------------------- command line


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python analysis/forecast.py", description=__doc__.split("\n")[0])
    p.add_argument("model", help="a model directory (model.json) or a best_model.json")
    p.add_argument("--data", required=True, help="the latest prices (CSV or parquet), sorted by time")
    p.add_argument("--horizon", type=int, help="steps to forecast (default and at most: the model's horizon)")
    p.add_argument("--out", help="write the forecast here (.csv or .parquet); default: print it")
    p.add_argument("--plot", help="draw the fan plot here (PNG)")
    p.add_argument("--asset", help="the asset to forecast, when the file has an asset column")
    p.add_argument("--max-gap", type=int, default=MAX_GAP, help=f"missing steps in a row taken as holidays ({MAX_GAP})")
    p.add_argument("--device", default="cpu", help="torch device (cpu, cuda)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.out and os.path.splitext(args.out)[1].lower() not in OUT_EXTENSIONS:
            raise ForecastError(f"--out {args.out!r} must end in .csv or .parquet")
        if args.plot and not args.plot.lower().endswith(".png"):
            raise ForecastError(f"--plot {args.plot!r} must end in .png")
        if args.max_gap < 0:
            raise ForecastError(f"--max-gap must be at least 0, got {args.max_gap}")
        model = load_model(args.model, args.device)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ForecastWarning)
            table, frame = model.forecast_from(args.data, args.horizon, asset=args.asset, max_gap=args.max_gap)
    except (ForecastError, ResultsError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for w in caught:
        if issubclass(w.category, ForecastWarning):
            print(f"warning: {w.message}", file=sys.stderr)
        else:
            warnings.showwarning(w.message, w.category, w.filename, w.lineno)
    last = _when(frame["timestamp"].iloc[-1])
    if args.out:
        write_table(table, args.out)
        calendar = Calendar.of(frame["timestamp"]).words()
        print(f"wrote {args.out}: {len(table)} step(s) of {model.model_name} after {last} ({calendar})")
    else:
        print(table.to_string(index=False))
    if args.plot:
        shown = frame.tail(max(PLOT_HISTORY, min(model.context_rows, 4 * PLOT_HISTORY)))
        fan_plot(shown, table, f"{model.model_name}: {len(table)}-step forecast after {last}", args.plot)
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
