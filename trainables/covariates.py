"""Covariates: inputs a model reads besides the target (`--covariates`).

A sweep declares its covariates once (`--covariates vix=asset:VIX,volume,event:known`); each
configuration's `covariates` hyperparameter names the set it reads ("none", "vix", "vix+volume"),
so the set is a sweep axis like any other. A declaration is `[name=]source[:known]`:

- `source` is a column of --data (the price columns open/high/low/volume included), or
  `asset:X`, another asset's close (of --data's asset column, else the embedded series X);
- `:known` marks a covariate known ahead (a calendar, a scheduled event): the model may read it
  at the rows it forecasts. Anything else is past-only: read before the origin only.

Every covariate becomes the frame column `cov_<name>`, aligned on the target's timestamps: a row
takes the latest value at or before its time (carried forward from the past only, never back).
Rows before every covariate has a value are left out of the sweep, for every configuration, so
that all configurations are scored at the same origins.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

KEY = "covariates"  # the hyperparameter naming a configuration's covariate set
NONE = "none"  # the empty set
PREFIX = "cov_"  # frame columns holding covariates
ASSET = "asset:"
KNOWN = ":known"
PRICES = ("open", "high", "low", "close", "volume")
_NAME = re.compile(r"[A-Za-z0-9_]+")


class CovariateError(ValueError):
    """A covariate declaration or set is invalid; the message names it and the way out."""


@dataclass(frozen=True)
class Covariate:
    """One declared covariate: a column of the data or another asset's close."""

    name: str
    column: str | None = None  # a column of --data (None: `asset`)
    asset: str | None = None  # another asset, whose close is the covariate
    known: bool = False  # known ahead: readable at the rows being forecast

    @property
    def frame_column(self) -> str:
        return PREFIX + self.name

    @property
    def text(self) -> str:
        """The declaration, written out in full (what a sweep stores)."""
        source = f"{ASSET}{self.asset}" if self.asset is not None else str(self.column)
        return f"{self.name}={source}{KNOWN if self.known else ''}"

    def describe(self) -> str:
        source = f"{self.asset}'s close" if self.asset is not None else f"column {self.column!r}"
        return f"{self.name} ({source}, {'known ahead' if self.known else 'past only'})"


def parse(value: str | list | tuple) -> tuple[Covariate, ...]:
    """`--covariates vix=asset:VIX,volume` / `"covariates": ["asset:VIX", "volume"]` → Covariates."""
    items = [p.strip() for p in value.split(",")] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not all(isinstance(i, str) and i.strip() for i in items):
        raise CovariateError(f"--covariates must be a comma list of [name=]column or [name=]asset:X, got {value!r}")
    out = tuple(_one(i.strip()) for i in items)
    names = [c.name for c in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise CovariateError(f"--covariates names {dup[0]!r} twice (give one a name: other={dup[0]}...)")
    return out


def _one(text: str) -> Covariate:
    name, sep, source = text.partition("=")
    if not sep:
        name, source = "", text
    known = source.endswith(KNOWN)
    source = source[: -len(KNOWN)] if known else source
    if source.startswith(ASSET):
        asset = source[len(ASSET) :]
        if not asset:
            raise CovariateError(f"--covariates {text!r}: asset: needs an asset name (asset:VIX)")
        if known:
            raise CovariateError(f"--covariates {text!r}: another asset's price is not known ahead (drop :known)")
        covariate = Covariate(name or asset.lower(), asset=asset)
    else:
        if not source:
            raise CovariateError(f"--covariates {text!r}: name a column of --data or asset:X")
        covariate = Covariate(name or source, column=source, known=known)
    if not _NAME.fullmatch(covariate.name) or covariate.name == NONE:
        raise CovariateError(
            f"--covariates {text!r}: the name {covariate.name!r} must be letters, digits or _ and not "
            f"{NONE!r} (give one: name=...)"
        )
    return covariate


def everything(declared: tuple[Covariate, ...]) -> str:
    """The set of every declared covariate: a configuration's default."""
    return "+".join(c.name for c in declared) or NONE


def members(value: object, declared: tuple[Covariate, ...], where: str = KEY) -> tuple[Covariate, ...]:
    """The covariates a set names ("none" → (); "vix+volume" → those two), or CovariateError."""
    if not isinstance(value, str) or not value:
        raise CovariateError(f"{where} must be a string such as 'none' or 'vix+volume', got {value!r}")
    if value == NONE:
        return ()
    by_name = {c.name: c for c in declared}
    names = value.split("+")
    for name in names:
        if name not in by_name:
            known = ", ".join(by_name) or "none declared: add --covariates"
            raise CovariateError(f"{where} {value!r}: {name!r} is not a declared covariate ({known})")
    if len(set(names)) != len(names):
        raise CovariateError(f"{where} {value!r} names a covariate twice")
    return tuple(by_name[n] for n in names)


def columns(config: dict, declared: tuple[Covariate, ...]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The frame columns a configuration reads: (past-only, known-ahead), in declaration order."""
    if not declared:
        return (), ()
    chosen = set(members(config.get(KEY, everything(declared)), declared))
    ordered = [c for c in declared if c in chosen]
    return tuple(c.frame_column for c in ordered if not c.known), tuple(c.frame_column for c in ordered if c.known)


def data_columns(declared: tuple[Covariate, ...]) -> tuple[str, ...]:
    """The columns of --data the declarations read, besides the prices (the reader keeps them)."""
    return tuple(c.column for c in declared if c.column is not None and _price(c.column) is None)


def _price(column: str) -> str | None:
    norm = re.sub(r"[\s_]+", "_", column.strip().lower())
    return norm if norm in PRICES else None


def attach(
    frame: pd.DataFrame,
    declared: tuple[Covariate, ...],
    other: Callable[[str], pd.DataFrame],
    made_up: tuple[str, ...] = (),
    where: str = "the data",
) -> pd.DataFrame:
    """`frame` with a `cov_<name>` column per covariate, from its first row where all have a value.

    `other(asset)` gives another asset's validated frame; `made_up` names the price columns the
    reader filled in for lack of a column (no covariate may read those).
    """
    if not declared:
        return frame
    out = frame.copy()
    for c in declared:
        if c.asset is not None:
            out[c.frame_column] = _aligned(out["timestamp"], other(c.asset), c, where)
            continue
        price = _price(str(c.column))
        if price in made_up:
            raise CovariateError(f"covariate {c.name!r}: {where} has no {price} column (the reader made it up)")
        source = price or str(c.column)
        if source not in out.columns:
            raise CovariateError(f"covariate {c.name!r}: column {c.column!r} is not in {where}")
        # Carried forward from the past only: a gap never takes a later value.
        out[c.frame_column] = pd.to_numeric(out[source], errors="coerce").astype("float64").ffill()
    cols = [c.frame_column for c in declared]
    values = out[cols].to_numpy()
    if np.isinf(values).any():
        raise CovariateError(f"a covariate of {where} holds inf ({', '.join(cols)})")
    complete = ~np.isnan(values).any(axis=1)
    if not complete.any():
        raise CovariateError(f"the covariates have no row where all of them have a value in {where}")
    first = int(complete.argmax())
    return out.iloc[first:].reset_index(drop=True)


def attach_all(
    frames: dict, declared: tuple[Covariate, ...], data: str | None, columns, readings: dict | None = None
) -> dict:
    """`attach` on each asset's frame of a sweep (`data`: its --data file, None: embedded), another
    asset read once however many frames align on it; `readings` (by asset) say what was made up."""
    from trainables.data import Columns

    columns = columns or Columns()
    others: dict[str, pd.DataFrame] = {}

    def other(asset: str) -> pd.DataFrame:
        if asset not in others:
            others[asset] = other_asset(data, asset, columns)
        return others[asset]

    out = {}
    for asset, frame in frames.items():
        where = (f"{data!r}" if data else "the embedded data") + (f" (asset {asset})" if asset is not None else "")
        made_up = readings[asset].fallbacks if readings and asset in readings else ()
        out[asset] = attach(frame, declared, other, made_up, where)
    return out


def other_asset(data: str | None, asset: str, columns) -> pd.DataFrame:
    """Another asset's prices for `asset:X`: from --data's asset column when it holds X, else the
    embedded series X (DataError when neither has it)."""
    from trainables.data import EMBEDDED, DataError, read_prices, read_universe

    if data is not None:
        try:
            return read_universe(data, (asset,), columns)[0][asset]
        except DataError:
            if asset not in EMBEDDED:
                raise DataError(
                    f"covariate asset:{asset}: {data!r} holds no asset {asset!r} and it is not embedded "
                    f"({', '.join(EMBEDDED)})"
                ) from None
    if asset not in EMBEDDED:
        raise DataError(f"covariate asset:{asset}: not in the embedded data ({', '.join(EMBEDDED)}); give --data")
    return read_prices(None, asset)[0]


def _aligned(stamps: pd.Series, source: pd.DataFrame, c: Covariate, where: str) -> np.ndarray:
    """`source`'s close at each of `stamps`: its latest value at or before that time."""
    left, right = stamps.dt.tz is not None, source["timestamp"].dt.tz is not None
    if left != right:
        raise CovariateError(
            f"covariate {c.name!r}: {where} and asset {c.asset!r} disagree on time zones (one has one, the other none)"
        )
    target = pd.DataFrame({"timestamp": stamps.to_numpy(), "_row": np.arange(len(stamps))})
    other = source[["timestamp", "close"]].rename(columns={"close": "_value"})
    if right:
        other = other.assign(timestamp=other["timestamp"].dt.tz_convert(stamps.dt.tz))
    merged = pd.merge_asof(target.sort_values("timestamp"), other.sort_values("timestamp"), on="timestamp")
    return merged.sort_values("_row")["_value"].to_numpy(dtype="float64")


def first_rows(frames: dict, trimmed: dict) -> list[str]:
    """Header lines for the assets whose first rows the covariates left out."""
    lines = []
    for asset, frame in frames.items():
        before = trimmed.get(asset, 0)
        if before:
            start = pd.Timestamp(frame["timestamp"].iloc[0]).date()
            label = f"{asset}: " if asset is not None else ""
            lines.append(f"{label}the first {before} rows lack a covariate value: the sweep starts at {start}")
    return lines
