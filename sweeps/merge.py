"""`--merge`: grow a stored sweep by replica seeds, folds, param_ranges values and (a per-asset
universe) assets, never change it.

The merged sweep is one sweep: new trials run in the same directory, each configuration only
runs the (asset, fold, seed) units it does not have yet, and the analysis pools a configuration's
units across its trials.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sweeps.spec import SpecError, SweepSpec
from trainables import layout, store
from trainables.folds import Fold
from trainables.ids import config_id, unit_id

# Settings of how and where a sweep runs: free to differ between the sweep and a merge into it or
# a `--resume auto` restart of it (sweeps/resume.py); every other SweepSpec field defines the sweep.
RUNTIME = {
    "name",
    "storage",
    "address",
    "cpus_per_trial",
    "gpus_per_trial",
    "parallel_units",
    "max_concurrent",
    "max_failures",
    "keep_top_k",
    "notes",
    "fail_fast",
    "resume",
    "overwrite",
    "merge",
    "verbose",
}
# Checked on their own below (they may grow); `folds` is compared as the resolved fold list.
GROWABLE = {"seeds", "param_ranges", "folds", "max_runs", "assets", "drop_short_assets"}
ONLY = "only replica_seeds, walk_forward.folds, param_ranges values and assets may be added"


def check(meta: dict, spec: SweepSpec, folds: tuple[Fold, ...], assets: tuple[str, ...] = ()) -> None:
    """SpecError naming the first field where `spec` does more than add to the stored sweep
    (`assets`: the universe's assets resolved now)."""
    # SweepSpec's defaults under the stored spec: a field added since the sweep started (`fit`) compares at its default.
    old, new = {**SweepSpec(model=spec.model).to_json(), **meta["spec"]}, spec.to_json()
    for key in sorted(set(old) | set(new)):
        if key not in RUNTIME | GROWABLE:
            _same(old.get(key), new.get(key), key)
    _seeds(old["seeds"], list(spec.seeds))
    _ranges(old.get("param_ranges") or {}, spec.param_ranges)
    _folds(meta["folds"], [f.as_dict() for f in folds])
    _assets(meta.get("assets") or [], list(assets), old.get("fit", "per-asset"))
    if None not in (old.get("max_runs"), spec.max_runs) and spec.max_runs < old["max_runs"]:
        raise SpecError(f"--merge: max_runs is {old['max_runs']} in the sweep, {spec.max_runs} now (it may only grow)")


def _same(old: Any, new: Any, where: str) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            _same(old.get(key), new.get(key), f"{where}.{key}")
    elif old != new and not (isinstance(old, list) and isinstance(new, tuple) and old == list(new)):
        raise SpecError(f"--merge: {where} is {_show(old)} in the sweep, {_show(new)} now ({ONLY})")


def _show(value: Any) -> str:
    return "unset" if value is None else repr(value)


def _seeds(old: list[int], new: list[int]) -> None:
    gone = [s for s in old if s not in new]
    if gone:
        raise SpecError(f"--merge: replica_seeds: seed {gone[0]} is in the sweep but not in {new} ({ONLY})")


def _ranges(old: dict[str, list], new: dict[str, list]) -> None:
    for key in old:
        if key not in new:
            raise SpecError(f"--merge: param_ranges.{key} is in the sweep but missing now ({ONLY})")
        gone = [v for v in old[key] if v not in new[key]]
        if gone:
            raise SpecError(f"--merge: param_ranges.{key}: value {gone[0]!r} is in the sweep but not in {new[key]}")
    added = sorted(set(new) - set(old))
    if added:
        raise SpecError(f"--merge: param_ranges.{added[0]} is a new parameter ({ONLY}, not new parameters)")


def _assets(old: list[str], new: list[str], fit: str) -> None:
    # Per-asset units are independent: a new asset only adds units. A global fit trains every
    # model on every asset: adding one would change all the models, so the stored units with them.
    if bool(old) != bool(new):
        raise SpecError(
            "--merge: a one-asset sweep and a universe (--assets) are different sweeps: sweep it under another --name"
        )
    gone = [a for a in old if a not in new]
    if gone:
        raise SpecError(f"--merge: assets: {gone[0]!r} is in the sweep but not in {new} ({ONLY})")
    added = [a for a in new if a not in old]
    if added and fit == "global":
        raise SpecError(
            f"--merge: cannot add asset {added[0]!r} to a --fit global sweep: every model was trained on all its "
            "assets, so a new one changes them all (sweep the larger universe under another --name)"
        )


def _folds(old: list[dict], new: list[dict]) -> None:
    by_name = {f["name"]: f for f in new}
    for fold in old:
        now = by_name.get(fold["name"])
        if now is None:
            raise SpecError(f"--merge: walk_forward.folds: fold {fold['name']!r} is in the sweep but missing now")
        changed = [k for k in fold if fold[k] != now.get(k)]
        if changed:
            k = changed[0]
            raise SpecError(
                f"--merge: walk_forward.folds: fold {fold['name']!r} has {k} {fold[k]} in the sweep, {now.get(k)} "
                "now (generated folds move when --folds changes: add folds as explicit walk_forward.folds)"
            )


def stored_units(sweep_dir: str) -> tuple[list[dict], dict[str, list[dict]]]:
    """The configurations of the sweep's trials, and each configuration's complete unit records."""
    configs: dict[str, dict] = {}
    units: dict[str, dict[tuple, dict]] = {}
    sweep = layout.SweepDir(sweep_dir)
    for name in sweep.trial_names():
        trial = sweep.trial(name)
        if not store.exists(trial.params):
            continue
        config = trial.read_params()
        cid = config_id(config)
        configs.setdefault(cid, config)
        for record in trial.finished_records():
            units.setdefault(cid, {}).setdefault(unit_id(record), record)
    return list(configs.values()), {cid: list(by_key.values()) for cid, by_key in units.items()}


def to_run(
    configs: list[dict],
    prior: dict[str, list[dict]],
    folds: tuple[Fold, ...],
    seeds: tuple[int, ...],
    assets: tuple[str, ...] = (),
) -> list[dict]:
    """The configurations (first occurrence each) that still miss at least one (asset, fold, seed) unit."""
    wanted = {(a, f.name, s) for a in assets or (None,) for f in folds for s in seeds}
    out, seen = [], set()
    for config in configs:
        cid = config_id(config)
        have = {unit_id(u) for u in prior.get(cid, [])}
        if cid not in seen and wanted - have:
            out.append(config)
        seen.add(cid)
    return out


def record(meta: dict, spec: SweepSpec, folds: tuple[Fold, ...], git: dict, universe: dict | None = None) -> dict:
    """The sweep's new `sweep.json`: the merged spec and folds (and `universe`: assets, dropped_assets),
    plus what this merge added."""
    old = meta["spec"]
    names = {f["name"] for f in meta["folds"]}
    ranges = {
        k: [v for v in vs if v not in (old.get("param_ranges") or {}).get(k, [])] for k, vs in spec.param_ranges.items()
    }
    added = {
        "replica_seeds": [s for s in spec.seeds if s not in old["seeds"]],
        "folds": [f.name for f in folds if f.name not in names],
        "param_ranges": {k: vs for k, vs in ranges.items() if vs},
    }
    universe = universe or {}
    if universe:
        added["assets"] = [a for a in universe["assets"] if a not in meta.get("assets", [])]
    merges = [*meta.get("merges", []), {"at": datetime.now(UTC).isoformat(), "added": added, **git}]
    notes = "\n".join(n for n in (meta.get("notes"), spec.notes) if n)
    folds_now = [f.as_dict() for f in folds]
    return {**meta, "spec": spec.to_json(), "folds": folds_now, **universe, "merges": merges, "notes": notes}
