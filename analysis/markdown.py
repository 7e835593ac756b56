"""report.md: the tables of a sweep (or of several models) as a readable markdown report."""

from __future__ import annotations

import pandas as pd

from analysis.impact import MIN_IMPORTANCE_CONFIGS
from analysis.ranking import config_labels
from analysis.tables import SweepTables
from analysis.text import fmt


def table(frame: pd.DataFrame, columns: dict[str, str], digits: int = 4) -> str:
    """A markdown table of `frame`'s `columns` (column → header)."""
    cols = [c for c in columns if c in frame]
    if frame.empty or not cols:
        return "_(none)_"
    lines = ["| " + " | ".join(columns[c] for c in cols) + " |", "|" + "---|" * len(cols)]
    for _, row in frame[cols].iterrows():
        cells = [fmt(row[c], digits).replace("|", "\\|") for c in cols]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _yes(value) -> str:
    return "untested" if value is None else ("yes" if value else "no")


def _versus(verdict: dict) -> str:
    p = verdict.get("test_dm_p_pooled")
    return f"{verdict.get('verdict', 'untested')} (p = {fmt(p, 3)})" if p is not None else "untested"


def _dist(verdict: dict, against: str) -> str:
    """beats_naive_prob / beats_garch with its p-value, in words."""
    beats = verdict.get("beats_naive_prob" if against == "prob" else "beats_garch")
    p = verdict.get(f"test_dm_p_{against}")
    if beats is None or p is None:
        return "untested"
    return f"{'beats it' if beats else 'does not beat it'} (p = {fmt(p, 3)})"


def _best(best: dict | None, metric: str) -> list[str]:
    if best is None:
        return ["No configuration completed every fold × seed."]
    test = "test_" + metric.removeprefix("val_")
    m = best["metrics"]
    rows = [
        (metric, f"{fmt(m.get(metric), 4)} ± {fmt(m.get(metric + '_std'), 4)}"),
        ("robust_score", fmt(m["robust_score"], 4)),
        (test, f"{fmt(m.get(test), 4)} ± {fmt(m.get(test + '_std'), 4)}"),
        ("rel MAE val / test (< 1 beats naive)", f"{fmt(m.get('val_rel_mae'), 4)} / {fmt(m.get('test_rel_mae'), 4)}"),
        ("MASE val / test", f"{fmt(m.get('val_mase'), 4)} / {fmt(m.get('test_mase'), 4)}"),
        ("vs naive on test (one-sided DM, pooled)", _versus(best.get("verdict", {}))),
        ("in the 90 % MCS (val)", _yes(best.get("verdict", {}).get("in_mcs"))),
        ("vs the best baseline on test (one-sided DM; the bar chosen on val)", best.get("versus_bar", "untested")),
        (
            "quantile loss val / test: rel_ql (< 1 beats the probabilistic random walk)",
            f"{fmt(m.get('val_rel_ql'), 4)} / {fmt(m.get('test_rel_ql'), 4)}",
        ),
        ("distribution vs random walk on test (one-sided DM on QL)", _dist(best.get("verdict", {}), "prob")),
        ("distribution vs GARCH(1,1)-t on test (one-sided DM on QL)", _dist(best.get("verdict", {}), "garch")),
        (
            "80 % / 95 % band coverage (test)",
            f"{fmt(m.get('test_coverage80'), 3)} / {fmt(m.get('test_coverage95'), 3)}",
        ),
        (
            "calibration (test: Kupiec, Christoffersen, HAC coverage)",
            best.get("verdict", {}).get("calibration", "untested"),
        ),
        ("val_sharpe / test_sharpe", f"{fmt(m.get('val_sharpe'), 2)} / {fmt(m.get('test_sharpe'), 2)}"),
        ("units compared", str(best["units_compared"])),
    ]
    params = ", ".join(f"`{k}={v}`" for k, v in best["config"].items())
    return [
        f"**{best['model']}**, configuration `{best['config_id']}` (sweep {best['sweep']})",
        "",
        "| metric | value |",
        "|---|---|",
        *[f"| {a} | {b} |" for a, b in rows],
        "",
        f"Hyperparameters: {params}",
        "",
        f"Checkpoint ({_where(best['checkpoint_unit'])}): `{best['checkpoint']}`"
        + (
            " (a model per asset: every unit's is under `unit_models` in best_model.json)"
            if best["checkpoint_unit"].get("asset")
            else ""
        ),
    ]


def _verdicts(t: SweepTables, summary: dict) -> list[str]:
    """The answer to "does anything beat the random walk?", in words, with the numbers behind it."""
    v = summary.get("verdicts") or {}
    spa = v.get("spa_pvalue") or {}
    if not v.get("origins"):
        return ["_Not computed: " + "; ".join(v.get("notes") or t.notes or ["no stored forecasts"]) + "._"]
    beats, mcs = v.get("beats_naive_count", {}), v.get("mcs_size", {})
    tested = v.get("configurations_tested", {})
    block = ", ".join(f"{b} ({s})" for s, b in (v.get("bootstrap", {}).get("block_size") or {}).items())
    lines = [
        f"**Did the sweep find anything that beats the random walk?** {summary['answer'][0].upper()}"
        f"{summary['answer'][1:]}.",
        "",
        "| split | configurations tested | shared origins | SPA p (no configuration beats naive) "
        "| beat naive alone (one-sided DM, 5 %) | in the 90 % MCS |",
        "|---|---|---|---|---|---|",
    ]
    for split in ("val", "test"):
        lines.append(
            f"| {split} | {tested.get(split, 0)} | {v['origins'].get(split, 0)} | {fmt(spa.get(split), 3)} "
            f"| {beats.get(split, 0)} | {mcs.get(split, 0)} |"
        )
    lines += [
        "",
        f"Losses: absolute error per forecast origin, averaged over the {v.get('horizon')}-step horizon and the "
        "replica seeds, folds concatenated in time, on the origins every configuration shares. SPA: Hansen's test "
        "of the null that no configuration is better than the naive forecast, over *all* configurations tried "
        "(so the best one's luck is accounted for). MCS: the configurations statistically indistinguishable from "
        f"the best (Hansen, Lunde & Nason; {v.get('mcs_method', 'R')} statistic). Stationary bootstrap, "
        f"{v.get('bootstrap', {}).get('reps')} replications, mean block length {block}, seed {v.get('seed')}.",
        *_dist_verdicts(v),
        *_bar_verdicts(v),
        *_covariate_verdicts(v),
        *(f"\n> {n}" for n in v.get("notes", [])),
    ]
    return lines


def _covariate_verdicts(v: dict) -> list[str]:
    """Do covariates help: configurations with covariates against the best one without, on test."""
    if not v.get("no_covariates_reference"):
        return []
    from analysis.text import covariate_words

    return [
        "",
        f"**Do covariates help?** {covariate_words(v)}. The reference is the configuration without "
        "covariates with the best robust val score; chosen on val, it is a fixed benchmark on test, and SPA "
        "counts every configuration with covariates tried.",
    ]


def _bar_verdicts(v: dict) -> list[str]:
    """Against the best baseline (chosen on val): SPA on test over every configuration of a model."""
    bar = v.get("best_baseline")
    if not bar or not bar.get("models", 1):  # no bar, or only baselines ranked: nothing to judge against it
        return []
    from analysis.verdicts import spa_words

    p = (v.get("spa_pvalue_baseline") or {}).get("test")
    beats = (v.get("beats_best_baseline_count") or {}).get("test", 0)
    return [
        "",
        f"**Does anything beat the best baseline, {bar['name']}?** {spa_words(p, bar['name'])}; "
        f"{beats} configuration(s) beat it alone (one-sided DM on test, 5 %). The bar is the baseline with the "
        "best robust val score (random walk, drift, historical mean, AutoARIMA, AutoETS, AutoTheta); chosen on "
        "val, it is a fixed benchmark on test, and SPA counts every configuration tried.",
    ]


def _dist_verdicts(v: dict) -> list[str]:
    """The same questions asked of the forecast distributions (quantile loss), and the benchmarks' calibration."""
    prob, garch = v.get("spa_pvalue_prob") or {}, v.get("spa_pvalue_garch") or {}
    beats_rw, beats_garch = v.get("beats_naive_prob_count") or {}, v.get("beats_garch_count") or {}
    lines = [
        "",
        "**The forecast distributions.** Loss: the quantile loss over the levels 0.1 … 0.9 (2 × pinball, the "
        "anchors' WQL/SQL numerator; not the CRPS) per origin, horizon mean. Benchmarks: the probabilistic random "
        "walk (last price × the training window's empirical k-step return quantiles) and a GARCH(1,1) with "
        "Student-t innovations fitted on each fold's training window only.",
        "",
        "| split | SPA p (none beats the random walk) | beat it alone | SPA p (none beats GARCH) | beat GARCH alone "
        "| in the 90 % MCS on QL |",
        "|---|---|---|---|---|---|",
    ]
    for split in ("val", "test"):
        lines.append(
            f"| {split} | {fmt(prob.get(split), 3)} | {beats_rw.get(split, 0)} | {fmt(garch.get(split), 3)} "
            f"| {beats_garch.get(split, 0)} | {(v.get('mcs_size_ql') or {}).get(split, 0)} |"
        )
    refs = v.get("calibration_reference") or {}
    if refs:
        lines += [
            "",
            "Benchmarks on test: " + "; ".join(f"{k}: {r.get('word', 'untested')}" for k, r in refs.items()) + ".",
        ]
    return lines


def _ranking(t: SweepTables, top: int = 15) -> str:
    shown = t.ranked.head(top)
    shown = shown.assign(configuration=config_labels(t.ranked, shown.index))
    if "test_rel_mae" in shown:
        shown = shown.assign(rel_mae_col=shown["test_rel_mae"])
    if "baseline" in shown:
        shown = shown.assign(configuration=[f"[baseline] {c}" if b is True else c
                                            for c, b in zip(shown["configuration"], shown["baseline"])])  # fmt: skip
    for col in ("in_mcs", "beats_naive_prob", "beats_garch", "beats_best_baseline"):
        if col in shown:
            shown = shown.assign(**{col: shown[col].map({True: "yes", False: "no"}).fillna("")})
    test = "test_" + t.metric.removeprefix("val_")
    cols = {
        "rank": "rank",
        "configuration": "configuration",
        t.metric: f"{t.metric} mean",
        f"{t.metric}_std": "std",
        "robust_score": "robust",
        test: test,
        "rel_mae_col": "rel MAE (test)",
        "test_dm_p_pooled": "DM p (test, one-sided)",
        "verdict": "vs naive (test)",
        "in_mcs": "in MCS (val)",
        "beats_best_baseline": "beats the best baseline (test)",
        "test_rel_ql": "rel QL (test)",
        "beats_naive_prob": "dist. beats RW (test)",
        "beats_garch": "dist. beats GARCH (test)",
        "calibration": "calibration (test)",
        "assets_beating_naive": "assets beating naive (test DM)",
        "worst_asset": "worst asset",
        f"worst_asset_{t.metric}": f"{t.metric} there",
        "units_done": "units done",
        "units_expected": "expected",
        "status": "status",
        "error": "error",
    }
    return table(shown, cols)


def _impact(t: SweepTables) -> list[str]:
    out = []
    if t.impact_summary is not None:
        out += [
            f"Delta of {t.metric} vs the baseline (`{t.baseline_id}`), unit by unit on shared folds × seeds "
            "(negative = lower):",
            "",
            table(
                t.impact_summary,
                {
                    "param": "parameter",
                    "value": "value",
                    "units": "units",
                    "mean_delta": "mean delta",
                    "std_delta": "std",
                    "mean_delta_pct": "mean delta %",
                    "win_rate": "win rate",
                    "improves": "improves",
                },
            ),
        ]
    if t.importances is not None:
        out += ["", "fANOVA importances (Optuna) over the complete configurations:", ""]
        if t.importances.empty:
            out.append(f"_(none: needs at least {MIN_IMPORTANCE_CONFIGS} of them, with varying parameters)_")
        else:
            out.append(
                table(t.importances, {"param": "parameter", "importance": "importance", "configs": "configs"}, 3)
            )
    return out or ["_No baseline to compare with and no importances for this sweep mode._"]


def _drift(t: SweepTables) -> list[str]:
    if t.drift_summary is None:
        return ["_Not computed._"]
    by = pd.DataFrame(t.drift_summary["by_variable"])
    worst = t.drift_summary["worst"]
    head = (
        f"Largest market-variable shift: {worst['variable']} on {worst['fold']} {worst['split']} "
        f"(PSI {fmt(worst['psi'], 3)}, {worst['psi_level']}; KS {fmt(worst['ks_stat'], 3)}, p {fmt(worst['ks_pvalue'], 3)})."
        if worst
        else ""
    )
    cols = {
        "split": "train vs",
        "variable": "variable",
        "kind": "kind",
        "mean_ks": "mean KS",
        "share_ks_significant": "share KS p<0.05",
        "mean_psi": "mean PSI",
        "max_psi": "max PSI",
        "level": "level",
    }
    return [head, "", table(by, cols, 3), "", "Calendar features shift between windows by construction."]


def _model_note(unit: dict) -> str:
    if unit.get("fit") == "global":
        return " (one global model for every asset of the universe)"
    return " (a model per asset: every unit's is under `unit_models` in best_model.json)" if unit.get("asset") else ""


def _where(unit: dict) -> str:
    asset = f"asset {unit['asset']}, " if unit.get("asset") else ""
    return f"{asset}fold {unit['fold']}, seed {unit['seed']}"


def _assets(meta: dict) -> str:
    """A universe's assets for the report's first lines (those left out, with why)."""
    if not meta.get("assets"):
        return ""
    dropped = meta.get("dropped_assets") or {}
    left = f" (left out: {'; '.join(dropped.values())})" if dropped else ""
    return f"{len(meta['assets'])} assets ({', '.join(meta['assets'])}){left} × "


def sweep_report(sweep_name: str, meta: dict, t: SweepTables, best: dict | None, summary: dict, plots: dict) -> str:
    """The markdown report of one sweep; `plots` maps a title to a path relative to the report."""
    spec = meta["spec"]
    counts = summary["status_counts"]
    lines = [
        f"# Sweep `{sweep_name}`: {spec['model']}, mode {spec['mode']}",
        "",
        f"Started {meta.get('started', '?')}, git `{(meta.get('git_sha') or '?')[:12]}`"
        f"{' (dirty)' if meta.get('git_dirty') else ''}. {_assets(meta)}{len(meta['folds'])} folds × "
        f"{len(spec['seeds'])} seeds; "
        f"selection metric `{t.metric}` ({t.mode}imise), robust score = mean + std (lower is better).",
        "",
        f"Configurations: {len(t.ranked)}, complete {counts.get('ok', 0)}, failed {counts.get('failed', 0)}, "
        f"incomplete {counts.get('incomplete', 0)}.",
        *(f"\n> {n}" for n in t.notes),
        "",
        "## Best configuration",
        "",
        *_best(best, t.metric),
        "",
        "## Does anything beat the random walk?",
        "",
        *_verdicts(t, summary),
        "",
        "## Ranking",
        "",
        "Configurations with every fold × seed done (`ok`) first. rel MAE < 1: a smaller error than the naive "
        '(last value) forecast on the same origins. DM p: one-sided Diebold–Mariano p-value of "the '
        "configuration's error is lower than naive's\" on its pooled test forecasts; *beats naive* when "
        "p < 0.05, *worse than naive* when p > 0.95. in MCS: inside the 90 % Model Confidence Set on val.",
        "",
        _ranking(t),
        "",
        "## Parameter impact",
        "",
        *_impact(t),
        "",
        "## Drift (train window vs val / test)",
        "",
        *_drift(t),
        "",
        "## Failures",
        "",
        *([f"- {e['configurations']} configuration(s): `{e['error']}`" for e in summary["errors"]] or ["None."]),
        "",
        "## Flagged units",
        "",
        *([f"- `{u['unit']}`: {u['reason']}" for u in summary.get("flagged_units", [])] or ["None."]),
        "",
        "## Plots",
        "",
        *[f"### {title}\n\n![{title}]({path})\n" for title, path in plots.items()],
        "## Files",
        "",
        "`sweep_runs.parquet|csv|json` (one row per configuration × fold × seed), `config_ranking.csv`, "
        "`all_models_ranked.csv`, `param_impact_detail.csv`, `param_impact_summary.csv`, `param_importances.csv`, "
        "`drift_ks_psi_by_fold.csv`, `drift_ks_psi_overall_summary.json`, `summary.json`, `best_model.json`, "
        "`folds/<fold>/`" + (", `assets/<asset>/` (each asset's own ranking)." if meta.get("assets") else "."),
    ]
    return "\n".join(lines) + "\n"


def comparison_report(compare: pd.DataFrame, metric: str, notes: list[str]) -> str:
    """The cross-model report: each model's best configuration side by side, the winner first."""
    test = "test_" + metric.removeprefix("val_")
    cols = {
        "model": "model",
        "name": "method",
        "config_id": "config",
        "sweeps": "sweep",
        metric: f"{metric} mean",
        f"{metric}_std": "std",
        "robust_score": "robust",
        test: test,
        "test_rel_mae": "rel MAE (test)",
        "verdict": "vs naive (test)",
        "versus_bar": "vs the best baseline (test)",
        "in_mcs": "in MCS (val)",
        "test_sharpe": "test Sharpe",
        "units_compared": "units",
        "status": "status",
    }
    winner = compare.iloc[0] if not compare.empty and compare.iloc[0]["status"] == "ok" else None
    head = "No winner."
    if winner is not None:
        head = f"Winner: **{winner.get('name', winner['model'])}** (`{winner['config_id']}`)"
        head += f"; {winner['versus_bar']}." if winner.get("versus_bar") else "."
    return "\n".join(["# Model comparison", "", head, "", table(compare, cols), "", *notes]) + "\n"
