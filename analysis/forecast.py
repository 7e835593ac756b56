"""Forecast the next H steps after the last row of a price table, from an exported model.

    python analysis/forecast.py models/spx --data latest.csv --horizon 5 --out forecast.csv --plot fan.png
    python analysis/forecast.py results/best_model.json --data latest.parquet      # prints the table

The model, the forecast table and what is bad input: analysis/forecaster.py; how the prices are read,
the calendar of the future timestamps and the gap check: analysis/prices.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import os
import warnings

import pandas as pd

from analysis.forecaster import Forecaster, ForecastWarning, ModelSourceError, load_model
from analysis.prices import MAX_GAP, Calendar, ForecastError, when
from analysis.runs import ResultsError
from trainables import quantiles, store
from trainables.data import DataError

# What other code imports from here, besides the command line's own names.
__all__ = ["Calendar", "ForecastError", "ForecastWarning", "Forecaster", "ModelSourceError", "load_model", "main"]

PLOT_HISTORY = 120  # rows of history the fan plot shows at least (more when the context is longer)
OUT_EXTENSIONS = (".csv", ".parquet", ".pq")


# ---------------------------------------------------------------------------- writing, plotting


def write_table(table: pd.DataFrame, path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    if ext == ".csv":
        store.write_text(path, table.to_csv(index=False))
    elif ext in (".parquet", ".pq"):
        store.write_parquet(path, table)
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
    last = when(frame["timestamp"].iloc[-1])
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
