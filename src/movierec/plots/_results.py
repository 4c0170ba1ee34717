"""Figures of a benchmark's results and recommendation lists."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import MaxNLocator, PercentFormatter

from movierec import analysis as A
from movierec.benchmark import BenchmarkResult
from movierec.data.dataset import Dataset
from movierec.metrics import METRICS, best_direction
from movierec.plots._base import (
    CATALOG,
    HEAD,
    HISTORY,
    TAIL,
    WHERE,
    empty,
    model_colors,
    model_markers,
    new_figure,
    shorten,
    style,
)

#: Past this many models, comparisons are drawn as one horizontal panel per metric (model names
#: on the y axis) and the genre distribution as a table of shades: grouped bars, x labels and a
#: legend of 20 entries stop being readable.
MANY_MODELS = 8

#: How the figures name each metric.
LABELS = {"rmse": "RMSE", "mae": "MAE", "precision": "Precision", "recall": "Recall",
          "f1": "F1", "ndcg": "NDCG", "map": "MAP", "mrr": "MRR", "hit": "Hit rate",
          "coverage": "Catalog coverage", "diversity": "Intra-list diversity",
          "novelty": "Novelty (bits)", "arp": "Avg. popularity of recs (ratings)",
          "personalization": "Personalization", "gini": "Gini of exposure"}
#: y-axis labels of the beyond-accuracy panels.
_UNITS = {"coverage": "share of the catalog recommended", "diversity": "1 − mean genre similarity",
          "novelty": "bits (−log2 popularity)", "arp": "training ratings per item",
          "personalization": "1 − mean list overlap", "gini": "0 even … 1 concentrated"}
_WHERE_LABEL = {"only history": "genre only in the history", "both": "genre in both",
                "only recommended": "genre only in the recommendations"}
_FAMILY_TITLE = {"rating": "Rating prediction error", "ranking": "Ranking accuracy",
                 "beyond": "Beyond accuracy"}


def _label(metric: str) -> str:
    """The metric's name, with ↑/↓ only where higher/lower is better by definition (accuracy).

    Beyond-accuracy metrics describe the lists and get no arrow.
    """
    name, _, k = metric.partition("@")
    better = best_direction(metric)
    arrow = {"higher": " ↑", "lower": " ↓"}.get(better or "", "")
    return f"{LABELS.get(name, name)}{'@' + k if k else ''}{arrow}"


def model_comparison(result: BenchmarkResult, family: str = "ranking",
                     k: int | None = None) -> Figure:
    """One metric family compared across models: mean over seeds, error bars = std over seeds.

    Args:
        result: the benchmark result (see `movierec.analysis.load_benchmark`).
        family: "rating" (RMSE, MAE), "ranking" (precision ... hit rate @k, grouped bars on one
            axis) or "beyond" (coverage, diversity, novelty, ARP, personalization, Gini @k; one
            panel each, their scales differ).
        k: list length (default 10, or the largest evaluated).

    Raises:
        ValueError: unknown family, or no model has metrics of this family.
    """
    if family not in _FAMILY_TITLE:
        raise ValueError(f"family must be one of {list(_FAMILY_TITLE)}, not {family!r}")
    k = A.default_k(result) if k is None else k
    data = A.metric_frame(result, k)
    data = data[data["family"] == family]
    if data.empty:
        raise ValueError(f"no model has {family} metrics in this result")
    models = list(dict.fromkeys(data["model"]))
    colors = model_colors(list(dict.fromkeys(r["model"] for r in result.runs)))
    metrics = list(dict.fromkeys(data["metric"]))
    seeds = int(data["seeds"].max())
    table = data.set_index(["metric", "model"])
    errs = f"mean ± std over {seeds} seeds" if seeds > 1 else "one seed"
    reading = ("descriptions of the lists, not scores: no direction is better by definition"
               if family == "beyond" else "↑ higher is better, ↓ lower is better")
    title = (f"{_FAMILY_TITLE[family]}{f' @{k}' if family != 'rating' else ''} — {result.dataset}"
             f"\n{errs}; {reading}")
    if len(models) > MANY_MODELS:
        return _metric_panels(table, models, metrics, colors, seeds, family, title)
    if family != "beyond":
        width_in = min(14.0, max(7.5, 1.1 * len(metrics) * max(len(models), 2) / 2.5))
        fig, (ax,) = new_figure(figsize=(width_in, 4.2))
        width = 0.8 / len(models)
        x = np.arange(len(metrics))
        for j, model in enumerate(models):
            rows = table.reindex([(m, model) for m in metrics])
            std = rows["std"].fillna(0).to_numpy() if seeds > 1 else None
            ax.bar(x + (j - (len(models) - 1) / 2) * width, rows["mean"].fillna(0), width,
                   yerr=std, capsize=2, color=colors[model], label=model)
        ax.set_xticks(x, [_label(m) for m in metrics])
        ax.set(ylabel="Error (rating scale)" if family == "rating" else "Score (0-1)")
        fig.legend(title="model", loc="outside right upper", frameon=False, fontsize=8)
        style(ax)
        fig.suptitle(title, fontsize=10)
        return fig
    ncols = 3 if len(metrics) > 4 else len(metrics)
    nrows = -(-len(metrics) // ncols)
    fig, axes = new_figure(nrows, ncols, figsize=(3.6 * ncols, 2.9 * nrows + 0.6))
    for ax, metric in zip(axes, metrics, strict=False):
        rows = table.loc[metric].reindex(models)
        ax.bar(models, rows["mean"].fillna(0), yerr=rows["std"].fillna(0) if seeds > 1 else None,
               capsize=2, color=[colors[m] for m in models], label=models)
        ax.set_title(_label(metric), fontsize=10)
        ax.set_ylabel(_UNITS.get(metric.split("@")[0], "value"), fontsize=8)
        ax.tick_params(axis="x", labelrotation=30, labelsize=8)
        for tick in ax.get_xticklabels():  # anchored at its bar, not centred on it
            tick.set_horizontalalignment("right")
            tick.set_rotation_mode("anchor")
        style(ax)
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    fig.legend(handles=[Patch(color=colors[m], label=m) for m in models], title="model",
               loc="outside lower center", ncol=min(len(models), 8), frameon=False)
    fig.suptitle(title, fontsize=10)
    return fig


def _metric_panels(table: pd.DataFrame, models: list[str], metrics: list[str],
                   colors: dict[str, str], seeds: int, family: str, title: str) -> Figure:
    """Many models: one horizontal bar panel per metric.

    The models are named on the shared y axis (first at the top); error bars = std over seeds.
    """
    ncols = min(len(metrics), 4)
    nrows = -(-len(metrics) // ncols)
    panel_h = 0.2 * len(models) + 0.9
    fig, axes = new_figure(nrows, ncols, figsize=(2.9 * ncols + 1.4, panel_h * nrows + 0.9),
                           sharey=True)
    y = np.arange(len(models))
    for ax, metric in zip(axes, metrics, strict=False):
        rows = table.loc[metric].reindex(models)
        ax.barh(y, rows["mean"].fillna(0), height=0.75,
                xerr=rows["std"].fillna(0) if seeds > 1 else None, capsize=1.5,
                error_kw={"elinewidth": 0.8}, color=[colors[m] for m in models])
        for j in np.flatnonzero(rows["mean"].isna().to_numpy()):
            ax.text(0, int(j), " –", va="center", fontsize=8, color="#666666")  # cannot compute it
        ax.set_title(_label(metric), fontsize=10)
        if family == "beyond":
            ax.set_xlabel(_UNITS.get(metric.split("@")[0], "value"), fontsize=8)
        ax.tick_params(labelsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
        style(ax, "x")
    axes[0].set_yticks(y, models)
    axes[0].invert_yaxis()  # shared: every panel lists the first model at the top
    for ax in axes[len(metrics):]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=10)
    return fig


def training_curves(result: BenchmarkResult, model: str) -> Figure:
    """Training loss and validation metric per epoch of one neural model, a line per seed.

    Raises:
        ValueError: the model has no training history in this result.
    """
    hist = A.training_history(result)
    hist = hist[hist["model"] == model]
    if hist.empty:
        raise ValueError(f"model {model!r} has no training history (only neural models do)")
    fig, (loss_ax, valid_ax) = new_figure(1, 2, figsize=(10.0, 3.8))
    for ax in (loss_ax, valid_ax):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    metric = str(hist["metric"].dropna().iloc[0]) if hist["metric"].notna().any() else None
    for seed, runs in hist.groupby("seed", sort=True):
        loss_ax.plot(runs["epoch"], runs["train_loss"], marker="o", markersize=3,
                     label=f"seed {seed}")
        if metric is not None:
            line, = valid_ax.plot(runs["epoch"], runs["valid_metric"], marker="o",
                                  markersize=3, label=f"seed {seed}")
            pick = runs["valid_metric"].idxmax() if METRICS.get(metric.split("@")[0]) == \
                "higher" else runs["valid_metric"].idxmin()
            valid_ax.plot(runs.loc[pick, "epoch"], runs.loc[pick, "valid_metric"], marker="*",
                          markersize=12, color=line.get_color(), linestyle="none")
    loss_ax.set(title="Training loss (mean over the epoch's batches)", xlabel="Epoch",
                ylabel="Training loss")
    loss_ax.legend(frameon=False, fontsize=8)
    if metric is None:
        empty(valid_ax, "no validation set (benchmark with --valid-size > 0 to track one)")
        valid_ax.set_title("Validation metric")
    else:
        valid_ax.set(title=f"Validation {_label(metric)} (★ best epoch, kept)", xlabel="Epoch",
                     ylabel=LABELS.get(metric.split("@")[0], metric))
        valid_ax.legend(frameon=False, fontsize=8)
    for ax in (loss_ax, valid_ax):
        style(ax)
    fig.suptitle(f"Training curves — {model} on {result.dataset}")
    return fig


def genre_distribution(train: Dataset, lists: Mapping[str, pd.DataFrame],
                       k: int | None = None) -> Figure:
    """Share of movies per genre in the catalog, the users' histories and each model's lists.

    Args:
        train: the training part of the split (its item table gives genres).
        lists: model name -> top-k lists (see `movierec.analysis.model_lists`).
        k: list length, for the title only.
    """
    dist = A.genre_distribution(train, lists).iloc[::-1]
    models = list(lists)
    title = (f"Genres recommended{f' (top-{k})' if k else ''} vs the catalog and the users' "
             "histories")
    if len(models) > MANY_MODELS:
        return _genre_table(dist.iloc[::-1], models, title)
    colors, markers = model_colors(models), model_markers(models)
    fig, (ax,) = new_figure(figsize=(9.5, 0.32 * len(dist) + 1.8))
    y = np.arange(len(dist))
    ax.barh(y, dist["catalog"], color=CATALOG, height=0.7, label="catalog (each movie once)")
    ax.plot(dist["history"], y, marker="D", linestyle="none", color=HISTORY, markersize=6,
            label="users' histories (training ratings)")
    for model in models:
        ax.plot(dist[model], y, marker=markers[model], linestyle="none", color=colors[model],
                markersize=6, alpha=0.85, label=f"{model} recommendations")
    ax.set_yticks(y, dist.index)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set(xlabel="Share of movies with this genre (a movie can have several)", title=title)
    # Outside the axes, on the right: inside, it covered the dots of the upper genres.
    ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    style(ax, "x")
    return fig


def _genre_table(dist: pd.DataFrame, models: list[str], title: str) -> Figure:
    """Many models: genres x (catalog, histories, models) as shaded cells with the share."""
    columns = ["catalog", "history", *models]
    values = dist[columns].to_numpy(dtype=float)
    fig, (ax,) = new_figure(figsize=(0.42 * len(columns) + 2.6, 0.3 * len(dist) + 2.2))
    image = ax.imshow(values, cmap="Blues", aspect="auto", vmin=0, vmax=max(values.max(), 1e-9))
    for (r, c), v in np.ndenumerate(values):
        ax.text(c, r, f"{v:.0%}", ha="center", va="center", fontsize=6.5,
                color="white" if v > 0.6 * values.max() else "#222222")
    ax.axvline(1.5, color="white", linewidth=4)  # references | models
    ax.set_xticks(np.arange(len(columns)),
                  ["catalog (each movie once)", "users' histories", *models], fontsize=8)
    for tick in ax.get_xticklabels():
        tick.set(rotation=45, horizontalalignment="right", rotation_mode="anchor")
    ax.set_yticks(np.arange(len(dist)), dist.index, fontsize=8)
    ax.tick_params(length=0)
    ax.spines[:].set_visible(False)
    fig.colorbar(image, ax=ax, shrink=0.6, format=PercentFormatter(1.0),
                 label="share of movies with the genre")
    ax.set_title(title, fontsize=10)
    return fig


def genre_overlap(train: Dataset, lists: Mapping[str, pd.DataFrame], user_id: int | None = None,
                  model: str | None = None) -> Figure:
    """Genres only in the history, in both, only in the recommendations: one user and on average.

    Left: for `user_id` and `model` (default: a typical user, the first model), movies per genre
    in the user's training history (left of zero) and in the list (right). Right: per model,
    the mean number of genres in each group over all users with a list.
    """
    models = list(lists)
    if not models:
        raise ValueError("no recommendation lists to compare")
    model = models[0] if model is None else model
    user_id = A.pick_user(train, lists[model]) if user_id is None else user_id
    sets = A.genre_sets(train, lists[model], user_id).iloc[::-1]
    fig, (left, right) = new_figure(1, 2, figsize=(11.0, max(4.0, 0.28 * len(sets) + 1.6,
                                                         0.26 * len(models) + 1.6)))
    colors = [WHERE[w] for w in sets["where"]]
    left.barh(sets["genre"], -sets["history"], color=colors)
    left.barh(sets["genre"], sets["recommended"], color=colors, hatch="//", edgecolor="white")
    left.axvline(0, color="#444444", linewidth=0.8)
    left.xaxis.set_major_formatter(lambda v, _: f"{abs(v):g}")
    left.set(title=f"User {user_id}, {model}: history ← | → recommended",
             xlabel="Movies with the genre (history: rated in training; right: in the list)")
    means = pd.DataFrame({m: A.genre_overlap(train, lists[m]).drop(columns="user_id").mean()
                          for m in models}).T.iloc[::-1]
    base = np.zeros(len(means))
    shown = 0.05 * float(means[["only_history", "both", "only_recommended"]].sum(axis=1).max())
    for where, col in (("only history", "only_history"), ("both", "both"),
                       ("only recommended", "only_recommended")):
        bars = right.barh(means.index, means[col], left=base, color=WHERE[where], label=where)
        right.bar_label(bars, labels=[f"{v:.1f}" if v >= shown else "" for v in means[col]],
                        label_type="center", fontsize=8)
        base += means[col].to_numpy()
    right.set(title="Average over users", xlabel="Number of genres (mean per user)")
    handles = [Patch(color=c, label=_WHERE_LABEL[w]) for w, c in WHERE.items()]
    handles.append(Patch(facecolor="#888888", hatch="//", edgecolor="white",
                         label="hatched: recommended movies"))
    fig.legend(handles=handles, loc="outside lower center", ncol=4, frameon=False, fontsize=8)
    for ax in (left, right):
        style(ax, "x")
    fig.suptitle("Genre overlap between the users' histories and their recommendations")
    return fig


def popularity_bias(train: Dataset, lists: Mapping[str, pd.DataFrame],
                    head_share: float = 0.2) -> Figure:
    """Share of each model's recommendations that come from the popularity head vs the tail."""
    bias = A.popularity_bias(train, lists, head_share).iloc[::-1]
    n_head = int(bias["head_items"].iloc[0])
    fig, (ax,) = new_figure(figsize=(8.0, 0.42 * len(bias) + 1.6))
    head = ax.barh(bias.index, bias["head"], color=HEAD, label="head (most rated movies)")
    tail = ax.barh(bias.index, bias["tail"], left=bias["head"], color=TAIL,
                   label="tail (all other movies)")
    for bars in (head, tail):
        shares = np.asarray(bars.datavalues)
        ax.bar_label(bars, labels=[f"{v:.0%}" if v >= 0.04 else "" for v in shares],
                     label_type="center", color="white", fontsize=8)
    ax.xaxis.set_major_formatter(PercentFormatter(1.0))
    ax.set(xlim=(0, 1), xlabel="Share of recommended movies (reference rows: of items / ratings)",
           title=f"Popularity bias: head = {n_head:,} most rated movies holding {head_share:.0%} "
                 "of training ratings")
    fig.legend(handles=[head, tail], frameon=False, fontsize=8, loc="outside lower center",
               ncol=2)
    style(ax, "x")
    return fig


def user_card(train: Dataset, lists: pd.DataFrame, user_id: int, *, model: str = "",
              n: int = 10) -> Figure:
    """A user's highest-rated movies next to the movies recommended, with "because you liked"."""
    history, recs = A.user_card(train, lists, user_id, n_history=n, k=n)
    rows = max(len(history), len(recs), 1)
    fig, (left, right) = new_figure(1, 2, figsize=(12.0, 0.52 * rows + 1.2))
    for ax in (left, right):
        ax.set(xlim=(0, 1), ylim=(rows, -0.8))
        ax.axis("off")
    left.set_title(f"User {user_id} rated highest", loc="left", fontweight="bold")
    for r, row in enumerate(history.itertuples()):
        left.text(0, r, f"{row.rating:g}★  {shorten(row.title, 52)}", fontsize=9, va="center")
        left.text(0.08, r + 0.38, shorten(row.genres, 70), fontsize=7, color="#666666",
                  va="center")
    right.set_title(f"Recommended{f' by {model}' if model else ''}", loc="left",
                    fontweight="bold")
    if recs.empty:
        right.text(0, 0, "no recommendations for this user", fontsize=9, color="#666666")
    for r, row in enumerate(recs.itertuples()):
        right.text(0, r, f"{row.rank}.  {shorten(row.title, 52)}", fontsize=9, va="center")
        note = shorten(row.genres, 40)
        if row.because_you_liked:
            note += f"  ·  because you liked {shorten(row.because_you_liked, 34)}"
        right.text(0.05, r + 0.38, note, fontsize=7, color="#666666", va="center")
    fig.suptitle(f"User card — user {user_id}: what they liked and what they are recommended")
    return fig


def interval_bars(intervals: pd.DataFrame, metric: str, *, title: str = "") -> Figure:
    """Each model's mean of `metric` with its confidence interval, one horizontal bar each.

    Args:
        intervals: one row per model (index), columns mean, low, high.
        metric: the metric's key ("ndcg@10"), for the axis label.
        title: the figure's title.
    """
    if intervals.empty:
        raise ValueError("no model has an interval to draw")
    data = intervals.iloc[::-1]  # first model at the top
    models = [str(m) for m in data.index]
    colors = model_colors(list(map(str, intervals.index)))
    fig, (ax,) = new_figure(figsize=(7.5, 1.2 + 0.38 * len(models)))
    y = np.arange(len(models))
    mean = data["mean"].to_numpy(float)
    err = np.vstack([mean - data["low"].to_numpy(float), data["high"].to_numpy(float) - mean])
    ax.errorbar(mean, y, xerr=np.nan_to_num(err), fmt="none", ecolor="#444444", capsize=3,
                linewidth=1.2)
    ax.scatter(mean, y, color=[colors[m] for m in models], zorder=3, s=28)
    ax.set_yticks(y, models)
    ax.set_xlabel(_label(metric))
    style(ax, "x")
    if title:
        ax.set_title(title, fontsize=10)
    return fig


def significance_matrix(matrix: pd.DataFrame, metric: str, *, title: str = "") -> Figure:
    """Model x model: is the row model significantly better (▲), worse (▼) or tied (=)?

    Args:
        matrix: +1 / -1 / 0 per (row model, column model), NaN on the diagonal
            (`movierec.compare.significance_matrix`).
        metric: the metric's key, for the title.
        title: the figure's title (default names the metric).
    """
    from matplotlib.colors import ListedColormap

    models = [str(m) for m in matrix.index]
    n = len(models)
    size = min(11.0, 1.6 + 0.55 * n)
    fig, (ax,) = new_figure(figsize=(size + 1.0, size))
    values = matrix.to_numpy(float)
    cmap = ListedColormap(["#f4a3a3", "#e6e6e6", "#9fd89f"])
    ax.imshow(np.nan_to_num(values, nan=0.0) + 1, cmap=cmap, vmin=0, vmax=2)
    symbol = {1.0: "▲", -1.0: "▼", 0.0: "="}
    for i in range(n):
        for j in range(n):
            text = "" if i == j else symbol.get(float(values[i, j]), "")
            ax.text(j, i, text, ha="center", va="center", fontsize=9)
    ax.set_xticks(range(n), models, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(n), models, fontsize=8)
    ax.set_xlabel("compared with (column)")
    ax.set_ylabel("model (row)")
    ax.set_title(title or f"{_label(metric)}: row model better (▲), worse (▼) or tied (=)",
                 fontsize=10)
    return fig
