"""`--resume auto`: run the same command line again and it continues its own sweep.

A driver that restarts from the top (a KubeRay head pod that came back, a retried batch job)
gets exactly one of three outcomes: nothing stored → start the sweep; the stored sweep has the
configuration asked for now → restore it (each unit still runs exactly once); a different one →
refuse before anything is written.
"""

from __future__ import annotations

import fnmatch
import json
from typing import Any

import pyarrow.fs as pafs

from sweeps.merge import RUNTIME, stored_units
from sweeps.spec import SpecError, SweepSpec
from trainables import layout, store
from trainables.folds import Fold

# Tune's own file names: tuner.pkl is written when the Tuner is built, an experiment_state file
# at its first snapshot; Tune can restore only once both exist (tests check these names).
TUNER_FILE = layout.TUNER_FILE
STATE_FILES = layout.STATE_FILES
WAY_OUT = "rerun with the stored settings, --merge to grow it, --overwrite to replace it, or another --name"


class ResumeError(SpecError):
    """The stored sweep must not be continued with this command line (nothing was written)."""


def restorable(sweep_dir: str) -> bool:
    """Whether `sweep_dir` (local or URI) holds a Tune experiment that Tuner.restore can continue."""
    if not store.exists(layout.SweepDir(sweep_dir).tuner):
        return False
    fs, path = store.filesystem(sweep_dir)
    names = [info.base_name for info in fs.get_file_info(pafs.FileSelector(path))]
    return bool(fnmatch.filter(names, STATE_FILES))


def first_difference(old: Any, new: Any, where: str) -> tuple[str, Any, Any] | None:
    """The first (dotted path, old, new) where two JSON values differ, or None when they are equal."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            found = first_difference(old.get(key), new.get(key), f"{where}.{key}" if where else key)
            if found:
                return found
        return None
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new)):
            found = first_difference(a, b, f"{where}[{i}]")
            if found:
                return found
        return None
    return None if old == new else (where, old, new)


def sweep_difference(stored: dict, spec: SweepSpec) -> tuple[str, Any, Any] | None:
    """The first field that defines the sweep where the stored spec (sweep.json) and `spec` differ.

    The fields of merge.RUNTIME (where and how it runs) may differ: they do not change any result.
    """
    wanted = json.loads(store.dumps(spec.to_json()))  # tuples → lists, as sweep.json holds them
    keys = sorted((set(stored) | set(wanted)) - RUNTIME)
    return first_difference({k: stored.get(k) for k in keys}, {k: wanted.get(k) for k in keys}, "")


def auto(spec: SweepSpec) -> SweepSpec:
    """The spec to run for `--resume auto`, built from this command line; says what it decided.

    Raises ResumeError (before anything is written) when the stored sweep differs.
    """
    path = spec.sweep_dir
    meta_path = layout.SweepDir(path).sweep_json
    if not store.exists(meta_path):
        if store.exists(path):
            raise ResumeError(
                f"--resume auto: {path!r} exists but holds no {layout.SWEEP_META} (not a sweep of this project): "
                "use --overwrite or another --name"
            )
        print(f"--resume auto: no sweep stored at {path}; starting it")
        return spec
    try:
        stored = SweepSpec.from_json(store.read_json(meta_path)["spec"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ResumeError(
            f"--resume auto: {meta_path} is not a {layout.SWEEP_META} this version reads ({exc})"
        ) from None
    # Through SweepSpec, so a field added since the sweep started compares at its default.
    found = sweep_difference(json.loads(store.dumps(stored.to_json())), spec)
    if found:
        field, old, new = found
        raise ResumeError(f"--resume auto: {field} is {_show(old)} in the stored sweep, {_show(new)} now ({WAY_OUT})")
    if restorable(path):
        print(f"--resume auto: {path} holds this sweep; restoring it")
        # A merged sweep's trials skip the units earlier trials hold: keep what it was.
        return spec.with_(resume=True, merge=stored.merge, overwrite=False)
    if stored_units(path)[1]:
        raise ResumeError(
            f"--resume auto: {path!r} holds finished units but no restorable Tune experiment: "
            "grow it with --merge, or --overwrite to replace it"
        )
    # The last driver died after writing sweep.json, before Tune's first snapshot: nothing in the
    # directory holds a finished unit, so starting over loses nothing and runs nothing twice.
    print(f"--resume auto: {path} holds this sweep but no Tune experiment yet; starting it over")
    return spec.with_(overwrite=True)


def check_folds(stored: list[dict], folds: tuple[Fold, ...]) -> None:
    """SpecError when the folds resolved now (from the data) are not the stored sweep's folds.

    Generated folds end at the data's last row: a data file that changed moves them.
    """
    found = first_difference(stored, [f.as_dict() for f in folds], "folds")
    if found:
        field, old, new = found
        raise ResumeError(
            f"--resume: {field} is {_show(old)} in the stored sweep, {_show(new)} now "
            "(the data changed since the sweep started: sweep it under another --name)"
        )


def check_assets(stored: list[str], assets: tuple[str, ...]) -> None:
    """ResumeError when a universe's assets resolved now (`--assets all`, --drop-short-assets) are not the stored ones."""
    if list(assets) != list(stored):
        raise ResumeError(
            f"--resume: assets are {stored} in the stored sweep, {list(assets)} now "
            "(the data changed since the sweep started: add assets with --merge, or sweep under another --name)"
        )


def _show(value: Any) -> str:
    return "unset" if value is None else repr(value)
