"""Python API over a results directory, for notebooks and inference code.

from analysis.results import Results, load_model
res = Results("results")
res.best("val_rel_mae")                       # dict: model, config, metrics, verdict, checkpoint …
res.rank("val_rel_mae")                       # every configuration: beats_naive, in_mcs, …
res.significance("val_rel_mae")               # SPA p-values, MCS size, what was left out
res.top_k(5, "val_sharpe", model="tft")       # DataFrame
res.compare(["val_pct_mae", "test_pct_mae"])  # one row per model's best, at one horizon
res.impact("tft", "hidden_size")              # deltas vs the baseline per value
res.best_per_asset("val_rel_mae")             # a universe: each asset's best next to the winner
res.log_run("tft", {...}, {"val_pct_mae": 1.2}, checkpoint_path="my_model/")
res.refit("models/best")                      # the best configuration retrained on every row
model = load_model("best_model.json")         # or a model directory; model.forecast("latest.csv", 5)
"""

from __future__ import annotations

import pandas as pd

from analysis import bar, impact, logged, markdown, verdicts
from analysis.best import best_record, export
from analysis.runs import ResultsError, find_sweeps, load_runs, read_sweep
from analysis.tables import DELTA_MODES
from trainables import store

DEFAULT_COMPARE = ("test_{m}", "test_rel_mae", "test_mase", "test_sharpe", "test_max_drawdown")


class Results:
    """Every sweep (and logged run) under `path`, or the one sweep at `path`; `sweeps` keeps only those names."""

    def __init__(self, path: str = "results", refresh: bool = False, sweeps: list[str] | None = None) -> None:
        self.path = str(path)
        if not store.is_dir(self.path):
            raise ResultsError(f"results path {self.path!r} does not exist")
        self.sweeps = sweeps
        self._refresh = refresh
        self._runs: pd.DataFrame | None = None

    @property
    def runs(self) -> pd.DataFrame:
        """The tidy table: one row per configuration × fold × seed."""
        if self._runs is None:
            runs = load_runs(self.path, refresh=self._refresh)
            self._runs = runs if self.sweeps is None else runs[runs["sweep"].isin(self.sweeps)]
        return self._runs

    def reload(self) -> Results:
        self._runs = None
        return self

    def _select(self, model: str | list[str] | None) -> pd.DataFrame:
        models = [model] if isinstance(model, str) else model
        runs = self.runs if models is None else self.runs[self.runs["model"].isin(models)]
        if runs.empty:
            raise ResultsError(f"no runs{' of ' + ', '.join(models) if models else ''} under {self.path!r}")
        return runs

    def rank(
        self,
        metric: str = "val_pct_mae",
        model: str | list[str] | None = None,
        mode: str | None = None,
        horizon: int | None = None,
        settings: verdicts.Settings | None = verdicts.Settings(),
    ) -> pd.DataFrame:
        """Every configuration at one horizon, best first, with `beats_naive`, `in_mcs` … (settings=None: without)."""
        return verdicts.rank_with_verdicts(self._select(model), metric, mode, horizon, settings)[0]

    def significance(
        self, metric: str = "val_pct_mae", model: str | None = None, horizon: int | None = None, **settings
    ) -> dict:
        """SPA p-values (val, test), MCS size, configurations tested, horizon and what was left out."""
        ranked = self.rank(metric, model, horizon=horizon, settings=verdicts.Settings(**settings))
        return {**ranked.attrs["verdicts"], "horizon": ranked.attrs["horizon"], "left_out": ranked.attrs["left_out"]}

    def best(
        self, metric: str = "val_pct_mae", model: str | None = None, mode: str | None = None, horizon: int | None = None
    ) -> dict | None:
        """The best complete configuration: model, config, metrics, verdict, checkpoint, unit models."""
        ranked, runs = verdicts.rank_with_verdicts(self._select(model), metric, mode, horizon)
        return best_record(ranked, runs)

    def best_per_asset(
        self, metric: str = "val_pct_mae", model: str | None = None, mode: str | None = None
    ) -> pd.DataFrame:
        """A universe: per asset, its best complete configuration ranked on that asset's units alone
        (`config_id`, `metric`), and the universe winner's value there (`winner_value`)."""
        from analysis import universe

        runs = self._select(model)
        winner = self.best(metric, model, mode)
        table = universe.best_per_asset(runs, metric, mode)
        return universe.versus_winner(table, runs, winner["config_id"] if winner else None, metric)

    def top_k(
        self, k: int = 5, metric: str = "val_pct_mae", model: str | None = None, mode: str | None = None
    ) -> pd.DataFrame:
        """The k best complete configurations."""
        ranked = self.rank(metric, model, mode)
        return ranked[ranked["status"] == "ok"].head(k).reset_index(drop=True)

    def compare(
        self,
        metrics: list[str] | None = None,
        models: list[str] | None = None,
        metric: str = "val_pct_mae",
        mode: str | None = None,
        horizon: int | None = None,
    ) -> pd.DataFrame:
        """One row per model: its best configuration on `metric`, with the `metrics` columns (mean, std)
        over the folds × seeds shared by every model and its verdicts; the overall winner first.

        Only configurations of one horizon compete (default: the most common): `attrs["horizon"]`,
        and `attrs["left_out"]` names the sweeps of another horizon. SPA and the MCS run over every
        configuration of every model at that horizon."""
        ranked = self.rank(metric, models, mode, horizon)
        wanted = [metric, *(metrics or [m.format(m=metric.removeprefix("val_")) for m in DEFAULT_COMPARE])]
        cols = list(dict.fromkeys(c for m in wanted for c in (m, f"{m}_std") if c in ranked))
        judged = [c for c in (*verdicts.ROW_KEYS[:5], *verdicts.COMPARED) if c in ranked]
        keep = ["rank", "model", "config_id", "sweeps", "status", "robust_score", *cols, *judged, "units_compared"]
        # Each model's best, and every baseline (drift, AutoETS, … are methods of their own).
        marked = bar.marks(ranked["model"])
        best = ranked[marked | ~ranked["model"].duplicated()][keep + ["config"]].reset_index(drop=True)
        chosen = (ranked.attrs.get("verdicts") or {}).get("best_baseline")
        best.insert(2, "name", [bar.name(m, c) for m, c in zip(best["model"], best["config"])])
        best["versus_bar"] = [bar.words(r, chosen) for r in best.to_dict(orient="records")]
        best.attrs.update(ranked.attrs)
        return best

    def impact(self, model: str, param: str | None = None, metric: str = "val_pct_mae") -> pd.DataFrame:
        """Per sweep of `model` with a baseline: mean delta vs the baseline per value of `param` (all if None)."""
        out = []
        for path in find_sweeps(self.path):
            sweep = read_sweep(path)
            if sweep.model != model or (self.sweeps is not None and sweep.name not in self.sweeps):
                continue
            runs = self.runs[(self.runs["sweep"] == sweep.name) & (self.runs["model"] == model)]
            base = impact.find_baseline(runs, impact.sweep_baseline(sweep.spec), exact=sweep.mode not in DELTA_MODES)
            if base is not None:
                out.append(impact.impact_summary(impact.impact_detail(runs, metric, base)).assign(sweep=sweep.name))
        table = pd.concat(out, ignore_index=True) if out else impact.impact_summary(pd.DataFrame())
        if param is not None:
            table = table[table["param"].str.split("+").apply(lambda keys: param in keys)]
        return table.reset_index(drop=True)

    def report(self, path: str | None = None, metric: str = "val_pct_mae") -> str:
        """Markdown comparison of every model's best configuration; written to `path` if given."""
        compare = self.compare(metric=metric)
        left = compare.attrs.get("left_out") or []
        notes = [
            f"Sweeps: {', '.join(sorted(self.runs['sweep'].unique()))}. Results: `{self.path}`.",
            f"Compared at a horizon of {compare.attrs.get('horizon')} step(s)"
            + (f"; left out (another horizon): {'; '.join(left)}." if left else "."),
        ]
        if compare.attrs.get("verdicts"):
            from analysis.text import verdict_text

            notes += ["", "```", verdict_text(compare.attrs["verdicts"]), "```"]
        text = markdown.comparison_report(compare, metric, notes)
        if path is not None:
            store.write_text(path, text)
        return text

    def log_run(
        self,
        model: str,
        hyperparams: dict,
        metrics: dict,
        checkpoint_path: str | None = None,
        notes: str = "",
        **unit,
    ) -> dict:
        """Record a run trained outside the sweeps (validated; see analysis.logged for fold/seed/sweep)."""
        record = logged.log_run(self.path, model, hyperparams, metrics, checkpoint_path, notes, **unit)
        self.reload()
        return record

    def refit(
        self,
        out: str,
        metric: str = "val_pct_mae",
        model: str | None = None,
        data: str | None = None,
        overwrite: bool = False,
    ) -> str:
        """Retrain the best configuration on every row up to the last (analysis.refit); returns the
        model directory written at `out` (forecast from it with load_model(out).forecast(frame, h))."""
        from analysis.refit import refit

        best = self.best(metric, model)
        if best is None:
            raise ResultsError("no configuration has every fold × seed done: nothing to refit")
        return refit(best, data=data, out=out, overwrite=overwrite)

    def export(self, path: str, metric: str = "val_pct_mae", model: str | None = None, mode: str | None = None) -> dict:
        """Write the best run's hand-off JSON to `path` (load it with `load_model(path)`)."""
        best = self.best(metric, model, mode)
        if best is None:
            raise ResultsError("no configuration has every fold × seed done: nothing to export")
        export(best, path)
        return best


def load_model(exported: str | dict, device: str = "cpu"):
    """The fitted model of an exported best run (a best_model.json path or its dict) or of a model
    directory (analysis/model_dir.py), as an analysis.forecast.Forecaster: `.forecast(prices, h)` the
    next h steps after the last row of a price file or DataFrame; `.predict(UnitData, origins)`,
    `.forecast(UnitData, origins)` and every other attribute are the fitted adapter's (`.adapter`).
    A source that is neither raises ResultsError (analysis.forecast.ModelSourceError)."""
    from analysis.forecast import load_model as load

    return load(exported, device)
