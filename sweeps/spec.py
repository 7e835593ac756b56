"""A sweep, as one frozen dataclass, built from CLI flags and an optional JSON file.

Everything is validated here, before Ray starts: a bad value raises SpecError with a one-line
message naming the field, and nothing is written.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from search_spaces.strategies import MODES
from trainables import covariates as cov
from trainables.data import ALL, Columns, DataError, check_asset_name
from trainables.features import FEATURE_SETS
from trainables.folds import Fold, FoldError, parse_fold
from trainables.metrics import needs_distribution
from trainables.unit import EARLY_STOP_ON

if TYPE_CHECKING:
    from trainables.registry import ModelEntry

FILE_KEYS = {
    "output_subdir",
    "assets",
    "covariates",
    "early_stop_on",
    "features",
    "replica_seeds",
    "walk_forward",
    "training_config",
    "split_config",
    "param_ranges",
    "notes",
}
DEFAULT_SEEDS = (7, 11, 13, 42, 123, 2024, 31337, 5, 17, 19)
# How a universe is fitted: one model per (asset, fold, seed), or one per (fold, seed) trained on
# every asset's training window together (models whose registry entry has global_fit).
FITS = ("per-asset", "global")


class SpecError(ValueError):
    """A sweep setting is invalid; the message names the field and the value."""


@dataclass(frozen=True)
class FoldPlan:
    """Explicit folds, or how to generate them from the data."""

    explicit: tuple[Fold, ...] = ()
    n: int = 2
    window: str = "expanding"
    train_size: int = 1000
    val_size: int = 126
    test_size: int = 126


@dataclass(frozen=True)
class SweepSpec:
    model: str
    mode: str = "quick"
    name: str = ""
    storage: str = "results"
    data: str | None = None
    asset: str | None = None
    # A universe: these assets (or ("all",): every asset of --data), each unit one (asset, fold, seed).
    assets: tuple[str, ...] | None = None
    fit: str = "per-asset"  # FITS
    drop_short_assets: bool = False  # leave out an asset too short for a fold, instead of stopping
    columns: Columns = Columns()
    features: str = "BASELINE_FEATURES"
    # Declared covariates, written out in full (trainables.covariates); each configuration's
    # `covariates` hyperparameter names the set it reads.
    covariates: tuple[str, ...] = ()
    folds: FoldPlan = FoldPlan()
    seeds: tuple[int, ...] = (7, 11)
    training_config: dict[str, Any] = field(default_factory=dict)
    param_ranges: dict[str, list] = field(default_factory=dict)
    points: list[dict] | None = None
    horizon: int | None = None  # --horizon: every configuration forecasts this many steps
    context: int | None = None  # --context: every configuration reads this many rows of history
    early_stop_on: str = "val"  # the split that chooses each unit's checkpoint / epoch (unit.EARLY_STOP_ON)
    origin_stride: int = 1  # rows between forecast origins (trainables.unit.origins)
    point_only: bool = False  # score the point forecast only: no quantiles, GARCH or calibration
    max_runs: int | None = None
    num_samples: int = 20
    metric: str = "val_pct_mae"
    scheduler: str = "fifo"
    cpus_per_trial: float = 1.0
    gpus_per_trial: float | None = None
    parallel_units: int = 1
    max_concurrent: int | None = None
    max_failures: int = 1
    keep_top_k: int | None = None
    address: str | None = None
    seed: int = 0
    notes: str = ""
    fail_fast: bool = False
    resume: bool = False
    overwrite: bool = False
    merge: bool = False
    verbose: bool = False  # Tune's status tables and the workers' logs instead of sweeps.progress

    @property
    def sweep_dir(self) -> str:
        return _join(self.storage, self.name)

    def fixed(self, entry: ModelEntry) -> dict:
        """Hyperparameters every configuration must take, whatever its mode or Optuna space lists
        (`--horizon`, `--context`)."""
        given = {entry.horizon_key: self.horizon, entry.context_key: self.context}
        return {k: v for k, v in given.items() if v is not None}

    @property
    def declared(self) -> tuple[cov.Covariate, ...]:
        """The declared covariates (valid: check() parsed them)."""
        return cov.parse(self.covariates) if self.covariates else ()

    def baseline(self, model_baseline: dict) -> dict:
        """The model's baseline with the file's training_config on top (`seed` is not a hyperparameter);
        with covariates declared, every configuration reads all of them unless told otherwise."""
        overrides = {k: v for k, v in self.training_config.items() if k != "seed"}
        reads = {cov.KEY: cov.everything(self.declared)} if self.covariates else {}
        return {**model_baseline, **reads, **overrides}

    def to_json(self) -> dict:
        out = asdict(self)
        out["folds"]["explicit"] = [f.as_dict() for f in self.folds.explicit]
        return out

    @classmethod
    def from_json(cls, raw: dict) -> SweepSpec:
        raw = dict(raw)
        fp = dict(raw["folds"])
        fp["explicit"] = tuple(Fold(**f) for f in fp["explicit"])
        raw["folds"] = FoldPlan(**fp)
        raw["columns"] = Columns(**raw["columns"])
        raw["seeds"] = tuple(raw["seeds"])
        if raw.get("assets") is not None:
            raw["assets"] = tuple(raw["assets"])
        raw["covariates"] = tuple(raw.get("covariates") or ())
        return cls(**raw)

    def with_(self, **changes: Any) -> SweepSpec:
        return replace(self, **changes)


def _join(storage: str, name: str) -> str:
    return f"{storage.rstrip('/')}/{name}" if "://" in storage else os.path.join(storage, name)


def read_config_file(path: str) -> dict:
    """Parse and check the sweep JSON file's shape; returns SweepSpec field overrides."""
    if not os.path.isfile(path):
        raise SpecError(f"config file {path!r} does not exist")
    try:
        with open(path) as f:
            raw = json.load(f)
    except json.JSONDecodeError as exc:
        raise SpecError(f"config file {path!r} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise SpecError(f"config file {path!r} must hold a JSON object")
    unknown = sorted(set(raw) - FILE_KEYS)
    if unknown:
        raise SpecError(f"config file {path!r}: unknown key {unknown[0]!r} (allowed: {', '.join(sorted(FILE_KEYS))})")
    out: dict[str, Any] = {}
    if "output_subdir" in raw:
        out["name"] = check_name(raw["output_subdir"], "output_subdir")
    if "assets" in raw:
        out["assets"] = parse_assets(raw["assets"], "assets")
    if "features" in raw:
        out["features"] = raw["features"]
    if "covariates" in raw:
        out["covariates"] = parse_covariates(raw["covariates"], "covariates")
    if "early_stop_on" in raw:
        out["early_stop_on"] = raw["early_stop_on"]
    if "replica_seeds" in raw:
        out["seeds"] = _seeds(raw["replica_seeds"], "replica_seeds")
    if "training_config" in raw:
        out["training_config"] = _dict(raw["training_config"], "training_config")
    if "param_ranges" in raw:
        out["param_ranges"] = _ranges(raw["param_ranges"])
    if "notes" in raw:
        out["notes"] = str(raw["notes"])
    folds = _file_folds(raw)
    if folds:
        out["folds"] = FoldPlan(explicit=folds)
    return out


def _file_folds(raw: dict) -> tuple[Fold, ...]:
    wf = raw.get("walk_forward")
    if wf is not None:
        wf = _dict(wf, "walk_forward")
        extra = sorted(set(wf) - {"enabled", "folds"})
        if extra:
            raise SpecError(f"walk_forward: unknown key {extra[0]!r}")
        if not isinstance(wf.get("enabled", True), bool):
            raise SpecError(f"walk_forward.enabled must be true or false, got {wf['enabled']!r}")
    if wf is not None and wf.get("enabled", True):
        folds = wf.get("folds")
        if not isinstance(folds, list) or not folds:
            raise SpecError("walk_forward.folds must be a non-empty list when walk_forward.enabled is true")
        try:
            return tuple(parse_fold(f, f"walk_forward.folds[{i}]") for i, f in enumerate(folds))
        except FoldError as exc:
            raise SpecError(str(exc)) from None
    if "split_config" in raw:
        try:
            return (parse_fold({"name": "split", **_dict(raw["split_config"], "split_config")}, "split_config"),)
        except FoldError as exc:
            raise SpecError(str(exc)) from None
    return ()


def _dict(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise SpecError(f"{where} must be an object, got {type(value).__name__}")
    return value


def check_name(value: Any, where: str = "--name") -> str:
    """`value` if it is a plain directory name (never a path out of --storage), else SpecError."""
    text = str(value)
    if not text or "/" in text or "\\" in text or text.startswith(".") or text != text.strip():
        raise SpecError(
            f"{where} {value!r} must be a plain directory name (no '/', '\\', leading '.' or '..'): "
            "the sweep goes to <storage>/<name>"
        )
    return text


def _seeds(value: Any, where: str) -> tuple[int, ...]:
    if (
        not isinstance(value, list)
        or not value
        or not all(isinstance(s, int) and not isinstance(s, bool) for s in value)
    ):
        raise SpecError(f"{where} must be a non-empty list of integers, got {value!r}")
    if len(set(value)) != len(value):
        raise SpecError(f"{where} has duplicates: {value!r}")
    return tuple(value)


def _ranges(value: Any) -> dict[str, list]:
    value = _dict(value, "param_ranges")
    for key, values in value.items():
        if not isinstance(values, list) or not values:
            raise SpecError(f"param_ranges.{key} must be a non-empty list, got {values!r}")
    return value


def parse_assets(value: Any, where: str = "--assets") -> tuple[str, ...]:
    """`--assets A,B` / `"assets": ["A", "B"]` → ("A", "B"); "all" stays ("all",) until the data is read."""
    items = [a.strip() for a in value.split(",")] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(a, str) and a for a in items):
        raise SpecError(f"{where} must be a non-empty list of asset names (A,B,... or all), got {value!r}")
    dup = sorted({a for a in items if items.count(a) > 1})
    if dup:
        raise SpecError(f"{where} names asset {dup[0]!r} twice")
    if ALL in items and len(items) > 1:
        raise SpecError(f"{where}: 'all' takes every asset of --data; do not list others with it")
    for asset in items:
        try:
            check_asset_name(asset, f"{where}: asset {asset!r}")
        except DataError as exc:
            raise SpecError(str(exc)) from None
    return tuple(items)


def parse_covariates(value: Any, where: str = "--covariates") -> tuple[str, ...]:
    """`--covariates vix=asset:VIX,volume` → the declarations written out in full."""
    try:
        return tuple(c.text for c in cov.parse(value))
    except cov.CovariateError as exc:
        raise SpecError(str(exc).replace("--covariates", where, 1)) from None


def parse_seeds(text: str) -> tuple[int, ...]:
    """`--seeds 3` → the first three default seeds; `--seeds 7,11` → exactly those."""
    try:
        values = [int(s) for s in text.split(",")]
    except ValueError:
        raise SpecError(f"--seeds {text!r} is neither a count nor a comma list of integers") from None
    if "," in text:
        return _seeds(values, "--seeds")
    if not 1 <= values[0] <= len(DEFAULT_SEEDS):
        raise SpecError(f"--seeds {text}: give 1..{len(DEFAULT_SEEDS)} or a comma list of seeds")
    return DEFAULT_SEEDS[: values[0]]


def check(spec: SweepSpec, model_baseline: dict, model_names: list[str]) -> None:
    """Field-level checks that need no data and no Ray."""
    if spec.model not in model_names:
        raise SpecError(f"unknown model {spec.model!r} (known: {', '.join(model_names)})")
    check_name(spec.name, "--name")
    if spec.mode not in MODES:
        raise SpecError(f"--mode {spec.mode!r} is not one of {', '.join(MODES)}")
    if spec.early_stop_on not in EARLY_STOP_ON:
        raise SpecError(f"early_stop_on {spec.early_stop_on!r} is not one of {', '.join(EARLY_STOP_ON)}")
    if spec.point_only and needs_distribution(spec.metric):
        raise SpecError(
            f"--metric {spec.metric} scores the forecast distribution: drop --point-only or pick a point metric"
        )
    if spec.origin_stride < 1:
        raise SpecError(f"--origin-stride must be at least 1 (rows between forecast origins), got {spec.origin_stride}")
    if spec.assets is not None and spec.asset is not None:
        raise SpecError(
            "--asset and --assets cannot be used together: --asset X is the one-asset sweep, --assets X,Y a universe"
        )
    if spec.fit not in FITS:
        raise SpecError(f"--fit {spec.fit!r} is not one of {', '.join(FITS)}")
    if spec.fit == "global" and spec.assets is None:
        raise SpecError("--fit global fits one model on a universe: give --assets")
    if spec.drop_short_assets and spec.assets is None:
        raise SpecError("--drop-short-assets applies to a universe (--assets)")
    if spec.features not in FEATURE_SETS:
        raise SpecError(f"features {spec.features!r} is not a feature set ({', '.join(FEATURE_SETS)})")
    known = set(model_baseline) | {"seed"} | ({cov.KEY} if spec.covariates else set())
    for where, keys in (("training_config", spec.training_config), ("param_ranges", spec.param_ranges)):
        bad = sorted(set(keys) - known)
        if cov.KEY in bad:
            raise SpecError(f"{where}.{cov.KEY} needs declared covariates: add --covariates (e.g. vix=asset:VIX)")
        if bad:
            raise SpecError(
                f"{where}.{bad[0]} is not a {spec.model} hyperparameter (known: {', '.join(sorted(known))})"
            )
    _check_covariates(spec)
    types = {**model_baseline, cov.KEY: ""}
    for key, value in spec.baseline(model_baseline).items():
        _same_type(types[key], value, f"training_config.{key}")
    for key, values in spec.param_ranges.items():
        for v in values:
            _same_type(types[key], v, f"param_ranges.{key}")
    _positive(spec)


def _check_covariates(spec: SweepSpec) -> None:
    """The declarations parse, and every covariate set a configuration may name is made of them."""
    declared = cov.parse(spec.covariates) if spec.covariates else ()
    sets = [(f"training_config.{cov.KEY}", spec.training_config[cov.KEY])] if cov.KEY in spec.training_config else []
    sets += [(f"param_ranges.{cov.KEY}", v) for v in spec.param_ranges.get(cov.KEY, [])]
    sets += [(f"points[{i}].{cov.KEY}", p[cov.KEY]) for i, p in enumerate(spec.points or []) if cov.KEY in p]
    try:
        for where, value in sets:
            cov.members(value, declared, where)
    except cov.CovariateError as exc:
        raise SpecError(str(exc)) from None


def _same_type(default: Any, value: Any, where: str) -> None:
    if isinstance(default, bool) or isinstance(value, bool):
        ok = isinstance(value, bool) == isinstance(default, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float))
    else:
        ok = isinstance(value, type(default))
    if not ok:
        raise SpecError(f"{where} must be {type(default).__name__}, got {value!r}")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 0:
        raise SpecError(f"{where} must not be negative, got {value!r}")


def _positive(spec: SweepSpec) -> None:
    checks = {
        "--max-runs": (spec.max_runs, 1),
        "--num-samples": (spec.num_samples, 1),
        "--cpus-per-trial": (spec.cpus_per_trial, 0.01),
        "--parallel-units": (spec.parallel_units, 1),
        "--folds": (spec.folds.n, 1),
        "--val-size": (spec.folds.val_size, 1),
        "--test-size": (spec.folds.test_size, 1),
        "--train-size": (spec.folds.train_size, 1),
        "--max-failures": (spec.max_failures, 0),
        "--horizon": (spec.horizon, 1),
        "--context": (spec.context, 1),
    }
    for flag, (value, low) in checks.items():
        if value is not None and value < low:
            raise SpecError(f"{flag} must be at least {low}, got {value}")
    if spec.gpus_per_trial is not None and spec.gpus_per_trial < 0:
        raise SpecError(f"--gpus-per-trial must be ≥ 0, got {spec.gpus_per_trial}")
    if spec.max_concurrent is not None and spec.max_concurrent < 1:
        raise SpecError(f"--max-concurrent must be at least 1, got {spec.max_concurrent}")
