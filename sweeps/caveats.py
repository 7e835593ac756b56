"""Warnings a sweep prints at the door: its input is usable, but weaker than it looks (made-up
columns, too few forecast origins for the tests against naive). Printed after every check, so a
bad input's error line stands alone."""

from __future__ import annotations

import sys

from trainables import folds as fold_mod
from trainables.data import Reading, fallback_warning
from trainables.folds import Fold

MIN_ORIGINS = 30  # fewer forecast origins per window leave the DM test with little power


def fallbacks(readings: dict[str | None, Reading]) -> None:
    """One warning line per file whose open/high/low/volume were made up (a universe's assets share theirs)."""
    for line in dict.fromkeys(fallback_warning(r) for r in readings.values()):
        if line:
            print(line, file=sys.stderr)


def few_origins(folds: tuple[Fold, ...], frames: dict, context: int, horizon: int, stride: int) -> None:
    """A warning, not an error: too few origins per val / test window for the tests against naive."""
    from trainables.unit import origins

    stamps = [frame["timestamp"] for frame in frames.values()]
    for split, at in (("val", 1), ("test", 2)):
        counts = [len(origins(fold_mod.windows(f, ts)[at], context, horizon, stride)) for f in folds for ts in stamps]
        if min(counts) < MIN_ORIGINS:
            need = (MIN_ORIGINS - 1) * stride + horizon  # rows that hold MIN_ORIGINS origins
            fix = f"use --{split}-size {need}" + (" or a smaller --origin-stride" if stride > 1 else "")
            print(
                f"warning: {split} windows give {min(counts)} forecast origin(s) at horizon {horizon}, stride "
                f"{stride} (fewer than {MIN_ORIGINS} leave the tests vs naive weak): {fix}",
                file=sys.stderr,
            )
