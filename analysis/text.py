"""Plain-text views of the tables, for the terminal."""

from __future__ import annotations

import pandas as pd

from analysis.ranking import config_labels


def fmt(value: object, digits: int = 3) -> str:
    if isinstance(value, float):
        return "nan" if value != value else f"{value:.{digits}f}"
    return str(value)


def _mcs(value) -> str:
    return "-" if value is None or value != value else ("yes" if value else "no")


def ranking_text(ranked: pd.DataFrame, metric: str, top: int = 10, sweeps: bool = False) -> str:
    """The top configurations: metric mean ± std, robust score, test metric, verdicts vs naive, units, status."""
    test = "test_" + metric.removeprefix("val_")
    shown = ranked.head(top)
    labels = config_labels(ranked, shown.index)
    rel = test != "test_rel_mae"  # its own column unless it is the test metric already
    assets = "assets_beating_naive" in ranked  # a universe: assets beaten naive on, worst asset
    bar = (ranked.attrs.get("verdicts") or {}).get("best_baseline")
    lines = [
        f"rank  {metric} (mean ± std)  robust  {test}  {'rel_mae(test)  ' if rel else ''}vs naive (test DM)  "
        f"{'vs ' + bar['name'] + ' (test DM)  ' if bar else ''}MCS  "
        "rel_ql(test)  dist>rw  dist>garch  calibration (test)  "
        f"{'assets>naive  worst asset  ' if assets else ''}units  {'sweep  ' if sweeps else ''}configuration"
    ]
    for i, r in shown.iterrows():
        status = "" if r["status"] == "ok" else f"  [{r['status'].upper()}{': ' + r['error'] if r['error'] else ''}]"
        units = (
            f"{r['units_compared']}/{r['units_expected']}"
            if r["status"] == "ok"
            else f"{r['units_done']}/{r['units_expected']}"
        )
        versus = f"{r.get('verdict', 'untested')} p={fmt(r.get('test_dm_p_pooled'))}" if r["status"] == "ok" else "-"
        versus += f"  {_bar_cell(r, bar)}" if bar else ""
        universe = f"{_asset_cells(r, metric)}  " if assets else ""
        lines.append(
            f"{r['rank']:>4}  {fmt(r.get(metric))} ± {fmt(r.get(f'{metric}_std'))}  {fmt(r['robust_score'])}  "
            f"{fmt(r.get(test))}  {fmt(r.get('test_rel_mae')) + '  ' if rel else ''}{versus}  {_mcs(r.get('in_mcs'))}  "
            f"{_dist_cells(r)}  {universe}{units}  {r['sweeps'] + '  ' if sweeps else ''}"
            f"{'[baseline] ' if r.get('baseline') is True else ''}{labels[i]}{status}"
        )
    if len(ranked) > top:
        lines.append(f"   … {len(ranked) - top} more")
    return "\n".join(lines)


def _bar_cell(row: pd.Series, bar: dict) -> str:
    """A ranked row against the best baseline: "bar" for the bar itself, yes/no with the DM p."""
    if row["model"] == bar["model"] and row["config_id"] == bar["config_id"]:
        return "bar"
    if row.get("baseline") is True or _mcs(row.get("beats_best_baseline")) == "-":
        return "-"
    return f"{_mcs(row.get('beats_best_baseline'))} p={fmt(row.get('test_dm_p_baseline'))}"


def _dist_cells(row: pd.Series) -> str:
    """The distribution's verdicts of a ranked row: test rel_ql, beats the probabilistic random walk
    and GARCH (one-sided DM on the quantile loss, with p), the calibration word."""

    def beats(key: str, p: str) -> str:
        return "-" if _mcs(row.get(key)) == "-" else f"{_mcs(row.get(key))} p={fmt(row.get(p))}"

    return (
        f"{fmt(row.get('test_rel_ql'))}  {beats('beats_naive_prob', 'test_dm_p_prob')}  "
        f"{beats('beats_garch', 'test_dm_p_garch')}  {row.get('calibration', 'untested')}"
    )


def _unit_words(unit: dict) -> str:
    """Which unit's model the checkpoint is, and why that one."""
    if unit.get("fit") == "global":  # one model of every asset per (fold, seed)
        return f"fold {unit['fold']}, seed {unit['seed']}: newest fold, best seed; one global model for every asset"
    if unit.get("asset"):  # a universe fits one model per asset: every asset's is in unit_models
        return f"asset {unit['asset']}, fold {unit['fold']}, seed {unit['seed']}: newest fold, best unit; per asset: unit_models"
    return f"fold {unit['fold']}, seed {unit['seed']}: newest fold, best seed"


def _asset_cells(row: pd.Series, metric: str) -> str:
    """A universe row's "k/N" assets beating naive and its worst asset with the metric there."""
    k = row.get("assets_beating_naive")
    if not isinstance(k, str):
        return "-  -"
    return f"{k}  {row.get('worst_asset')} {fmt(row.get(f'worst_asset_{metric}'))}"


def verdict_text(summary: dict) -> str:
    """SPA and MCS in two lines, for the end of a sweep and best.py."""
    from analysis.verdicts import spa_words

    spa = summary.get("spa_pvalue") or {}
    mcs = summary.get("mcs_size") or {}
    tested = summary.get("configurations_tested") or {}
    return "\n".join(
        [
            f"Beats the random walk? val: {spa_words(spa.get('val'))}",
            f"                       test: {spa_words(spa.get('test'))}",
            f"90 % Model Confidence Set (val): {mcs.get('val', 0)} of {tested.get('val', 0)} configuration(s), "
            "those statistically indistinguishable from the best",
            *_dist_summary(summary),
            *_bar_summary(summary),
            *_covariate_summary(summary),
        ]
    )


def _covariate_summary(summary: dict) -> list[str]:
    """SPA of "no configuration with covariates beats the best one without" on test."""
    plain = summary.get("no_covariates_reference")
    if not plain:
        return []
    return [f"Do covariates help? test: {covariate_words(summary)}"]


def covariate_words(summary: dict) -> str:
    """The answer to "do covariates help?" in words, from a sweep's verdicts."""
    from analysis.verdicts import spa_words

    plain = summary["no_covariates_reference"]
    p = (summary.get("spa_pvalue_covariates") or {}).get("test")
    beats = (summary.get("beats_no_covariates_count") or {}).get("test", 0)
    return (
        f"against {plain['config_id']}, the best configuration without covariates (chosen on val): "
        f"{spa_words(p, 'it')}; {beats} of {plain.get('configurations', 0)} with covariates beat it alone "
        "(one-sided DM)"
    )


def _bar_summary(summary: dict) -> list[str]:
    """SPA of "no configuration beats the best baseline" on test, when baselines were ranked."""
    from analysis.verdicts import spa_words

    bar = summary.get("best_baseline")
    if not bar:
        return []
    p = (summary.get("spa_pvalue_baseline") or {}).get("test")
    answer = spa_words(p, bar["name"]) if bar.get("models", 1) else "no model configuration ranked to test against it"
    return [f"Beats the best baseline ({bar['name']}, chosen on val)? test: {answer}"]


def _dist_summary(summary: dict) -> list[str]:
    """The distribution's answers: SPA vs the probabilistic random walk and vs GARCH on the quantile
    loss (test), and how the two benchmarks themselves are calibrated."""
    from analysis.verdicts import spa_words

    prob, garch = summary.get("spa_pvalue_prob") or {}, summary.get("spa_pvalue_garch") or {}
    if prob.get("test") is None and garch.get("test") is None:
        return ["Forecast distributions: not judged (no stored quantiles, or too few shared origins)"]
    refs = summary.get("calibration_reference") or {}
    calibration = ", ".join(f"{name} {ref.get('word', 'untested')}" for name, ref in refs.items())
    return [
        f"Distribution beats the probabilistic random walk? test: {spa_words(prob.get('test'), 'the random walk')}",
        f"Distribution beats GARCH(1,1)-t?                  test: {spa_words(garch.get('test'), 'GARCH')}",
        f"Benchmarks' calibration (test): {calibration or 'untested'}",
    ]


def best_text(best: dict) -> str:
    """Where the best configuration's model is, how it fares against naive, and how to load it."""
    unit = best["checkpoint_unit"]
    verdict = best.get("verdict") or {}
    mcs = verdict.get("in_mcs")
    return "\n".join(
        [
            f"Best: {best['model']} configuration {best['config_id']} (sweep {best['sweep']})",
            f"  {best['metric']}: {fmt(best['metrics'].get(best['metric']))} ± "
            f"{fmt(best['metrics'].get(best['metric'] + '_std'))}, robust_score {fmt(best['metrics']['robust_score'])}",
            f"  vs naive on test: {verdict.get('verdict', 'untested')} (one-sided DM p = "
            f"{fmt(verdict.get('test_dm_p_pooled'))}), rel_mae {fmt(best['metrics'].get('test_rel_mae'))}; "
            f"in the 90 % MCS on val: {_mcs(mcs)}",
            f"  distribution on test: rel_ql {fmt(best['metrics'].get('test_rel_ql'))}, beats the probabilistic "
            f"random walk: {_mcs(verdict.get('beats_naive_prob'))} (p = {fmt(verdict.get('test_dm_p_prob'))}), "
            f"beats GARCH: {_mcs(verdict.get('beats_garch'))} (p = {fmt(verdict.get('test_dm_p_garch'))}); "
            f"{verdict.get('calibration', 'untested')}",
            f"  vs the best baseline (the bar, chosen on val): {best.get('versus_bar', 'untested')}",
            f"  checkpoint: {best['checkpoint']}  ({_unit_words(unit)})",
        ]
    )
