"""The best baseline as the bar (analysis.bar, verdicts): chosen on val, judged against on test."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from analysis import bar
from analysis import verdicts as v
from trainables.metrics import dm_test

N = 120


def _losses(rows: dict[tuple[str, str], float], seed: int = 0) -> pd.DataFrame:
    """Per-origin losses, factor × naive's plus noise, of each (model, config_id) on val and test."""
    rng = np.random.default_rng(seed)
    naive = np.abs(rng.standard_t(5, N)) + 1
    out = []
    for (model, cid), factor in rows.items():
        loss = naive * factor + rng.normal(0, 0.2, N)
        for split in ("val", "test"):
            for t in range(N):
                out.append({"model": model, "config_id": cid, "split": split, "asset": "SPX", "fold_id": "f1",
                            "fold_end": "2021", "origin": t, "horizon": 1, "loss": loss[t], "naive_loss": naive[t],
                            "ql": np.nan, "rw_ql": np.nan, "garch_ql": np.nan, "mase_scale": 1.0})  # fmt: skip
    return pd.DataFrame(out, columns=v.LOSS_COLUMNS)


def _ranked(keys: list[tuple[str, str]], methods: dict[str, str]) -> pd.DataFrame:
    """A ranking in this order (best val first), with each configuration's JSON."""
    configs = [json.dumps({"method": methods[c]} if m == "baselines" else {"lr": 0.1}) for m, c in keys]
    return pd.DataFrame({"model": [m for m, _ in keys], "config_id": [c for _, c in keys], "status": "ok",
                         "config": configs, "robust_score": np.arange(len(keys), dtype=float)})  # fmt: skip


FACTORS = {("m", "good"): 0.6, ("baselines", "b_drift"): 0.8, ("m", "meh"): 0.95, ("baselines", "b_rw"): 1.0}
METHODS = {"b_drift": "drift", "b_rw": "rw"}


def test_the_first_baseline_of_the_ranking_is_the_bar_and_models_are_tested_against_it():
    losses = _losses(FACTORS)
    ranked = _ranked(list(FACTORS), METHODS)
    out = v.compute(ranked, losses)
    name = bar.name("baselines", {"method": "drift"})
    assert out.bar == {"model": "baselines", "config_id": "b_drift", "name": name, "models": 2}
    table = out.table.set_index("config_id")
    assert table.loc["good", "beats_best_baseline"] is True
    assert table.loc["meh", "beats_best_baseline"] is False
    assert table.loc["b_drift", "beats_best_baseline"] is None and table.loc["b_rw", "beats_best_baseline"] is None
    # By hand: the one-sided DM test of good − bar on test, the metric module's own test.
    test = losses[losses["split"] == "test"]
    diff = (
        test[test["config_id"] == "good"]["loss"].to_numpy() - test[test["config_id"] == "b_drift"]["loss"].to_numpy()
    )
    assert table.loc["good", "test_dm_p_baseline"] == pytest.approx(dm_test(diff, 1)[1])
    assert out.spa_of["baseline"]["test"] < 0.05, "SPA over the two model configurations finds `good`"
    summary = out.summary()
    assert summary["beats_best_baseline_count"]["test"] == 1 and summary["best_baseline"]["config_id"] == "b_drift"


def test_when_no_model_beats_the_bar_spa_says_so():
    factors = {("m", "a"): 1.0, ("baselines", "b_ets"): 0.7, ("m", "b"): 1.05}
    out = v.compute(_ranked(list(factors), {"b_ets": "auto_ets"}), _losses(factors, seed=1))
    assert out.spa_of["baseline"]["test"] > 0.5
    assert not out.table["beats_best_baseline"].eq(True).any()


def test_without_baselines_there_is_no_bar_and_nothing_is_judged_against_one():
    factors = {("m", "a"): 0.7, ("m", "b"): 1.0}
    out = v.compute(_ranked(list(factors), {}), _losses(factors))
    assert out.bar is None and out.spa_of["baseline"] == {}
    assert out.table["beats_best_baseline"].isna().all()
    assert bar.words({"model": "m", "config_id": "a"}, None).startswith("no baseline in this ranking")


def test_the_words_name_the_bar_and_the_answer():
    chosen = {"model": "baselines", "config_id": "b1", "name": "AutoETS"}
    assert bar.words({"model": "m", "config_id": "x", "test_dm_p_baseline": 0.01}, chosen) == (
        "beats AutoETS on test (one-sided DM p = 0.010)"
    )
    assert bar.words({"model": "m", "config_id": "x", "test_dm_p_baseline": 0.4}, chosen).startswith(
        "no better than AutoETS"
    )
    assert bar.words({"model": "m", "config_id": "x", "test_dm_p_baseline": 0.99}, chosen).startswith("worse than")
    assert bar.words({"model": "baselines", "config_id": "b1"}, chosen).startswith("it is the bar: AutoETS")
    assert bar.words({"model": "baselines", "config_id": "b2", "baseline": True}, chosen) == (
        "a baseline; the bar is AutoETS"
    )
