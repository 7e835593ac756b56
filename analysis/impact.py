"""Which hyperparameter mattered: deltas vs the baseline (OFAT) and Optuna importances (grid/Optuna).

Deltas are taken unit by unit: a configuration's metric on (fold, seed) minus the baseline's
on the same (fold, seed), so only units both have count.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from analysis.ranking import direction, hyperparameters
from trainables import registry

# fANOVA splits the variance of a random forest fitted to the configurations' scores: on a handful
# of points that forest, not the hyperparameters, decides the shares, so small sweeps get none.
MIN_IMPORTANCE_CONFIGS = 10


def model_baseline(model: str) -> dict | None:
    """The BASELINE dict of the model's search-space module (plain data: no Ray, no model package)."""
    try:
        return dict(registry.get(model).spaces().BASELINE)
    except (registry.UnknownModel, ImportError, AttributeError):
        return None


def sweep_baseline(spec: dict) -> dict | None:
    """A sweep's baseline configuration: the model's BASELINE with the sweep's training_config on top."""
    base = model_baseline(spec["model"])
    if base is None:
        return None
    return {**base, **{k: v for k, v in (spec.get("training_config") or {}).items() if k != "seed"}}


def _configs(runs: pd.DataFrame) -> dict[str, dict]:
    first = runs.drop_duplicates("config_id")
    return {cid: json.loads(text) for cid, text in zip(first["config_id"], first["config"])}


def _differences(a: dict, b: dict) -> list[str]:
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def find_baseline(runs: pd.DataFrame, baseline: dict | None = None, exact: bool = False) -> str | None:
    """config_id of the baseline among one model's runs.

    The completed configuration equal to `baseline` if there is one; otherwise the completed one
    differing from all the others in the fewest parameters in total (in an OFAT sweep: the baseline),
    unless `exact`.
    """
    configs = _configs(runs)
    done = set(runs.loc[runs["status"] == "complete", "config_id"])
    if not done:
        return None
    if baseline is not None:
        for cid in sorted(done):
            if not _differences(configs[cid], baseline):
                return cid
    if exact:
        return None
    # Failed configurations still tell which one the others were varied from.
    total = {cid: sum(len(_differences(configs[cid], other)) for other in configs.values()) for cid in done}
    return min(total, key=lambda cid: (total[cid], cid))


def _change(config: dict, baseline: dict) -> tuple[str, str]:
    keys = _differences(config, baseline)
    return "+".join(keys), ", ".join(_text(config.get(k)) for k in keys)


def _text(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def impact_detail(runs: pd.DataFrame, metric: str, baseline_id: str, mode: str | None = None) -> pd.DataFrame:
    """One row per (configuration ≠ baseline) × unit shared with the baseline: its delta vs the baseline."""
    mode = direction(metric, mode)
    done = runs[(runs["status"] == "complete") & runs[metric].notna()] if metric in runs else runs.iloc[:0]
    base = done[done["config_id"] == baseline_id][["fold_id", "seed", metric]].drop_duplicates(["fold_id", "seed"])
    others = done[done["config_id"] != baseline_id]
    configs = _configs(done)
    if base.empty or others.empty or baseline_id not in configs:
        return pd.DataFrame(columns=["param", "value", "config_id", "fold", "seed", "metric", "run_value",
                                     "baseline_value", "delta", "delta_pct", "better"])  # fmt: skip
    merged = others.merge(base.rename(columns={metric: "baseline_value"}), on=["fold_id", "seed"])
    changes = {cid: _change(cfg, configs[baseline_id]) for cid, cfg in configs.items()}
    out = pd.DataFrame(
        {
            "param": [changes[c][0] for c in merged["config_id"]],
            "value": [changes[c][1] for c in merged["config_id"]],
            "config_id": merged["config_id"],
            "fold": merged["fold"],
            "seed": merged["seed"],
            "metric": metric,
            "run_value": merged[metric],
            "baseline_value": merged["baseline_value"],
        }
    )
    out["delta"] = out["run_value"] - out["baseline_value"]
    out["delta_pct"] = out["delta"] / out["baseline_value"].abs() * 100
    out["better"] = out["delta"] < 0 if mode == "min" else out["delta"] > 0
    return out.sort_values(["param", "value", "fold", "seed"], ignore_index=True)


def _value_key(value: str) -> tuple:
    try:
        return (0, float(value), "")
    except ValueError:
        return (1, 0.0, value)


def impact_summary(detail: pd.DataFrame) -> pd.DataFrame:
    """Per parameter and value: mean delta vs the baseline, its spread over units (population std)
    and how often it helps (win_rate); `improves` when the mean delta points the metric's good way."""
    cols = ["param", "value", "config_id", "units", "mean_value", "baseline_mean", "mean_delta", "std_delta",
            "min_delta", "max_delta", "mean_delta_pct", "win_rate", "improves"]  # fmt: skip
    if detail.empty:
        return pd.DataFrame(columns=cols)
    g = detail.groupby(["param", "value"], sort=False)
    out = g.agg(
        config_id=("config_id", "first"),
        units=("delta", "size"),
        mean_value=("run_value", "mean"),
        baseline_mean=("baseline_value", "mean"),
        mean_delta=("delta", "mean"),
        std_delta=("delta", lambda d: float(np.std(d))),
        min_delta=("delta", "min"),
        max_delta=("delta", "max"),
        mean_delta_pct=("delta_pct", "mean"),
        win_rate=("better", "mean"),
    ).reset_index()
    mode = direction(str(detail["metric"].iloc[0]))
    out["improves"] = out["mean_delta"] < 0 if mode == "min" else out["mean_delta"] > 0
    effect = out.groupby("param")["mean_delta"].transform(lambda d: d.abs().max())
    out["_effect"], out["_key"] = effect, out["value"].map(_value_key)
    out = out.sort_values(["_effect", "param", "_key"], ascending=[False, True, True])
    return out[cols].reset_index(drop=True)


def importances(ranked: pd.DataFrame, metric: str, mode: str | None = None) -> pd.DataFrame:
    """Optuna fANOVA importances of the varying hyperparameters for `metric`, over the ranked
    configurations whose units are all done (status ok); empty when fewer than
    MIN_IMPORTANCE_CONFIGS or nothing varies."""
    mode = direction(metric, mode)
    ok = ranked[(ranked["status"] == "ok") & ranked[metric].notna()]
    params = hyperparameters(ok)
    empty = pd.DataFrame(columns=["param", "importance", "evaluator", "configs"])
    if len(ok) < MIN_IMPORTANCE_CONFIGS or not params:
        return empty
    import optuna  # its fANOVA (a random forest) costs ~1 s of imports: only when there is something to fit
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    dists = {}
    for col in params:
        values = [_plain(v) for v in ok[col]]
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        if numeric and all(isinstance(v, int) for v in values):
            dists[col] = IntDistribution(min(values), max(values))
        elif numeric:
            lo, hi = min(values), max(values)
            dists[col] = FloatDistribution(lo, hi, log=lo > 0 and hi / lo >= 10)
        else:
            dists[col] = CategoricalDistribution(sorted({str(v) for v in values}))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize" if mode == "min" else "maximize")
    for _, row in ok.iterrows():
        p = {
            c: (str(_plain(row[c])) if isinstance(dists[c], CategoricalDistribution) else _plain(row[c]))
            for c in params
        }
        study.add_trial(optuna.trial.create_trial(params=p, distributions=dists, value=float(row[metric])))
    scores = optuna.importance.get_param_importances(
        study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0), normalize=True
    )
    rows = [(k.removeprefix("config/"), float(v), "fanova", len(ok)) for k, v in scores.items()]
    return pd.DataFrame(rows, columns=empty.columns)


def _plain(value):
    return value.item() if hasattr(value, "item") else value
