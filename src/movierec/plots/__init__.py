"""Figures of the data and of benchmark results: every function returns a matplotlib Figure.

Importing this package imports matplotlib (never done by `import movierec`). Figures use the Agg
canvas directly, so they render without a display and leave pyplot's state alone; in a notebook
with `%matplotlib inline` a returned Figure displays itself. Save one with `save_png(fig, path)`
or `fig.savefig(path)`.

Exploration (take a Dataset): `rating_distribution`, `ratings_over_time`, `top_genres`,
`long_tail`, `degree_distributions`, `sparsity`, `bipartite_graph`, `demographics`,
`release_years`.

Results (take a BenchmarkResult, or the training part of the split and the top-k lists from
`movierec.analysis.model_lists`): `model_comparison`, `training_curves`, `genre_distribution`,
`genre_overlap`, `popularity_bias`, `user_card`; of paired comparisons (take frames from
`movierec.compare`): `interval_bars`, `significance_matrix`.

Tuning (take a tuning folder's trials and importances): `optimization_history`,
`param_importances`.
"""

from __future__ import annotations

from movierec.plots._base import save_png, to_png
from movierec.plots._explore import (
    bipartite_graph,
    degree_distributions,
    demographics,
    long_tail,
    rating_distribution,
    ratings_over_time,
    release_years,
    sparsity,
    top_genres,
)
from movierec.plots._results import (
    MANY_MODELS,
    genre_distribution,
    genre_overlap,
    interval_bars,
    model_comparison,
    popularity_bias,
    significance_matrix,
    training_curves,
    user_card,
)
from movierec.plots._tuning import optimization_history, param_importances

__all__ = [
    "MANY_MODELS",
    "bipartite_graph",
    "degree_distributions",
    "demographics",
    "genre_distribution",
    "genre_overlap",
    "interval_bars",
    "long_tail",
    "model_comparison",
    "optimization_history",
    "param_importances",
    "popularity_bias",
    "rating_distribution",
    "ratings_over_time",
    "release_years",
    "save_png",
    "significance_matrix",
    "sparsity",
    "to_png",
    "top_genres",
    "training_curves",
    "user_card",
]
