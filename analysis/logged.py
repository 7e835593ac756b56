"""Runs trained outside the sweeps, recorded so they compete in the same rankings.

Each run is one JSON file under `<results>/_logged/` (Tune's files are never touched). A run is
one (fold, seed) unit. Give `sweep=` and one of that sweep's fold names to compare it on the same
fold as the sweep's configurations; otherwise its fold is its own and it is flagged
"not comparable" next to sweep configurations. Logged configurations get config ids starting
with "L" so they never pool with a sweep's units.
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

from analysis.impact import model_baseline
from analysis.runs import LOGGED_DIR, config_id, fold_id, read_sweep
from trainables import registry, store
from trainables.ids import unit_key
from trainables.metrics import mode_of


class LogRunError(ValueError):
    """A run to log is invalid; the message names the field."""


def _check_metrics(metrics: dict) -> dict[str, float]:
    if not isinstance(metrics, dict) or not metrics:
        raise LogRunError("metrics must be a non-empty dict of metric name → value")
    out = {}
    for name, value in metrics.items():
        if not str(name).startswith(("val_", "test_")):
            raise LogRunError(f"metrics.{name}: name must start with val_ or test_")
        try:
            mode_of(name)
        except KeyError:
            raise LogRunError(f"metrics.{name} is not a known metric") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise LogRunError(f"metrics.{name} must be a finite number, got {value!r}")
        out[name] = float(value)
    if not any(n.startswith("val_") for n in out):
        raise LogRunError("metrics needs at least one val_ metric (runs are selected on val)")
    return out


def _check_hyperparams(model: str, hyperparams: dict) -> dict:
    if not isinstance(hyperparams, dict) or not hyperparams:
        raise LogRunError("hyperparams must be a non-empty dict")
    known = model_baseline(model)
    unknown = sorted(set(hyperparams) - set(known or hyperparams))
    if unknown:
        raise LogRunError(
            f"hyperparams.{unknown[0]} is not a {model} hyperparameter (known: {', '.join(sorted(known))})"
        )
    try:
        json.dumps(hyperparams)
    except TypeError as exc:
        raise LogRunError(f"hyperparams must be JSON values: {exc}") from None
    return dict(hyperparams)


def _fold(root: str, sweep: str | None, fold: str) -> tuple[str, str]:
    """(fold_id, fold_end) of `fold`, from `sweep`'s record when given."""
    if sweep is None:
        return f"logged:{fold}", ""
    try:
        meta = read_sweep(store.join(root, sweep)).meta
    except ValueError:
        raise LogRunError(f"sweep {sweep!r} not found under {root!r}") from None
    folds = {f["name"]: f for f in meta["folds"]}
    if fold not in folds:
        raise LogRunError(f"fold {fold!r} is not a fold of sweep {sweep!r} ({', '.join(folds)})")
    return fold_id(meta["spec"], folds[fold]), folds[fold]["test_end"]


def log_run(
    root: str,
    model: str,
    hyperparams: dict,
    metrics: dict,
    checkpoint_path: str | None = None,
    notes: str = "",
    *,
    fold: str = "logged",
    seed: int = 0,
    sweep: str | None = None,
) -> dict:
    """Validate and store one externally trained run under `<root>/_logged/`; returns its record."""
    if model not in registry.MODELS:
        raise LogRunError(f"model {model!r} is not a known model ({', '.join(registry.MODELS)})")
    params = _check_hyperparams(model, hyperparams)
    values = _check_metrics(metrics)
    if checkpoint_path is not None and not store.exists(str(checkpoint_path)):
        raise LogRunError(f"checkpoint_path {checkpoint_path!r} does not exist")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise LogRunError(f"seed must be an integer, got {seed!r}")
    if not isinstance(fold, str) or not fold:
        raise LogRunError("fold must be a non-empty name")
    fid, fold_end = _fold(root, sweep, fold)
    started = datetime.now(UTC).isoformat()
    run_id = f"{started[:19].replace(':', '').replace('-', '')}_{config_id({'p': params, 't': started})[:6]}"
    record = {
        "model": model,
        "sweep": LOGGED_DIR,
        "trial_id": run_id,
        "config_id": "L" + config_id(params)[:9],
        "fold": fold,
        "fold_id": fid,
        "fold_end": fold_end,
        "seed": seed,
        "unit": unit_key(fold, seed),
        "status": "complete",
        "error": "",
        "train_seconds": float("nan"),
        "checkpoint": None if checkpoint_path is None else str(checkpoint_path),
        "trial_path": None,
        "source": "logged",
        "notes": notes,
        "started": started,
        "hyperparams": params,
        "metrics": values,
    }
    store.write_text(store.join(root, LOGGED_DIR, f"{run_id}.json"), store.dumps(record))
    return record
