"""Refit the chosen configuration on every row, up to the last one: the model that forecasts tomorrow.

    python analysis/refit.py results/best_model.json                       # the sweep's data, every row
    python analysis/refit.py results/best_model.json --data prices.parquet --out models/spx
    python analysis/refit.py models/ensemble --data newer.parquet --out models/ensemble-new

The input is a best_model.json (`python analysis/best.py --export-path`) or a model directory this
script or `analysis/ensemble.py --greedy --export` wrote: its configuration is refitted, an ensemble
member by member with the same weights. The data is the sweep's (sweep.json `spec`: data, asset, columns, features)
unless --data names a newer file with the same columns. A universe sweep's record names the asset of
its chosen unit: that asset is refitted alone (a global fit's configuration included). Writes a model
directory (analysis/model_dir.py): model.json, weights/ (the adapter's `save`), MODEL_CARD.md.

When to stop: a refit trains for the epochs / steps the configuration's units stopped at (the rule per
model: analysis/stopping.py). The rule, its reason and the numbers go into model.json's `stopping` (with
the refit's own fit facts as `refit_info`). A model directory refitted again keeps its recorded
`stopping.override`.

Bad input (not an exported record or model directory, a missing data file, too few rows for the
context, an --out that exists without --overwrite) is one error line and exit code 2, before anything
is trained or written; the model directory is built aside and moved to --out when complete.
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import json
import math
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from analysis import model_dir
from analysis.model_dir import ModelCard, ModelDirError
from analysis.runs import ResultsError, read_sweep
from analysis.stopping import ZERO_SHOT_RULE, RefitError, stopping, sweep_records, unit_records
from trainables import layout, registry, store
from trainables.covariates import KEY as COVARIATES
from trainables.covariates import NONE as NO_COVARIATES
from trainables.data import Columns, DataError, read_prices

Echo = Callable[[str], None]


@dataclass
class Job:
    """One single-model refit, fully resolved before anything is trained."""

    model: str
    config: dict[str, Any]  # the sweep's configuration (config_id's)
    seed: int
    data: str | None  # the file to read (None: the embedded series)
    asset: str | None
    columns: dict[str, Any]
    features: str
    override: dict[str, int]  # what the stopping rule sets on top of `config`
    stopping: dict[str, Any]
    verdicts: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    newer: bool = False  # the rows come from --data, not the data the sweep read
    frame: pd.DataFrame | None = None  # the rows fitted, with their features
    feature_names: tuple[str, ...] = ()


# ---------------------------------------------------------------------------- inputs


def _read_json(path: str) -> Any:
    text = store.maybe_read_text(path)
    if text is None:
        raise RefitError(f"{path!r} does not exist")
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise RefitError(f"{path!r} is not JSON (expected a best_model.json from analysis/best.py)") from None


def _embedded_source(source: str) -> str | None:
    """The asset named by DataInfo.source "embedded (SPX)", else None."""
    m = re.fullmatch(r"embedded \((\w+)\)", source or "")
    return m.group(1) if m else None


def job_from_record(record: Any, path: str | None) -> Job:
    """A Job from an exported best record (analysis/best.py best_record)."""
    need = ("model", "config", "config_id", "trial_path", "unit_models", "checkpoint_unit")
    if not isinstance(record, dict) or any(k not in record for k in need):
        raise RefitError(f"{path or 'the record'!r} is not an exported best-model record (from analysis/best.py)")
    model = record["model"]
    if model not in registry.MODELS:
        raise RefitError(f"{path or 'the record'!r}: unknown model {model!r} (known: {', '.join(registry.MODELS)})")
    trial = str(record["trial_path"]).rstrip("/")
    try:
        sweep = read_sweep(trial.rsplit("/", 1)[0])
    except ResultsError as exc:
        raise RefitError(f"the record's sweep is unreadable: {exc}") from None
    spec = sweep.spec
    unit = record["checkpoint_unit"] or {}
    notes, asset = [], spec.get("asset")
    universe = {}
    if sweep.assets:
        asset = unit.get("asset") or sweep.assets[0]
        universe = {"assets": sweep.assets, "fit": spec.get("fit", "per-asset"), "refit_asset": asset}
        notes.append(
            f"universe sweep ({', '.join(sweep.assets)}, fit {universe['fit']}): refitting asset {asset} alone, "
            "the asset of the record's chosen unit"
        )
    config = dict(record["config"])
    checkpoints = list(dict(record["unit_models"]).values())
    override, stop = stopping(model, config, lambda: unit_records(checkpoints))
    verdicts = {**(record.get("verdict") or {}), "versus_bar": record.get("versus_bar"), "bar": record.get("bar")}
    source = {
        "sweep": record.get("sweep"),
        "sweep_path": sweep.path,
        "config_id": record["config_id"],
        "exported": path,
        "metric": record.get("metric"),
        "rank": record.get("rank"),
        "seed": int(unit.get("seed", 0)),
        "sweep_data": spec.get("data"),
        **({"universe": universe} if universe else {}),
    }
    return Job(model, config, int(unit.get("seed", 0)), spec.get("data"), asset, dict(spec.get("columns") or {}),
               spec.get("features") or "BASELINE_FEATURES", override, stop, verdicts, source, notes)  # fmt: skip


def job_from_card(card: ModelCard, path: str) -> Job:
    """A Job refitting a single-model directory: its configuration, on its data, with the stopping
    numbers it records (a directory refit wrote), else those of its configuration's units in the
    sweep its `source` names (`sweep_path`, or the parent of `trial_path`, and `config_id`: a member
    analysis/greedy_report.py exported from a unit checkpoint)."""
    if card.kind != "single":
        raise RefitError(f"{path!r}: a {card.kind!r} model directory is not a single model")
    if card.model not in registry.MODELS:
        raise RefitError(f"{path!r}: unknown model {card.model!r} (known: {', '.join(registry.MODELS)})")
    src = dict(card.source or {})
    stop = {k: v for k, v in (card.stopping or {}).items() if k != "refit_info"}
    if "override" in stop:  # what this directory's weights were trained with (refit wrote it)
        data = src.get("data", None if _embedded_source(card.data.source) else card.data.source)
        return Job(card.model, dict(card.config), int(src.get("seed", 0)), data, card.data.asset,
                   dict(card.data.columns), card.data.features, dict(stop["override"]), stop,
                   dict(card.verdicts or {}), {**src, "refit_of": path})  # fmt: skip
    trial = str(src.get("trial_path") or "").rstrip("/")
    sweep_path = src.get("sweep_path") or (trial.rsplit("/", 1)[0] if trial else None)
    if not (sweep_path and src.get("config_id")):
        raise RefitError(
            f"{path!r}: model.json records neither its stopping numbers (stopping.override) "
            "nor the sweep it came from (source.sweep_path or trial_path, and config_id)"
        )
    try:
        sweep = read_sweep(sweep_path)
    except ResultsError as exc:
        raise RefitError(f"{path!r}: its sweep is unreadable: {exc}") from None
    spec = sweep.spec
    override, stop = stopping(card.model, card.config, lambda: sweep_records(sweep.path, src["config_id"]))
    seed = src.get("seed", _unit_seed(src.get("checkpoint")))
    asset = card.data.asset if sweep.assets else spec.get("asset")
    source = {**src, "sweep_path": sweep.path, "sweep_data": spec.get("data"), "refit_of": path}
    return Job(card.model, dict(card.config), int(seed), spec.get("data"), asset, dict(spec.get("columns") or {}),
               spec.get("features") or "BASELINE_FEATURES", override, stop, dict(card.verdicts or {}), source)  # fmt: skip


def _unit_seed(checkpoint: str | None) -> int:
    """The seed in the record.json of the unit whose model `checkpoint` is (0 when unknown)."""
    if not checkpoint:
        return 0
    text = store.maybe_read_text(layout.UnitDir(str(checkpoint).rstrip("/").rsplit("/", 1)[0]).record)
    return int(json.loads(text).get("seed", 0)) if text else 0


def load_frame(job: Job, data: str | None) -> None:
    """Read the job's rows (`data`: a newer file instead of the sweep's), add its features and check
    there are enough rows; fills job.frame, job.feature_names and job.data."""
    from trainables.features import add_features

    columns = Columns(**job.columns)
    path = data if data is not None else job.data
    try:
        prices, _ = read_prices(path, job.asset, columns)
    except DataError as exc:
        if data is None or job.asset is None or "has no asset column" not in str(exc):
            raise
        prices, _ = read_prices(path, None, columns)  # a one-asset file: the asset's own series
        job.notes.append(f"{data!r} has no asset column: read as the series of {job.asset}")
    job.frame, job.feature_names = add_features(prices, job.features)
    job.data, job.newer = path, data is not None
    entry = registry.get(job.model)
    merged = {**getattr(entry.spaces(), "BASELINE", {}), **job.config, **job.override}
    context, horizon = int(merged[entry.context_key]), int(merged[entry.horizon_key])
    if len(job.frame) < context + horizon:
        where = repr(path) if path is not None else f"the embedded data ({job.asset or 'SPX'})"
        raise RefitError(
            f"{where} has {len(job.frame)} rows: too few to refit, the configuration needs at least "
            f"{context + horizon} (context {context} + horizon {horizon})"
        )


def _check_config(job: Job) -> None:
    """The configuration the model cannot run, or weights it cannot find: stop before training."""
    from trainables import weights

    entry = registry.get(job.model)
    merged = {**getattr(entry.spaces(), "BASELINE", {}), **job.config, **job.override}
    error = getattr(entry.spaces(), "config_error", None)
    problem = error(merged) if error is not None else None
    if problem:
        raise RefitError(f"{job.model} configuration: {problem}")
    reads = merged.get(COVARIATES)
    if reads not in (None, NO_COVARIATES):
        raise RefitError(
            f"{job.model} configuration reads covariates ({reads}): refitting with covariates is not built yet "
            "(the sweep's own unit models keep them: analysis/best.py exports one)"
        )
    if merged.get("init") == "pretrained":
        for key in entry.weight_keys:
            if key in merged:
                try:
                    weights.resolve(str(merged[key]))
                except weights.WeightsNotFound as exc:
                    raise RefitError(str(exc).splitlines()[0]) from None


# ---------------------------------------------------------------------------- fitting


def _horizon(model: str, config: dict) -> int:
    entry = registry.get(model)
    return int({**getattr(entry.spaces(), "BASELINE", {}), **config}[entry.horizon_key])


def _weights_ref(job: Job) -> str | None:
    """The released weights a zero-shot configuration uses unchanged (None: weights/ holds the fit)."""
    if job.stopping.get("rule") != ZERO_SHOT_RULE:
        return None
    entry = registry.get(job.model)
    merged = {**getattr(entry.spaces(), "BASELINE", {}), **job.config}
    return " + ".join(str(merged[k]) for k in entry.weight_keys if k in merged) or None


def _finite(value: Any) -> Any:
    """NaN / inf (a val loss without a val window) as null: model.json stays strict JSON."""
    return None if isinstance(value, float) and not math.isfinite(value) else value


def _source_name(job: Job) -> str:
    return job.data if job.data is not None else f"embedded ({job.asset or 'SPX'})"


def fit_single(job: Job, dest: str, device: str, echo: Echo | None) -> ModelCard:
    """Train `job` on every row of its frame; write weights/, model.json and MODEL_CARD.md into `dest`."""
    from sweeps import provenance
    from trainables.adapter import UnitData, Window

    entry = registry.get(job.model)
    frame, n = job.frame, len(job.frame)
    config = {**job.config, **job.override}
    ts = pd.to_datetime(frame["timestamp"])
    say = echo or (lambda _: None)
    whence = "--data" if job.newer else "the sweep's data"
    say(
        f"refit {job.model} {job.source.get('config_id', '')}: all {n} rows of {_source_name(job)}"
        f"{f' (asset {job.asset})' if job.asset else ''} ({whence}), "
        f"{ts.iloc[0]} … {ts.iloc[-1]}, seed {job.seed}"
    )
    for note in job.notes:
        say(f"  note: {note}")
    numbers = ", ".join(f"{k} {v}" for k, v in job.override.items())
    say(f"  stopping: {job.stopping['rule']}" + (f" → {numbers}" if numbers else ""))
    if job.stopping.get("per_unit"):
        shown = "; ".join(f"{k} {[int(x) for x in v]}" for k, v in job.stopping["per_unit"].items())
        say(f"  from {job.stopping['units']} unit(s): {shown}")
    adapter = entry.adapter()(config, job.seed, device)
    # Every row trains; an empty val window: nothing to early-stop or choose a checkpoint on.
    data = UnitData(frame, job.feature_names, Window(0, n), Window(n, n), Window(n, n), target="close")
    info = adapter.fit(data, None)
    adapter.save(store.join(dest, model_dir.WEIGHTS))
    git = provenance.git_state()
    card = ModelCard(
        kind="single",
        model=job.model,
        config=job.config,
        horizon=_horizon(job.model, config),
        data=model_dir.data_info(frame, _source_name(job), job.asset, job.features, job.columns),
        stopping={**job.stopping, "refit_info": {k: _finite(v) for k, v in info.items()}},
        verdicts=job.verdicts,
        source={**job.source, "data": job.data, "seed": job.seed},
        weights_ref=_weights_ref(job),
        git_sha=git.get("git_sha"),
        git_dirty=git.get("git_dirty"),
        versions=provenance.versions(entry.distributions),
    )
    model_dir.write(dest, card)
    return card


# ---------------------------------------------------------------------------- entry points


def _inputs(exported: str | dict) -> tuple[str, Any, str | None]:
    """("record", dict, path) | ("dir", ModelCard, path)."""
    if isinstance(exported, dict):
        return "record", exported, None
    path = str(exported)
    if store.is_dir(path) and model_dir.is_model_dir(path):
        try:
            return "dir", model_dir.read(path), path
        except (ModelDirError, TypeError, KeyError, json.JSONDecodeError) as exc:
            raise RefitError(f"{path!r}: unreadable model directory ({exc})".splitlines()[0]) from None
    if store.is_dir(path):
        raise RefitError(f"{path!r} is a directory without {model_dir.META}: not a model directory")
    return "record", _read_json(path), path


def _default_out(jobs: list[Job], kind: str) -> str:
    if kind == "ensemble":
        return os.path.join("models", "ensemble-refit")
    return os.path.join("models", f"{jobs[0].model}-{jobs[0].source.get('config_id') or 'refit'}")


def _check_out(out: str, overwrite: bool) -> None:
    if store.is_remote(out):
        return
    if os.path.isfile(out):
        raise RefitError(f"--out {out!r} is a file")
    if os.path.isdir(out) and os.listdir(out) and not overwrite:
        raise RefitError(f"--out {out!r} exists and is not empty (pass --overwrite to replace it)")


def refit(
    exported: str | dict,
    data: str | None = None,
    out: str | None = None,
    device: str = "cpu",
    overwrite: bool = False,
    echo: Echo | None = print,
) -> str:
    """Refit the configuration of a best_model.json (path or dict) or a model directory on every row
    of its sweep's data (or `data`, a newer file with the same columns); returns the model directory
    written at `out` (default models/<model>-<config_id>). Raises RefitError (or DataError) on bad
    input before anything is trained or written."""
    kind, obj, path = _inputs(exported)
    if kind == "record":
        jobs, ensemble = [job_from_record(obj, path)], None
    elif obj.kind == "single":
        jobs, ensemble = [job_from_card(obj, path)], None
    elif obj.kind == "ensemble":
        if not obj.members:
            raise RefitError(f"{path!r}: an ensemble model directory without members")
        jobs, ensemble = [], obj
        for i, m in enumerate(obj.members):
            sub = store.join(path, m["dir"])
            if not model_dir.is_model_dir(sub):
                raise RefitError(f"{path!r}: member {i} ({m['dir']}) is not a model directory")
            try:
                member = model_dir.read(sub)
            except (TypeError, KeyError, json.JSONDecodeError) as exc:
                raise RefitError(f"{sub!r}: unreadable model directory ({exc})".splitlines()[0]) from None
            jobs.append(job_from_card(member, sub))
    else:
        raise RefitError(f"{path!r}: unknown model directory kind {obj.kind!r}")
    if data is not None and not store.is_remote(data) and not os.path.isfile(data):
        raise RefitError(f"--data file {data!r} does not exist")
    for job in jobs:  # everything checked before the first fit
        load_frame(job, data)
        _check_config(job)
    out = out or _default_out(jobs, "ensemble" if ensemble else "single")
    _check_out(out, overwrite)
    with tempfile.TemporaryDirectory(prefix="refit-") as tmp:
        build = os.path.join(tmp, "model")
        if ensemble is None:
            fit_single(jobs[0], build, device, echo)
        else:
            _fit_ensemble(ensemble, path, jobs, build, device, echo)
        store.put_dir(build, out)
    if echo is not None:
        echo(f"  written: {out}")
    return out


def _fit_ensemble(card: ModelCard, path: str, jobs: list[Job], dest: str, device: str, echo: Echo | None) -> None:
    from sweeps import provenance

    members, cards = [], []
    for i, (m, job) in enumerate(zip(card.members, jobs)):
        if echo is not None:
            echo(f"member {i} (weight {float(m['weight']):.3f}):")
        cards.append(fit_single(job, store.join(dest, model_dir.MEMBERS, str(i)), device, echo))
        members.append({**m, "dir": f"{model_dir.MEMBERS}/{i}"})
    git = provenance.git_state()
    model_dir.write(
        dest,
        ModelCard(
            kind="ensemble",
            model="ensemble",
            config=dict(card.config or {}),
            horizon=card.horizon,
            data=cards[0].data,
            stopping={
                "rule": "each member by its own rule (members/<i>/model.json)",
                "members": [c.stopping.get("rule") for c in cards],
            },  # fmt: skip
            verdicts=dict(card.verdicts or {}),
            source={**(card.source or {}), "refit_of": path},
            members=members,
            git_sha=git.get("git_sha"),
            git_dirty=git.get("git_dirty"),
            versions=provenance.versions(),
        ),
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python analysis/refit.py", description=__doc__.split("\n")[0])
    p.add_argument("exported", help="best_model.json (analysis/best.py --export-path) or a model directory")
    p.add_argument("--data", help="refit on this file (same columns as the sweep's data) instead of the sweep's")
    p.add_argument("--out", help="model directory to write (default models/<model>-<config_id>)")
    p.add_argument("--device", default="cpu", help="torch device to train on (cpu, cuda)")
    p.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        refit(args.exported, args.data, args.out, args.device, args.overwrite)
    except (RefitError, DataError, ModelDirError, ResultsError) as exc:
        print(f"error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
