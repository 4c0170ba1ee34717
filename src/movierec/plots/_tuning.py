"""Figures of a tuning folder written by `movierec tune` (trials.csv, best.json, study.db)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from movierec.plots._base import CATALOG, HEAD, TAIL, empty, new_figure, style


def optimization_history(trials: pd.DataFrame, metric: str, direction: str,
                         title: str = "") -> Figure:
    """Each finished trial's validation value by trial number, and the best so far.

    Args:
        trials: trials.csv as a frame (columns number, value, state).
        metric: the tuned metric, for the axis label.
        direction: "minimize" or "maximize" (which way "best so far" runs).
        title: figure title (default: "Optimization history").
    """
    fig, (ax,) = new_figure(figsize=(7.5, 4.0))
    done = trials[trials["state"] == "COMPLETE"].sort_values("number")
    pruned = trials[(trials["state"] == "PRUNED") & trials["value"].notna()]
    if done.empty:
        empty(ax, "no complete trial")
    else:
        best = (done["value"].cummin() if direction == "minimize" else done["value"].cummax())
        ax.scatter(done["number"], done["value"], s=18, color=TAIL, label="complete trial",
                   zorder=3)
        if not pruned.empty:
            ax.scatter(pruned["number"], pruned["value"], s=18, color=CATALOG, marker="x",
                       label="pruned (last reported epoch)", zorder=2)
        ax.step(done["number"], best, where="post", color=HEAD, linewidth=1.8,
                label="best so far")
        ax.legend(frameon=False, fontsize=8)
    arrow = "↓" if direction == "minimize" else "↑"
    ax.set(xlabel="Trial", ylabel=f"Validation {metric} {arrow}",
           title=title or "Optimization history")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    style(ax)
    return fig


def param_importances(importances: Mapping[str, float], title: str = "") -> Figure:
    """Horizontal bars of each tuned parameter's importance (Optuna's fANOVA, sums to 1)."""
    fig, (ax,) = new_figure(figsize=(7.0, 0.9 + 0.38 * max(1, len(importances))))
    if not importances:
        empty(ax, "no importances (fewer than two complete trials?)")
    else:
        names = list(importances)[::-1]
        values = np.array([importances[n] for n in names], dtype=float)
        ax.barh(names, values, color=TAIL)
        for y, v in enumerate(values):
            ax.text(v, y, f" {v:.2f}", va="center", fontsize=8)
        ax.set_xlim(0, max(1.0, float(values.max()) * 1.15))
    ax.set(xlabel="Importance (share of the validation metric's variance)",
           title=title or "Hyper-parameter importances")
    style(ax, grid="x")
    return fig
