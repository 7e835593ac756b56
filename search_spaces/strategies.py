"""Turn a model's search-space data into Tune search algorithms.

Every mode except `optuna` becomes an explicit list of configurations evaluated through
BasicVariantGenerator(points_to_evaluate=...), so `--max-runs` caps it exactly and each
configuration is one trial.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from search_spaces import domains
from trainables.covariates import KEY as COVARIATES

if TYPE_CHECKING:  # Tune is imported by `build` only: checking a sweep's input needs none of it
    from ray.tune.search import Searcher
    from ray.tune.search.basic_variant import BasicVariantGenerator

MODES = ("grid", "quick", "full", "priority", "ofat", "optuna")


@dataclass(frozen=True)
class Search:
    """What the Tuner needs: constants + domains, the algorithm and how many trials."""

    param_space: dict[str, Any]
    algorithm: BasicVariantGenerator | Searcher
    num_samples: int


def grid(baseline: dict, ranges: dict[str, list]) -> list[dict]:
    """Every combination of `ranges`, each on top of `baseline`."""
    keys = list(ranges)
    return _unique([{**baseline, **dict(zip(keys, values))} for values in itertools.product(*ranges.values())])


def ofat(baseline: dict, ranges: dict[str, list]) -> list[dict]:
    """The baseline, then each parameter moved alone through its values."""
    runs = [dict(baseline)]
    for key, values in ranges.items():
        runs += [{**baseline, key: v} for v in values if v != baseline.get(key)]
    return _unique(runs)


def priority(baseline: dict, points: list[dict]) -> list[dict]:
    """Hand-picked configurations (partial overrides of the baseline), in order."""
    return _unique([{**baseline, **p} for p in points])


def _unique(configs: list[dict]) -> list[dict]:
    seen, out = set(), []
    for c in configs:
        key = json.dumps(c, sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out


def configurations(
    mode: str, spaces: Any, baseline: dict, ranges: dict, points: list[dict] | None, fixed: dict | None = None
) -> list[dict]:
    """The explicit configuration list of a non-Optuna mode; `fixed` values override every configuration.

    The covariate set (`ranges["covariates"]`) is an axis of every mode: grid and ofat take it
    with the other ranges; quick, full and priority run each of their configurations with every set.
    """
    fixed = fixed or {}
    ranges = ranges or {}
    if mode in ("quick", "full", "priority") and COVARIATES in ranges:
        plain = configurations(mode, spaces, baseline, {}, points)
        configs = _unique([{**c, COVARIATES: v} for c in plain for v in ranges[COVARIATES]])
        return _unique([{**c, **fixed} for c in configs]) if fixed else configs
    if mode == "grid":
        configs = grid(baseline, ranges or spaces.GRID)
    elif mode == "quick":
        configs = grid(baseline, spaces.QUICK)
    elif mode == "full":
        configs = grid(baseline, spaces.FULL)
    elif mode == "priority":
        configs = priority(baseline, points if points is not None else spaces.PRIORITY)
    elif mode == "ofat":
        configs = ofat(baseline, ranges or spaces.PARAM_RANGES)
    else:
        raise ValueError(f"mode {mode!r} has no explicit configuration list")
    return _unique([{**c, **fixed} for c in configs]) if fixed else configs


def _first_point(baseline: dict, searched: dict, ranges: dict) -> dict:
    """The study's first trial: the baseline (its covariate set only if the study may choose it)."""
    point = {k: baseline[k] for k in searched}
    if COVARIATES in searched and point[COVARIATES] not in ranges[COVARIATES]:
        point[COVARIATES] = ranges[COVARIATES][0]
    return point


def build(
    mode: str,
    spaces: Any,
    baseline: dict,
    *,
    ranges: dict | None = None,
    points: list[dict] | None = None,
    max_runs: int | None = None,
    num_samples: int = 20,
    metric: str = "robust_score",
    metric_mode: str = "min",
    max_concurrent: int | None = None,
    optuna_storage: str | None = None,
    study_name: str = "sweep",
    seed: int = 0,
    fixed: dict | None = None,
) -> Search:
    """The search for `mode`; `optuna_storage` is a SQLite file path for the study.

    `max_concurrent` caps trials running at once (None: explicit modes as resources allow,
    Optuna 2); the searcher must hold the cap, Tune ignores its own with a search algorithm.
    """
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.basic_variant import BasicVariantGenerator

    fixed = fixed or {}
    baseline = {**baseline, **fixed}
    if mode != "optuna":
        configs = configurations(mode, spaces, baseline, ranges or {}, points, fixed)[:max_runs]
        generator = BasicVariantGenerator(points_to_evaluate=configs, max_concurrent=max_concurrent or 0)
        return Search(dict(baseline), generator, len(configs))
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    searched = {k: domains.to_tune(v) for k, v in spaces.OPTUNA.items() if k not in fixed}
    if ranges and COVARIATES in ranges:  # the covariate set: one more categorical of the study
        searched[COVARIATES] = domains.to_tune(domains.choice(list(ranges[COVARIATES])))
    space = {**baseline, **searched}
    storage = optuna.storages.RDBStorage(f"sqlite:///{optuna_storage}") if optuna_storage else None
    searcher = OptunaSearch(
        metric=metric,
        mode=metric_mode,
        points_to_evaluate=[_first_point(baseline, searched, ranges or {})],
        sampler=optuna.samplers.TPESampler(seed=seed),
        storage=storage,
        study_name=study_name,
    )
    n = min(num_samples, max_runs) if max_runs else num_samples
    return Search(space, ConcurrencyLimiter(searcher, max_concurrent=max_concurrent or 2), n)
