"""Greedy weighted ensembles across models: Caruana's ensemble selection on the stored val forecasts.

Candidates: the K best complete configurations of every sweep under the results root (any
models, one horizon) by the ranking (analysis.verdicts.rank_with_verdicts, here without
verdicts), among those with stored forecasts. Their stored forecasts (each unit's
predictions.parquet) are aligned on the (asset,) fold × seed × origin × step points every
candidate holds, whole origins only (every step 1 … H).

Selection (Caruana, Niculescu-Mizil, Crew & Ksikes 2004, "Ensemble selection from libraries of
models"; AutoGluon's EnsembleSelection): start empty; at each of N iterations add, with
replacement, the candidate whose inclusion gives the lowest val loss of the ensemble (the plain
average of the picks so far); keep the picks up to the first iteration with the lowest loss
(AutoGluon's `use_best`, so the ensemble is never worse on val than its first pick, the best
single candidate); weight = times picked ÷ picks kept. N defaults to 25, the `ensemble_size` of
AutoGluon's tabular weighted ensemble (TabRepo: no gain above 25; its time-series ensemble uses
100). Ties (scores within 1e-9 relative): a candidate already picked first (AutoGluon's rule),
then the better-ranked one (AutoGluon: at random, seeded). The loss is the point MAE on val,
averaged as `val_mae` is: over each unit's points, then over units.

The ensemble forecasts the weighted mean of its members' point forecasts and, level by level,
of their quantiles: a quantile average (Vincentization), not a mixture of the members'
distributions (narrower than the mixture when members disagree); NaN where a member with
weight has no quantiles.

The run (judged on test, written, exported, in words): analysis/greedy_report.py.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
import pandas as pd

from trainables import layout, quantiles, store
from trainables.metrics import evaluate

DEFAULT_ITERATIONS = 25
DEFAULT_CANDIDATES = 10
TIE_RTOL = 1e-9
SPLITS = ("val", "test")
UNIT = ["asset", "fold_id", "fold_end", "seed"]
POINT = [*UNIT, "origin", "step"]
Q, RW = quantiles.columns(), quantiles.columns(quantiles.RW_PREFIX)


# ------------------------------------------------------------------ the selection


@dataclass
class Selection:
    """Caruana's greedy forward selection with replacement over M candidates."""

    weights: np.ndarray  # (M,), summing to 1: picks of each candidate ÷ picks kept
    counts: np.ndarray  # (M,) picks of each candidate among those kept
    order: list[int]  # the candidate picked at each iteration run
    trajectory: list[float]  # the ensemble's loss after each iteration run
    kept: int  # picks kept: up to the first iteration with the lowest loss


def select(
    preds: np.ndarray, y: np.ndarray, point_weights: np.ndarray | None = None, iterations: int = DEFAULT_ITERATIONS
) -> Selection:
    """Greedy selection on `preds` (M candidates × P points, best-ranked first) against `y` (P,);
    the loss is Σ_p w_p |ŷ_p − y_p| with w `point_weights` normalised (default: equal)."""
    preds, y = np.asarray(preds, dtype="float64"), np.asarray(y, dtype="float64")
    if preds.ndim != 2 or preds.shape[1] != len(y) or len(preds) == 0:
        raise ValueError(f"preds must be (candidates, {len(y)}), got {preds.shape}")
    if iterations < 1:
        raise ValueError(f"iterations must be at least 1, got {iterations}")
    w = np.ones(len(y)) if point_weights is None else np.asarray(point_weights, dtype="float64")
    w = w / w.sum()
    total, picked = np.zeros(len(y)), np.zeros(len(preds), dtype=int)
    order, trajectory = [], []
    for i in range(iterations):
        scores = np.abs((total + preds) / (i + 1) - y) @ w  # each candidate added to the picks so far
        low = scores.min()
        tied = np.flatnonzero(scores <= low + TIE_RTOL * abs(low))
        used = [int(j) for j in tied if picked[j]]
        pick = used[0] if used else int(tied[0])
        total += preds[pick]
        picked[pick] += 1
        order.append(pick)
        trajectory.append(float(scores[pick]))
        if len(preds) == 1:
            break
    low = min(trajectory)
    kept = next(i for i, t in enumerate(trajectory) if t <= low + TIE_RTOL * abs(low)) + 1
    counts = np.bincount(order[:kept], minlength=len(preds))
    return Selection(counts / kept, counts, order, trajectory, kept)


def combine(weights: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Σ_j w_j values_j over the members with weight (one without weight adds nothing, not its NaN)."""
    on = np.flatnonzero(np.asarray(weights) > 0)
    return np.tensordot(np.asarray(weights, dtype="float64")[on], np.asarray(values, dtype="float64")[on], axes=1)


# ------------------------------------------------------------------ the stored forecasts


@dataclass
class Split:
    """One split's shared points, sorted by POINT: the keys, actuals and every candidate's forecasts."""

    keys: pd.DataFrame  # POINT columns
    y: np.ndarray  # (P,)
    y_naive: np.ndarray  # (P,)
    pred: np.ndarray  # (M, P)
    q: np.ndarray  # (M, P, levels)
    q_rw: np.ndarray  # (P, levels)

    @property
    def units(self) -> dict[tuple, np.ndarray]:
        """(asset, fold_id, fold_end, seed) → the positions of its points."""
        return self.keys.groupby(UNIT, sort=False).indices

    @property
    def point_weights(self) -> np.ndarray:
        """Per point 1 / (units × the unit's points): weights of the mean over units of each unit's mean."""
        w = np.zeros(len(self.y))
        units = self.units
        for idx in units.values():
            w[idx] = 1.0 / (len(units) * len(idx))
        return w

    def loss(self, pred: np.ndarray) -> float:
        """The selection's loss: each unit's MAE, averaged over units (as val_mae averages)."""
        return float(np.abs(pred - self.y) @ self.point_weights)


def stored_forecasts(runs: pd.DataFrame, key: tuple[str, str]) -> tuple[pd.DataFrame, list[str]]:
    """The predictions.parquet rows of every complete unit of configuration `key`, with the unit's
    keys, and the paths that could not be read."""
    model, cid = key
    done = runs[(runs["status"] == "complete") & (runs["model"] == model) & (runs["config_id"] == cid)]
    done = done[done["trial_path"].notna()].drop_duplicates(["fold_id", "seed"])
    paths = [layout.TrialDir(str(t)).unit(str(u)).predictions for t, u in zip(done["trial_path"], done["unit"])]
    tables, bad = [], []
    for (_, row), raw, path in zip(done.iterrows(), store.maybe_read_many(paths), paths):
        try:
            table = pd.read_parquet(io.BytesIO(raw))
        except Exception:  # missing or truncated: its points are not shared
            bad.append(path)
            continue
        unit = {"asset": str(row["asset"] or ""), "fold_id": row["fold_id"], "fold_end": row["fold_end"]}
        tables.append(table.assign(**unit, seed=int(row["seed"])))
    if not tables:
        return pd.DataFrame(columns=[*POINT, "split", "y_true", "y_pred", "y_naive"]), bad
    return pd.concat(tables, ignore_index=True), bad


def shared(tables: list[pd.DataFrame], horizon: int) -> dict[str, Split]:
    """Per split the points every table holds, whole origins (steps 1 … `horizon`) only."""
    out = {}
    for split in SPLITS:
        parts = [t[(t["split"] == split) & (t["step"] <= horizon)].set_index(POINT) for t in tables]
        index = parts[0].index
        for p in parts[1:]:
            index = index.intersection(p.index)
        keys = index.to_frame(index=False)
        whole = keys.groupby([*UNIT, "origin"])["step"].transform("size").to_numpy() == horizon
        keys = keys[whole].sort_values(POINT, ignore_index=True)
        at = pd.MultiIndex.from_frame(keys)
        parts = [p.reindex(columns=[*p.columns.difference([*Q, *RW]), *Q, *RW]).loc[at] for p in parts]
        out[split] = Split(
            keys,
            parts[0]["y_true"].to_numpy("float64"),
            parts[0]["y_naive"].to_numpy("float64"),
            np.stack([p["y_pred"].to_numpy("float64") for p in parts]),
            np.stack([p[Q].to_numpy("float64") for p in parts]),
            parts[0][RW].to_numpy("float64"),
        )
    return out


def split_metrics(s: Split, pred: np.ndarray, q: np.ndarray, horizon: int, scales: dict) -> dict[str, float]:
    """Every metric of one forecaster on a split's shared points: per unit, then the mean over units."""
    rows, levels = [], len(quantiles.LEVELS)
    for key, idx in s.units.items():
        shape = (len(idx) // horizon, horizon)
        qq = q[idx].reshape(*shape, levels)
        rows.append(
            evaluate(
                s.y[idx].reshape(shape),
                pred[idx].reshape(shape),
                s.y_naive[idx].reshape(shape)[:, 0],
                scales.get((key[0], key[1])),
                qq if np.isfinite(qq).any() else None,
                s.q_rw[idx].reshape(*shape, levels),
            )
        )
    return pd.DataFrame(rows).mean().to_dict()


def forecast_table(s: Split, split: str, pred: np.ndarray, q: np.ndarray) -> pd.DataFrame:
    """A forecaster's rows in predictions.parquet's shape, with the unit keys."""
    table = s.keys.assign(split=split, y_true=s.y, y_pred=pred, y_naive=s.y_naive)
    table[Q] = q
    table[RW] = s.q_rw
    return table


# ------------------------------------------------------------------ the candidates


def _of(frame: pd.DataFrame, keys: list[tuple[str, str]]) -> pd.Series:
    wanted = set(keys)
    return pd.Series([k in wanted for k in zip(frame["model"], frame["config_id"])], index=frame.index, dtype=bool)


def candidates_of(ranked: pd.DataFrame, runs: pd.DataFrame, k: int) -> pd.DataFrame:
    """The k best complete configurations with stored forecasts (logged runs have none)."""
    tune = runs[runs["trial_path"].notna()] if "trial_path" in runs else runs.iloc[:0]
    ok = ranked[(ranked["status"] == "ok") & _of(ranked, list(zip(tune["model"], tune["config_id"])))]
    return ok.head(k).reset_index(drop=True)
