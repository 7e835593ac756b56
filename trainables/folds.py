"""Walk-forward folds: explicit date ranges or generated, validated against the data."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from trainables.adapter import Window

DATE_FIELDS = ("train_start", "train_end", "val_start", "val_end", "test_start", "test_end")


class FoldError(ValueError):
    """A fold is malformed or does not fit the data; the message names the fold and field."""


@dataclass(frozen=True)
class Fold:
    """One walk-forward split; every date is inclusive, formatted YYYYMMDD."""

    name: str
    train_start: str
    train_end: str
    val_start: str
    val_end: str
    test_start: str
    test_end: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


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
    try:
        return pd.Timestamp(str(value)).strftime("%Y%m%d")
    except (ValueError, TypeError):
        raise FoldError(f"{where}: {value!r} is not a date (use YYYYMMDD)") from None


def windows(fold: Fold, timestamps: pd.Series) -> tuple[Window, Window, Window]:
    """Row windows (train, val, test) of `fold` in a frame with these sorted timestamps."""
    ts = timestamps.to_numpy()

    def rows(start: str, end: str) -> Window:
        lo = int(np.searchsorted(ts, np.datetime64(pd.Timestamp(start)), side="left"))
        hi = int(np.searchsorted(ts, np.datetime64(pd.Timestamp(end) + pd.Timedelta(days=1)), side="left"))
        return Window(lo, hi)

    return (
        rows(fold.train_start, fold.train_end),
        rows(fold.val_start, fold.val_end),
        rows(fold.test_start, fold.test_end),
    )


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
    first, last = timestamps.iloc[0], timestamps.iloc[-1]
    for fold in folds:
        d = {k: pd.Timestamp(getattr(fold, k)) for k in DATE_FIELDS}
        for a, b in zip(DATE_FIELDS, DATE_FIELDS[1:]):
            strict = a.endswith("_end")
            if d[a] > d[b] or (strict and d[a] == d[b]):
                raise FoldError(f"fold {fold.name!r}: {a} {getattr(fold, a)} must come before {b} {getattr(fold, b)}")
        if d["train_start"] < first.normalize() or d["test_end"] > last:
            raise FoldError(
                f"fold {fold.name!r}: dates {fold.train_start}..{fold.test_end} fall outside the data "
                f"({first:%Y%m%d}..{last:%Y%m%d})"
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
    end = min(s.iloc[-1] for s in stamps)
    days = pd.Series(pd.concat(stamps, ignore_index=True).unique()).sort_values(ignore_index=True)
    return days[days <= end].reset_index(drop=True)


def generate(
    timestamps: pd.Series, n: int, val_size: int, test_size: int, window: str = "expanding", train_size: int = 1000
) -> list[Fold]:
    """`n` walk-forward folds ending at the last row; each test window follows the previous one.

    Expanding folds train from the first row; rolling folds on the last `train_size` rows.
    """
    total = len(timestamps)
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
        dates = [timestamps.iloc[b].strftime("%Y%m%d") for b in bounds]
        folds.append(Fold(f"wf_{i + 1}", *dates))
    return folds
