"""The bar: the best baseline of a ranking (drift, ARIMA, ETS, Theta, …), chosen on val.

A configuration that beats the random walk may still lose to what a statistician fits in a minute.
The baselines (trainables.baselines, a model family whose registry entry says `baseline`) are
ranked like any model; the first of them in the ranking (the best robust val score) is the bar
every other configuration is tested against on test. It was chosen on val, so on test it is a
fixed benchmark and the one-sided DM test and SPA there are honest.
"""

from __future__ import annotations

import json

import pandas as pd

from trainables import registry
from trainables.covariates import KEY as COVARIATES
from trainables.covariates import NONE as NO_COVARIATES

# The bar's loss at each origin, next to each configuration's; and the loss of the best
# configuration without covariates (`plain_best`), the reference of "do covariates help?".
BAR_VALUES = ["bar_loss", "plain_loss"]
KEYS = ["asset", "split", "fold_id", "fold_end", "origin"]


def is_baseline(model: str) -> bool:
    return model in registry.MODELS and registry.get(model).baseline


def marks(models: pd.Series) -> pd.Series:
    """True for the rows of baseline models."""
    return models.map(is_baseline).astype(bool)


def best(ranked: pd.DataFrame, among: list[tuple[str, str]] | None = None) -> tuple[str, str] | None:
    """(model, config_id) of the first complete baseline of `ranked` (of `among` if given)."""
    ok = ranked[(ranked["status"] == "ok") & marks(ranked["model"])]
    for key in zip(ok["model"], ok["config_id"]):
        if among is None or key in among:
            return key
    return None


def name(model: str, config: dict | str | None) -> str:
    """A baseline's name in words ("AutoETS", "drift"); other models: their registry name."""
    config = json.loads(config) if isinstance(config, str) else (config or {})
    if not is_baseline(model):
        return model
    names = getattr(registry.get(model).spaces(), "NAMES", {})
    method = config.get("method", "")
    return names.get(method, method or model)


def with_bar(losses: pd.DataFrame, bar: tuple[str, str], column: str = "bar_loss") -> pd.DataFrame:
    """`losses` with `column`: the loss of configuration `bar` at the same asset, split, fold and origin."""
    mine = (losses["model"] == bar[0]) & (losses["config_id"] == bar[1])
    theirs = losses.loc[mine, [*KEYS, "loss"]].groupby(KEYS, sort=False)["loss"].mean().rename(column)
    out = losses.drop(columns=[column] if column in losses else []).merge(theirs.reset_index(), on=KEYS, how="left")
    out.index = losses.index
    return out


def words(row: dict, bar: dict | None) -> str:
    """A ranked row (or a best record's verdict) against the bar, in words:
    "beats AutoETS on test (one-sided DM p = 0.010)", "no better than drift on test (p = 0.41)"."""
    from trainables.metrics import DM_LEVEL

    if not bar:
        return "no baseline in this ranking (sweeps/all.py runs them; one model's sweep: --baselines)"
    if row.get("model") == bar["model"] and row.get("config_id") == bar["config_id"]:
        return f"it is the bar: {bar['name']}, the best baseline on val"
    if row.get("baseline"):
        return f"a baseline; the bar is {bar['name']}"
    p = row.get("test_dm_p_baseline")
    if p is None or p != p:
        return f"untested against {bar['name']} (too few shared origins)"
    if p < DM_LEVEL:
        return f"beats {bar['name']} on test (one-sided DM p = {p:.3f})"
    if p > 1 - DM_LEVEL:
        return f"worse than {bar['name']} on test (p = {p:.3f})"
    return f"no better than {bar['name']} on test (p = {p:.3f})"


def covariate_set(config: dict | str | None) -> str | None:
    """The covariate set a configuration reads ("none", "vix+volume"); None: its sweep declared none."""
    config = json.loads(config) if isinstance(config, str) else (config or {})
    return config.get(COVARIATES)


def plain_best(ranked: pd.DataFrame, among: list[tuple[str, str]]) -> tuple[str, str] | None:
    """(model, config_id) of the best complete model configuration of `among` that reads no covariate
    while another reads some: the reference of "do covariates help?" (chosen on val by the ranking)."""
    ok = ranked[(ranked["status"] == "ok") & ~marks(ranked["model"])]
    keys = list(zip(ok["model"], ok["config_id"]))
    sets = {k: covariate_set(c) for k, c in zip(keys, ok["config"] if "config" in ok else [None] * len(ok))}
    if not any(v not in (None, NO_COVARIATES) for k, v in sets.items() if k in among):
        return None
    return next((k for k in keys if k in among and sets[k] == NO_COVARIATES), None)


def with_covariates(ranked: pd.DataFrame) -> set[tuple[str, str]]:
    """The (model, config_id) of the ranked configurations that read a covariate."""
    config = ranked["config"] if "config" in ranked else [None] * len(ranked)
    return {
        (m, c)
        for m, c, cfg in zip(ranked["model"], ranked["config_id"], config)
        if covariate_set(cfg) not in (None, NO_COVARIATES)
    }
