"""What a sweep prints while it runs, instead of Tune's status tables (`--verbose` brings those back).

A header, then a line per finished unit (configuration, fold, seed, metric, seconds) and per failed
configuration (its reason in one line), and a progress line: units done / total, elapsed, ETA and
the best configuration so far. On a terminal the progress line is redrawn in place and also shows
the running units' training (step / planned steps and val loss, from each validation they
report); elsewhere (CI, a log file) it is printed half-way and at the end, so the output stays
short and line-based. A configuration ASHA stops early gets a line saying where it stopped.

Unit lines come from the units' record.json files (written when a fold's units finish), polled
at most once a second on local storage; on s3:// the per-fold results count the units instead.
"""

from __future__ import annotations

import glob
import json
import math
import os
import shutil
import sys
import time
from typing import TextIO

from ray.tune import Callback

from trainables import layout
from trainables.ids import config_id

POLL_S = 1.0


def clock(seconds: float) -> str:
    """12s, 3m05s, 1h02m."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def header(
    model: str,
    mode: str,
    configs: int | str,
    folds: int,
    seeds: int,
    resources: str,
    where: str,
    assets: int = 0,
    fit: str = "",
    sized: str = "",
) -> str:
    per = folds * seeds * max(assets, 1)
    axes = f"{assets} assets × " if assets else ""
    units = (
        configs * per
        if isinstance(configs, int)
        else f"up to {configs}×{axes.replace(' assets × ', '×')}{folds}×{seeds}"
    )
    return (
        f"Sweep {model} · mode {mode} · {configs} configurations × {axes}{folds} folds × {seeds} seeds = {units} units\n"
        f"  {resources} · results: {where}"
        + (f"\n  sized by {sized}" if sized else "")
        + ("\n  fit global: one model per (fold, seed) on every asset, scored on each" if fit == "global" else "")
    )


def _where(record: dict) -> str:
    """A unit's fold, after its asset in a universe."""
    fold = str(record.get("fold", "?"))
    return f"{record['asset']} {fold}" if record.get("asset") else fold


def _reason(trial) -> str:
    """The last line of a failed trial's error (Tune keeps the traceback in error.txt)."""
    path = getattr(trial, "error_file", None)
    try:
        with open(path) as f:
            lines = [ln.strip() for ln in f if ln.strip()]
        return lines[-1][:200] if lines else "unknown error"
    except (OSError, TypeError):
        return "unknown error (see the trial's error.txt)"


class Progress(Callback):
    """Tune callback that prints the sweep's progress (see the module docstring)."""

    def __init__(self, configs: int, units_per_config: int, metric: str, experiment_path: str) -> None:
        # Plain values only: Tune pickles its callbacks with the experiment (for --resume).
        self.configs, self.per_config, self.metric, self.path = configs, units_per_config, metric, experiment_path
        self.local = "://" not in experiment_path
        self._reset()

    def _reset(self) -> None:
        self.start = time.monotonic()
        self.total = self.configs * self.per_config  # less the units failed configurations will not run
        self.seen: set[str] = set()
        self.seen_by_trial: dict[str, int] = {}
        self.units_by_trial: dict[str, int] = {}
        self.best: tuple[float, str] | None = None
        self.running: dict[str, str] = {}  # trial id → its running unit's last validation, as shown
        self._last_poll = 0.0
        self._half = 0  # halves of the way printed (non-terminal output)
        self._drawn = False

    @property
    def stream(self) -> TextIO:
        return sys.stdout

    @property
    def tty(self) -> bool:
        return self.stream.isatty()

    # ------------------------------------------------------------------ Tune's hooks

    def setup(self, **info) -> None:  # noqa: ARG002 (Tune's signature)
        self._reset()  # a resumed sweep restores this callback from its pickle
        if self.tty:
            self._progress()  # the bar from the start, before any trial has started

    def on_step_begin(self, iteration, trials, **info) -> None:  # noqa: ARG002 (Tune's signature)
        now = time.monotonic()
        if now - self._last_poll >= POLL_S:
            self._last_poll = now
            # Running trials only: a finished one's units were read when it reported.
            self._poll([t for t in trials if t.status == "RUNNING"])

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:  # noqa: ARG002
        if result.get("intermediate"):  # a validation inside a running unit (trainables.nested._Live)
            self.running[trial.trial_id] = (
                f"{config_id(trial.config)} {result['unit']} step {result['unit_step']}/{result['unit_steps']} "
                f"val loss {result['unit_val_loss']:.4g}"
            )
            if self.tty:
                self._progress()
            return
        self.running.pop(trial.trial_id, None)
        self.units_by_trial[trial.trial_id] = int(result.get("units_done", 0))
        score = result.get("robust_score")
        if score is not None and math.isfinite(score) and (self.best is None or score < self.best[0]):
            self.best = (float(score), config_id(trial.config))
        self._poll([trial])

    def on_trial_error(self, iteration, trials, trial, **info) -> None:  # noqa: ARG002
        self.running.pop(trial.trial_id, None)
        self.total -= max(0, self.per_config - self._ran(trial))
        self._line(f"  ✗ {config_id(trial.config)} failed: {_reason(trial)}")

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:  # noqa: ARG002
        self._poll([trial])
        last, ran = self.running.pop(trial.trial_id, None), self._ran(trial)
        if ran < self.per_config:  # stopped by the scheduler (ASHA): its other units never run
            self.total -= self.per_config - ran
            where = f" (last validation: {last.split(' ', 1)[1]})" if last else ""
            self._line(f"  ⏹ {config_id(trial.config)} stopped by ASHA after {ran}/{self.per_config} units{where}")

    def _ran(self, trial) -> int:
        return max(self.units_by_trial.get(trial.trial_id, 0), self.seen_by_trial.get(trial.trial_id, 0))

    def on_experiment_end(self, trials, **info) -> None:  # noqa: ARG002
        self._poll(trials)
        if self.tty and self._drawn:
            self.stream.write("\n")
        elif not self.tty and self._half < 2:
            self._write(self.bar())
        self.stream.flush()

    # ------------------------------------------------------------------ state and drawing

    def done(self) -> int:
        return max(len(self.seen), sum(self.units_by_trial.values()))

    def bar(self) -> str:
        done, elapsed = self.done(), time.monotonic() - self.start
        width = 24
        filled = min(width, width * done // self.total) if self.total > 0 else width
        eta = clock(elapsed / done * (self.total - done)) if 0 < done < self.total else "—"
        best = f" · best {self.best[1]} (robust {self.best[0]:.4g})" if self.best else ""
        line = (
            f"[{'█' * filled}{'·' * (width - filled)}] {done}/{self.total} units · {clock(elapsed)} · ETA {eta}{best}"
        )
        if self.tty and self.running:  # cut to the terminal: a wrapped line cannot be redrawn in place
            line = (line + " · " + " | ".join(self.running.values()))[: shutil.get_terminal_size().columns - 1]
        return line

    def _poll(self, trials) -> None:
        if self.local:
            ids = {t.trial_id: config_id(t.config) for t in trials}
            for trial_id in ids:
                pattern = os.path.join(self.path, layout.trial_dirname(trial_id), layout.UNITS, "*", layout.RECORD)
                for path in sorted(glob.glob(pattern)):
                    if path not in self.seen and self._unit(path, ids[trial_id]):
                        self.seen_by_trial[trial_id] = self.seen_by_trial.get(trial_id, 0) + 1
        self._progress()

    def _unit(self, path: str, config: str) -> bool:
        try:
            with open(path) as f:
                record = json.load(f)
        except (OSError, ValueError):  # being written: read it next time
            return False
        self.seen.add(path)
        value = (record.get("metrics") or {}).get(self.metric, float("nan"))
        shared = " (shared)" if record.get("shared_from") else ""
        self._line(
            f"  ✓ {config:<10}  {_where(record):<8} seed {record.get('seed', '?'):<5} "
            f"{self.metric} {value:.4g}  {float(record.get('train_seconds', 0.0)):.1f}s{shared}"
        )
        return True

    def _progress(self) -> None:
        if self.tty:
            self.stream.write("\r\033[K" + self.bar())
            self._drawn = True
            self.stream.flush()
            return
        half = 2 * self.done() // self.total if self.total > 0 else 2
        if half > self._half:
            self._half = half
            self._write(self.bar())

    def _line(self, text: str) -> None:
        if self.tty and self._drawn:
            self.stream.write("\r\033[K")
        self._write(text)
        if self.tty:
            self.stream.write(self.bar())
            self.stream.flush()

    def _write(self, text: str) -> None:
        self.stream.write(text + "\n")
        self.stream.flush()
