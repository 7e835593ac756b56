"""One tidy table of results: one row per configuration × (asset,) fold × seed, read from stored sweeps.

Sources are the files a sweep leaves (no Ray needed): `sweep.json`, each trial's `params.json`
and `error.txt`, and every unit's `units/[<asset>__]<fold>__seed<seed>/record.json` (a unit is complete
iff its record exists). Expected units a trial lacks get a row too: `failed` (with the last
line of the trial's error), `unreadable` (its record.json is corrupt or truncated; the reason is
the row's error) or `missing` (still running, pruned or killed), unless another
trial of the same configuration completed it (a merged sweep).

The table is cached as `sweep_runs.parquet` in the sweep directory. The cache is used while it
is newer than the sweep's Tune state and holds every trial directory; `refresh=True` rebuilds it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from trainables import layout, store
from trainables.ids import config_id, unit_key

RUNS_FILE = layout.RUNS_PARQUET
LOGGED_DIR = layout.LOGGED_DIR
# 2: unreadable records as rows, mase_scale, metrics_version; 3: shared_from, checkpoint_chosen_on; 4: asset
TIDY_VERSION = "4"
ID_COLUMNS = [
    "model",
    "sweep",
    "trial_id",
    "config_id",
    "asset",
    "fold",
    "fold_id",
    "fold_end",
    "seed",
    "unit",
    "status",
    "error",
]


class ResultsError(ValueError):
    """The results cannot be read (no sweep, bad path); the message says which."""


def fold_id(spec: dict, fold: dict, asset: str | None = None) -> str:
    """Identity of a fold across sweeps: the data it reads (a universe's unit: its asset) and its
    six dates (not its name). A unit is then (fold_id, seed) in every sweep, universe or not."""
    cols = spec.get("columns") or {}
    key = [
        spec.get("data"),
        asset or spec.get("asset"),
        cols.get("close"),
        *(fold[k] for k in sorted(fold) if k != "name"),
    ]
    return hashlib.sha1(json.dumps(key, default=str).encode()).hexdigest()[:8]


@dataclass(frozen=True)
class Sweep:
    """A stored sweep: its directory and its `sweep.json`."""

    path: str
    meta: dict

    @property
    def spec(self) -> dict:
        return self.meta["spec"]

    @property
    def name(self) -> str:
        return self.spec.get("name") or self.path.rstrip("/").rsplit("/", 1)[-1]

    @property
    def model(self) -> str:
        return self.spec["model"]

    @property
    def metric(self) -> str:
        return self.spec.get("metric", "val_pct_mae")

    @property
    def mode(self) -> str:
        return self.spec.get("mode", "")

    @property
    def assets(self) -> list[str]:
        """A universe's assets (those run); [] for a one-asset sweep."""
        return list(self.meta.get("assets") or [])

    def asset_name(self, asset: str | None) -> str:
        """A unit's asset as the table shows it: its own in a universe, else the sweep's (SPX: the
        embedded default), "" when a one-asset file names none."""
        if asset:
            return asset
        return self.spec.get("asset") or ("SPX" if self.spec.get("data") is None else "")

    @cached_property
    def units(self) -> list[tuple[dict, int, str | None]]:
        """Expected (fold dict, seed, asset) units, fold-major (asset None in a one-asset sweep)."""
        assets = self.assets or [None]
        return [(f, int(s), a) for f in self.meta["folds"] for a in assets for s in self.spec["seeds"]]


def sweep_prices(sweep: Sweep) -> dict[str | None, pd.DataFrame]:
    """The sweep's price frames reloaded from its data, by asset (a one-asset sweep: under None), with
    its covariates' columns when it declared some (trainables.covariates)."""
    from trainables import covariates as cov
    from trainables.data import Columns, read_prices, read_universe

    spec = sweep.spec
    columns = Columns(**(spec.get("columns") or {}))
    declared = cov.parse(spec["covariates"]) if spec.get("covariates") else ()
    extra = cov.data_columns(declared)
    if sweep.assets:
        frames, readings = read_universe(spec.get("data"), tuple(sweep.assets), columns, extra)
    else:
        frame, reading = read_prices(spec.get("data"), spec.get("asset"), columns, extra)
        frames, readings = {None: frame}, {None: reading}
    return cov.attach_all(frames, declared, spec.get("data"), columns, readings) if declared else frames


def read_sweep(path: str) -> Sweep:
    """The sweep stored at `path`; ResultsError if it has no readable sweep.json."""
    text = store.maybe_read_text(layout.SweepDir(path).sweep_json)
    if text is None:
        raise ResultsError(f"{path!r} is not a sweep directory (no {layout.SWEEP_META})")
    try:
        meta = json.loads(text)
        meta["spec"]["model"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise ResultsError(f"{path}/{layout.SWEEP_META} is not a sweep record") from None
    return Sweep(str(path).rstrip("/") if store.is_remote(path) else str(path), meta)


def find_sweeps(root: str) -> list[str]:
    """Sweep directories at `root`: root itself if it is one, else its sub-directories that are."""
    if layout.SweepDir(root).is_sweep():
        return [str(root)]
    return [store.join(root, d) for d in store.subdirs(root) if layout.SweepDir(store.join(root, d)).is_sweep()]


def _last_line(raw: bytes | None) -> str:
    text = (raw or b"").decode(errors="replace")
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1][:300] if lines else ""


def _trials(sweep: Sweep, listing: dict[str, tuple[bool, float]]) -> pd.DataFrame:
    """One row per trial directory: id, path, configuration and error."""
    names = sorted(n for n, (d, _) in listing.items() if d and layout.is_trial(n))
    paths = [store.join(sweep.path, n) for n in names]
    params = store.maybe_read_many([layout.TrialDir(p).params for p in paths])
    errors = store.maybe_read_many([layout.TrialDir(p).error for p in paths])
    rows = []
    for name, path, raw, err in zip(names, paths, params, errors):
        if raw is None:  # a trial Tune had not started yet
            continue
        config = json.loads(raw)
        text = json.dumps(config, sort_keys=True, default=str)
        rows.append({"trial_id": layout.trial_id(name), "trial_path": path, "config": text, "error": _last_line(err)})
    return pd.DataFrame(rows, columns=["trial_id", "trial_path", "config", "error"])


def _records(trials: pd.DataFrame) -> tuple[list[tuple[str, dict]], list[dict]]:
    """(trial_id, record) of every complete unit of these trials, and a row per unreadable record."""
    paths, owners = [], []
    for trial_id, trial_path in zip(trials["trial_id"], trials["trial_path"]):
        trial = layout.TrialDir(trial_path)
        for key in trial.unit_keys():
            paths.append(trial.unit(key).record)
            owners.append((trial_id, key))
    done, bad = [], []
    for (trial_id, key), raw in zip(owners, store.maybe_read_many(paths)):
        if raw is None:
            continue
        try:
            record = json.loads(raw)
            record["fold"], record["seed"], record["unit"]  # noqa: B018 (the fields a row needs)
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
            reason = f"{layout.RECORD} unreadable ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"
            bad.append({"trial_id": trial_id, "unit": key, "status": "unreadable", "unit_error": reason})
            continue
        done.append((trial_id, record))
    return done, bad


def _info(record: dict) -> dict:
    info = record.get("info")
    return info if isinstance(info, dict) else {}


def _unit_of(key: str, universe: bool) -> tuple[str, int, str | None]:
    """(fold, seed, asset) from a unit directory name (trainables.ids.unit_key)."""
    rest, _, seed = key.rpartition("__seed")
    asset, _, fold = rest.partition("__") if universe else (None, "", rest)
    return fold, int(seed) if seed.isdigit() else -1, asset


def _unit_rows(sweep: Sweep, trials: pd.DataFrame) -> pd.DataFrame:
    """Complete units from their records, plus a failed/missing row per expected unit not done."""
    folds = {f["name"]: f for f in sweep.meta["folds"]}
    done, unreadable = _records(trials)
    metrics = pd.DataFrame([_numbers(r.get("metrics")) for _, r in done], index=range(len(done))).astype("float64")
    path_of = dict(zip(trials["trial_id"], trials["trial_path"]))
    complete = pd.DataFrame(
        {
            "trial_id": [t for t, _ in done],
            "asset": [r.get("asset") for _, r in done],
            "fold": [r["fold"] for _, r in done],
            "seed": [int(r["seed"]) for _, r in done],
            "unit": [r["unit"] for _, r in done],
            "status": "complete",
            "train_seconds": [float(r.get("train_seconds", np.nan)) for _, r in done],
            # A global fit's model is stored once, in its first asset's unit ("model_in").
            "checkpoint": [layout.TrialDir(path_of[t]).unit(r.get("model_in") or r["unit"]).model for t, r in done],
            # A seed-free unit's run, recorded for another seed too (the same forecasts).
            "shared_from": [r.get("shared_from") for _, r in done],
            # The split that chose the unit's weights / epoch: val, train-tail or none (zero-shot).
            "checkpoint_chosen_on": [_info(r).get("checkpoint_chosen_on") for _, r in done],
        }
    )
    complete = pd.concat([complete, metrics], axis=1)
    complete["mase_scale"] = [float(r.get("mase_scale", np.nan) or np.nan) for _, r in done]
    complete["metrics_version"] = [int(r.get("metrics_version", 1)) for _, r in done]
    bad = pd.DataFrame(unreadable, columns=["trial_id", "unit", "status", "unit_error"])
    parsed = [_unit_of(k, bool(sweep.assets)) for k in bad["unit"]]
    bad["fold"], bad["seed"], bad["asset"] = [p[0] for p in parsed], [p[1] for p in parsed], [p[2] for p in parsed]
    have = set(zip(complete["trial_id"], complete["asset"], complete["fold"], complete["seed"]))
    have |= set(zip(bad["trial_id"], bad["asset"], bad["fold"], bad["seed"]))
    errors = dict(zip(trials["trial_id"], trials["error"]))
    todo = [
        {
            "trial_id": t,
            "asset": a,
            "fold": f["name"],
            "seed": s,
            "unit": unit_key(f["name"], s, a),
            "status": "failed" if errors[t] else "missing",
        }
        for t in trials["trial_id"]
        for f, s, a in sweep.units
        if (t, a, f["name"], s) not in have
    ]
    todo = pd.DataFrame(todo, columns=["trial_id", "asset", "fold", "seed", "unit", "status"])
    rows = pd.concat([complete, bad, todo]) if len(bad) else pd.concat([complete, todo])
    rows["fold_id"] = [
        fold_id(sweep.spec, folds[f], a) if f in folds else f"{sweep.name}:{f}"
        for f, a in zip(rows["fold"], rows["asset"])
    ]
    rows["fold_end"] = [folds[f]["test_end"] if f in folds else "" for f in rows["fold"]]
    rows["asset"] = [sweep.asset_name(a) for a in rows["asset"]]
    return rows


def _numbers(metrics: object) -> dict[str, float]:
    """A record's metrics with anything that is not a number as NaN (a hand-edited or foreign record)."""
    if not isinstance(metrics, dict):
        return {}
    out = {}
    for name, value in metrics.items():
        try:
            out[name] = float(value)
        except (TypeError, ValueError):
            out[name] = float("nan")
    return out


def _empty() -> pd.DataFrame:
    return pd.DataFrame(columns=[*ID_COLUMNS, "trial_path", "config"])


def build_runs(sweep: Sweep, listing: dict[str, tuple[bool, float]] | None = None) -> pd.DataFrame:
    """The tidy table of one sweep, read from its files."""
    trials = _trials(sweep, store.entries(sweep.path) if listing is None else listing)
    if trials.empty:
        return _empty()
    units = _unit_rows(sweep, trials)
    trials["config_id"] = [config_id(json.loads(c)) for c in trials["config"]]
    out = units.merge(trials, on="trial_id", how="left")
    # A merged sweep runs each unit once per configuration: a unit one trial lacks but another
    # trial of the same configuration completed is not missing.
    complete = out["status"] == "complete"
    keys = ["config_id", "asset", "fold", "seed"]
    have = set(out.loc[complete, keys].itertuples(index=False, name=None))
    covered = [k in have for k in out[keys].itertuples(index=False, name=None)]
    out = out[complete | ~pd.Series(covered, index=out.index)].reset_index(drop=True)
    unit_error = out.pop("unit_error") if "unit_error" in out else pd.Series(np.nan, index=out.index)
    out["error"] = np.where(out["status"] == "complete", "", unit_error.fillna(out["error"]))
    out["checkpoint"] = out["checkpoint"].astype(object).where(out["checkpoint"].notna(), None)  # as parquet reads it
    out["model"], out["sweep"], out["sweep_mode"] = sweep.model, sweep.name, sweep.mode
    out["fit"] = sweep.spec.get("fit", "per-asset") if sweep.assets else ""  # a universe's fit
    out["source"], out["sweep_path"] = "tune", sweep.path
    out["git_sha"], out["started"] = sweep.meta.get("git_sha"), sweep.meta.get("started")
    params = pd.DataFrame([json.loads(c) for c in trials["config"]], index=trials["trial_id"]).add_prefix("config/")
    out = out.join(params, on="trial_id")
    out["seed"] = out["seed"].astype("int64")
    out["horizon"] = horizons(out, sweep.model)
    rest = [c for c in out.columns if c not in ID_COLUMNS]
    return out[ID_COLUMNS + rest].sort_values(["trial_id", "fold_end", "asset", "seed"], ignore_index=True)


def horizons(table: pd.DataFrame, model: str) -> pd.Series:
    """Steps forecast per row: the model's horizon hyperparameter (registry), NaN where unknown."""
    from trainables import registry

    key = f"config/{registry.MODELS[model].horizon_key}" if model in registry.MODELS else None
    if key is None or key not in table:
        return pd.Series(np.nan, index=table.index)
    return pd.to_numeric(table[key], errors="coerce")


def _cache_fresh(meta: dict[str, str], listing: dict[str, tuple[bool, float]], cache_mtime: float) -> bool:
    if meta.get("tidy_version") != TIDY_VERSION:
        return False
    trials = sorted(layout.trial_id(n) for n, (d, _) in listing.items() if d and layout.is_trial(n))
    if json.loads(meta.get("trial_dirs", "[]")) != trials:
        return False
    state = [
        m for n, (d, m) in listing.items() if not d and (n.startswith(layout.STATE_PREFIX) or n == layout.SWEEP_META)
    ]
    return cache_mtime >= max(state, default=0.0)


def sweep_runs(path: str, refresh: bool = False, write_cache: bool = True) -> pd.DataFrame:
    """The tidy table of the sweep at `path`, from its cache when fresh, else read and cached."""
    sweep = read_sweep(path)
    listing = store.entries(sweep.path)
    cache = store.join(sweep.path, RUNS_FILE)
    if not refresh and RUNS_FILE in listing:
        cached = store.maybe_read_parquet(cache)
        if cached is not None and _cache_fresh(cached[1], listing, listing[RUNS_FILE][1]):
            return cached[0]
    runs = build_runs(sweep, listing)
    if write_cache:
        trials = sorted(set(runs["trial_id"].astype(str))) if not runs.empty else []
        all_dirs = sorted(layout.trial_id(n) for n, (d, _) in listing.items() if d and layout.is_trial(n))
        # Record the listing only if every trial directory made it into the table (else: never fresh).
        dirs = all_dirs if trials == all_dirs else ["?"]
        store.write_parquet(cache, runs, {"tidy_version": TIDY_VERSION, "trial_dirs": json.dumps(dirs)})
    return runs


def logged_runs(root: str) -> pd.DataFrame:
    """Runs recorded with `Results.log_run` under `<root>/_logged/` (see analysis.logged)."""
    folder = store.join(root, LOGGED_DIR)
    names = sorted(n for n, (d, _) in store.entries(folder).items() if not d and n.endswith(".json"))
    rows = [json.loads(raw) for raw in store.maybe_read_many([store.join(folder, n) for n in names]) if raw is not None]
    if not rows:
        return _empty()
    out = pd.DataFrame([{k: v for k, v in r.items() if k not in ("metrics", "hyperparams")} for r in rows])
    metrics = pd.DataFrame([r["metrics"] for r in rows]).astype("float64")
    params = pd.DataFrame([r["hyperparams"] for r in rows]).add_prefix("config/")
    out["config"] = [json.dumps(r["hyperparams"], sort_keys=True, default=str) for r in rows]
    out = pd.concat([out, metrics, params], axis=1)
    out["horizon"] = pd.concat([horizons(part, m) for m, part in out.groupby("model", sort=False)]).reindex(out.index)
    return out


def load_runs(root: str, refresh: bool = False, model: str | None = None) -> pd.DataFrame:
    """Tidy table of every sweep under `root` (or the sweep at `root`) plus its logged runs."""
    if not store.is_dir(root):
        raise ResultsError(f"results path {root!r} does not exist")
    paths = find_sweeps(root)
    tables = []
    for p in paths:
        if model is not None and read_sweep(p).model != model:
            continue
        tables.append(sweep_runs(p, refresh=refresh))
    logged = logged_runs(root)
    if not logged.empty:
        tables.append(logged if model is None else logged[logged["model"] == model])
    tables = [t for t in tables if not t.empty]
    if not paths and not tables:
        raise ResultsError(f"no sweeps found under {root!r} (a sweep directory holds {layout.SWEEP_META})")
    if not tables:
        return _empty()
    runs = pd.concat(tables, ignore_index=True, sort=False) if len(tables) > 1 else tables[0]
    if "asset" not in runs:  # logged runs only
        runs["asset"] = ""
    runs["asset"] = runs["asset"].fillna("").astype(str)
    return runs


def metric_columns(runs: pd.DataFrame) -> list[str]:
    """The val_/test_ metric columns of a tidy table."""
    return [c for c in runs.columns if c.startswith(("val_", "test_"))]


def param_columns(runs: pd.DataFrame) -> list[str]:
    return [c for c in runs.columns if c.startswith("config/")]
