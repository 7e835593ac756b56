"""Rank configurations of one sweep from Tune's last result per trial (no Ray needed)."""

from __future__ import annotations

import pandas as pd

from trainables.metrics import mode_of


def trial_table(results) -> pd.DataFrame:
    """One row per trial: its hyperparameters, last aggregate metrics, status and error."""
    rows = []
    for r in results:
        row = {"trial_id": (r.metrics or {}).get("trial_id") or r.path.rsplit("_", 1)[-1]}
        row.update({f"config/{k}": v for k, v in (r.config or {}).items()})
        row.update({k: v for k, v in (r.metrics or {}).items() if k != "config" and not isinstance(v, dict)})
        row["error"] = str(r.error).strip().splitlines()[-1][:200] if r.error else ""
        row["path"] = r.path
        rows.append(row)
    return pd.DataFrame(rows)


def rank(table: pd.DataFrame, metric: str, units_expected: int) -> pd.DataFrame:
    """Configurations sorted best first: complete ones (every unit done, no error) by robust_score.

    Incomplete or failed configurations are kept, flagged and sorted after the complete ones.
    """
    mode = mode_of(metric)
    out = table.copy()
    for col in ("units_done", "robust_score", metric, f"{metric}_std"):
        if col not in out:
            out[col] = float("nan")
    out["complete"] = (out["units_done"] == units_expected) & (out["error"] == "")
    out["units_expected"] = units_expected
    # robust_score is already "lower is better" for either direction.
    out = out.sort_values(["complete", "robust_score"], ascending=[False, True], na_position="last")
    out.insert(0, "rank", range(1, len(out) + 1))
    out.attrs["mode"] = mode
    return out.reset_index(drop=True)


def hyperparameters(table: pd.DataFrame) -> list[str]:
    """Config columns that vary across trials (the ones worth showing)."""
    cols = [c for c in table.columns if c.startswith("config/")]
    return [c for c in cols if table[c].astype(str).nunique() > 1]
