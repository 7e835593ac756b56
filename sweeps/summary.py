"""The end of every sweep: regenerate all analysis artefacts, print the ranking and where things went."""

from __future__ import annotations

import sys
import threading
import traceback

from ray.tune import Callback

from sweeps import imports
from sweeps.spec import SweepSpec
from trainables import layout

# What the report imports on top of the driver's own (~2-3 s of CPU on a small machine).
REPORT_IMPORTS = (
    "analysis.report",
    "analysis.text",
    "arch.bootstrap",
    "analysis.garch",  # arch's volatility models (~1 s): the GARCH baseline of the distribution verdicts
    "tensorboard.backend.event_processing.event_accumulator",
)
_prepared: list[threading.Thread] = []


def prepare() -> None:
    """Start the report's imports (and its plot workers) in the background; harmless to repeat."""
    if _prepared:
        return
    from analysis import drawing

    drawing.warm()

    _prepared.append(imports.in_background(REPORT_IMPORTS, "report-imports"))


class PrepareReport(Callback):
    """Prepares the report on the core the sweep's tail leaves idle: once fewer trials remain
    than run at once, no new trial will take the freed core before the end."""

    def __init__(self, configs: int, concurrent: int) -> None:
        self.configs, self.concurrent = configs, concurrent  # plain values: Tune pickles callbacks
        self.ended = 0

    def setup(self, **info) -> None:  # noqa: ARG002 (Tune's signature)
        self.ended = 0  # a resumed sweep restores this callback from its pickle

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:  # noqa: ARG002 (Tune's signature)
        self._ended()

    def on_trial_error(self, iteration, trials, trial, **info) -> None:  # noqa: ARG002 (Tune's signature)
        self._ended()

    def _ended(self) -> None:
        self.ended += 1
        if self.configs - self.ended < self.concurrent:
            prepare()


def _names(path: str, art: dict) -> list[str]:
    """The artefacts' paths relative to the sweep directory, report first."""
    keys = (layout.REPORT, layout.RANKING, layout.RUNS_PARQUET, layout.BEST_MODEL, "optuna_summary")
    prefix = path.rstrip("/") + "/"
    return [art[k].removeprefix(prefix) for k in keys if k in art] + [f"{layout.PLOTS}/"]


def describe(spec: SweepSpec, path: str, wall: float) -> str:
    """Write every artefact of the sweep at `path` (analysis.report) and return the summary text.

    Everything is read back from the stored files, exactly as `python analysis/report.py PATH` would.
    """
    prepare()  # if the sweep's tail did not: the plot workers' imports overlap the imports below
    from analysis.report import generate
    from analysis.text import best_text, ranking_text, verdict_text

    try:
        report = generate(path, metric=spec.metric, parallel=True)
    except Exception:  # the sweep's results are safe on disk; the report can be rebuilt later
        traceback.print_exc(file=sys.stderr)
        return f"\nSweep {spec.name} finished ({wall:.0f} s) but its report failed; rerun: python analysis/report.py {path}"
    ranked, art = report.tables.ranked, report.artefacts
    counts = report.summary["status_counts"]
    lines = [
        f"\nSweep {spec.name}: {len(ranked)} configurations, {counts.get('ok', 0)} complete, "
        f"{counts.get('failed', 0)} failed, {wall:.0f} s",
        ranking_text(ranked, spec.metric),
        "",
        verdict_text(report.summary["verdicts"]),
        "",
        best_text(report.best) if report.best else "Best model:   none (no configuration completed every unit)",
        "",
        f"Results:      {path}/  " + ", ".join(_names(path, art)),
        *[f"Note:         {n}" for n in report.tables.notes],
        f"TensorBoard:  tensorboard --logdir {spec.storage}",
    ]
    return "\n".join(line for line in lines if line is not None)
