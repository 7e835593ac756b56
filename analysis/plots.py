"""Plots: each draws one table computed elsewhere into a PNG (headless); returns the path."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from analysis.impact import MIN_IMPORTANCE_CONFIGS  # noqa: E402
from analysis.ranking import config_labels  # noqa: E402
from trainables import quantiles, store  # noqa: E402

BLUE, RED, GREEN, GREY = "#4c72b0", "#c44e52", "#55a868", "#8c8c8c"


def _save(fig, path: str) -> str:
    if fig.get_layout_engine() is None:
        fig.tight_layout()
    buf = io.BytesIO()
    # zlib level 1: ~7% larger files, a fifth less time per plot than the default 6.
    fig.savefig(buf, format="png", dpi=110, pil_kwargs={"compress_level": 1})
    plt.close(fig)
    store.write_bytes(path, buf.getvalue())
    return path


def _empty(path: str, title: str, text: str) -> str:
    fig, ax = plt.subplots(figsize=(7, 2.5))
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=11)
    ax.set_axis_off()
    ax.set_title(title)
    return _save(fig, path)


def _wrap(text: str, width: int = 48, lines: int = 2) -> str:
    """`text` on at most `lines` lines of `width` characters (cut with … beyond)."""
    import textwrap

    return textwrap.fill(text, width, max_lines=lines, placeholder=" …")


def ranking_plot(ranked: pd.DataFrame, metric: str, path: str, top: int = 15) -> str:
    """Horizontal bars of mean ± std of `metric` for the top ranked configurations, best on top."""
    title = f"Configurations ranked by robust score on {metric} ({ranked.attrs.get('mode', 'min')}imise)"
    shown = ranked[ranked["status"] == "ok"].head(top)
    if shown.empty:
        return _empty(path, title, "no configuration completed every fold × seed")
    labels = [f"#{r}  {_wrap(lab, 62)}" for r, lab in zip(shown["rank"], config_labels(ranked, shown.index))]
    two_lines = any("\n" in lab for lab in labels)
    fig, ax = plt.subplots(figsize=(11, 1.9 + (0.6 if two_lines else 0.45) * len(shown)))
    y = np.arange(len(shown))[::-1]
    mean, std = shown[metric].to_numpy(float), shown[f"{metric}_std"].to_numpy(float)
    in_mcs = shown["in_mcs"].eq(True).to_numpy() if "in_mcs" in shown else np.zeros(len(shown), bool)
    colors = [GREEN if m else BLUE for m in in_mcs]
    ax.barh(y, mean, xerr=std, color=colors, alpha=0.85, capsize=3)
    words = shown["verdict"].fillna("untested") if "verdict" in shown else pd.Series("untested", index=shown.index)
    for yi, m, sd, w in zip(y, np.nan_to_num(mean), np.nan_to_num(std), words):
        ax.text(m + sd, yi, f"  {m:.3g} ± {sd:.2g}   test: {w}", va="center", fontsize=8)
    handles = [
        plt.Rectangle((0, 0), 1, 1, color=GREEN, alpha=0.85, label="in the 90 % Model Confidence Set (val)"),
        plt.Rectangle((0, 0), 1, 1, color=BLUE, alpha=0.85, label="outside it"),
    ]
    naive_at, naive = None, metric.replace("val_", "val_naive_", 1) if metric.endswith("pct_mae") else None
    if naive in shown and shown[naive].notna().any():
        naive_at = shown[naive].mean()
    elif metric.endswith("rel_mae"):
        naive_at = 1.0  # rel_mae is the error relative to naive's
    if naive_at is not None:
        handles.append(ax.axvline(naive_at, color=RED, ls="--", label=f"naive (random walk): {naive_at:.3g}"))
    low, high = np.nanmin(mean - std), np.nanmax(mean + std)
    if np.isfinite(low) and np.isfinite(high):
        ax.set_xlim(min(0, low * 1.1), max(high, naive_at or high) * 1.45)
    ax.set_yticks(y, labels, fontsize=9)
    ax.set_xlabel(f"{metric}: mean ± std over {int(shown['units_compared'].max())} folds × seeds compared")
    ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(0, 1.0), ncol=3, fontsize=8, frameon=False)
    fig.suptitle(title, fontsize=11)
    return _save(fig, path)


def impact_plot(summary: pd.DataFrame, metric: str, path: str) -> str:
    """Mean delta vs the baseline (± its std over units) per parameter value; green = improves."""
    title = f"Parameter impact on {metric} (delta vs baseline)"
    if summary.empty:
        return _empty(path, title, "no configuration to compare with the baseline")
    fig, ax = plt.subplots(figsize=(10, 1.4 + 0.42 * len(summary)))
    y = np.arange(len(summary))[::-1]
    colors = [GREEN if ok else RED for ok in summary["improves"]]
    ax.barh(y, summary["mean_delta"], xerr=summary["std_delta"], color=colors, alpha=0.85, capsize=3)
    ax.axvline(0, color="black", lw=0.8)
    labels = [_wrap(f"{p} = {v}  (n={n})") for p, v, n in zip(summary["param"], summary["value"], summary["units"])]
    ax.set_yticks(y, labels, fontsize=9)
    ax.set_xlabel(f"mean {metric} delta vs baseline ± std over folds × seeds (green: better)")
    ax.set_title(title)
    return _save(fig, path)


def importance_plot(table: pd.DataFrame, path: str, title: str = "Hyperparameter importance (fANOVA)") -> str:
    """Bars of each hyperparameter's importance, largest on top."""
    if table.empty:
        return _empty(
            path, title, f"needs at least {MIN_IMPORTANCE_CONFIGS} finished configurations with varying parameters"
        )
    table = table.sort_values("importance")
    fig, ax = plt.subplots(figsize=(8, 1.4 + 0.42 * len(table)))
    ax.barh(table["param"], table["importance"], color=BLUE, alpha=0.85)
    for y, v in enumerate(table["importance"]):
        ax.text(v, y, f" {v:.2f}", va="center", fontsize=9)
    ax.set_xlim(0, max(1.0, table["importance"].max() * 1.15))
    ax.set_xlabel(f"importance (share of variance, {int(table['configs'].iloc[0])} configurations)")
    ax.set_title(title)
    return _save(fig, path)


def heatmap_plot(matrix: pd.DataFrame, labels: list[str], metric: str, mode: str, path: str, by: str = "fold") -> str:
    """Metric by configuration (rows, best ranked on top) × fold or asset (columns), annotated."""
    title = f"{metric} by {by} (mean over {'seeds' if by == 'fold' else 'folds × seeds'})"
    if matrix.empty:
        return _empty(path, title, "no completed unit")
    values = matrix.to_numpy(dtype=float)
    fig, ax = plt.subplots(figsize=(2.5 + 1.1 * matrix.shape[1] + 3, 1.4 + 0.4 * matrix.shape[0]))
    im = ax.imshow(values, aspect="auto", cmap="RdYlGn_r" if mode == "min" else "RdYlGn")
    for (i, j), v in np.ndenumerate(values):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.3g}", ha="center", va="center", fontsize=8)
    ax.set_xticks(range(matrix.shape[1]), matrix.columns, fontsize=9)
    ax.set_yticks(range(matrix.shape[0]), [_wrap(lab, 40) for lab in labels], fontsize=8)
    fig.colorbar(im, ax=ax, label=f"{metric} ({'lower' if mode == 'min' else 'higher'} is better)")
    ax.set_title(title)
    return _save(fig, path)


def curves_plot(curves: pd.DataFrame, labels: dict[str, str], path: str) -> str:
    """Loss per step of every unit of the top configurations: one panel per loss, one colour per config."""
    from matplotlib.ticker import MaxNLocator

    title = "Learning curves of the top configurations"
    if curves.empty:
        return _empty(
            path, title, "no training curves: these configurations are zero-shot, or their curves are not local"
        )
    tags = list(dict.fromkeys(curves["tag"]))  # the registry's order: train, val (per stage)
    cols = min(2, len(tags))
    rows = -(-len(tags) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 3.8 * rows + 0.4), squeeze=False)
    for ax in axes.flat[len(tags) :]:
        ax.set_visible(False)
    colors = dict(zip(labels, plt.cm.tab10.colors))
    for ax, tag in zip(axes.flat, tags):
        part = curves[curves["tag"] == tag]
        for _, unit in part.groupby(["config_id", "fold", "seed"]):
            color = colors.get(unit["config_id"].iloc[0], GREY)
            ax.plot(unit["step"], unit["value"], marker="o", ms=4, lw=1, alpha=0.75, color=color)
        ax.set_title(tag)
        ax.set_xlabel("step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if part["step"].nunique() == 1:
            ax.set_xlim(part["step"].iloc[0] - 1, part["step"].iloc[0] + 1)
        values = part["value"]
        if (values > 0).all() and values.max() / values.min() > 20:
            ax.set_yscale("log")
    handles = [plt.Line2D([], [], color=colors[c], marker="o", label=_wrap(labels[c], 40)) for c in labels]
    axes.flat[cols - 1].legend(handles=handles, fontsize=8, loc="best")
    fig.suptitle(f"{title} (one line per fold × seed)")
    return _save(fig, path)


def forecast_plot(table: pd.DataFrame, label: str, path: str) -> str:
    """One-step-ahead forecast vs actual and naive on each fold's test window, with the 80 % and
    95 % bands where the model gives them (seeds averaged)."""
    import matplotlib.dates as mdates

    title = f"Test forecasts of the best configuration: {_wrap(label, 60)}"
    if table.empty:
        return _empty(path, title, "no stored predictions")
    first = table[table["step"] == 1]
    folds = first.drop_duplicates("fold").sort_values("fold_end")["fold"].tolist()
    fig, axes = plt.subplots(len(folds), 1, figsize=(10, 2.8 * len(folds) + 0.6), squeeze=False)
    bands = [(b, quantiles.column(lo), quantiles.column(hi)) for b, (lo, hi) in sorted(quantiles.BANDS.items())]
    shown = ["y_true", "y_pred", "y_naive", *[c for _, lo, hi in bands for c in (lo, hi) if c in first]]
    for ax, fold in zip(axes[:, 0], folds):
        part = first[first["fold"] == fold].groupby("timestamp")[shown].mean()
        for band, lo, hi in reversed(bands):  # the wide band under the narrow one
            if lo in part and part[[lo, hi]].notna().all(axis=None):
                alpha = 0.18 if band == 95 else 0.32
                ax.fill_between(part.index, part[lo], part[hi], color=BLUE, alpha=alpha, lw=0, label=f"{band} % band")
        ax.plot(part.index, part["y_true"], color="black", lw=1.6, label="actual")
        ax.plot(part.index, part["y_pred"], color=BLUE, lw=1.4, marker="o", ms=2, label="1-step forecast (seed mean)")
        ax.plot(part.index, part["y_naive"], color=GREY, lw=1, ls="--", label="naive (last value)")
        # The axis follows the prices, the forecast and the 80 % band: a heavy-tailed 95 % band (a
        # few sampled paths far out) would otherwise flatten everything else into a line.
        inner = [c for c in ("y_true", "y_pred", quantiles.column(0.1), quantiles.column(0.9)) if c in part]
        lo, hi = np.nanmin(part[inner].to_numpy(float)), np.nanmax(part[inner].to_numpy(float))
        ax.set_ylim(lo - 0.1 * (hi - lo), hi + 0.1 * (hi - lo))
        ax.set_title(f"{fold}", fontsize=10)
        locator = mdates.AutoDateLocator(maxticks=8)
        ax.xaxis.set_major_locator(locator)
        ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
        ax.set_ylabel("price")
    axes[0, 0].legend(fontsize=8, loc="best")
    fig.suptitle(title, fontsize=11)
    return _save(fig, path)


def drift_plot(table: pd.DataFrame, path: str) -> str:
    """PSI of every variable per fold, train vs val and train vs test, annotated with the KS p-value."""
    title = "Drift vs the train window: PSI (KS p-value in brackets)"
    if table.empty:
        return _empty(path, title, "data not available: drift not computed")
    order = table.drop_duplicates("variable").sort_values("kind", ascending=False, kind="stable")
    names = {v: v + (" (calendar)" if k == "calendar" else "") for v, k in zip(order["variable"], order["kind"])}
    if "asset" in table:  # a universe: a column per (asset, fold)
        table = table.assign(fold=table["asset"].astype(str) + " " + table["fold"].astype(str))
    splits = list(dict.fromkeys(table["split"]))
    height = 1.8 + 0.5 * len(names)
    width = max(5.5, 2.5 + 0.9 * table["fold"].nunique())  # a universe has a column per (asset, fold)
    fig, axes = plt.subplots(1, len(splits), figsize=(width * len(splits), height), layout="constrained")
    axes = np.atleast_1d(axes)
    for ax, split in zip(axes, splits):
        part = table[table["split"] == split]
        psi = part.pivot(index="variable", columns="fold", values="psi").reindex(list(names))
        pval = part.pivot(index="variable", columns="fold", values="ks_pvalue").reindex_like(psi)
        # Capped at 1: the 0.1 / 0.25 thresholds stay visible next to calendar features' large values.
        im = ax.imshow(psi.to_numpy(float), aspect="auto", cmap="Reds", vmin=0, vmax=1.0)
        for (i, j), v in np.ndenumerate(psi.to_numpy(float)):
            color = "white" if v > 0.6 else "black"
            ax.text(j, i, f"{v:.2f}\n(p={pval.iat[i, j]:.2g})", ha="center", va="center", fontsize=7, color=color)
        ax.set_xticks(range(psi.shape[1]), psi.columns, fontsize=9)
        ax.set_yticks(range(psi.shape[0]), [names[v] for v in psi.index], fontsize=9)
        ax.set_title(f"train vs {split}")
    fig.colorbar(im, ax=list(axes), label="PSI (0.1 moderate, 0.25 large; ≥ 1 same colour)")
    fig.suptitle(title, fontsize=11)
    return _save(fig, path)


def history_plot(history: pd.DataFrame, metric: str, mode: str, path: str) -> str:
    """Optuna optimisation history: each trial's value and the best so far."""
    title = f"Optimisation history ({metric})"
    done = history.dropna(subset=["value"])
    if done.empty:
        return _empty(path, title, "no finished trial")
    fig, ax = plt.subplots(figsize=(9, 4))
    from matplotlib.ticker import MaxNLocator

    ax.scatter(done["number"], done["value"], color=BLUE, s=22, label="trial (every fold × seed done)", zorder=3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    best = done["value"].cummin() if mode == "min" else done["value"].cummax()
    ax.step(done["number"], best, where="post", color=RED, label="best so far")
    ax.set_xlabel("trial number")
    ax.set_ylabel(metric)
    ax.legend(fontsize=8)
    ax.set_title(title)
    return _save(fig, path)


def calibration_plot(best: pd.DataFrame, garch: pd.DataFrame, label: str, path: str) -> str:
    """The best configuration's test PIT histogram (step 1) and, for it, the probabilistic random walk
    and GARCH, each level's observed share of actuals below the forecast quantile (all steps)."""
    from analysis.calibration import pit

    title = f"Calibration on test: {_wrap(label, 60)}"
    cols = quantiles.columns()
    if best.empty or best[cols].isna().all(axis=None):
        return _empty(path, title, "no forecast quantiles stored (a point-only model, or an older sweep)")
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    one = best[best["step"] == 1]
    hist = pit(one["y_true"].to_numpy("float64"), one[cols].to_numpy("float64"))
    edges = np.concatenate([[0.0], quantiles.LEVELS, [1.0]])
    widths = np.diff(edges)
    density = np.asarray(hist.counts) / max(hist.n, 1) / widths
    left.bar(edges[:-1], density, width=widths, align="edge", color=BLUE, edgecolor="white", label="model")
    left.axhline(1.0, color="black", lw=1, ls="--", label="calibrated (uniform)")
    left.set_xlabel("PIT: where the actual falls among the forecast quantiles")
    left.set_ylabel("density")
    left.set_title(f"PIT, step 1 (n = {hist.n}, χ² p = {hist.pvalue:.3g})", fontsize=10)
    left.legend(fontsize=8)
    levels = np.asarray(quantiles.LEVELS)
    right.plot([0, 1], [0, 1], color="black", lw=1, ls="--", label="nominal")
    rw = best[best["config_id"] == best["config_id"].iloc[0]] if "config_id" in best else best
    sources = [("model", best, "", BLUE), ("random walk", rw, quantiles.RW_PREFIX, GREY)]
    if not garch.empty:
        sources.append(("GARCH(1,1)-t", garch, "", RED))
    for name, table, prefix, color in sources:
        q = table[quantiles.columns(prefix)].to_numpy("float64")
        y = table["y_true"].to_numpy("float64")[:, None]
        ok = np.isfinite(q)
        below = np.where(ok, y < q, np.nan)
        share = np.nanmean(below, axis=0) if ok.any() else np.full(len(levels), np.nan)
        right.plot(levels, share, color=color, marker="o", ms=4, label=name)
    right.set_xlabel("nominal level τ")
    right.set_ylabel("share of actuals below the τ quantile")
    right.set_title("Quantile reliability, every step", fontsize=10)
    right.legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    return _save(fig, path)
