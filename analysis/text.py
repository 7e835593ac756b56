"""Plain-text views of the tables, for the terminal."""

from __future__ import annotations

import pandas as pd

from analysis.ranking import config_labels


def fmt(value: object, digits: int = 3) -> str:
    if isinstance(value, float):
        return "nan" if value != value else f"{value:.{digits}f}"
    return str(value)


def ranking_text(ranked: pd.DataFrame, metric: str, top: int = 10, sweeps: bool = False) -> str:
    """The top configurations: metric mean ± std, robust score, test metric, DM p-value, units, status."""
    test = "test_" + metric.removeprefix("val_")
    shown = ranked.head(top)
    labels = config_labels(ranked, shown.index)
    lines = [
        f"rank  {metric} (mean ± std)  robust  {test}  dm_p_vs_naive  units  {'sweep  ' if sweeps else ''}configuration"
    ]
    for i, r in shown.iterrows():
        status = "" if r["status"] == "ok" else f"  [{r['status'].upper()}{': ' + r['error'] if r['error'] else ''}]"
        units = (
            f"{r['units_compared']}/{r['units_expected']}"
            if r["status"] == "ok"
            else f"{r['units_done']}/{r['units_expected']}"
        )
        lines.append(
            f"{r['rank']:>4}  {fmt(r.get(metric))} ± {fmt(r.get(f'{metric}_std'))}  {fmt(r['robust_score'])}  "
            f"{fmt(r.get(test))}  {fmt(r.get('val_dm_pvalue_vs_naive'))}  {units}  "
            f"{r['sweeps'] + '  ' if sweeps else ''}{labels[i]}{status}"
        )
    if len(ranked) > top:
        lines.append(f"   … {len(ranked) - top} more")
    return "\n".join(lines)


def best_text(best: dict) -> str:
    """Where the best configuration's model is and how to load it."""
    unit = best["checkpoint_unit"]
    return "\n".join(
        [
            f"Best: {best['model']} configuration {best['config_id']} (sweep {best['sweep']})",
            f"  {best['metric']}: {fmt(best['metrics'].get(best['metric']))} ± "
            f"{fmt(best['metrics'].get(best['metric'] + '_std'))}, robust_score {fmt(best['metrics']['robust_score'])}",
            f"  checkpoint: {best['checkpoint']}  (fold {unit['fold']}, seed {unit['seed']}: newest fold, best seed)",
        ]
    )
