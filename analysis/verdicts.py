"""Verdicts against the random walk that account for how many configurations were tried.

From the stored forecasts of every complete configuration: the per-origin absolute-error loss
(averaged over the horizon, then over replica seeds; folds concatenated in time), aligned on the
origins every configuration shares. Then, per split (val, test):

- a pooled one-sided Diebold–Mariano test per configuration (trainables.metrics.dm_test):
  `beats_naive` when p < 5 %;
- Hansen's SPA test (arch.bootstrap.SPA) of "no configuration beats the naive forecast": the
  p-value that answers "did the sweep find anything?" after trying them all;
- the Model Confidence Set (arch.bootstrap.MCS): the configurations indistinguishable from the best.

The same machinery judges the forecast distribution on the per-origin quantile loss (`ql`, the
nine-level QL averaged over the horizon): against the probabilistic random walk
(`beats_naive_prob`, SPA `spa_pvalue_prob`) and against a GARCH(1,1)-t fitted on each unit's
training window (`beats_garch`, `spa_pvalue_garch`; analysis.garch), and the MCS on the QL
(`in_mcs_ql`). The DM test on QL differentials is the unconditional Giacomini–White test.

In a universe (units of several assets) each unit's losses are first divided by its training
window's in-sample naive MAE (`mase_scale`, so no asset weighs by its price level), restricted to
the (asset, fold) units every configuration holds, then averaged over assets per date: one loss
series over the universe's dates.

Bootstraps are stationary block bootstraps, seeded, so the same losses give the same answer.
Configurations of a different horizon than the best one forecast other origins: they are left out
and named in `notes`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis import bar as bar_mod
from analysis.losses import LOSS_COLUMNS, LOSS_VALUES
from trainables.metrics import DM_LEVEL, dm_test

SPLITS = ("val", "test")
# Column names per split and judged loss. The headline verdicts carry no prefix: `beats_*` on test
# (the split nothing was selected on) and `in_mcs*` on val (the split configurations are selected on).
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
PROB_COLUMNS = {
    "val": {
        "stat": "val_dm_stat_prob",
        "p": "val_dm_p_prob",
        "beats": "val_beats_naive_prob",
        "mcs": "in_mcs_ql",
        "mcs_p": "mcs_pvalue_ql",
    },
    "test": {
        "stat": "test_dm_stat_prob",
        "p": "test_dm_p_prob",
        "beats": "beats_naive_prob",
        "mcs": "test_in_mcs_ql",
        "mcs_p": "test_mcs_pvalue_ql",
    },
}
GARCH_COLUMNS = {
    "val": {"stat": "val_dm_stat_garch", "p": "val_dm_p_garch", "beats": "val_beats_garch"},
    "test": {"stat": "test_dm_stat_garch", "p": "test_dm_p_garch", "beats": "beats_garch"},
}
# Against the best baseline (analysis.bar), chosen on val: the test columns are the honest ones.
BAR_COLUMNS = {
    "val": {"stat": "val_dm_stat_baseline", "p": "val_dm_p_baseline", "beats": "val_beats_best_baseline"},
    "test": {"stat": "test_dm_stat_baseline", "p": "test_dm_p_baseline", "beats": "beats_best_baseline"},
}
# Configurations with covariates against the best one without (analysis.bar.plain_best), chosen on val.
PLAIN_COLUMNS = {
    "val": {"stat": "val_dm_stat_covariates", "p": "val_dm_p_covariates", "beats": "val_beats_no_covariates"},
    "test": {"stat": "test_dm_stat_covariates", "p": "test_dm_p_covariates", "beats": "beats_no_covariates"},
}


@dataclass(frozen=True)
class Judged:
    """One loss judged against one reference: the columns it fills and where its SPA p-value goes."""

    loss: str  # column of the losses table
    reference: str  # the benchmark's loss column
    columns: dict[str, dict[str, str]]
    spa: str  # key of Verdicts.spa_of
    # the configurations judged: "all", "models" (not the baselines), "covariates" (those reading one)
    among: str = "all"


JUDGED = (
    Judged("loss", "naive_loss", COLUMNS, "point"),
    Judged("ql", "rw_ql", PROB_COLUMNS, "prob"),
    Judged("ql", "garch_ql", GARCH_COLUMNS, "garch"),
    Judged("loss", "bar_loss", BAR_COLUMNS, "baseline", among="models"),
    Judged("loss", "plain_loss", PLAIN_COLUMNS, "covariates", among="covariates"),
)
# What a ranked row says about itself (best.py, best_model.json, the printed ranking).
ROW_KEYS = (
    "verdict",
    "beats_naive",
    "test_dm_p_pooled",
    "in_mcs",
    "mcs_pvalue",
    "val_beats_naive",
    "test_in_mcs",
    "beats_naive_prob",
    "test_dm_p_prob",
    "beats_garch",
    "test_dm_p_garch",
    "in_mcs_ql",
    "calibration",
    "baseline",
    "beats_best_baseline",
    "test_dm_p_baseline",
    "beats_no_covariates",
    "test_dm_p_covariates",
)
# What a cross-model comparison shows of each row besides the first five of ROW_KEYS.
COMPARED = ("baseline", "beats_best_baseline", "test_dm_p_baseline", "beats_no_covariates", "test_dm_p_covariates")
MCS_R_LIMIT = 100  # above this many configurations the MCS uses the max statistic (R is O(k²) per draw)


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

    table: pd.DataFrame  # model, config_id, then the columns of each JUDGED loss and split
    spa_of: dict[str, dict[str, float]] = field(default_factory=lambda: {j.spa: {} for j in JUDGED})
    origins: dict[str, int] = field(default_factory=dict)
    block_size: dict[str, int] = field(default_factory=dict)
    configurations: dict[str, int] = field(default_factory=dict)
    horizon: int | None = None
    mcs_method: str = "R"
    settings: Settings = field(default_factory=Settings)
    notes: list[str] = field(default_factory=list)
    calibration: dict[str, dict] = field(default_factory=dict)  # the random walk's and GARCH's (calibrated.references)
    bar: dict | None = None  # the best baseline: model, config_id, name (analysis.bar)
    plain: dict | None = None  # the best configuration without covariates, when others read some
    covariate_configs: set = field(default_factory=set)  # (model, config_id) reading a covariate

    @property
    def spa(self) -> dict[str, float]:
        """SPA p-values of "no configuration beats the naive forecast" (point losses) per split."""
        return self.spa_of["point"]

    def summary(self) -> dict:
        """The JSON-ready part for summary.json."""

        def count(columns: dict, key: str) -> dict[str, int]:
            return {s: int(self.table[columns[s][key]].eq(True).sum()) for s in SPLITS}

        return {
            "spa_pvalue": {s: self.spa.get(s) for s in SPLITS},
            "spa_pvalue_prob": {s: self.spa_of["prob"].get(s) for s in SPLITS},
            "spa_pvalue_garch": {s: self.spa_of["garch"].get(s) for s in SPLITS},
            "best_baseline": self.bar,
            "spa_pvalue_baseline": {s: self.spa_of["baseline"].get(s) for s in SPLITS},
            "beats_best_baseline_count": count(BAR_COLUMNS, "beats"),
            "no_covariates_reference": self.plain,
            "spa_pvalue_covariates": {s: self.spa_of["covariates"].get(s) for s in SPLITS},
            "beats_no_covariates_count": count(PLAIN_COLUMNS, "beats"),
            "beats_naive_prob_count": count(PROB_COLUMNS, "beats"),
            "beats_garch_count": count(GARCH_COLUMNS, "beats"),
            "mcs_size_ql": count(PROB_COLUMNS, "mcs"),
            "configurations_tested": self.configurations,
            "origins": self.origins,
            "horizon": self.horizon,
            "beats_naive_count": count(COLUMNS, "beats"),
            "mcs_size": count(COLUMNS, "mcs"),
            "level": DM_LEVEL,
            "mcs_confidence": 1 - self.settings.mcs_size,
            "bootstrap": {"kind": "stationary", "reps": self.settings.reps, "block_size": self.block_size},
            "mcs_method": self.mcs_method,
            "seed": self.settings.seed,
            "calibration_reference": self.calibration,
            "notes": self.notes,
        }


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
    values = [c for c in (*LOSS_VALUES, *bar_mod.BAR_VALUES) if c in part]
    scale = part["mase_scale"].where(part["mase_scale"] > 0)
    part = part.assign(**{c: part[c] / scale for c in values})
    keys = ["model", "config_id", "split", "fold_end", "origin", "horizon"]
    out = part.groupby(keys, sort=False)[values].mean().reset_index()
    extra = [c for c in bar_mod.BAR_VALUES if c in out]
    return out.assign(asset="(universe)", fold_id=out["fold_end"], mase_scale=1.0)[LOSS_COLUMNS + extra]


def aligned(
    losses: pd.DataFrame, split: str, configs: list[tuple[str, str]], loss: str = "loss", reference: str = "naive_loss"
) -> tuple[pd.DataFrame, pd.Series]:
    """(origins × configurations matrix of `loss`, the reference's loss) on the origins all
    `configs` and the reference share, in time order."""
    part = losses[losses["split"] == split]
    part = part[pd.MultiIndex.from_frame(part[["model", "config_id"]]).isin(configs)]
    index = ["fold_end", "fold_id", "origin"]
    wide = part.pivot_table(index=index, columns=["model", "config_id"], values=loss, aggfunc="mean")
    wide = wide.reindex(columns=pd.MultiIndex.from_tuples(configs, names=["model", "config_id"]))
    wide = wide.dropna(axis=1, how="all").dropna()  # a configuration without this loss (no quantiles) drops out
    naive = part.groupby(index)[reference].mean().reindex(wide.index)
    wide, naive = wide[naive.notna().to_numpy()], naive.dropna()
    order = np.lexsort([wide.index.get_level_values("origin"), wide.index.get_level_values("fold_end")])
    return wide.iloc[order], naive.iloc[order]


def compute(ranked: pd.DataFrame, losses: pd.DataFrame, settings: Settings = Settings()) -> Verdicts:
    """Verdicts for the complete (`ok`) configurations of a ranking, best first."""
    settings.check()
    ok = ranked[ranked["status"] == "ok"]
    table = ok[["model", "config_id"]].reset_index(drop=True)
    for judged in JUDGED:
        for c in judged.columns.values():
            table[[c[k] for k in ("stat", "p", "mcs_p") if k in c]] = np.nan
            table[[c[k] for k in ("beats", "mcs") if k in c]] = None
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
    bar = bar_mod.best(ok, same)
    if bar is not None:  # chosen on val by the ranking: on test a fixed benchmark
        row = ok[(ok["model"] == bar[0]) & (ok["config_id"] == bar[1])].iloc[0]
        models = sum(not bar_mod.is_baseline(m) for m, _ in same)  # the configurations judged against it
        out.bar = {
            "model": bar[0],
            "config_id": bar[1],
            "name": bar_mod.name(bar[0], row.get("config")),
            "models": models,
        }
        losses = bar_mod.with_bar(losses, bar)
    plain = bar_mod.plain_best(ok, same)
    if plain is not None:  # chosen on val by the ranking, like the bar
        out.covariate_configs = bar_mod.with_covariates(ok) & set(same)
        out.plain = {"model": plain[0], "config_id": plain[1], "configurations": len(out.covariate_configs)}
        losses = bar_mod.with_bar(losses, plain, "plain_loss")
    assets = losses["asset"].nunique()
    losses = over_assets(losses, same)
    if assets > 1:
        out.notes.append(f"losses scaled by each unit's in-sample naive MAE and averaged over {assets} assets per date")
    for judged in JUDGED:
        for split in SPLITS:
            _split(out, losses, split, same, judged)
    return out


def _split(out: Verdicts, losses: pd.DataFrame, split: str, configs: list[tuple[str, str]], judged: Judged) -> None:
    from arch.bootstrap import MCS, SPA

    point = judged.spa == "point"
    if judged.among == "models":
        configs = [c for c in configs if not bar_mod.is_baseline(c[0])]
    elif judged.among == "covariates":
        configs = [c for c in configs if c in out.covariate_configs]
    if judged.reference not in losses or not configs:  # no baseline in the ranking: nothing to judge
        return
    if losses[judged.loss].isna().all() or losses[judged.reference].isna().all():
        if not point and split == "test":
            what = "forecast distributions" if losses[judged.loss].isna().all() else f"{judged.reference} losses"
            out.notes.append(f"no {what}: no verdict on the distribution vs {judged.spa}")
        return
    wide, naive = aligned(losses, split, configs, judged.loss, judged.reference)
    configs = [c for c in configs if c in wide.columns]  # a configuration without quantiles is not judged
    wide = wide[configs]
    n = len(wide)
    if point:
        out.origins[split], out.configurations[split] = n, len(configs)
    if n < 10:
        if point or split == "test":
            what = "" if point else f" of {judged.loss} vs {judged.reference}"
            out.notes.append(f"{split}: only {n} shared origins{what}: too few for a bootstrap test")
        return
    block = out.settings.block_size or max(1, int(np.sqrt(n)))
    if point:
        out.block_size[split] = block
    rows, col = out.table.set_index(["model", "config_id"]).index, judged.columns[split]
    diff = wide.to_numpy() - naive.to_numpy()[:, None]
    for j, key in enumerate(wide.columns):
        stat, p = dm_test(diff[:, j], out.horizon or 1)
        i = rows.get_loc(key)
        out.table.loc[i, [col["stat"], col["p"]]] = stat, p
        out.table.loc[i, col["beats"]] = bool(p < DM_LEVEL)
    s = out.settings
    spa = SPA(naive.to_numpy(), wide.to_numpy(), block_size=block, reps=s.reps, bootstrap="stationary", seed=s.seed)
    spa.compute()
    out.spa_of[judged.spa][split] = float(spa.pvalues["consistent"])
    if "mcs" not in col:
        return
    # Configurations with identical losses (a hyperparameter the forecasts ignore) are one model to
    # the MCS, which cannot rank exact ties (arch's R statistic fails on them): each copy shares its
    # first twin's result.
    values = wide.to_numpy()
    twin: dict[bytes, int] = {}
    first = [twin.setdefault(values[:, j].tobytes(), j) for j in range(values.shape[1])]
    distinct = sorted(set(first))
    if len(distinct) < 2:
        for key in wide.columns:
            out.table.loc[rows.get_loc(key), [col["mcs"], col["mcs_p"]]] = True, 1.0
        return
    method = "R" if len(distinct) <= MCS_R_LIMIT else "max"
    mcs = MCS(values[:, distinct], s.mcs_size, s.reps, block, method, "stationary", seed=s.seed)
    mcs.compute()
    out.mcs_method = method
    included = set(mcs.included)
    pvalues = mcs.pvalues.iloc[:, 0]
    for j, key in enumerate(wide.columns):
        at = distinct.index(first[j])  # its column in the MCS
        i = rows.get_loc(key)
        out.table.loc[i, col["mcs"]] = at in included
        out.table.loc[i, col["mcs_p"]] = float(pvalues.get(at, np.nan))


def verdict_words(p: float | None, level: float = DM_LEVEL) -> str:
    """A one-sided DM p-value in words: beats naive, worse than naive, or indistinguishable."""
    if p is None or not np.isfinite(p):
        return "untested"
    if p < level:
        return "beats naive"
    if p > 1 - level:
        return "worse than naive"
    return "not better than naive"


def spa_words(p: float | None, benchmark: str = "the naive forecast") -> str:
    """The SPA p-value as the answer to "did the sweep find anything that beats the benchmark?"."""
    if p is None or not np.isfinite(p):
        return "not tested (too few shared forecasts)"
    if p < DM_LEVEL:
        return f"yes: at least one configuration beats {benchmark} (SPA p = {p:.3f}, all tried counted)"
    return f"no evidence that any configuration beats {benchmark} (SPA p = {p:.3f}, all tried counted)"


def attach(ranked: pd.DataFrame, v: Verdicts) -> pd.DataFrame:
    """`ranked` with the verdict columns and `verdict` (the test-split DM result in words)."""
    out = ranked.drop(columns=[c for c in v.table.columns if c not in ("model", "config_id") and c in ranked])
    out = out.merge(v.table, on=["model", "config_id"], how="left")
    out["verdict"] = [verdict_words(p) for p in out[COLUMNS["test"]["p"]]]
    out["baseline"] = bar_mod.marks(out["model"])
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


def judge(ranked: pd.DataFrame, runs: pd.DataFrame, settings: Settings):
    """(`ranked` with the verdict and calibration columns, the Verdicts, analysis.losses.Tables)
    for the ranked configurations of `runs`."""
    from analysis import calibrated
    from analysis.losses import tables_of

    tables = tables_of(runs)
    judged = compute(ranked, tables.losses, settings)
    judged.notes += tables.notes
    judged.calibration = calibrated.references(tables.bands, tables.garch)
    out = calibrated.attach(attach(ranked, judged), tables.bands)
    out.attrs["verdicts"] = judged.summary()  # what the printed ranking and best_record read (the bar)
    return out, judged, tables


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

        ranked, judged, tables = judge(ranked, runs, settings)
        ranked = universe.attach(ranked, runs, tables.losses, metric)
    ranked.attrs.update(horizon=horizon, left_out=left_out, verdicts=judged.summary() if judged else None)
    return ranked, runs
