"""Plots: they only draw tables computed elsewhere (headless, PNG)."""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from analysis.ranking import hyperparameters  # noqa: E402


def _label(row: pd.Series, cols: list[str]) -> str:
    return ", ".join(f"{c.removeprefix('config/')}={row[c]}" for c in cols) or "baseline"


def ranking_plot(ranked: pd.DataFrame, metric: str, path: str, top: int = 15) -> str:
    """Horizontal bars of mean ± std of `metric` for the top configurations, best on top."""
    shown = ranked[ranked["complete"]].head(top)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.45 * max(len(shown), 1)))
    if shown.empty:
        ax.text(0.5, 0.5, "no configuration completed", ha="center", va="center")
    else:
        cols = hyperparameters(ranked)
        labels = [f"#{r['rank']}  {_label(r, cols)}" for _, r in shown.iterrows()]
        y = range(len(shown))[::-1]
        ax.barh(list(y), shown[metric], xerr=shown[f"{metric}_std"], color="#4c72b0", alpha=0.8, capsize=3)
        if "val_naive_pct_mae" in shown and metric == "val_pct_mae":
            ax.axvline(shown["val_naive_pct_mae"].mean(), color="#c44e52", ls="--", label="naive (random walk)")
            ax.legend(loc="lower right")
        ax.set_yticks(list(y), labels, fontsize=8)
        ax.set_xlabel(f"{metric} (mean ± std over folds × seeds)")
    ax.set_title("Configurations ranked by robust score (mean + std)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
