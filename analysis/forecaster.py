"""The exported model, loaded (a model directory or a best_model.json), and its forecast of the next
H steps after the last row of a price table; analysis/forecast.py is its command line.

    from analysis.results import load_model
    model = load_model("models/spx")             # a model directory (analysis/model_dir.py) or a best_model.json
    table = model.forecast("latest.csv", 5)      # or a DataFrame of prices; horizon default: the model's

The model is a model directory (analysis/refit.py, analysis/ensemble.py: model.json + weights/, or an
ensemble of member directories, which forecasts the weighted mean of its members' points and of each
quantile level) or a best_model.json (analysis/best.py: the chosen unit's model; the feature set and
column names come from its sweep's sweep.json).

The table: `timestamp`, `step` (1..H), `point`, and `q0.025` … `q0.975` (trainables.quantiles.LEVELS)
when the model gives a distribution. It holds no NaN: a level the model's draws cannot resolve (fewer
than 39 sampled paths leave 0.025 and 0.975 open) is left out, and a point-only model has no q column.

How: H future rows follow the last row (timestamps on the data's calendar, analysis/prices.py;
prices copied from the last row) and the adapter forecasts from origin n = the number of real rows,
exactly as a sweep forecasts from an origin inside its data: the adapter contract lets no forecast
read a row at or after its origin, except the known-ahead calendar features
(trainables.features.KNOWN_AHEAD), which are computed for the future rows (the TFT's decoder reads
them; Kronos reads the future timestamps).

Bad input is one line (ForecastError; exit code 2 in analysis/forecast.py, HTTP 400 in
analysis/serve.py), and nothing is written: a horizon beyond the model's, too few rows for its
context, a column the model reads missing (it falls back to close in trainables.data; an error here
unless the model was fitted on data that lacked it too), another asset than the model's, unsorted or
duplicate timestamps, and a gap in the rows the model reads (analysis/prices.py).
"""

from __future__ import annotations

import json
import os
import warnings
from typing import Any

import numpy as np
import pandas as pd

from analysis import model_dir
from analysis.bar import covariate_set
from analysis.prices import MAX_GAP, Calendar, FittedOn, ForecastError, check_gaps, read_prices
from analysis.runs import ResultsError, Sweep, read_sweep
from trainables import data as prices_io
from trainables import layout, quantiles, registry, store
from trainables.adapter import Adapter, UnitData, Window
from trainables.covariates import NONE as NO_COVARIATES
from trainables.data import PRICE_COLUMNS
from trainables.features import add_features, feature_names

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


class ForecastWarning(UserWarning):
    """The forecast is made but may differ from the one the model would make on its own data."""


class ModelSourceError(ForecastError, ResultsError):
    """Not a model directory or an exported best-model record (a ResultsError too, as load_model raised)."""


# ---------------------------------------------------------------------------- what a model was fitted on


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
        if layout.SweepDir(path).is_sweep():
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
        reads = covariate_set(self.adapter.config)
        if reads not in (None, NO_COVARIATES):
            raise ForecastError(
                f"this {self.adapter.name} model reads covariates ({reads}): forecasting from a price file is not "
                "built for covariates yet; call forecast(UnitData, origins) with the cov_* columns in the frame"
            )
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
        check_gaps(frame["timestamp"].iloc[-needed:], calendar, max_gap, needed)
        self._check_start(frame)
        full = self.trained_horizon  # the adapter forecasts its whole horizon (the TFT's decoder reads them all)
        future = calendar.after(frame["timestamp"].iloc[-1], full)
        data = self._unit_data(frame, future, chosen)
        result = self.adapter.forecast(data, np.array([n]))
        return tidy(future[:h], result.point[0, :h], result.quantiles[0, :h]), frame

    def _check_columns(self, frame: pd.DataFrame, reading: prices_io.Reading) -> None:
        lacking = set(reading.fallbacks) & self.columns_needed(frame)
        if lacking:
            lacking -= self.fitted_on.made_up  # fitted on data without them too: read as the sweep did
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
        text = store.maybe_read_text(source)
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
    adapter = entry.adapter().load(store.local_copy(record["checkpoint"]), device)
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
        members = [(_from_dir(store.join(path, m["dir"]), device), float(m["weight"])) for m in card.members]
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
    adapter = entry.adapter().load(store.local_copy(store.join(path, model_dir.WEIGHTS)), device)
    return Forecaster(adapter, card.model, _fitted_on_card(card), card=card, path=path)
