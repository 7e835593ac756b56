"""When a refit stops: the epochs / steps it trains for, from the records of the sweep's units.

A sweep's units early-stop or choose their checkpoint on a val window; a refit (analysis/refit.py) has
none (every row is trained on). It trains for the number of epochs / steps the configuration's units
stopped at: the median over its units (every asset, fold and seed; a seed-free unit shared by several
seeds and a global fit's one model counted once), half rounded up, as AutoGluon's refit_full keeps
the best iteration found and neuralforecast refits with the steps found. Per model (the fields read from each
unit's record.json `info`):

- tft: max_epochs = median of `epochs` (the epochs each unit ran before early stopping; it keeps the
  last epoch's weights, so those are the epochs its weights had); early stopping off.
- toto: max_steps = median of `best_step` (the step of the best val loss, whose weights it kept);
  a unit without one (no val losses: it kept its last weights) counts `max_steps`. The learning-rate
  schedule (warmup, stable, decay) spans the refit's steps.
- chronos2: num_steps = median of `best_step`, a unit without one counts `num_steps`; the linear decay
  spans the refit's steps.
- kronos: tokenizer_steps and predictor_steps = medians of `tokenizer_best_step` and
  `predictor_best_step` (each stage keeps its best-val weights), a unit without a val choice counts
  its configured steps; records from before `*_best_step` was recorded also count the configured
  steps (said in the card's `stopping.fallback`).
- zero-shot (a pretrained model with no fine-tuning steps): nothing is trained; the model directory
  refers to the released weights (`weights_ref`) and copies none.
- baselines: fitted on every row (closed-form statistics or statsforecast's own fit); no stopping.

The rule, its reason and the numbers go into model.json's `stopping`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from trainables import layout, registry, store


class RefitError(ValueError):
    """The input cannot be refitted; the message says why (one line)."""


@dataclass(frozen=True)
class Stage:
    """One number a refit fixes: config `key` := median over the units of info `chosen` (the
    epoch/step their kept weights were at); a unit whose fit chose nothing on val counts info
    `ran` (what it trained for), else the configured value."""

    key: str
    chosen: str
    ran: str | None = None


# Per model: the numbers fixed, and the rule in words (the card's stopping.rule).
STAGES: dict[str, tuple[Stage, ...]] = {
    "tft": (Stage("max_epochs", "epochs", "epochs"),),
    "toto": (Stage("max_steps", "best_step", "max_steps"),),
    "chronos2": (Stage("num_steps", "best_step", "num_steps"),),
    "kronos": (
        Stage("tokenizer_steps", "tokenizer_best_step", "tokenizer_steps"),
        Stage("predictor_steps", "predictor_best_step", "predictor_steps"),
    ),
    "baselines": (),
}
RULES = {
    "tft": "max_epochs = median over the units of the epochs they ran before early stopping (info.epochs); "
    "no early stopping",
    "toto": "max_steps = median over the units of the step of their best val loss (info.best_step)",
    "chronos2": "num_steps = median over the units of the step of their best eval loss (info.best_step)",
    "kronos": "tokenizer_steps / predictor_steps = medians over the units of each stage's best-val step "
    "(info.tokenizer_best_step / info.predictor_best_step)",
}
WHY = (
    "a refit trains on every row, so no val window is left to early-stop or choose a checkpoint on; "
    "it trains as long as the sweep's units did when their weights were chosen, "
    "as AutoGluon's refit_full and neuralforecast's refit do"
)
ZERO_SHOT_RULE = "none: zero-shot, the released weights unchanged"
BASELINE_RULE = "none: fitted on every row"


def half_up(x: float) -> int:
    return int(math.floor(x + 0.5))


def unit_records(checkpoints: list[str]) -> list[dict]:
    """record.json of each distinct fit behind these unit models: a global fit's one model once, a
    seed-free unit recorded for several seeds once (the copies carry `shared_from`)."""
    units = list(dict.fromkeys(str(c).rstrip("/").rsplit("/", 1)[0] for c in checkpoints))
    raws = store.maybe_read_many([layout.UnitDir(u).record for u in units])  # in parallel on object storage
    records = [json.loads(raw) for raw in raws if raw is not None]
    return [r for r in records if not r.get("shared_from")]


def stopping(model: str, config: dict[str, Any], records: Callable[[], list[dict]]) -> tuple[dict, dict]:
    """(override, stopping dict) for refitting `config` of `model`; `records` gives its units' records."""
    entry = registry.get(model)
    merged = {**getattr(entry.spaces(), "BASELINE", {}), **config}
    stages = STAGES.get(model)
    if entry.baseline or stages == ():
        return {}, {"rule": BASELINE_RULE, "why": "a baseline has no epochs or steps to stop", "override": {}}
    if stages is None:  # a model registered without a rule here: trained as configured
        rule = "as configured (analysis/stopping.py has no stopping rule for this model)"
        return {}, {"rule": rule, "why": "no recorded stopping point is known for it", "override": {}}
    configured = {s.key: int(merged[s.key]) for s in stages}
    if registry.pretrained(model) and merged.get("init") == "pretrained" and not any(configured.values()):
        why = "no fine-tuning steps: nothing to stop"
        return {}, {"rule": ZERO_SHOT_RULE, "why": why, "configured": configured, "override": {}}
    units = records()
    if not units:
        raise RefitError(f"no unit {layout.RECORD} found for this {model} configuration: cannot tell how long to train")
    per_unit: dict[str, list[float]] = {}
    fallback = []
    for s in stages:
        values = []
        for r in units:
            info = r.get("info") if isinstance(r.get("info"), dict) else {}
            if configured[s.key] <= 0:
                values.append(0.0)
            elif info.get(s.chosen) is not None:
                values.append(float(info[s.chosen]))
            elif info.get("checkpoint_chosen_on") in (None, "none") and s.ran and info.get(s.ran) is not None:
                values.append(float(info[s.ran]))  # nothing chosen on val: it kept its last weights
            else:
                values.append(float(configured[s.key]))
                fallback.append(f"{r.get('unit')}: no info.{s.chosen}, counted the configured {s.key}")
        per_unit[s.key] = values
    override = {k: max(1, half_up(float(np.median(v)))) if configured[k] > 0 else 0 for k, v in per_unit.items()}
    out = {
        "rule": RULES[model],
        "why": WHY,
        "units": len(units),
        "unit_names": [r.get("unit") for r in units],
        "per_unit": per_unit,
        "median": {k: float(np.median(v)) for k, v in per_unit.items()},
        "configured": configured,
        "override": override,
        "checkpoint_chosen_on": sorted({str((r.get("info") or {}).get("checkpoint_chosen_on")) for r in units}),
    }
    if fallback:
        out["fallback"] = fallback
    return override, out


def sweep_records(sweep_path: str, config_id: str) -> list[dict]:
    """unit_records of the complete units of `config_id` in the sweep at `sweep_path`."""
    from analysis.runs import sweep_runs

    runs = sweep_runs(sweep_path)
    units = runs[(runs["config_id"] == config_id) & (runs["status"] == "complete")]
    return unit_records([str(c) for c in units["checkpoint"]])
