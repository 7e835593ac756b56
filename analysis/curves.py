"""Tables read from the units' own files: learning curves (TensorBoard) and test forecasts."""

from __future__ import annotations

import io
import os

import pandas as pd

from trainables import layout, registry, store


def _scalars(directory: str, tags: tuple[str, ...]) -> list[tuple[str, int, float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(directory, size_guidance={"scalars": 0})
    acc.Reload()
    have = set(acc.Tags().get("scalars", []))
    return [(tag, e.step, e.value) for tag in tags if tag in have for e in acc.Scalars(tag)]


def curve_tags(model: str) -> tuple[str, ...]:
    """The loss tags a model's adapter writes (its registry entry); every known tag for an unknown model."""
    if model in registry.MODELS:
        return registry.get(model).curve_tags
    return tuple(dict.fromkeys(t for e in registry.MODELS.values() for t in e.curve_tags))


def learning_curves(runs: pd.DataFrame, config_ids: list[str]) -> pd.DataFrame:
    """Per-epoch/step losses of every unit of these configurations, from `<trial>/tensorboard/<unit>/`,
    under the tags each unit's model declares. Local results only (event files are read in place);
    empty if TensorBoard is not installed."""
    cols = ["config_id", "fold", "seed", "tag", "step", "value"]
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        return pd.DataFrame(columns=cols)
    units = runs[(runs["status"] == "complete") & runs["config_id"].isin(config_ids)]
    rows = []
    for _, u in units.drop_duplicates(["config_id", "fold", "seed"]).iterrows():
        path = layout.TrialDir(str(u["trial_path"])).tensorboard(str(u["unit"]))
        if store.is_remote(path) or not os.path.isdir(path):
            continue
        rows += [(u["config_id"], u["fold"], u["seed"], *s) for s in _scalars(path, curve_tags(str(u["model"])))]
    return pd.DataFrame(rows, columns=cols)


def forecasts(runs: pd.DataFrame, config_id: str, split: str = "test") -> pd.DataFrame:
    """The stored forecasts of one configuration's units on `split` (predictions.parquet), with fold and seed."""
    units = runs[(runs["status"] == "complete") & (runs["config_id"] == config_id)]
    units = units.drop_duplicates(["fold_id", "seed"])
    tables = []
    for _, u in units.iterrows():
        raw = store.maybe_read_bytes(layout.UnitDir(os.path.dirname(str(u["checkpoint"]))).predictions)
        if raw is None:
            continue
        t = pd.read_parquet(io.BytesIO(raw))
        t = t[t["split"] == split].assign(
            asset=u.get("asset", ""), fold=u["fold"], fold_end=u["fold_end"], seed=u["seed"]
        )
        tables.append(t)
    if not tables:
        return pd.DataFrame(
            columns=["split", "origin", "step", "timestamp", "y_true", "y_pred", "y_naive", "asset", "fold", "seed"]
        )
    return pd.concat(tables, ignore_index=True)
