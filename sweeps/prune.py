"""Bound a sweep's disk use: keep the model weights of the K best configurations only."""

from __future__ import annotations

from trainables import store


def keep_top_k(sweep_path: str, metric: str, k: int) -> int:
    """Delete the unit model directories of every configuration ranked below `k`; returns how many.

    Records, predictions and TensorBoard curves stay, so every table and plot can still be rebuilt.
    """
    from analysis.ranking import rank_configs
    from analysis.runs import sweep_runs

    runs = sweep_runs(sweep_path)
    ranked = rank_configs(runs, metric)
    keep = set(ranked.loc[ranked["status"] == "ok", "config_id"].head(k))
    removed = 0
    for config_id, model_dir in zip(runs["config_id"], runs["checkpoint"]):
        if model_dir and config_id not in keep and store.exists(model_dir):
            store.delete_dir(model_dir)
            removed += 1
    return removed
