"""Files that hand an Optuna sweep on: its trials, best trial and top-k configurations.

`optuna_top_k_configs.json` is what `sweeps/<model>.py --mode priority --configs FILE` reads,
so the top configurations can be re-run over more folds × seeds. Ranks come from our ranking
(complete configurations only): Optuna records a pruned trial's partial value as COMPLETE.
"""

from __future__ import annotations

import json

import pandas as pd

from analysis.runs import Sweep
from trainables import layout, store

DB = layout.OPTUNA_DB


def study_trials(sweep: Sweep) -> pd.DataFrame | None:
    """Optuna's own record of the study (trials_dataframe), or None without a local study file."""
    db = store.join(sweep.path, DB)
    if store.is_remote(db) or not store.exists(db):
        return None
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = f"sqlite:///{db}"
    names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
    if not names:
        return None
    study = optuna.load_study(study_name=sweep.name if sweep.name in names else names[0], storage=storage)
    return study.trials_dataframe()


def history(runs: pd.DataFrame, ranked: pd.DataFrame) -> pd.DataFrame:
    """Robust score of each trial in the order Tune started them (NaN if not every unit is done)."""
    trials = runs.drop_duplicates("trial_id").sort_values("trial_id")[["trial_id", "config_id"]]
    score = ranked.set_index("config_id")["robust_score"].where(ranked.set_index("config_id")["status"] == "ok")
    out = trials.assign(number=range(len(trials)), value=trials["config_id"].map(score))
    return out.reset_index(drop=True)


def top_configs(ranked: pd.DataFrame, metric: str, k: int) -> list[dict]:
    """The k best complete configurations, each with its exact hyperparameters and scores."""
    ok = ranked[ranked["status"] == "ok"].head(k)
    return [
        {
            "rank": int(r["rank"]),
            "config_id": r["config_id"],
            "config": json.loads(r["config"]),
            metric: r[metric],
            f"{metric}_std": r[f"{metric}_std"],
            "robust_score": r["robust_score"],
        }
        for _, r in ok.iterrows()
    ]


def write_handoff(sweep: Sweep, runs: pd.DataFrame, ranked: pd.DataFrame, metric: str, k: int = 5) -> dict[str, str]:
    """Write the optuna_* files next to the study; returns name → path."""
    out = {key: store.join(sweep.path, name) for key, name in layout.OPTUNA_FILES.items()}
    top = top_configs(ranked, metric, k)
    trials = study_trials(sweep)
    if trials is None:  # no study file (remote storage): our per-trial view instead
        trials = history(runs, ranked).merge(ranked[["config_id", "status", metric, "config"]], on="config_id")
    store.write_text(out["trials_csv"], trials.to_csv(index=False))
    store.write_text(out["trials_json"], trials.to_json(orient="records", date_format="iso", indent=1))
    store.write_text(out["best_trial"], store.dumps(top[0] if top else None))
    payload = {"metric": metric, "mode": ranked.attrs.get("mode"), "sweep": sweep.name, "configs": top}
    store.write_text(out["top_k_configs"], store.dumps(payload))
    db = store.join(sweep.path, DB)
    summary = {
        "study_name": sweep.name,
        "storage": f"sqlite:///{db}" if store.exists(db) and not store.is_remote(db) else None,
        "trials": int(runs["trial_id"].nunique()),
        "trials_complete": int((ranked["status"] == "ok").sum()),
        "metric": metric,
        "best": top[0] if top else None,
        "dashboard": f"optuna-dashboard sqlite:///{db}" if store.exists(db) else None,
        # Add the sweep's data flags and more --folds / --seeds to widen the evaluation.
        "rerun_top_k": f"python sweeps/{sweep.model}.py --mode priority --configs {out['top_k_configs']}"
        f" --name {sweep.name}_topk",
    }
    store.write_text(out["summary"], store.dumps(summary))
    return out
