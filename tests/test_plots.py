"""Every figure renders on small data with the titles, labels and series a reader needs."""

from __future__ import annotations

import pytest

pytest.importorskip("matplotlib", reason="the plots need matplotlib (pip install matplotlib)")

from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.collections import LineCollection, PathCollection, PolyCollection  # noqa: E402
from matplotlib.container import ErrorbarContainer  # noqa: E402

from movierec import analysis as A  # noqa: E402
from movierec import plots as P  # noqa: E402
from movierec.benchmark import run  # noqa: E402
from movierec.data import load  # noqa: E402
from movierec.data.synthetic import write_release  # noqa: E402
from movierec.split import make_split  # noqa: E402

MODELS = ["pop", "itemknn", "bias"]


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    folder = write_release("ml100k", tmp_path_factory.mktemp("data") / "synth", n_users=40,
                           n_items=50, n_ratings=700, rng=0)
    return load(folder)


@pytest.fixture(scope="module")
def bench(synth):
    """pop / itemknn / bias over two seeds, plus an 'mf' run with a made-up training history."""
    split = make_split(synth, "user-random", test_size=0.2, rng=0)
    result = run(MODELS, split, seeds=(1, 2), ks=(5, 10), relevance=0, progress=False)
    for seed in (1, 2):
        metrics = dict(next(r for r in result.runs if r["model"] == "itemknn")["metrics"])
        history = [{"epoch": e, "train_loss": 1.0 / e + seed / 100, "valid_metric": 1.2 - e / 10,
                    "metric": "rmse", "seconds": 0.1} for e in (1, 2, 3)]
        result.runs.append({"model": "mf", "seed": seed, "fit_seconds": 1.0,
                            "recommend_seconds": 0.1, "metrics": metrics, "history": history})
    return result, split, A.model_lists(result)


def _legend(ax_or_fig) -> list[str]:
    legend = ax_or_fig.get_legend() if hasattr(ax_or_fig, "get_legend") else None
    if legend is None and hasattr(ax_or_fig, "legends") and ax_or_fig.legends:
        legend = ax_or_fig.legends[0]
    return [t.get_text() for t in legend.get_texts()] if legend else []


def _bars(ax) -> int:
    return sum(len(c.patches) for c in ax.containers if hasattr(c, "patches"))


# --- exploration -------------------------------------------------------------------------------
def test_rating_distribution(synth):
    fig = P.rating_distribution(synth)
    (ax,) = fig.axes
    assert isinstance(fig.canvas, FigureCanvasAgg)
    assert ax.get_title().startswith("Rating distribution — synth")
    assert ax.get_xlabel() == "Rating (stars)" and ax.get_ylabel() == "Number of ratings"
    assert _bars(ax) == synth.ratings["rating"].nunique() == 5


def test_ratings_over_time(synth):
    fig = P.ratings_over_time(synth)
    top, bottom = fig.axes
    assert len(top.lines) == 1 and len(bottom.lines) == 1
    assert top.get_title().startswith("Ratings over time") and bottom.get_xlabel() == "Date"
    assert "Active users" in bottom.get_ylabel()
    assert _legend(top) and _legend(bottom)


def test_top_genres_by_movies_and_by_ratings(synth):
    fig = P.top_genres(synth, n=5)
    by_movies, by_ratings = fig.axes
    assert "by movies" in by_movies.get_title() and "by ratings" in by_ratings.get_title()
    assert by_movies.get_xlabel() == "Number of movies"
    assert by_ratings.get_xlabel() == "Number of ratings"
    assert _bars(by_movies) == 5 and _bars(by_ratings) == 5


def test_long_tail(synth):
    left, right = P.long_tail(synth).axes
    assert sum(isinstance(c, PolyCollection) for c in left.collections) == 2  # head, tail
    assert any(t.startswith("head:") for t in _legend(left))
    assert len(right.lines) == 3  # curve, equality diagonal, head line
    assert right.get_xlabel() == "Share of movies"


def test_degree_distributions_are_log_log(synth):
    users, items = P.degree_distributions(synth).axes
    for ax in (users, items):
        assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
        assert len(ax.collections) == 1
    assert users.get_ylabel().startswith("Number of users")
    assert items.get_ylabel().startswith("Number of movies")


def test_sparsity_image_and_colorbar(synth):
    fig = P.sparsity(synth, bins=20)
    ax = fig.axes[0]
    assert len(ax.images) == 1 and len(fig.axes) == 2  # the matrix and its colour bar
    assert "sparsity" in ax.get_title()
    assert ax.get_xlabel() == "Movies, most rated first"


def test_bipartite_graph_draws_users_movies_and_edges(synth):
    (ax,) = P.bipartite_graph(synth, n_users=8, n_items=6, rng=1).axes
    lines = [c for c in ax.collections if isinstance(c, LineCollection)]
    points = [c for c in ax.collections if isinstance(c, PathCollection)]
    nodes, edges = A.bipartite_sample(synth, 8, 6, rng=1)
    assert len(lines) == 1 and len(lines[0].get_segments()) == len(edges)
    assert [len(p.get_offsets()) for p in points] == [8, 6]
    sizes = points[1].get_sizes()
    assert sizes.max() > sizes.min()  # node size follows degree
    assert {"users", "movies"} <= set(_legend(ax))
    assert len(ax.texts) == 14


def test_demographics_and_release_years(synth):
    ages, genders, jobs = P.demographics(synth).axes
    assert [a.get_title() for a in (ages, genders, jobs)] == ["Age group", "Gender",
                                                              "Occupation"]
    assert _bars(ages) == len(A.AGE_LABELS) and _bars(genders) == 2
    (ax,) = P.release_years(synth).axes
    assert ax.get_xlabel() == "Release year" and _bars(ax) == len(A.release_years(synth))
    from movierec.data.dataset import Dataset

    with pytest.raises(ValueError, match="users table"):
        P.demographics(Dataset(synth.ratings, name="bare"))


# --- results -----------------------------------------------------------------------------------
def test_model_comparison_ranking_groups_bars_with_error_bars(bench):
    result, _, _ = bench
    fig = P.model_comparison(result, "ranking")
    (ax,) = fig.axes
    models = [*MODELS, "mf"]
    assert _bars(ax) == 7 * len(models)
    assert _legend(fig) == models
    # two seeds: one set of error bars per model
    assert sum(isinstance(c, ErrorbarContainer) for c in ax.containers) == len(models)
    assert "NDCG@10 ↑" in [t.get_text() for t in ax.get_xticklabels()]
    assert "Ranking accuracy @10" in fig.get_suptitle()


def test_model_comparison_rating_and_beyond(bench):
    result, _, _ = bench
    (ax,) = P.model_comparison(result, "rating").axes
    assert _bars(ax) == 2 * 3  # RMSE, MAE for itemknn, bias, mf (pop predicts no ratings)
    assert ax.get_ylabel() == "Error (rating scale)"
    fig = P.model_comparison(result, "beyond", k=5)
    visible = [a for a in fig.axes if a.get_visible()]
    assert len(visible) == 6 and all(_bars(a) == 4 for a in visible)
    assert any(a.get_title().startswith("Catalog coverage@5") for a in visible)
    with pytest.raises(ValueError, match="family"):
        P.model_comparison(result, "speed")


def test_training_curves_one_line_per_seed(bench):
    result, _, _ = bench
    loss, valid = P.training_curves(result, "mf").axes
    assert len(loss.lines) == 2 and loss.get_ylabel() == "Training loss"
    assert len(valid.lines) == 4  # two seeds and their best-epoch stars
    assert valid.get_ylabel() == "RMSE" and valid.get_xlabel() == "Epoch"
    with pytest.raises(ValueError, match="no training history"):
        P.training_curves(result, "pop")


def test_genre_distribution_catalog_history_and_models(bench):
    _, split, lists = bench
    (ax,) = P.genre_distribution(split.train, lists, k=10).axes
    n_genres = len(split.train.genres)
    assert _bars(ax) == n_genres and len(ax.get_yticklabels()) == n_genres
    assert len(ax.lines) == 1 + len(lists)
    labels = _legend(ax)
    assert labels[0].startswith("users' histories") and "catalog (each movie once)" in labels
    assert "top-10" in ax.get_title()


def test_genre_overlap_user_and_average(bench):
    _, split, lists = bench
    fig = P.genre_overlap(split.train, lists, model="itemknn")
    user, average = fig.axes
    assert user.get_title().startswith("User ") and "itemknn" in user.get_title()
    assert average.get_title() == "Average over users"
    assert _bars(average) == 3 * len(lists)
    assert len(_legend(fig)) == 4


def test_popularity_bias_stacks_head_and_tail(bench):
    _, split, lists = bench
    (ax,) = P.popularity_bias(split.train, lists).axes
    assert _bars(ax) == 2 * (2 + len(lists))
    assert [t.get_text() for t in ax.get_yticklabels()][-2:] == ["training ratings",
                                                                 "catalog items"]
    assert ax.get_title().startswith("Popularity bias")


def test_user_card_lists_history_and_recommendations(bench, tmp_path):
    _, split, lists = bench
    user = A.pick_user(split.train, lists["itemknn"])
    first = lists["itemknn"][lists["itemknn"]["seed"] == 1]
    fig = P.user_card(split.train, first, user, model="itemknn", n=5)
    history, recs = fig.axes
    assert history.get_title(loc="left") == f"User {user} rated highest"
    assert recs.get_title(loc="left") == "Recommended by itemknn"
    assert len(recs.texts) == 2 * 5 and len(history.texts) >= 2
    data = P.save_png(fig, tmp_path / "card.png")
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and (tmp_path / "card.png").read_bytes() == data


# --- many models (a `--models all` benchmark) -------------------------------------------------
MANY = ["mean", "bias", "pop", "userknn", "itemknn", "ease", "svd", "ials", "mf", "gmf", "mlp",
        "neumf", "featurenet", "lstm", "sasrec", "ngcf", "lightgcn", "attngraphrec", "svdpp",
        "autorec", "glocalk", "blend"]


def test_model_colors_are_distinct_for_22_models():
    from movierec.plots._base import model_colors

    colors = model_colors(MANY)
    assert len(set(colors.values())) == 22  # tab20 repeated mean/glocalk and bias/blend
    assert colors["glocalk"] != colors["mean"] and colors["blend"] != colors["bias"]
    assert list(model_colors(MODELS).values()) == ["#1f77b4", "#ff7f0e", "#2ca02c"]  # tab10


@pytest.fixture(scope="module")
def many(bench):
    """22 models: the bench's runs and lists copied under every registry name."""
    from movierec.benchmark import BenchmarkResult

    result, split, lists = bench
    runs = []
    for j, name in enumerate(MANY):
        source = MODELS[j % len(MODELS)]
        for r in result.runs:
            if r["model"] == source:
                runs.append({**r, "model": name,
                             "metrics": {m: v * (1 + j / 100) for m, v in r["metrics"].items()}})
    many_result = BenchmarkResult(result.dataset, result.split, result.protocol, runs)
    return many_result, split, {name: lists[MODELS[j % len(MODELS)]]
                                for j, name in enumerate(MANY)}


@pytest.mark.parametrize(("family", "n_metrics"), [("ranking", 7), ("beyond", 6)])
def test_model_comparison_with_22_models_is_one_panel_per_metric(many, family, n_metrics):
    result, _, _ = many
    fig = P.model_comparison(result, family)
    panels = [a for a in fig.axes if a.get_visible()]
    assert len(panels) == n_metrics
    FigureCanvasAgg(fig).draw()
    for ax in panels:
        bars = [p for c in ax.containers if hasattr(c, "patches") for p in c.patches]
        assert len(bars) == 22 and len({tuple(b.get_facecolor()) for b in bars}) == 22
    # the models are named once, on the shared y axis, first at the top; nothing overlaps
    labels = panels[0].get_yticklabels()
    assert [t.get_text() for t in labels] == MANY
    boxes = sorted((t.get_window_extent() for t in labels), key=lambda b: b.y0)
    assert all(low.y1 <= high.y0 + 0.5 for low, high in zip(boxes, boxes[1:], strict=False))
    assert panels[0].get_ylim()[0] > panels[0].get_ylim()[1]  # inverted: mean on top
    titles = [a.get_title() for a in panels]
    if family == "beyond":  # descriptions of the lists: no "better" arrow
        assert not any("↑" in t or "↓" in t for t in titles), titles
    else:
        assert all(t.endswith("↑") for t in titles)


def test_genre_distribution_with_22_models_is_a_table(many):
    _, split, lists = many
    (ax, _colorbar) = P.genre_distribution(split.train, lists, k=10).axes
    (image,) = ax.images
    assert image.get_array().shape == (len(split.train.genres), 2 + 22)
    assert [t.get_text() for t in ax.get_xticklabels()][2:] == MANY
    assert len(ax.texts) == len(split.train.genres) * 24  # every share written in its cell


def test_genre_distribution_legend_is_outside_the_dots(bench):
    _, split, lists = bench
    fig = P.genre_distribution(split.train, lists, k=10)
    (ax,) = fig.axes
    FigureCanvasAgg(fig).draw()
    legend, plot = ax.get_legend().get_window_extent(), ax.get_window_extent()
    assert legend.x0 >= plot.x1  # right of the axes: it no longer covers the upper genres
    assert fig.bbox.x1 >= legend.x1  # and inside the figure
