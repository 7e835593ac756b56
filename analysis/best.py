"""The best configuration(s) across every sweep under a results directory.

    python analysis/best.py --metric val_pct_mae
    python analysis/best.py --metric val_pct_mae --model toto --top-k 5
    python analysis/best.py --metric val_sharpe --mode max --export-path best_model.json
    python analysis/best.py --interactive
    python analysis/best.py --metric val_rel_mae --per-asset    # a universe: each asset's best too

Reads each sweep's cached tidy table (sweep_runs.parquet; rebuilt from the files when stale).
`--export-path` writes the chosen model's checkpoint, configuration and metrics as JSON:
    from analysis.results import load_model
    model = load_model("best_model.json")       # model.forecast("latest.csv", 5): the next 5 steps
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path[0] = str(Path(__file__).resolve().parents[1])

import argparse
import json
import os

import pandas as pd

from analysis import verdicts
from analysis.ranking import direction
from analysis.runs import ResultsError, load_runs, metric_columns
from trainables import registry, store


def _pick_unit(units: pd.DataFrame, metric: str, mode: str) -> pd.Series:
    # Deploy the model trained on the newest data: the last fold, its best seed on the val metric.
    last = units[units["fold_end"] == units["fold_end"].max()]
    return last.sort_values(metric, ascending=mode == "min", na_position="last").iloc[0]


def best_record(ranked: pd.DataFrame, runs: pd.DataFrame, rank: int = 1) -> dict | None:
    """The configuration at `rank` (1 = best) with its metrics, checkpoint and every unit's model."""
    metric, mode = ranked.attrs["metric"], ranked.attrs["mode"]
    row = ranked[ranked["rank"] == rank]
    if row.empty or row.iloc[0]["status"] != "ok":
        return None
    row = row.iloc[0]
    units = runs[
        (runs["model"] == row["model"]) & (runs["config_id"] == row["config_id"]) & (runs["status"] == "complete")
    ]
    units = units.drop_duplicates(["fold_id", "seed"])
    pick = _pick_unit(units, metric, mode)
    several = units["sweep"].nunique() > 1
    metrics = {c: row[c] for c in ranked.columns if c.startswith(("val_", "test_")) and c not in verdicts.ROW_KEYS}
    return {
        "model": row["model"],
        "sweep": row["sweeps"],
        "config_id": row["config_id"],
        "config": json.loads(row["config"]),
        "metric": metric,
        "mode": mode,
        "rank": rank,
        "metrics": {**metrics, "robust_score": row["robust_score"]},
        "verdict": {k: (None if pd.isna(row[k]) else row[k]) for k in verdicts.ROW_KEYS if k in row},
        "units_compared": int(row["units_compared"]),
        "checkpoint": pick["checkpoint"],
        "checkpoint_unit": {
            **({"asset": pick["asset"], "fit": pick.get("fit")} if units["asset"].nunique() > 1 else {}),
            "fold": pick["fold"],
            "seed": int(pick["seed"]),
            "metrics": {c: pick[c] for c in metric_columns(units) if pd.notna(pick[c])},
        },
        "unit_models": {
            (f"{u['sweep']}/{u['unit']}" if several else u["unit"]): u["checkpoint"] for _, u in units.iterrows()
        },
        "trial_path": row["trial_path"],
        **_versus_bar(ranked, row),
    }


def _versus_bar(ranked: pd.DataFrame, row: pd.Series) -> dict:
    """Which baseline is the bar and whether this configuration clears it, in words (analysis.bar)."""
    from analysis import bar

    chosen = (ranked.attrs.get("verdicts") or {}).get("best_baseline")
    mine = {"model": row["model"], "config_id": row["config_id"], "baseline": bool(row.get("baseline", False)),
            "test_dm_p_baseline": row.get("test_dm_p_baseline")}  # fmt: skip
    return {"bar": chosen, "versus_bar": bar.words(mine, chosen)}


def best_runs(
    metric: str = "val_pct_mae",
    model: str | None = None,
    mode: str | None = None,
    k: int = 1,
    results: str = "results",
    refresh: bool = False,
    horizon: int | None = None,
) -> list[dict]:
    """The k best complete configurations for `metric` (and `model`) under `results`, best first."""
    ranked, runs = rank_results(results, metric, model, mode, refresh, horizon)
    records = [best_record(ranked, runs, r) for r in range(1, k + 1)]
    return [r for r in records if r is not None]


def rank_results(
    results: str,
    metric: str,
    model: str | None = None,
    mode: str | None = None,
    refresh: bool = False,
    horizon: int | None = None,
    settings: verdicts.Settings | None = verdicts.Settings(),
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(configuration ranking, tidy runs) of every sweep under `results` at one horizon, with verdicts
    unless `settings` is None. `ranked.attrs` holds the horizon, the sweeps left out and the verdicts."""
    runs = load_runs(results, refresh=refresh, model=model)
    if runs.empty:
        raise ResultsError(f"no runs{' of model ' + model if model else ''} under {results!r}")
    return verdicts.rank_with_verdicts(runs, metric, mode, horizon, settings)


def export(record: dict, path: str) -> str:
    """Write the best model's hand-off JSON (see the module doc for the two lines that load it)."""
    store.write_text(path, store.dumps(record))
    return path


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python analysis/best.py", description=__doc__.split("\n")[0])
    p.add_argument("--metric", default="val_pct_mae", help="validation metric to select on (val_…)")
    p.add_argument("--mode", choices=("min", "max"), help="direction (default: the metric's own)")
    p.add_argument("--model", help=f"only this model ({', '.join(registry.MODELS)})")
    p.add_argument("--top-k", type=int, help="how many configurations to show (default 1, or 10 with --interactive)")
    p.add_argument("--results", default="results", help="results root (local directory or s3://…)")
    p.add_argument("--export-path", help="write the best (or picked) model's hand-off JSON here")
    p.add_argument("--interactive", action="store_true", help="pick one of the top-k in the terminal")
    p.add_argument("--refresh", action="store_true", help="re-read every sweep's files, ignoring the cache")
    p.add_argument(
        "--horizon", type=int, help="rank configurations forecasting this many steps (default: the most common)"
    )
    p.add_argument("--no-verdicts", action="store_true", help="skip the SPA test and the Model Confidence Set")
    p.add_argument(
        "--per-asset",
        action="store_true",
        help="a universe: the best configuration of each asset (ranked on that asset alone) next to the winner",
    )
    verdicts.add_arguments(p)
    return p


def check_args(args: argparse.Namespace) -> str | None:
    """The first problem with the arguments, as one line, or None."""
    if not args.metric.startswith("val_"):
        return f"--metric {args.metric!r} must be a validation metric (val_…): select on val, report test"
    try:
        direction(args.metric)
    except KeyError:
        return f"--metric {args.metric!r} is not a known metric"
    if args.model is not None and args.model not in registry.MODELS:
        return f"--model {args.model!r} is not a known model ({', '.join(registry.MODELS)})"
    if args.top_k is None:
        args.top_k = 10 if args.interactive else 1
    if args.top_k < 1:
        return f"--top-k must be at least 1, got {args.top_k}"
    if args.horizon is not None and args.horizon < 1:
        return f"--horizon must be at least 1, got {args.horizon}"
    try:
        args.settings = None if args.no_verdicts else verdicts.settings_from(args)
    except verdicts.VerdictError as exc:
        return str(exc)
    if not store.is_remote(args.results) and not os.path.isdir(args.results):
        return f"--results {args.results!r} is not a directory"
    parent = os.path.dirname(os.path.abspath(args.export_path)) if args.export_path else None
    if parent and not store.is_remote(args.export_path) and not os.path.isdir(parent):
        return f"--export-path: directory {parent!r} does not exist"
    return None


def per_asset_text(runs: pd.DataFrame, best: dict, metric: str, mode: str | None) -> str:
    """Each asset's own best configuration and its metric there, next to the universe winner's."""
    from analysis import universe

    if not universe.is_universe(runs):
        return f"--per-asset: these results hold one asset ({', '.join(universe.assets_of(runs)) or 'unnamed'})"
    table = universe.versus_winner(universe.best_per_asset(runs, metric, mode), runs, best["config_id"], metric)
    lines = [f"\nBest per asset (each ranked on its own units) vs the universe winner {best['config_id']}:"]
    lines.append(f"  {'asset':<10} {'best config':<12} {metric:>14} {'winner':>14}")
    for _, r in table.iterrows():
        own = "—" if r["config_id"] is None else str(r["config_id"])
        value = r.get(metric, float("nan"))
        same = "  (the winner)" if r["config_id"] == best["config_id"] else ""
        lines.append(f"  {r['asset']:<10} {own:<12} {value:>14.4g} {r['winner_value']:>14.4g}{same}")
    return "\n".join(lines)


def _choose(k: int) -> int:
    """The rank picked at the prompt: 1..k, 0 to quit, -1 for an answer that is neither."""
    try:
        answer = input(f"Pick a configuration [1-{k}, Enter = 1, q = quit]: ").strip().lower()
    except EOFError:
        return 0
    if answer in ("q", "quit"):
        return 0
    if answer == "":
        return 1
    return int(answer) if answer.isdigit() and 1 <= int(answer) <= k else -1


def main(argv: list[str] | None = None) -> int:
    from analysis.text import best_text, ranking_text, verdict_text

    args = parser().parse_args(argv)
    problem = check_args(args)
    if problem is None:
        try:
            ranked, runs = rank_results(
                args.results, args.metric, args.model, args.mode, args.refresh, args.horizon, args.settings
            )
        except ResultsError as exc:
            problem = str(exc)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    ok = int((ranked["status"] == "ok").sum())
    print(
        f"{len(ranked)} configurations ({ok} complete) from {runs['sweep'].nunique()} sweep(s) under {args.results}, "
        f"by {args.metric} ({ranked.attrs['mode']}imise), compared on {ranked.attrs['units_compared']} folds × seeds"
        + (f", horizon {ranked.attrs['horizon']} steps" if ranked.attrs.get("horizon") is not None else "")
    )
    for line in ranked.attrs.get("left_out") or []:
        print(f"  left out (another horizon; choose with --horizon): {line}")
    print(ranking_text(ranked, args.metric, top=args.top_k, sweeps=runs["sweep"].nunique() > 1))
    if ok == 0:
        print("No configuration has every fold × seed done: nothing to select.")
        return 1
    rank = _choose(min(args.top_k, ok)) if args.interactive else 1
    if rank == 0:
        return 0
    if rank < 0:
        print(f"error: answer a number from 1 to {min(args.top_k, ok)}", file=sys.stderr)
        return 2
    best = best_record(ranked, runs, rank)
    print("\n" + best_text(best))
    if ranked.attrs.get("verdicts"):
        print(verdict_text(ranked.attrs["verdicts"]))
    if args.per_asset:
        print(per_asset_text(runs, best, args.metric, args.mode))
    if args.export_path:
        export(best, args.export_path)
        print(f"  exported:   {args.export_path}")
        print(f'  load it:    from analysis.results import load_model; model = load_model("{args.export_path}")')
    return 0


if __name__ == "__main__":
    sys.exit(main())
