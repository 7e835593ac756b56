"""Verdicts against the random walk that account for how many configurations were tried.

From the stored forecasts of every complete configuration: the per-origin absolute-error loss
(averaged over the horizon, then over replica seeds; folds concatenated in time), aligned on the
origins every configuration shares. Then, per split (val, test):

- a pooled one-sided Diebold–Mariano test per configuration (trainables.metrics.dm_test):
  `beats_naive` when p < 5 %;
- Hansen's SPA test (arch.bootstrap.SPA) of "no configuration beats the naive forecast": the
  p-value that answers "did the sweep find anything?" after trying them all;
- the Model Confidence Set (arch.bootstrap.MCS): the configurations indistinguishable from the best.

In a universe (units of several assets) each unit's losses are first divided by its training
window's in-sample naive MAE (`mase_scale`, so no asset weighs by its price level), restricted to
the (asset, fold) units every configuration holds, then averaged over assets per date: one loss
series over the universe's dates.

Bootstraps are stationary block bootstraps, seeded, so the same losses give the same answer.
Configurations of a different horizon than the best one forecast other origins: they are left out
and named in `notes`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis import files
from trainables.metrics import DM_LEVEL, dm_test

SPLITS = ("val", "test")
# Column names per split. The headline verdicts carry no prefix: `beats_naive` on test (the
# split nothing was selected on) and `in_mcs` on val (the split configurations are selected on).
COLUMNS = {
    "val": {
        "stat": "val_dm_stat_pooled",
        "p": "val_dm_p_pooled",
        "beats": "val_beats_naive",
        "mcs": "in_mcs",
        "mcs_p": "mcs_pvalue",
    },
    "test": {
        "stat": "test_dm_stat_pooled",
        "p": "test_dm_p_pooled",
        "beats": "beats_naive",
        "mcs": "test_in_mcs",
        "mcs_p": "test_mcs_pvalue",
    },
}
# What a ranked row says about itself (best.py, best_model.json, the printed ranking).
ROW_KEYS = ("verdict", "beats_naive", "test_dm_p_pooled", "in_mcs", "mcs_pvalue", "val_beats_naive", "test_in_mcs")
MCS_R_LIMIT = 100  # above this many configurations the MCS uses the max statistic (R is O(k²) per draw)
LOSS_COLUMNS = [
    "model",
    "config_id",
    "split",
    "asset",
    "fold_id",
    "fold_end",
    "origin",
    "horizon",
    "loss",
    "naive_loss",
    "mase_scale",
]
LOSSES_VERSION = "2"  # 2: asset, mase_scale


class VerdictError(ValueError):
    """Bootstrap settings out of range; the message names the setting."""


@dataclass(frozen=True)
class Settings:
    """How the bootstraps run: block length (None: √T, arch's rule), replications, seed, MCS level."""

    reps: int = 1000
    block_size: int | None = None
    seed: int = 0
    mcs_size: float = 0.10

    def check(self) -> Settings:
        if self.reps < 100:
            raise VerdictError(f"--bootstrap-reps must be at least 100, got {self.reps}")
        if self.block_size is not None and self.block_size < 1:
            raise VerdictError(f"--block-size must be at least 1, got {self.block_size}")
        if not 0 < self.mcs_size < 1:
            raise VerdictError(f"--mcs-size must be between 0 and 1 (0.1 = a 90 % set), got {self.mcs_size}")
        if self.seed < 0:
            raise VerdictError(f"--bootstrap-seed must not be negative, got {self.seed}")
        return self


@dataclass
class Verdicts:
    """Per configuration (`table`) and per split (`spa`, `origins`, `block_size`), plus notes."""

    table: pd.DataFrame  # model, config_id, then the COLUMNS of each split
    spa: dict[str, float] = field(default_factory=dict)
    origins: dict[str, int] = field(default_factory=dict)
    block_size: dict[str, int] = field(default_factory=dict)
    configurations: dict[str, int] = field(default_factory=dict)
    horizon: int | None = None
    mcs_method: str = "R"
    settings: Settings = field(default_factory=Settings)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        """The JSON-ready part for summary.json."""
        beats = {s: int(self.table[COLUMNS[s]["beats"]].eq(True).sum()) for s in SPLITS}
        mcs = {s: int(self.table[COLUMNS[s]["mcs"]].eq(True).sum()) for s in SPLITS}
        return {
            "spa_pvalue": {s: self.spa.get(s) for s in SPLITS},
            "configurations_tested": self.configurations,
            "origins": self.origins,
            "horizon": self.horizon,
            "beats_naive_count": beats,
            "mcs_size": mcs,
            "level": DM_LEVEL,
            "mcs_confidence": 1 - self.settings.mcs_size,
            "bootstrap": {"kind": "stationary", "reps": self.settings.reps, "block_size": self.block_size},
            "mcs_method": self.mcs_method,
            "seed": self.settings.seed,
            "notes": self.notes,
        }


def unit_losses(table: pd.DataFrame) -> pd.DataFrame:
    """Per (split, origin) of one unit's predictions table: model and naive absolute error, horizon mean."""
    err = table.assign(
        loss=(table["y_pred"] - table["y_true"]).abs(), naive_loss=(table["y_naive"] - table["y_true"]).abs()
    )
    g = err.groupby(["split", "origin"], sort=False)
    out = g[["loss", "naive_loss"]].mean()
    out["horizon"] = g["step"].max()
    return out.reset_index()


def read_losses(runs: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Seed-averaged per-origin losses of every complete unit in `runs`; and the units that could not be read."""
    done = runs[runs["status"] == "complete"].drop_duplicates(["model", "config_id", "fold_id", "seed"])
    paths = [
        files.join(str(t), "units", str(u), "predictions.parquet") for t, u in zip(done["trial_path"], done["unit"])
    ]
    parts, bad = [], []
    for (_, row), raw, path in zip(done.iterrows(), files.read_many(paths), paths):
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq

            table = pq.read_table(pa.BufferReader(raw)).to_pandas()
        except Exception:  # missing or truncated file: flagged, the rest goes on
            bad.append(path)
            continue
        losses = unit_losses(table)
        parts.append(
            losses.assign(
                model=row["model"],
                config_id=row["config_id"],
                asset=str(row.get("asset") or ""),
                fold_id=row["fold_id"],
                fold_end=row["fold_end"],
                mase_scale=float(row.get("mase_scale", np.nan)),
            )
        )
    if not parts:
        return pd.DataFrame(columns=LOSS_COLUMNS), bad
    every = pd.concat(parts, ignore_index=True)
    keys = ["model", "config_id", "split", "asset", "fold_id", "fold_end", "origin", "horizon"]
    out = every.groupby(keys, sort=False)[["loss", "naive_loss", "mase_scale"]].mean().reset_index()
    return out[LOSS_COLUMNS], bad


def over_assets(losses: pd.DataFrame, configs: list[tuple[str, str]]) -> pd.DataFrame:
    """One loss series over a universe's dates: scaled losses of the (asset, fold) units every
    configuration of `configs` holds, averaged over assets per (fold end, origin). Losses of one
    asset are returned unchanged."""
    if losses.empty or losses["asset"].nunique() < 2:
        return losses
    part = losses[pd.MultiIndex.from_frame(losses[["model", "config_id"]]).isin(configs)]
    held = part.groupby(["model", "config_id"])["fold_id"].agg(set)
    shared = set.intersection(*held.tolist()) if len(held) else set()
    part = part[part["fold_id"].isin(shared)]
    scale = part["mase_scale"].where(part["mase_scale"] > 0)
    part = part.assign(loss=part["loss"] / scale, naive_loss=part["naive_loss"] / scale)
    keys = ["model", "config_id", "split", "fold_end", "origin", "horizon"]
    out = part.groupby(keys, sort=False)[["loss", "naive_loss"]].mean().reset_index()
    return out.assign(asset="(universe)", fold_id=out["fold_end"], mase_scale=1.0)[LOSS_COLUMNS]


def aligned(losses: pd.DataFrame, split: str, configs: list[tuple[str, str]]) -> tuple[pd.DataFrame, pd.Series]:
    """(origins × configurations loss matrix, naive loss) on the origins all `configs` share, in time order."""
    part = losses[losses["split"] == split]
    part = part[pd.MultiIndex.from_frame(part[["model", "config_id"]]).isin(configs)]
    index = ["fold_end", "fold_id", "origin"]
    wide = part.pivot_table(index=index, columns=["model", "config_id"], values="loss", aggfunc="mean")
    wide = wide.reindex(columns=pd.MultiIndex.from_tuples(configs, names=["model", "config_id"])).dropna()
    naive = part.groupby(index)["naive_loss"].mean().reindex(wide.index)
    order = np.lexsort([wide.index.get_level_values("origin"), wide.index.get_level_values("fold_end")])
    return wide.iloc[order], naive.iloc[order]


def compute(ranked: pd.DataFrame, losses: pd.DataFrame, settings: Settings = Settings()) -> Verdicts:
    """Verdicts for the complete (`ok`) configurations of a ranking, best first."""
    settings.check()
    ok = ranked[ranked["status"] == "ok"]
    table = ok[["model", "config_id"]].reset_index(drop=True)
    for c in COLUMNS.values():
        table[[c["stat"], c["p"], c["mcs_p"]]] = np.nan
        table[[c["beats"], c["mcs"]]] = None
    out = Verdicts(table, settings=settings)
    if ok.empty or losses.empty:
        out.notes.append("no stored forecasts of complete configurations: no verdicts")
        return out
    horizons = losses.groupby(["model", "config_id"])["horizon"].max()
    best = (ok.iloc[0]["model"], ok.iloc[0]["config_id"])
    if best not in horizons.index:
        out.notes.append("the best configuration has no stored forecasts: no verdicts")
        return out
    out.horizon = int(horizons[best])
    same = [c for c in zip(ok["model"], ok["config_id"]) if c in horizons.index and horizons[c] == out.horizon]
    other = len(ok) - len(same)
    if other:
        out.notes.append(f"{other} configuration(s) with another horizon than the best ({out.horizon}) left out")
    assets = losses["asset"].nunique()
    losses = over_assets(losses, same)
    if assets > 1:
        out.notes.append(f"losses scaled by each unit's in-sample naive MAE and averaged over {assets} assets per date")
    for split in SPLITS:
        _split(out, losses, split, same)
    return out


def _split(out: Verdicts, losses: pd.DataFrame, split: str, configs: list[tuple[str, str]]) -> None:
    from arch.bootstrap import MCS, SPA

    wide, naive = aligned(losses, split, configs)
    n = len(wide)
    out.origins[split], out.configurations[split] = n, len(configs)
    if n < 10:
        out.notes.append(f"{split}: only {n} shared origins: too few for a bootstrap test")
        return
    block = out.settings.block_size or max(1, int(np.sqrt(n)))
    out.block_size[split] = block
    rows, col = out.table.set_index(["model", "config_id"]).index, COLUMNS[split]
    diff = wide.to_numpy() - naive.to_numpy()[:, None]
    for j, key in enumerate(wide.columns):
        stat, p = dm_test(diff[:, j], out.horizon or 1)
        i = rows.get_loc(key)
        out.table.loc[i, [col["stat"], col["p"]]] = stat, p
        out.table.loc[i, col["beats"]] = bool(p < DM_LEVEL)
    s = out.settings
    spa = SPA(naive.to_numpy(), wide.to_numpy(), block_size=block, reps=s.reps, bootstrap="stationary", seed=s.seed)
    spa.compute()
    out.spa[split] = float(spa.pvalues["consistent"])
    if len(configs) < 2:
        out.table.loc[rows.get_loc(configs[0]), [col["mcs"], col["mcs_p"]]] = True, 1.0
        return
    method = "R" if len(configs) <= MCS_R_LIMIT else "max"
    mcs = MCS(wide.to_numpy(), s.mcs_size, s.reps, block, method, "stationary", seed=s.seed)
    mcs.compute()
    out.mcs_method = method
    included = set(mcs.included)
    pvalues = mcs.pvalues.iloc[:, 0]
    for j, key in enumerate(wide.columns):
        i = rows.get_loc(key)
        out.table.loc[i, col["mcs"]] = j in included
        out.table.loc[i, col["mcs_p"]] = float(pvalues.get(j, np.nan))


def verdict_words(p: float | None, level: float = DM_LEVEL) -> str:
    """A one-sided DM p-value in words: beats naive, worse than naive, or indistinguishable."""
    if p is None or not np.isfinite(p):
        return "untested"
    if p < level:
        return "beats naive"
    if p > 1 - level:
        return "worse than naive"
    return "not better than naive"


def spa_words(p: float | None) -> str:
    """The SPA p-value as the answer to "did the sweep find anything that beats the random walk?"."""
    if p is None or not np.isfinite(p):
        return "not tested (too few shared forecasts)"
    if p < DM_LEVEL:
        return f"yes: at least one configuration beats the naive forecast (SPA p = {p:.3f}, all tried counted)"
    return f"no evidence that any configuration beats the naive forecast (SPA p = {p:.3f}, all tried counted)"


LOSSES_FILE = "sweep_losses.parquet"


def _units_key(runs: pd.DataFrame) -> str:
    import hashlib

    done = runs[runs["status"] == "complete"]
    keys = [LOSSES_VERSION, *sorted(f"{t}/{u}" for t, u in zip(done["trial_id"], done["unit"]))]
    return hashlib.sha1("\n".join(keys).encode()).hexdigest()


def sweep_losses(sweep_path: str, runs: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Per-origin losses of one sweep's complete units, cached as sweep_losses.parquet while its units stay the same."""
    path, key = files.join(sweep_path, LOSSES_FILE), _units_key(runs)
    cached = files.read_parquet(path)
    if cached is not None and cached[1].get("units") == key:
        return cached[0], json.loads(cached[1].get("unreadable", "[]"))
    losses, bad = read_losses(runs)
    files.write_parquet(path, losses, {"units": key, "unreadable": json.dumps(bad)})
    return losses, bad


def losses_of(runs: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    """Per-origin losses of every sweep in a tidy table (runs logged by hand have no forecasts)."""
    parts, bad = [], []
    tune_runs = runs[runs.get("source", pd.Series("tune", index=runs.index)) == "tune"]
    for path, part in tune_runs.groupby("sweep_path", sort=False):
        losses, missing = sweep_losses(str(path), part)
        parts.append(losses)
        bad += missing
    parts = [p for p in parts if not p.empty]
    return (pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=LOSS_COLUMNS)), bad


def attach(ranked: pd.DataFrame, v: Verdicts) -> pd.DataFrame:
    """`ranked` with the verdict columns and `verdict` (the test-split DM result in words)."""
    out = ranked.drop(columns=[c for c in v.table.columns if c not in ("model", "config_id") and c in ranked])
    out = out.merge(v.table, on=["model", "config_id"], how="left")
    out["verdict"] = [verdict_words(p) for p in out[COLUMNS["test"]["p"]]]
    at = list(out.columns).index("robust_score") + 1
    front = [c for c in ROW_KEYS[:4] if c in out]
    rest = [c for c in out.columns if c not in front]
    out = out[rest[:at] + front + rest[at:]]
    out.attrs.update(ranked.attrs)
    return out


def add_arguments(parser) -> None:
    """The bootstrap flags shared by report.py and best.py."""
    g = parser.add_argument_group("verdicts (SPA test, Model Confidence Set)")
    d = Settings()
    g.add_argument("--bootstrap-reps", type=int, default=d.reps, help="bootstrap replications")
    g.add_argument("--block-size", type=int, help="mean block length of the stationary bootstrap (default √T)")
    g.add_argument("--bootstrap-seed", type=int, default=d.seed, help="seed of the bootstraps")
    g.add_argument("--mcs-size", type=float, default=d.mcs_size, help="MCS size: 0.1 keeps a 90 %% confidence set")


def settings_from(args) -> Settings:
    """Checked Settings from parsed flags; VerdictError names a flag out of range."""
    return Settings(args.bootstrap_reps, args.block_size, args.bootstrap_seed, args.mcs_size).check()


def rank_with_verdicts(
    runs: pd.DataFrame,
    metric: str,
    mode: str | None = None,
    horizon: int | None = None,
    settings: Settings | None = Settings(),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(ranking, the runs ranked) at one horizon, with the verdict columns unless `settings` is None.

    `ranking.attrs` holds the horizon, the sweeps left out for another horizon, and the verdicts'
    summary. ResultsError when no run has that horizon.
    """
    from analysis.ranking import one_horizon, rank_configs
    from analysis.runs import ResultsError

    runs, horizon, left_out = one_horizon(runs, horizon)
    if runs.empty:
        raise ResultsError(f"no runs with horizon {horizon}")
    ranked = rank_configs(runs, metric, mode)
    judged = None
    if settings is not None:
        from analysis import universe

        losses, _ = losses_of(runs)
        judged = compute(ranked, losses, settings)
        ranked = universe.attach(attach(ranked, judged), runs, losses, metric)
    ranked.attrs.update(horizon=horizon, left_out=left_out, verdicts=judged.summary() if judged else None)
    return ranked, runs
