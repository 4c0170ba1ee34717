"""A synthetic dataset whose ratings follow who made each movie: a planted people effect.

For checking that people-aware models (`featurenet`/NCF with `people=True`, `lightgcn`/`ngcf`
with `knowledge=True`) can use directors and actors, and for measuring cold start where the real
IMDb-joined files are not at hand. It proves the mechanism, not a gain on real data.

The world: each person has a taste vector z_p ~ N(0, I_d); a movie's vector is the mean of its
director's and its actors' vectors plus noise (`item_noise`), so movies sharing people are alike;
each user has a taste vector w_u ~ N(0, I_d). A user picks the movies to rate by the Gumbel
top-n trick on β·⟨w_u, v_i⟩/√d plus a popularity term, and rates them 1..5 by a rounded,
clipped linear function of the same affinity. Everything is generated: no real content.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from movierec.data.dataset import Dataset
from movierec.random import as_generator

__all__ = ["make_people_dataset"]

_T0 = 1_000_000_000


def make_people_dataset(
    n_users: int = 300,
    n_items: int = 400,
    *,
    n_directors: int = 60,
    n_actors: int = 200,
    actors_per_movie: int = 3,
    ratings_per_user: int = 30,
    dim: int = 8,
    beta: float = 3.0,
    item_noise: float = 0.3,
    rng: int | np.random.Generator | None = 0,
) -> Dataset:
    """A Dataset with director_ids/directors and actor_ids/actors driving its ratings.

    Args:
        n_users: users (ids 1..n_users).
        n_items: movies (ids 1..n_items).
        n_directors: distinct directors (ids "nm1000000"...), one per movie.
        n_actors: distinct actors (ids "nm2000000"...); `actors_per_movie` distinct per movie.
        actors_per_movie: billed actors per movie.
        ratings_per_user: ratings of each user (≤ n_items).
        dim: size of the taste vectors.
        beta: how strongly taste drives which movies a user rates (0: popularity only).
        item_noise: spread of a movie's own part beside its people's mean.
        rng: seed or generator (same seed, same data).

    Raises:
        ValueError: impossible sizes.
    """
    if ratings_per_user > n_items:
        raise ValueError(f"ratings_per_user ({ratings_per_user}) exceeds n_items ({n_items})")
    if actors_per_movie > n_actors:
        raise ValueError(f"actors_per_movie ({actors_per_movie}) exceeds n_actors ({n_actors})")
    gen = as_generator(rng)
    z_dir = gen.normal(size=(n_directors, dim))
    z_act = gen.normal(size=(n_actors, dim))
    director = gen.integers(0, n_directors, size=n_items)
    act_pop = 1.0 / np.arange(1, n_actors + 1) ** 0.6
    act_pop /= act_pop.sum()
    actors = np.stack([gen.choice(n_actors, size=actors_per_movie, replace=False, p=act_pop)
                       for _ in range(n_items)])
    v = (z_dir[director] + z_act[actors].sum(axis=1)) / (1 + actors_per_movie)
    v = v / v.std() + item_noise * gen.normal(size=(n_items, dim))
    w = gen.normal(size=(n_users, dim))
    affinity = w @ v.T / np.sqrt(dim)                        # [users, items]
    popularity = np.log(1.0 / np.arange(1, n_items + 1) ** 0.8)[gen.permutation(n_items)]
    gumbel = gen.gumbel(size=affinity.shape)
    logits = beta * affinity + popularity + gumbel
    picked = np.argpartition(-logits, ratings_per_user - 1, axis=1)[:, :ratings_per_user]
    users = np.repeat(np.arange(n_users), ratings_per_user)
    items = picked.ravel()
    a = affinity[users, items]
    stars = np.clip(np.rint(3.0 + 1.2 * a + 0.5 * gen.normal(size=len(a))), 1, 5)
    ratings = pd.DataFrame({"user_id": users + 1, "item_id": items + 1, "rating": stars,
                            "timestamp": _T0 + gen.integers(0, 3 * 365 * 86_400, size=len(a))})
    ratings = ratings.sort_values(["user_id", "timestamp"], kind="stable").reset_index(drop=True)
    dir_ids = [f"nm{1_000_000 + d}" for d in range(n_directors)]
    act_ids = [f"nm{2_000_000 + a}" for a in range(n_actors)]
    table = pd.DataFrame({
        "item_id": np.arange(1, n_items + 1),
        "title": [f"Synthetic Film {i}" for i in range(1, n_items + 1)],
        "year": (1950 + np.arange(n_items) % 60).astype(np.float64),
        "genres": [("Drama",) if d % 2 else ("Comedy",) for d in director],
    })
    for col, values in (("director_ids", [(dir_ids[d],) for d in director]),
                        ("directors", [(f"Director {d}",) for d in director]),
                        ("actor_ids", [tuple(act_ids[a] for a in row) for row in actors]),
                        ("actors", [tuple(f"Actor {a}" for a in row) for row in actors])):
        table[col] = pd.Series(values, dtype=object)
    return Dataset(ratings=ratings, items=table, name="synthetic-people", rating_scale=(1.0, 5.0))
