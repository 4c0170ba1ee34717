"""Exploration figures of one Dataset."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from matplotlib.collections import LineCollection
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import NullFormatter, PercentFormatter

from movierec import analysis as A
from movierec.data.dataset import Dataset
from movierec.plots._base import (
    CATALOG,
    HEAD,
    MOVIE,
    TAIL,
    USER,
    counts,
    empty,
    new_figure,
    shorten,
    style,
)
from movierec.random import RNGLike


def rating_distribution(ds: Dataset) -> Figure:
    """Bar chart of how many ratings each rating value got, with its share on each bar."""
    dist = A.rating_distribution(ds)
    fig, (ax,) = new_figure(figsize=(6.5, 4.0))
    values = dist["rating"].to_numpy()
    step = float(np.diff(values).min()) if len(values) > 1 else 1.0
    bars = ax.bar(values, dist["ratings"], width=0.8 * step, color=TAIL, label="ratings")
    ax.bar_label(bars, labels=[f"{s:.0%}" for s in dist["share"]], fontsize=8, padding=2)
    ax.set_xticks(values, [f"{v:g}" for v in values])
    ax.set(title=f"Rating distribution — {ds.name} ({ds.n_ratings:,} ratings)",
           xlabel="Rating (stars)", ylabel="Number of ratings")
    counts(ax.yaxis)
    style(ax)
    return fig


def ratings_over_time(ds: Dataset, freq: str | None = None) -> Figure:
    """Ratings and active users per week (or month) across the release's time range.

    Args:
        ds: the dataset.
        freq: pandas period alias; default weekly under two years of data, else monthly.
    """
    frame = A.ratings_over_time(ds, freq)
    fig, (top, bottom) = new_figure(2, 1, figsize=(7.5, 5.0), sharex=True)
    if frame.empty:
        empty(top, "this release has no timestamps")
        empty(bottom, "")
        top.set_title(f"Ratings over time — {ds.name}")
        return fig
    weekly = len(frame) < 2 or (frame["period"].iloc[1] - frame["period"].iloc[0]).days <= 7
    period = "week" if weekly else "month"
    top.plot(frame["period"], frame["ratings"], color=TAIL, label=f"ratings per {period}")
    bottom.plot(frame["period"], frame["users"], color=USER, linestyle="--",
                label=f"users who rated that {period}")
    top.set(title=f"Ratings over time — {ds.name} (per {period})",
            ylabel=f"Ratings per {period}")
    bottom.set(xlabel="Date", ylabel=f"Active users per {period}")
    for ax in (top, bottom):
        ax.legend(loc="upper right", frameon=False)
        counts(ax.yaxis)
        style(ax)
    return fig


def top_genres(ds: Dataset, n: int = 15) -> Figure:
    """The `n` largest genres by number of movies and by number of ratings, side by side."""
    table = A.genre_popularity(ds, top=None)
    fig, axes = new_figure(1, 2, figsize=(10.0, 0.28 * n + 1.6))
    if table.empty:
        for ax in axes:
            empty(ax, "this release has no genres")
        return fig
    for ax, col, colour, what in ((axes[0], "movies", CATALOG, "Number of movies"),
                                  (axes[1], "ratings", TAIL, "Number of ratings")):
        top = table.nlargest(n, col).iloc[::-1]
        ax.barh(top["genre"], top[col], color=colour, label=what.lower())
        ax.set(title=f"Top {len(top)} genres by {what.split()[-1]}", xlabel=what)
        counts(ax.xaxis)
        style(ax, "x")
    fig.suptitle(f"Genres of {ds.name} (a movie with several genres counts in each)")
    return fig


def long_tail(ds: Dataset, head_share: float = 0.2) -> Figure:
    """The long tail: ratings per movie by popularity rank, and the cumulative share curve."""
    pop = A.item_popularity(ds, head_share)
    n_head = int(pop["head"].sum())
    fig, (left, right) = new_figure(1, 2, figsize=(10.0, 4.0))
    head, tail = pop[pop["head"]], pop[~pop["head"]]
    left.fill_between(head["rank"], head["ratings"], color=HEAD, alpha=0.8, step="mid",
                      label=f"head: {n_head:,} movies, {head_share:.0%} of ratings")
    left.fill_between(tail["rank"], tail["ratings"], color=TAIL, alpha=0.6, step="mid",
                      label=f"tail: {len(tail):,} movies")
    left.set(title="Ratings per movie, most rated first", xlabel="Popularity rank of the movie",
             ylabel="Number of ratings")
    left.legend(frameon=False)
    counts(left.xaxis)
    counts(left.yaxis)
    share_items = pop["rank"] / len(pop)
    right.plot(share_items, pop["cumulative_share"], color=TAIL, label="movies, most rated first")
    right.plot([0, 1], [0, 1], color=CATALOG, linestyle="--", label="equal popularity")
    right.axhline(head_share, color=HEAD, linewidth=0.8, linestyle=":",
                  label=f"{head_share:.0%} of ratings (head)")
    right.xaxis.set_major_formatter(PercentFormatter(1.0))
    right.yaxis.set_major_formatter(PercentFormatter(1.0))
    right.set(title="Cumulative share of ratings", xlabel="Share of movies",
              ylabel="Share of all ratings")
    right.legend(frameon=False, loc="lower right")
    for ax in (left, right):
        style(ax)
    fig.suptitle(f"Long tail of item popularity — {ds.name}")
    return fig


def degree_distributions(ds: Dataset) -> Figure:
    """How many users (movies) have each number of ratings, on log-log axes."""
    fig, axes = new_figure(1, 2, figsize=(10.0, 4.0))
    for ax, side, colour in ((axes[0], "user", USER), (axes[1], "item", MOVIE)):
        deg = A.degree_distribution(ds, side)  # type: ignore[arg-type]
        noun = "users" if side == "user" else "movies"
        ax.scatter(deg["degree"], deg["count"], s=12, color=colour, alpha=0.7, label=noun)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())
        ax.set(title=f"{noun.capitalize()}: ratings per {noun[:-1]}",
               xlabel=f"Ratings per {noun[:-1]} (degree, log scale)",
               ylabel=f"Number of {noun} (log scale)")
        ax.legend(frameon=False)
        style(ax, "both")
    fig.suptitle(f"Degree distributions — {ds.name}")
    return fig


def sparsity(ds: Dataset, bins: int = 120) -> Figure:
    """The rating matrix as an image: users and movies ordered by activity, shade = share rated.

    Args:
        ds: the dataset.
        bins: blocks per side; each pixel is the share of rated cells in a block of users x movies.
    """
    fig, (ax,) = new_figure(figsize=(7.0, 5.2))
    stats = A.sparsity(ds).iloc[0]
    u, i = ds.codes
    u_rank = np.argsort(np.argsort(-np.bincount(u, minlength=ds.n_users), kind="stable"))
    i_rank = np.argsort(np.argsort(-np.bincount(i, minlength=ds.n_items), kind="stable"))
    ub, ib = min(bins, ds.n_users), min(bins, ds.n_items)
    counts, _, _ = np.histogram2d(u_rank[u], i_rank[i], bins=[ub, ib],
                                  range=[[0, ds.n_users], [0, ds.n_items]])
    cells = (ds.n_users / ub) * (ds.n_items / ib)
    share = np.where(counts > 0, counts / cells, np.nan)
    img = ax.imshow(share, aspect="auto", cmap="viridis", interpolation="nearest",
                    norm=LogNorm(vmin=max(np.nanmin(share), 1e-4), vmax=1.0),
                    extent=(0, ds.n_items, ds.n_users, 0))
    fig.colorbar(img, ax=ax, label="Share of user-movie pairs rated (log scale)")
    ax.set(title=f"Rating matrix of {ds.name}\n{stats['density']:.2%} of "
                 f"{int(stats['possible']):,} user-movie pairs rated "
                 f"(sparsity {stats['sparsity']:.2%})",
           xlabel="Movies, most rated first", ylabel="Users, most active first")
    return fig


def bipartite_graph(ds: Dataset, n_users: int = 20, n_items: int = 20, *,
                    rng: RNGLike = 0) -> Figure:
    """A sampled user-movie graph: users left, movies right, node size by number of ratings.

    Args:
        ds: the dataset.
        n_users: users sampled at random. Default 20.
        n_items: movies kept, drawn in proportion to how many sampled users rated them.
            Default 20.
        rng: seed of the sample. Default 0.
    """
    nodes, edges = A.bipartite_sample(ds, n_users, n_items, rng=rng)
    users, movies = nodes[nodes["kind"] == "user"], nodes[nodes["kind"] == "movie"]
    fig, (ax,) = new_figure(figsize=(9.0, max(5.0, 0.26 * max(len(users), len(movies)) + 1.5)))

    def ypos(frame: pd.DataFrame) -> np.ndarray:  # spread each side evenly over [0, 1]
        return 1.0 - frame["order"].to_numpy() / max(len(frame) - 1, 1)

    uy = dict(zip(users["id"], ypos(users), strict=True))
    my = dict(zip(movies["id"], ypos(movies), strict=True))
    segments = [((0.0, uy[u]), (1.0, my[m])) for u, m in
                zip(edges["user_id"], edges["item_id"], strict=True)]
    ax.add_collection(LineCollection(segments, colors="#888888", alpha=0.35, linewidths=0.8,
                                     label=f"rating ({len(edges)} shown)"))
    top = max(int(nodes["degree"].max()), 1)

    def size(frame: pd.DataFrame) -> np.ndarray:
        return 15 + 285 * frame["degree"].to_numpy() / top

    ax.scatter(np.zeros(len(users)), ypos(users), s=size(users), color=USER, zorder=3,
               edgecolor="white", label="users")
    ax.scatter(np.ones(len(movies)), ypos(movies), s=size(movies), color=MOVIE, zorder=3,
               edgecolor="white", label="movies")
    for (_, row), y in zip(users.iterrows(), ypos(users), strict=True):
        ax.text(-0.04, y, row["label"], ha="right", va="center", fontsize=7)
    for (_, row), y in zip(movies.iterrows(), ypos(movies), strict=True):
        ax.text(1.04, y, shorten(row["label"], 34), ha="left", va="center", fontsize=7)
    ax.set(xlim=(-0.45, 1.6), ylim=(-0.05, 1.05))
    ax.axis("off")
    ax.set_title(f"User-movie graph of {ds.name}: {len(users)} random users and "
                 f"{len(movies)} of the movies they rated")
    handles, labels = ax.get_legend_handles_labels()
    handles.append(Line2D([], [], linestyle="none"))
    labels.append("node size: ratings in the whole dataset")
    ax.legend(handles, labels, loc="lower center", bbox_to_anchor=(0.5, -0.08), ncol=4,
              frameon=False, fontsize=8, markerscale=0.6)
    return fig


def demographics(ds: Dataset) -> Figure:
    """Users by age group, gender and occupation (releases with a users table only).

    Raises:
        ValueError: the dataset has no users table.
    """
    if ds.users is None:
        raise ValueError(f"{ds.name} has no users table (age, gender, occupation)")
    fig, axes = new_figure(1, 3, figsize=(12.0, 4.8), width_ratios=[1.2, 0.6, 1.4])
    ages, genders = A.user_attribute(ds, "age"), A.user_attribute(ds, "gender")
    jobs = A.user_attribute(ds, "occupation").iloc[::-1]
    axes[0].bar(ages["value"], ages["users"], color=USER, label="users")
    axes[0].set(title="Age group", xlabel="Age (years)", ylabel="Number of users")
    axes[0].tick_params(axis="x", labelrotation=45)
    axes[1].bar(genders["value"], genders["users"], color=[USER, MOVIE][: len(genders)] or USER,
                label="users")
    axes[1].set(title="Gender", xlabel="Gender", ylabel="Number of users")
    axes[2].barh(jobs["value"], jobs["users"], color=USER, label="users")
    axes[2].set(title="Occupation", xlabel="Number of users")
    axes[2].tick_params(axis="y", labelsize=7)
    grids: tuple[Literal["x", "y"], ...] = ("y", "y", "x")
    for ax, grid in zip(axes, grids, strict=True):
        counts(ax.xaxis if grid == "x" else ax.yaxis)
        style(ax, grid)
    fig.suptitle(f"Who the {ds.n_users:,} users of {ds.name} are")
    return fig


def release_years(ds: Dataset) -> Figure:
    """Number of rated movies per release year."""
    years = A.release_years(ds)
    fig, (ax,) = new_figure(figsize=(8.0, 3.8))
    if years.empty:
        empty(ax, "this release has no release years")
    else:
        ax.bar(years["year"], years["movies"], width=0.9, color=MOVIE, label="movies")
    ax.set(title=f"Release years of the rated movies — {ds.name}", xlabel="Release year",
           ylabel="Number of movies")
    counts(ax.yaxis)
    style(ax)
    return fig
