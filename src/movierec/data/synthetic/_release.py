"""Release-size synthetic data in the official csv layouts (`movierec data synth`).

See `write_release_like`.
"""

from __future__ import annotations

import calendar
import dataclasses
import io
import os
import time
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, BinaryIO

import numpy as np
import pandas as pd

from movierec.random import derive_seed


# --- release-size folders in the csv layout (ml-20m and later) -----------------------------------
@dataclasses.dataclass(frozen=True)
class ReleaseShape:
    """Sizes of an official csv release: the defaults of `write_release_like`.

    Attributes:
        users: users, each with at least 20 ratings.
        items: movies with at least one rating.
        ratings: rating rows.
        movies: rows of movies.csv and links.csv (rated or not).
        max_movie_id: the largest movieId (ids are sparse, as the releases' are).
        tags: rows of tags.csv (the synthetic count comes out near this, not equal).
        end: UTC time of the last rating (ISO 8601); the first is 1995-01-09.
    """

    users: int
    items: int
    ratings: int
    movies: int
    max_movie_id: int
    tags: int
    end: str


RELEASE_SHAPES: Mapping[str, ReleaseShape] = MappingProxyType({
    "ml-20m": ReleaseShape(138_493, 26_744, 20_000_263, 27_278, 131_262, 465_564,
                           "2015-03-31T06:40:02"),
    "ml-25m": ReleaseShape(162_541, 59_047, 25_000_095, 62_423, 209_171, 1_093_360,
                           "2019-11-21T09:15:03"),
    "ml-32m": ReleaseShape(200_948, 84_432, 32_000_204, 87_585, 292_757, 2_000_072,
                           "2023-10-13T02:29:07"),
})
MIN_USER_RATINGS = 20
CSV_GENRES = (
    "Action", "Adventure", "Animation", "Children", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "IMAX", "Musical", "Mystery", "Romance", "Sci-Fi",
    "Thriller", "War", "Western",
)
#: Rough share of movies in each of CSV_GENRES, and with "(no genres listed)", in ML-25M.
_GENRE_SHARE = np.array([0.118, 0.066, 0.047, 0.047, 0.270, 0.085, 0.090, 0.410, 0.044, 0.006,
                         0.096, 0.003, 0.017, 0.047, 0.124, 0.058, 0.139, 0.030, 0.022])
_NO_GENRE_SHARE = 0.081
#: ML-25M's number of ratings of each value 0.5, 1.0, ..., 5.0: the target histogram.
_RATING_COUNTS = np.array([393_068, 776_815, 399_490, 1_640_868, 1_262_797, 4_896_928,
                           3_177_318, 6_639_798, 2_200_539, 3_612_474])
_RATING_TEXT = ("0.5", "1.0", "1.5", "2.0", "2.5", "3.0", "3.5", "4.0", "4.5", "5.0")
# Item popularity ~ (rank + offset * items) ** -exponent, tuned on ML-25M's sizes: item Gini 0.94
# (LensKit's data notes give 0.942) and 77k ratings of the most rated movie (81k in ML-25M).
_POP_EXPONENT, _POP_OFFSET = 2.15, 150 / 59_047
# User activity: 20 + lognormal(sigma=1.59), the fit of ML-25M's activity in LensKit's data notes;
# nobody rates more than 55 % of the movies (ML-25M's most active user: 32,202 of 59,047).
_ACTIVITY_SIGMA, _MAX_ACTIVITY_SHARE = 1.589, 0.55
# Relative number of users joining in each year from 1995 on: invented, uneven like a site's.
_JOIN_WEIGHTS = np.array([0.2, 6, 2.5, 1, 3.5, 9, 4, 3, 3, 3, 4.5, 3, 2.5, 2.5, 2, 2, 1.8, 1.6,
                          1.5, 1.3, 5, 7, 6, 5, 4.5, 4, 3.5, 3, 3])
_TAGGER_SHARE = 0.09  # about 9 % of ML-25M's users wrote a tag
_TAG_WORDS = (("dark", "funny", "slow", "quirky", "clever", "bleak", "tense", "touching",
               "stylish", "absurd", "gritty", "beautiful", "overrated", "confusing", "classic"),
              ("comedy", "ending", "plot", "soundtrack", "dialogue", "cinematography", "acting",
               "twist", "characters", "atmosphere", "pacing", "visuals", "story", "villain"))
_TAG_SPECIAL = ("funny, sort of", 'a "classic"', "très bon", "based on a book")


def _unix(iso: str) -> int:
    return calendar.timegm(time.strptime(iso, "%Y-%m-%dT%H:%M:%S"))


_T_START = _unix("1995-01-09T11:46:44")


@dataclasses.dataclass(frozen=True)
class SyntheticRelease:
    """What `write_release_like` wrote: the folder, its counts and the seed that rebuilds it."""

    path: Path
    users: int
    items: int
    ratings: int
    movies: int
    tags: int
    seed: int
    seconds: float


@dataclasses.dataclass(frozen=True)
class _World:
    """Everything drawn once for the whole release; blocks of users draw the rest."""

    act: np.ndarray  # ratings of each user (global user index)
    g_user: np.ndarray  # (user, item) pairs that make every item rated once, sorted by user
    g_item: np.ndarray
    weights: np.ndarray  # popularity weight of each rated item (popularity order)
    cum_w: np.ndarray
    movie_id: np.ndarray  # movieId of each rated item
    item_bias: np.ndarray
    released: np.ndarray  # unix time of Jan 1 of the item's year
    thresholds: np.ndarray  # z-score bounds between rating values
    heavy_min: int  # users with this many ratings are sampled exactly (see _pick_items)
    t_end: int
    tag_share: float


def check_release_size(users: int, items: int, ratings: int) -> None:
    """Raise ValueError naming the count when no release has these sizes.

    Every user rates at least 20 distinct movies and every movie is rated at least once, so
    `items >= 20` and `max(20 * users, items) <= ratings <= users * items`.
    """
    for name, value in (("users", users), ("items", items), ("ratings", ratings)):
        if not isinstance(value, int | np.integer) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if items < MIN_USER_RATINGS:
        raise ValueError(f"items must be >= {MIN_USER_RATINGS} (each user rates at least "
                         f"{MIN_USER_RATINGS} movies), got {items}")
    low, high = max(MIN_USER_RATINGS * users, items), users * items
    if not low <= ratings <= high:
        raise ValueError(f"ratings must be in {low:,}..{high:,} for {users:,} users and "
                         f"{items:,} items (each user rates 20 or more distinct movies, each "
                         f"movie is rated), got {ratings:,}")


def _activity(gen: np.random.Generator, users: int, items: int, ratings: int) -> np.ndarray:
    """Ratings per user: 20 + a lognormal share of the rest, capped, summing to `ratings`."""
    cap = min(items, max(int(_MAX_ACTIVITY_SHARE * items), -(-ratings // users)))
    weight = gen.lognormal(0.0, _ACTIVITY_SIGMA, users)
    act = np.full(users, MIN_USER_RATINGS, dtype=np.int64)
    left = ratings - int(act.sum())
    while left > 0:  # each round fills the rest or caps at least one more user
        free = act < cap
        share = np.where(free, weight, 0.0)
        share = share / share.sum() * left
        add = np.floor(share).astype(np.int64)
        rest = left - int(add.sum())  # < number of free users: largest remainders get one more
        add[np.argsort(-(share - add), kind="stable")[:rest]] += 1
        act = np.minimum(act + add, cap)
        left = ratings - int(act.sum())
    return act


def _world(gen: np.random.Generator, shape: ReleaseShape, users: int, items: int,
           ratings: int, movies: int) -> tuple[_World, pd.DataFrame]:
    """Draw the global parts: activity, catalogue (the movies table), popularity, biases."""
    t_end = _unix(shape.end)
    act = _activity(gen, users, items, ratings)
    max_id = max(movies, round(movies * shape.max_movie_id / shape.movies))
    ids = np.sort(gen.choice(max_id, size=movies, replace=False) + 1).astype(np.int64)
    added = np.arange(movies) / movies  # movies are added over time, in id order
    # Later additions are less popular, and the latest ones have no rating yet.
    order = np.argsort(added + 0.35 * gen.standard_normal(movies), kind="stable")
    end_year = time.gmtime(t_end).tm_year
    year_added = 1995 + (end_year - 1995) * added
    age = np.where(gen.random(movies) < 0.6, gen.exponential(3, movies),
                   gen.exponential(25, movies))
    year = np.clip(np.floor(year_added - age), 1874, end_year).astype(np.int64)
    has_year = gen.random(movies) >= 0.005
    table = _movie_table(gen, ids, year, has_year)
    rated = order[:items]
    weights = (np.arange(1, items + 1) + _POP_OFFSET * items) ** -_POP_EXPONENT
    log_w = np.log(weights)
    item_bias = 0.35 * gen.standard_normal(items) + 0.25 * (log_w - log_w.mean()) / log_w.std()
    released = np.array([calendar.timegm((int(y), 1, 1, 0, 0, 0)) for y in range(1874,
                                                                                  end_year + 1)])
    released = np.where(has_year[rated], released[year[rated] - 1874], _T_START)
    # Every item rated once: item k takes rating slot k * ratings / items of the users' slots.
    slots = np.arange(items, dtype=np.int64) * ratings // items
    g_user = np.searchsorted(np.cumsum(act), slots, side="right")
    g_item = gen.permutation(items)
    world = _World(act=act, g_user=g_user, g_item=g_item, weights=weights,
                   cum_w=np.cumsum(weights), movie_id=ids[rated], item_bias=item_bias,
                   released=released, thresholds=np.zeros(9), heavy_min=max(2, items // 40),
                   t_end=t_end, tag_share=shape.tags / shape.ratings)
    # A pilot sample of users, drawn as the blocks draw them, fixes the rating thresholds so
    # that the values follow ML-25M's histogram.
    pilot = act[gen.choice(users, size=min(users, 2048), replace=False)]
    none = np.zeros(0, dtype=np.int64)
    p_users, p_items = _pick_items(gen, world, pilot, none, none)
    # One user bias per rating, not per pilot user: over all users the mix is the same, but a
    # few very active pilot users would otherwise tilt the histogram.
    z = gen.normal(0.0, 0.5, len(p_items)) + item_bias[p_items] + gen.normal(0.0, 0.8, len(p_items))
    shares = np.cumsum(_RATING_COUNTS)[:-1] / _RATING_COUNTS.sum()
    return dataclasses.replace(world, thresholds=np.quantile(z, shares)), table


def _movie_table(gen: np.random.Generator, ids: np.ndarray, year: np.ndarray,
                 has_year: np.ndarray) -> pd.DataFrame:
    """movieId, title "Synthetic Film 12 (1995)" (some with a comma or an accent), genres."""
    n = len(ids)
    names = np.where(ids % 13 == 0, np.char.add(np.char.add("Synthetic Film ", ids.astype(str)),
                                                ", The"),
                     np.where(ids % 101 == 0, np.char.add("Film synthétique ", ids.astype(str)),
                              np.char.add("Synthetic Film ", ids.astype(str))))
    titles = np.where(has_year, np.char.add(np.char.add(np.char.add(names, " ("),
                                                        year.astype(str)), ")"), names)
    flags = gen.random((n, len(CSV_GENRES))) < _GENRE_SHARE / (1 - _NO_GENRE_SHARE)
    lone = ~flags.any(axis=1)  # a movie that drew no genre gets one, by share
    pick = np.searchsorted(np.cumsum(_GENRE_SHARE), gen.random(n) * _GENRE_SHARE.sum(),
                           side="right")
    flags[lone, pick[lone]] = True
    flags[gen.random(n) < _NO_GENRE_SHARE] = False
    masks = flags @ (1 << np.arange(len(CSV_GENRES), dtype=np.int64))
    uniq, inverse = np.unique(masks, return_inverse=True)
    text = np.array(["|".join(g for j, g in enumerate(CSV_GENRES) if m >> j & 1)
                     or "(no genres listed)" for m in uniq.tolist()], dtype=object)
    return pd.DataFrame({"movieId": ids, "title": titles.astype(object),
                         "genres": text[inverse]})


def _pick_items(gen: np.random.Generator, world: _World, act: np.ndarray, g_user: np.ndarray,
                g_item: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(user, item) pairs: `act[u]` distinct items for each user u of a block, sorted by user.

    Each user's items are a draw without replacement, with probability by popularity, that
    starts with the user's share of the every-item-once pairs. Light users draw with replacement
    and keep each item's first draw (the same law), topping up whoever still lacks items; heavy
    users (a sizable part of the catalogue, where that would take many rounds) draw exactly by
    exponential keys (Efraimidis-Spirakis) over the whole catalogue.
    """
    n_users, n_items = len(act), len(world.weights)
    heavy = act >= world.heavy_min
    light = ~heavy[g_user]
    users, items = g_user[light], g_item[light]
    for extra in (1.3, 2.0, 4.0, 8.0, None):  # draws per missing item, growing each round
        have = np.bincount(users, minlength=n_users)
        todo = np.flatnonzero(~heavy & (have < act))
        if not len(todo) or extra is None:
            break
        draws = np.ceil((act[todo] - have[todo]) * extra).astype(np.int64) + 4
        picked = np.searchsorted(world.cum_w, gen.random(int(draws.sum())) * world.cum_w[-1],
                                 side="right")
        users = np.concatenate([users, np.repeat(todo, draws)])
        items = np.concatenate([items, picked])
        first = np.sort(np.unique(users * n_items + items, return_index=True)[1])
        users, items = users[first], items[first]
    heavy[todo] = True  # still short after the last round: draw them exactly instead
    keep = ~heavy[users]
    order = np.argsort(users[keep], kind="stable")
    users, items = users[keep][order], items[keep][order]
    rank = np.arange(len(users)) - np.searchsorted(users, users)
    keep = rank < act[users]
    parts_u, parts_i = [users[keep]], [items[keep]]
    for u in np.flatnonzero(heavy).tolist():  # few users; each costs O(n_items)
        keys = gen.exponential(size=n_items) / world.weights
        keys[g_item[g_user == u]] = -1.0  # the every-item-once pairs come first
        parts_i.append(np.argpartition(keys, act[u] - 1)[: act[u]])
        parts_u.append(np.full(act[u], u))
    users, items = np.concatenate(parts_u), np.concatenate(parts_i)
    order = np.argsort(users, kind="stable")
    return users[order], items[order]


def _block(world: _World, seed: int, block: int, first_user: int, n_users: int
           ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Ratings and tags of users first_user .. first_user + n_users - 1 (0-based).

    Drawn from their own random stream, so that the output does not depend on how blocks are
    grouped.
    """
    gen = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(1, block)))
    act = world.act[first_user:first_user + n_users]
    lo, hi = np.searchsorted(world.g_user, [first_user, first_user + n_users])
    users, items = _pick_items(gen, world, act, world.g_user[lo:hi] - first_user,
                               world.g_item[lo:hi])
    n = len(users)
    # Users join in some year and rate over a span: minutes for most, years for a few.
    years = np.arange(len(_JOIN_WEIGHTS)) + 1995
    weights = np.where(years <= time.gmtime(world.t_end).tm_year, _JOIN_WEIGHTS, 0.0)
    year = gen.choice(years, size=n_users, p=weights / weights.sum())
    start = np.array([calendar.timegm((int(y), 1, 1, 0, 0, 0)) for y in years])[year - 1995]
    start = np.clip(start + gen.random(n_users) * 365.25 * 86_400, _T_START, world.t_end - 1)
    span = gen.lognormal(np.log(6 * 3600), 2.6, n_users) * np.sqrt(act / MIN_USER_RATINGS)
    span = np.minimum(span, world.t_end - start)
    stamp = start[users] + gen.random(n) * span[users]
    released = world.released[items]
    early = stamp < released  # nobody rates a movie before its year
    stamp[early] = released[early] + gen.random(int(early.sum())) * (world.t_end - released[early])
    z = gen.normal(0.0, 0.5, n_users)[users] + world.item_bias[items] + gen.normal(0.0, 0.8, n)
    movie = world.movie_id[items]
    order = np.lexsort((movie, users))  # as the releases: by userId, then movieId
    ratings = {"userId": (users[order] + first_user + 1).astype(np.int32),
               "movieId": movie[order].astype(np.int32),
               "rating": np.searchsorted(world.thresholds, z[order]).astype(np.int8),
               "timestamp": np.floor(stamp[order]).astype(np.int64)}
    return ratings, _block_tags(gen, world, ratings, n_users, first_user)


def _block_tags(gen: np.random.Generator, world: _World, ratings: dict[str, np.ndarray],
                n_users: int, first_user: int) -> dict[str, np.ndarray]:
    """Tags: about 9 % of users tag some of the movies they rated, one to a few tags each."""
    vocab = _tag_vocabulary()
    rate = np.where(gen.random(n_users) < _TAGGER_SHARE, gen.lognormal(0.0, 1.0, n_users), 0.0)
    # Mean tags per rating: share x E[lognormal] x 5/3 tags per tagged movie (x 1.15 for the cap).
    rate = np.minimum(1.0, rate * 1.15 * world.tag_share / (_TAGGER_SHARE * np.exp(0.5) * 5 / 3))
    local = ratings["userId"] - first_user - 1
    rows = np.flatnonzero(gen.random(len(local)) < rate[local])
    rows = np.repeat(rows, gen.geometric(0.6, len(rows)))
    tag_p = (np.arange(len(vocab)) + 3.0) ** -1.2
    tag = np.searchsorted(np.cumsum(tag_p), gen.random(len(rows)) * tag_p.sum(), side="right")
    key = rows.astype(np.int64) * len(vocab) + tag
    key = np.unique(key)  # a (user, movie, tag) once; sorted by row, as the releases
    rows, tag = key // len(vocab), key % len(vocab)
    return {"userId": ratings["userId"][rows], "movieId": ratings["movieId"][rows],
            "tag": tag, "timestamp": ratings["timestamp"][rows] + gen.integers(0, 600, len(rows))}


def _tag_vocabulary() -> list[str]:
    a, b = _TAG_WORDS
    return [*_TAG_SPECIAL[:2], *a, *b, *(f"{x} {y}" for x in a for y in b), *_TAG_SPECIAL[2:]]


def _csv_lines(columns: list[Any]) -> bytes:
    r"""CSV lines ("\n"-ended) of equal-length columns; text is quoted only where needed."""
    import pyarrow as pa
    import pyarrow.compute as pc

    cells = []
    for col in columns:
        arr = pa.array(col)
        if pa.types.is_string(arr.type):
            quoted = pc.binary_join_element_wise('"', pc.replace_substring(arr, '"', '""'), '"',
                                                 "")
            arr = pc.if_else(pc.match_substring_regex(arr, '[,"\\r\\n]'), quoted, arr)
        cells.append(pc.fill_null(arr.cast(pa.string()), ""))
    last = pc.binary_join_element_wise(cells[-1], "", "\n")
    lines = pc.binary_join_element_wise(*cells[:-1], last, ",").cast(pa.large_string())
    offsets = np.frombuffer(lines.buffers()[1], np.int64)[lines.offset:lines.offset + len(lines)
                                                          + 1]
    return bytes(memoryview(lines.buffers()[2])[offsets[0]:offsets[-1]]) if len(lines) else b""


def _write_ratings(fh: BinaryIO, ratings: dict[str, np.ndarray]) -> None:
    import pyarrow as pa
    import pyarrow.csv as pacsv

    table = pa.table({"userId": ratings["userId"], "movieId": ratings["movieId"],
                      "rating": pa.array(_RATING_TEXT).take(ratings["rating"]),
                      "timestamp": ratings["timestamp"]})
    buf = io.BytesIO()  # quoting "none": no field here needs quotes, so none gets them
    pacsv.write_csv(table, buf, pacsv.WriteOptions(include_header=False, quoting_style="none",
                                                   batch_size=1 << 16))
    fh.write(buf.getbuffer())


def _write_side_tables(folder: Path, gen: np.random.Generator, movies: pd.DataFrame) -> None:
    """movies.csv and links.csv (imdbId zero-padded to 7 digits, a few tmdbId empty)."""
    header = b"movieId,title,genres\n"
    (folder / "movies.csv").write_bytes(header + _csv_lines([movies["movieId"].to_numpy(),
                                                             movies["title"].tolist(),
                                                             movies["genres"].tolist()]))
    n = len(movies)
    imdb = np.char.zfill((gen.choice(11_000_000, size=n, replace=False) + 1).astype(str), 7)
    tmdb = (gen.choice(700_000, size=n, replace=False) + 1).astype(object)
    tmdb[gen.random(n) < 0.002] = None
    (folder / "links.csv").write_bytes(b"movieId,imdbId,tmdbId\n" + _csv_lines(
        [movies["movieId"].to_numpy(), imdb.tolist(), tmdb.tolist()]))


def write_release_like(
    out: str | os.PathLike[str],
    *,
    layout: str = "ml-25m",
    users: int | None = None,
    items: int | None = None,
    ratings: int | None = None,
    rng: int | np.random.Generator | None = 0,
    overwrite: bool = False,
    progress: bool = True,
    block_users: int = 1024,
    chunk_users: int = 16_384,
) -> SyntheticRelease:
    r"""Write a synthetic release of a real one's size in the csv layout; return what was written.

    The files: ratings, movies, tags, links .csv and a README.txt that says it is synthetic.

    Users are 1..users, each with at least 20 distinct ratings; every one of `items` movies is
    rated at least once; movies.csv also lists unrated movies, in the release's proportion.
    Movie ids are sparse; titles read "Synthetic Film 12 (1995)"; genres come from the
    releases' 20 labels. Item popularity follows a power law and user activity a shifted
    lognormal, fitted to ML-25M; rating values follow ML-25M's histogram, from user and item
    biases plus noise; timestamps run from 1995-01-09 to the release's end. Files are sorted by
    userId, then movieId, as GroupLens sorts them (lines end in "\n").

    The folder is written under a temporary name beside `out` and renamed when complete, so an
    interrupted run never leaves a folder that looks complete. Memory stays bounded (one chunk
    of users at a time): under 0.5 GB for ML-25M's size.

    Args:
        out: the folder to create.
        layout: which release's sizes are the defaults: "ml-20m", "ml-25m" or "ml-32m".
        users: number of users (default: the release's).
        items: number of rated movies (default: the release's).
        ratings: number of ratings, max(20 * users, items) to users * items (default: the
            release's).
        rng: seed (the same seed and sizes write the same bytes) or generator.
        overwrite: replace `out` when it exists and is not empty.
        progress: show a progress bar over users (on terminals).
        block_users: users per random stream; part of the seed (another value, other data).
        chunk_users: users generated and written at a time (rounded up to whole blocks); any
            value writes the same bytes, larger ones use more memory.

    Raises:
        ValueError: unknown layout or impossible sizes (the message names the count).
        FileExistsError: `out` exists, is not empty and `overwrite` is False.
    """
    from tqdm.auto import tqdm

    from movierec import __version__
    from movierec.io import atomic_directory

    if layout not in RELEASE_SHAPES:
        raise ValueError(f"layout must be one of {list(RELEASE_SHAPES)}, not {layout!r}")
    shape = RELEASE_SHAPES[layout]
    users, items, ratings = (shape.users if users is None else users,
                             shape.items if items is None else items,
                             shape.ratings if ratings is None else ratings)
    check_release_size(users, items, ratings)
    for name, value in (("block_users", block_users), ("chunk_users", chunk_users)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
        raise FileExistsError(f"{out} exists and is not empty; choose another folder or "
                              "overwrite it (--force)")
    t0 = time.perf_counter()
    seed = int(rng) if isinstance(rng, int | np.integer) else derive_seed(rng)
    if seed < 0:
        raise ValueError(f"the seed must be a non-negative integer, got {seed}")
    gen = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(0,)))
    movies = max(items, round(items * shape.movies / shape.items))
    world, movie_table = _world(gen, shape, users, items, ratings, movies)
    per_chunk = -(-chunk_users // block_users)
    n_blocks = -(-users // block_users)
    n_ratings = n_tags = 0
    with atomic_directory(out) as tmp:
        _write_side_tables(tmp, gen, movie_table)
        with (open(tmp / "ratings.csv", "wb") as rfh, open(tmp / "tags.csv", "wb") as tfh,
              tqdm(total=users, unit="user", desc=f"synth {layout}", unit_scale=True,
                   disable=None if progress else True) as bar):
            rfh.write(b"userId,movieId,rating,timestamp\n")
            tfh.write(b"userId,movieId,tag,timestamp\n")
            vocab = np.array(_tag_vocabulary(), dtype=object)
            for first_block in range(0, n_blocks, per_chunk):
                parts = [_block(world, seed, b, b * block_users,
                                min(block_users, users - b * block_users))
                         for b in range(first_block, min(n_blocks, first_block + per_chunk))]
                chunk = {k: np.concatenate([p[0][k] for p in parts]) for k in parts[0][0]}
                tags = {k: np.concatenate([p[1][k] for p in parts]) for k in parts[0][1]}
                _write_ratings(rfh, chunk)
                tfh.write(_csv_lines([tags["userId"], tags["movieId"],
                                      vocab[tags["tag"]].tolist(), tags["timestamp"]]))
                n_ratings += len(chunk["userId"])
                n_tags += len(tags["userId"])
                bar.update(min(users, (first_block + per_chunk) * block_users)
                           - first_block * block_users)
        (tmp / "README.txt").write_text(_readme(layout, seed, users, items, n_ratings, movies,
                                                n_tags, block_users, __version__),
                                        encoding="utf-8")
    return SyntheticRelease(out, users, items, n_ratings, movies, n_tags, seed,
                            time.perf_counter() - t0)


def _readme(layout: str, seed: int, users: int, items: int, ratings: int, movies: int,
            tags: int, block_users: int, version: str) -> str:
    return f"""SYNTHETIC DATA - NOT MOVIELENS
==============================

This folder was generated by movierec {version} (movierec.data.synthetic.write_release_like).
It imitates the file layout and the size of the GroupLens {layout} release, but every rating,
title, tag and link in it is random. Do not report results on it as MovieLens results.

Rebuild it with:
    movierec data synth --layout {layout} --users {users} --items {items} --ratings {ratings} \\
        --seed {seed} --out DIR
(block_users={block_users})

Counts: {users:,} users, {items:,} rated movies ({movies:,} in movies.csv), {ratings:,} ratings,
{tags:,} tags.

Files (UTF-8, "\\n" line ends), sorted by userId then movieId:
    ratings.csv  userId,movieId,rating,timestamp  (half stars 0.5-5.0, unix seconds)
    movies.csv   movieId,title,genres              (genres "|"-separated)
    tags.csv     userId,movieId,tag,timestamp
    links.csv    movieId,imdbId,tmdbId             (random ids; they point at nothing)
"""
