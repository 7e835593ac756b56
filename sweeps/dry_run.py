"""What a sweep would run, printed by `--dry-run`: the data as read, the folds, configurations
and units; nothing written and Ray not started."""

from __future__ import annotations

import pandas as pd

from sweeps.driver import Prepared, _listed
from sweeps.spec import SweepSpec
from trainables import folds as fold_mod
from trainables import registry
from trainables.data import Reading


def report(spec: SweepSpec, prepared: Prepared) -> str:
    """What `--dry-run` prints: the data as read, the folds' windows, and what the sweep would run."""
    lines = [f"Dry run of {spec.model} sweep {spec.name!r}: nothing written, Ray not started"]
    lines += _read_lines(prepared)
    lines.append(f"Features ({spec.features}): {', '.join(prepared.features) or 'none'}")
    if spec.declared:
        lines.append(f"Covariates: {', '.join(c.describe() for c in spec.declared)}")
    lines += _fold_lines(prepared)
    lines += _count_lines(spec, prepared)
    lines.append(f"Results would go to {spec.sweep_dir}")
    return "\n".join(lines)


def _read_lines(prepared: Prepared) -> list[str]:
    """Per source: which of its columns fed which field, then each asset's rows and first/last timestamp."""
    groups: list[tuple[Reading, list[str | None]]] = []  # a file's assets share one Reading
    for asset, reading in prepared.readings.items():
        group = next((g for g in groups if g[0] is reading), None)
        if group is None:
            groups.append((reading, [asset]))
        else:
            group[1].append(asset)
    lines = []
    for reading, assets in groups:
        lines += [f"Read {reading.source}:", *(f"  {line}" for line in _fed(reading))]
        if reading.unused:
            lines.append(f"  not read: {', '.join(map(repr, reading.unused))}")
        for asset in assets:
            label = f"  {asset}: " if asset is not None else "  "
            frame = prepared.frames.get(asset)
            if frame is None:
                lines.append(f"{label}left out (--drop-short-assets): {prepared.dropped.get(asset, '')}")
            else:
                ts = frame["timestamp"]
                lines.append(f"{label}{len(frame)} rows, {_when(ts.iloc[0])} .. {_when(ts.iloc[-1])}")
    return lines


def _fed(reading: Reading) -> list[str]:
    """'field <- column' for each field read, then the fields that fell back and why."""
    read = []
    for name, column in reading.fed.items():
        if column is not None:
            index = " (index)" if column in reading.from_index else ""
            read.append(f"{name} <- {column!r}{index}{' (target)' if name == 'close' else ''}")
    lines = ["columns: " + "; ".join(read)]
    prices = [n for n in reading.fallbacks if n != "volume"]
    made = [f"{', '.join(prices)} <- close"] if prices else []
    made += ["volume <- 0"] if "volume" in reading.fallbacks else []
    if made:
        why = "a close-only series" if reading.embedded else "no such columns"
        lines.append(f"fell back: {'; '.join(made)} ({why})")
    return lines


def _when(stamp) -> str:
    stamp = pd.Timestamp(stamp)
    return str(stamp.date()) if stamp.tz is None and stamp == stamp.normalize() else str(stamp)


def _fold_lines(prepared: Prepared) -> list[str]:
    lines = [f"Folds ({len(prepared.folds)}):"]
    for fold in prepared.folds:
        lines.append(f"  {fold.name}: {fold.train_start} .. {fold.test_end}")
        for asset, frame in prepared.frames.items():
            ts = frame["timestamp"]
            for part, win in zip(("train", "val", "test"), fold_mod.windows(fold, ts)):
                span = f"  {_when(ts.iloc[win.start])} .. {_when(ts.iloc[win.stop - 1])}" if len(win) else ""
                who = f"{asset} " if asset is not None else ""
                lines.append(f"    {who}{part:<5} {len(win):>6} rows{span}")
    return lines


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'s' if n != 1 else ''}"


def _count_lines(spec: SweepSpec, prepared: Prepared) -> list[str]:
    """How many configurations and (asset ×) fold × seed units the sweep would run."""
    folds, seeds, assets = len(prepared.folds), len(spec.seeds), len(prepared.assets)
    per = folds * seeds * max(assets, 1)
    axes = " × ".join(_count(n, what) for n, what in ((folds, "fold"), (seeds, "seed"), (assets, "asset")) if n)
    if spec.mode == "optuna":
        configs, total = f"Optuna: up to --num-samples {spec.num_samples}", f"up to {spec.num_samples * per}"
    else:
        n = len(_listed(spec, spec.baseline(registry.get(spec.model).spaces().BASELINE)))
        configs, total = str(n), str(n * per)
    lines = [f"Configurations: {configs} (mode {spec.mode}); units: {axes} = {per} each, {total} in all"]
    notes = [
        (spec.fit == "global", "--fit global: one model per (fold, seed) on every asset, scored on each"),
        (spec.scheduler == "asha", "--scheduler asha: configurations may stop after early folds"),
        (spec.merge, "--merge: units the stored sweep already holds are skipped"),
        (spec.resume, "--resume: the stored experiment continues; finished units are not rerun"),
    ]
    return lines + [f"  {note}" for on, note in notes if on]
