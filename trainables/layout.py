"""The sweep directory: every file and folder a sweep leaves, named once, with its readers and writers.

The trainable (trainables/nested.py, unit.py), the driver (sweeps/) and analysis (analysis/) find
their files through `SweepDir`, `TrialDir` and `UnitDir`; all I/O goes through `trainables.store`
(local paths and `s3://` URIs alike, every write atomic). A sweep directory is
`<storage>/<sweep name>/`:

```text
<storage>/<name>/                        SweepDir(root)
├── sweep.json                           spec, folds, assets, provenance, merges  — driver (sweeps/driver.py, merge.py)
├── driver.lock                          the live driver's heartbeat               — sweeps/lock.py
├── optuna_study.db                      the Optuna study (local storage only)     — the driver's search
├── tuner.pkl, experiment_state-*.json   Tune's experiment (what --resume restores) — Ray Tune
├── trial_<id>/                          one configuration                         — Ray Tune (named by the driver)
│   ├── params.json                      the configuration                         — Ray Tune
│   ├── error.txt                        why the trial failed, if it did           — Ray Tune
│   ├── checkpoint_*/progress.json       records of the units done so far          — trainables/nested.py
│   ├── tensorboard/<unit>/              a unit's training curves (local storage)  — trainables/nested.py
│   └── units/<unit>/                    one (asset, fold, seed) unit: UnitDir     — trainables/nested.py
│       ├── record.json                  its metrics and status                    — nested.py (analysis/recompute.py rewrites)
│       ├── predictions.parquet          its per-origin predictions                — trainables/unit.py
│       └── model/                       the fitted adapter (Adapter.save)         — unit.py (sweeps/prune.py deletes)
├── sweep_runs.parquet                   tidy table of every unit (a cache)        — analysis/runs.py
├── sweep_runs.json, sweep_runs.csv      the same table, for people                — analysis/report.py
├── sweep_losses.parquet, sweep_bands.parquet, sweep_garch.parquet
│                                        per-origin losses, test bands, GARCH bar (caches) — analysis/losses.py, garch_losses.py
├── config_ranking.csv, all_models_ranked.csv, param_impact_*.csv, param_importances.csv,
│   drift_ks_psi_by_fold.csv, drift_ks_psi_overall_summary.json
│                                        the report's tables                       — analysis/report.py
├── summary.json                         the sweep in numbers                      — analysis/report.py
├── best_model.json                      the best configuration's record (load_model) — analysis/report.py
├── report.md                            the report                                — analysis/report.py
├── plots/*.png                          the report's plots                        — analysis/report.py, plots.py
├── folds/<fold>/                        the tables and plots of one fold          — analysis/report.py
├── assets/<asset>/                      the tables of one asset (asset_runs.csv…)  — analysis/report.py
├── optuna_summary.json, optuna_best_trial.json, optuna_top_k_configs.json, optuna_trials.{csv,json}
│                                        the Optuna hand-off (optuna sweeps)        — analysis/optuna_handoff.py
└── ensemble/                            ensemble_units.csv, ensemble_summary.csv, ensemble.json — analysis/ensemble.py
```

The results root (`<storage>`, several sweeps) also holds `_logged/<run id>.json` (runs recorded with
`Results.log_run`, analysis/logged.py), `ensemble_greedy/` (weights.csv, ensemble_summary.csv,
ensemble.json: analysis/greedy_report.py) and `comparison_<label>/` (model_comparison.csv / .json and
report.md of sweeps/all.py). A model directory exported from a sweep (`model.json`, `weights/`,
`MODEL_CARD.md`) is described in analysis/model_dir.py, next to its reader and writer.
"""

from __future__ import annotations

from trainables import store

# ----------------------------------------------------------------------------- the sweep directory
SWEEP_META = "sweep.json"
LOCK = "driver.lock"
OPTUNA_DB = "optuna_study.db"
TUNER_FILE = "tuner.pkl"  # Ray Tune's
STATE_FILES = "experiment_state-*.json"  # Ray Tune's (TuneController.CKPT_FILE_TMPL)
STATE_PREFIX = "experiment_state"
TRIAL_PREFIX = "trial_"
RUNS_PARQUET = "sweep_runs.parquet"
RUNS_JSON = "sweep_runs.json"
RUNS_CSV = "sweep_runs.csv"
ASSET_RUNS_CSV = "asset_runs.csv"
LOSSES_PARQUET = "sweep_losses.parquet"
BANDS_PARQUET = "sweep_bands.parquet"
GARCH_PARQUET = "sweep_garch.parquet"
RANKING = "config_ranking.csv"
IMPACT_DETAIL = "param_impact_detail.csv"
IMPACT_SUMMARY = "param_impact_summary.csv"
IMPORTANCES = "param_importances.csv"
ALL_RANKED = "all_models_ranked.csv"
DRIFT_BY_FOLD = "drift_ks_psi_by_fold.csv"
DRIFT_SUMMARY = "drift_ks_psi_overall_summary.json"
SUMMARY = "summary.json"
BEST_MODEL = "best_model.json"
REPORT = "report.md"
PLOTS = "plots"
FOLDS = "folds"
ASSETS = "assets"
ENSEMBLE = "ensemble"
ENSEMBLE_UNITS = "ensemble_units.csv"
ENSEMBLE_SUMMARY = "ensemble_summary.csv"
ENSEMBLE_JSON = "ensemble.json"
OPTUNA_FILES = {  # name in the report's artefacts → file
    "summary": "optuna_summary.json",
    "best_trial": "optuna_best_trial.json",
    "top_k_configs": "optuna_top_k_configs.json",
    "trials_csv": "optuna_trials.csv",
    "trials_json": "optuna_trials.json",
}
PLOT_FILES = {  # the report's plots under plots/ (and folds/<fold>/plots/), by title
    "Ranking": "ranking.png",
    "Parameter impact": "param_impact.png",
    "Parameter importance": "param_importance.png",
    "Metric by fold": "metric_by_fold.png",
    "rel_mae by asset": "rel_mae_by_asset.png",
    "Learning curves": "learning_curves.png",
    "Forecast vs actual (test)": "forecast_best.png",
    "Drift": "drift.png",
    "Optuna history": "optuna_history.png",
    "Calibration (test)": "calibration.png",
}
# ------------------------------------------------------------------------------------ a trial
PARAMS = "params.json"
ERROR = "error.txt"
UNITS = "units"
TENSORBOARD = "tensorboard"
PROGRESS = "progress.json"  # in each of the trial's Tune checkpoints
# ------------------------------------------------------------------------------------- a unit
RECORD = "record.json"
PREDICTIONS = "predictions.parquet"
MODEL = "model"
# ------------------------------------------------------------------------------ the results root
LOGGED_DIR = "_logged"
GREEDY_DIR = "ensemble_greedy"
GREEDY_WEIGHTS = "weights.csv"
COMPARISON_PREFIX = "comparison_"
COMPARISON_CSV = "model_comparison.csv"
COMPARISON_JSON = "model_comparison.json"


def plot_file(title: str) -> str:
    """The path, relative to the directory of the report, of the plot with this title."""
    return f"{PLOTS}/{PLOT_FILES[title]}"


def comparison_dir(root: str, label: str) -> str:
    """`<root>/comparison_<label>/`: sweeps/all.py's cross-model comparison."""
    return store.join(root, f"{COMPARISON_PREFIX}{label}")


def trial_dirname(trial_id: str) -> str:
    """The directory name of a Tune trial (`trial_<id>`)."""
    return f"{TRIAL_PREFIX}{trial_id}"


def is_trial(name: str) -> bool:
    return name.startswith(TRIAL_PREFIX)


def trial_id(name: str) -> str:
    """The trial id of a trial directory's name."""
    return name.removeprefix(TRIAL_PREFIX)


class UnitDir:
    """`<trial>/units/<unit key>/`: one (asset, fold, seed) unit."""

    def __init__(self, path: str):
        self.path = str(path).rstrip("/")

    @property
    def record(self) -> str:
        return store.join(self.path, RECORD)

    @property
    def predictions(self) -> str:
        return store.join(self.path, PREDICTIONS)

    @property
    def model(self) -> str:
        return store.join(self.path, MODEL)

    def read_record(self) -> dict:
        """The unit's record; raises store.MissingFile when the unit has not finished."""
        return store.read_json(self.record)

    def write_record(self, record: dict) -> None:
        store.write_json(self.record, record)


class TrialDir:
    """`<sweep>/trial_<id>/`: one configuration's trial."""

    def __init__(self, path: str):
        self.path = str(path).rstrip("/")

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def params(self) -> str:
        return store.join(self.path, PARAMS)

    @property
    def error(self) -> str:
        return store.join(self.path, ERROR)

    @property
    def units(self) -> str:
        return store.join(self.path, UNITS)

    def unit(self, key: str) -> UnitDir:
        return UnitDir(store.join(self.units, key))

    def unit_keys(self) -> list[str]:
        """Sorted keys of the units that have a directory."""
        return store.subdirs(self.units)

    def tensorboard(self, key: str) -> str:
        return store.join(self.path, TENSORBOARD, key)

    def read_params(self) -> dict:
        """The trial's configuration; raises store.MissingFile before Tune wrote it."""
        return store.read_json(self.params)

    def finished_records(self) -> list[dict]:
        """Records of the units whose record.json exists."""
        return store.read_json_files(self.units, RECORD)


class SweepDir:
    """`<storage>/<name>/`: one sweep's directory (a local path or a URI)."""

    def __init__(self, root: str):
        self.root = str(root).rstrip("/")

    def __repr__(self) -> str:
        return f"SweepDir({self.root!r})"

    def file(self, name: str) -> str:
        """The path of `name` (one of this module's names) in the sweep directory."""
        return store.join(self.root, name)

    @property
    def sweep_json(self) -> str:
        return self.file(SWEEP_META)

    @property
    def lock(self) -> str:
        return self.file(LOCK)

    @property
    def optuna_db(self) -> str:
        return self.file(OPTUNA_DB)

    @property
    def tuner(self) -> str:
        return self.file(TUNER_FILE)

    @property
    def runs_parquet(self) -> str:
        return self.file(RUNS_PARQUET)

    @property
    def runs_json(self) -> str:
        return self.file(RUNS_JSON)

    @property
    def summary(self) -> str:
        return self.file(SUMMARY)

    @property
    def ranking(self) -> str:
        return self.file(RANKING)

    @property
    def report(self) -> str:
        return self.file(REPORT)

    @property
    def best_model(self) -> str:
        return self.file(BEST_MODEL)

    @property
    def plots(self) -> str:
        return self.file(PLOTS)

    @property
    def ensemble(self) -> str:
        return self.file(ENSEMBLE)

    def fold(self, fold: str) -> str:
        """`folds/<fold>/`: one fold's tables and plots."""
        return store.join(self.root, FOLDS, fold)

    def asset(self, asset: str) -> str:
        """`assets/<asset>/`: one asset's tables."""
        return store.join(self.root, ASSETS, asset)

    def trial(self, name: str) -> TrialDir:
        """The trial directory called `name` (`trial_<id>`)."""
        return TrialDir(store.join(self.root, name))

    def trial_names(self) -> list[str]:
        """Sorted names of the trial directories."""
        return [n for n in store.subdirs(self.root) if is_trial(n)]

    def is_sweep(self) -> bool:
        """Whether the directory holds a sweep.json."""
        return store.exists(self.sweep_json)

    def read_meta(self) -> dict:
        """sweep.json, parsed; raises store.MissingFile when there is none."""
        return store.read_json(self.sweep_json)

    def maybe_read_meta(self) -> dict | None:
        """sweep.json, parsed, or None when there is none."""
        return self.read_meta() if self.is_sweep() else None

    def write_meta(self, meta: dict) -> None:
        store.write_json(self.sweep_json, meta)

    def write_summary(self, summary: dict) -> str:
        store.write_json(self.summary, summary)
        return self.summary

    def write_best_model(self, best: dict) -> str:
        store.write_json(self.best_model, best)
        return self.best_model

    def write_report(self, text: str) -> str:
        store.write_text(self.report, text)
        return self.report


def sweeps_in(root: str) -> list[SweepDir]:
    """`root` itself when it is a sweep, else its sub-directories that are."""
    if SweepDir(root).is_sweep():
        return [SweepDir(root)]
    return [SweepDir(store.join(root, d)) for d in store.subdirs(root) if SweepDir(store.join(root, d)).is_sweep()]
