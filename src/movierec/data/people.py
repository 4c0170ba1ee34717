"""Who made a movie, as model input: the people vocabulary and the movie → people lists.

Torch-free. The item table of an IMDb-joined dataset (`movierec.data.load(..., imdb_dir=)`) or of
HetRec 2011 (`load("hetrec-ml-2k")`) has `director_ids` and `actor_ids` (tuples of person ids,
actors in billing order); without the ids, the `directors` / `actors` names are used.

`people_spec` learns, from an item table, which people become model inputs: every director and
the first `max_actors` billed actors of each movie, kept when they appear in at least
`min_movies` movies of the table (a person seen once links nothing to anything). Side data is not
a rating: the whole item table counts, so a movie nobody has rated yet still finds its people.
The spec is JSON-able and saved with the model, so a loaded model encodes exactly as before.

`people_lists` turns item-table rows into a CSR (indptr, person codes, roles): role 0 = director,
1 = actor. A person who both directs and acts is one person with two roles.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

import numpy as np
import pandas as pd

from movierec.errors import MovieRecError

__all__ = ["ROLES", "has_people", "people_lists", "people_spec", "person_names"]

#: (role name, id column, name column) in role-code order.
ROLES = (("director", "director_ids", "directors"), ("actor", "actor_ids", "actors"))


def _column(items: pd.DataFrame, role: int) -> str | None:
    """The column that lists the role's people: ids when present, else names; None without."""
    _, ids, names = ROLES[role]
    for col in (ids, names):
        if col in items.columns and items[col].map(_seq).map(len).sum() > 0:
            return col
    return None


def _seq(value: Any) -> tuple[str, ...]:
    """A cell as a tuple of non-empty strings (NaN/None → empty)."""
    if value is None or (isinstance(value, float) and value != value):
        return ()
    if isinstance(value, str):
        return (value,) if value else ()
    if isinstance(value, Iterable):
        return tuple(str(v) for v in value if v is not None and str(v))
    return ()


def has_people(items: pd.DataFrame | None) -> bool:
    """Whether `items` lists any director or actor."""
    return items is not None and any(_column(items, r) is not None for r in range(len(ROLES)))


def _people_of(items: pd.DataFrame, max_actors: int) -> list[list[tuple[str, int]]]:
    """Per row: [(person, role)] — every director, then the first `max_actors` actors."""
    out: list[list[tuple[str, int]]] = [[] for _ in range(len(items))]
    for role in range(len(ROLES)):
        col = _column(items, role)
        if col is None:
            continue
        limit = max_actors if ROLES[role][0] == "actor" else None
        for row, cell in enumerate(items[col].tolist()):
            out[row].extend((p, role) for p in _seq(cell)[:limit])
    return out


def people_spec(items: pd.DataFrame | None, *, max_actors: int = 3,
                min_movies: int = 2) -> dict[str, Any]:
    """The people vocabulary learned from the item table `items` (see the module docstring).

    Args:
        items: item table with director_ids/actor_ids (or directors/actors) columns.
        max_actors: top-billed actors kept per movie (≥ 0).
        min_movies: a person is kept when they are in at least this many movies (≥ 1).

    Returns:
        {"max_actors", "min_movies", "column": {"director": col, "actor": col}, "persons": [...]}:
        persons sorted, their position is their code.

    Raises:
        MovieRecError: the table lists no director or actor (ML-100K/ML-1M without IMDb: load
            with `imdb_dir=`, or use hetrec-ml-2k).
        ValueError: a bad `max_actors` or `min_movies`.
    """
    if max_actors < 0:
        raise ValueError(f"max_actors must be >= 0, got {max_actors}")
    if min_movies < 1:
        raise ValueError(f"min_movies must be >= 1, got {min_movies}")
    if items is None or not has_people(items):
        raise MovieRecError(
            "people=True / knowledge=True need directors or actors in the item table, and this "
            "dataset has none: load it with IMDb's files (imdb_dir=..., --imdb-dir) or use "
            "hetrec-ml-2k")
    movies = items.drop_duplicates("item_id") if "item_id" in items.columns else items
    counts: Counter[str] = Counter()
    for people in _people_of(movies, max_actors):
        counts.update({p for p, _ in people})
    persons = sorted(p for p, n in counts.items() if n >= min_movies)
    return {"max_actors": int(max_actors), "min_movies": int(min_movies),
            "column": {ROLES[r][0]: _column(movies, r) for r in range(len(ROLES))},
            "persons": persons}


def people_lists(items: pd.DataFrame | None, spec: dict[str, Any]
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(indptr int64 [n+1], person codes int64, roles int8) of each row of `items`.

    People outside the spec's vocabulary are left out; a row without known people has an
    empty list (a missing table gives every row none).
    """
    n = 0 if items is None else len(items)
    if items is None or n == 0:
        return np.zeros(n + 1, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int8)
    index = {p: c for c, p in enumerate(spec["persons"])}
    indptr = np.zeros(n + 1, np.int64)
    codes: list[int] = []
    roles: list[int] = []
    for row, people in enumerate(_people_of(items, int(spec["max_actors"]))):
        seen = set()
        for person, role in people:
            code = index.get(person)
            if code is not None and (code, role) not in seen:
                seen.add((code, role))
                codes.append(code)
                roles.append(role)
        indptr[row + 1] = len(codes)
    return indptr, np.asarray(codes, np.int64), np.asarray(roles, np.int8)


def person_names(items: pd.DataFrame | None, spec: dict[str, Any]) -> dict[str, str]:
    """Person id → name where the table has both (for explanations and graph node labels)."""
    out: dict[str, str] = {}
    if items is None:
        return out
    for _, ids, names in ROLES:
        if ids in items.columns and names in items.columns:
            for id_cell, name_cell in zip(items[ids].tolist(), items[names].tolist(),
                                          strict=True):
                out.update(zip(_seq(id_cell), _seq(name_cell), strict=False))
    keep = set(spec["persons"])
    return {p: n for p, n in out.items() if p in keep}
