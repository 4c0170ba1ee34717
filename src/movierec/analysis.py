"""Exploration statistics and beyond-accuracy analyses of benchmark runs, as DataFrames.

Two halves, each a set of stateless functions (the figures in `movierec.plots` draw them):

* Exploration of a Dataset: rating distribution, ratings over time, genres by movies and by
  ratings, the long tail of item popularity, degree distributions, sparsity, a sampled
  user-movie bipartite graph, demographics and release years.
* Analysis of a benchmark folder (`results.json` + `lists/<model>-seed<seed>.parquet`): metrics in
  long form, training histories, genre distributions of recommendations against the catalog and
  the users' histories, history-vs-recommendation genre overlap, popularity bias (head/tail) and a
  user card with "because you liked" explanations.

The saved lists hold only item ids, so analyses that need the users' histories take the training
part of the split, which `recreate_split` rebuilds from the split record in results.json.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp

from movierec import metrics as M
from movierec.benchmark import BEYOND, RANKING, BenchmarkResult
from movierec.data.dataset import Dataset
from movierec.errors import ArtifactError, SplitError
from movierec.random import RNGLike, as_generator
from movierec.split import PREDEFINED_FOLDS, Split

logger = logging.getLogger(__name__)

#: Age groups of the ML-1M README; ML-100K's exact ages fall into the same bins.
AGE_BINS = (0, 18, 25, 35, 45, 50, 56, np.inf)
AGE_LABELS = ("under 18", "18-24", "25-34", "35-44", "45-49", "50-55", "56+")
#: Metric families of the comparison charts.
FAMILIES = {"rating": ("rmse", "mae"), "ranking": RANKING, "beyond": (*BEYOND, "gini")}


# --- benchmark folders -------------------------------------------------------------------------
def load_benchmark(folder: str | Path) -> BenchmarkResult:
    """Read a folder written by `BenchmarkResult.save` (results.json and lists/*.parquet).

    Raises:
        ArtifactError: results.json is missing or is not a benchmark result.
    """
    folder = Path(folder)
    path = folder / "results.json"
    if not path.is_file():
        raise ArtifactError(f"{path} not found: expected a folder written by `movierec "
                            "benchmark --out`")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        result = BenchmarkResult(dataset=data["dataset"], split=data["split"],
                                 protocol=data["protocol"], runs=data["runs"])
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise ArtifactError(f"{path} is not a benchmark result ({exc})") from None
    for file in sorted((folder / "lists").glob("*.parquet")):
        result.lists[file.stem] = pd.read_parquet(file)
    return result


def default_k(result: BenchmarkResult) -> int:
    """The list length the tables show: 10 when it was evaluated, else the largest k."""
    return M.default_k(result.protocol.get("k", [M.DEFAULT_K]))


def model_lists(result: BenchmarkResult, k: int | None = None, *, first_seed: bool = False
                ) -> dict[str, pd.DataFrame]:
    """Top-k lists per model: the runs of all seeds pooled (with a `seed` column), rank <= k.

    Args:
        result: a benchmark result with lists (see `load_benchmark`).
        k: list length (default `default_k(result)`).
        first_seed: keep only the first seed's lists of each model (for per-user views).
    """
    k = default_k(result) if k is None else k
    out: dict[str, list[pd.DataFrame]] = {}
    for run in result.runs:
        key = f"{run['model']}-seed{run['seed']}"
        if key not in result.lists or (first_seed and run["model"] in out):
            continue
        lists = result.lists[key]
        out.setdefault(run["model"], []).append(lists[lists["rank"] <= k].assign(seed=run["seed"]))
    return {m: pd.concat(parts, ignore_index=True) for m, parts in out.items()}


def recreate_split(result: BenchmarkResult, ds: Dataset, *, data_dir: str | Path | None = None
                   ) -> Split:
    """Rebuild the benchmark's split of `ds` from the split record in results.json.

    The splitters are deterministic for a recorded seed, so the same kind, fractions and seed
    on the same (unfiltered) dataset give the same parts. The rebuilt split is checked against
    the recorded part sizes and unseen-user/item counts.

    Raises:
        SplitError: the record cannot be replayed (files split) or the sizes differ (the data
            changed). Filters recorded with the split (`filters`) are applied first.
    """
    from movierec.pipeline import SplitSpec

    rec = result.split
    kind = rec.get("name")
    spec = SplitSpec.from_record(rec, dataset=ds.name)
    if spec.kind in PREDEFINED_FOLDS:
        from movierec.data.movielens import resolve
        from movierec.data.releases import get_release

        spec = dataclasses.replace(spec, options={"data_dir": resolve(
            get_release(ds.name), data_dir=data_dir, download=False)})
    split = spec.build(ds=ds)
    got = split.report  # part sizes and unseen counts: a fingerprint of the recorded split
    diff = {key: (rec.get(key), value) for key, value in got.items() if rec.get(key) != value}
    if diff:
        raise SplitError(f"re-created {kind!r} split of {ds.name} differs from the recorded one "
                         f"(recorded, re-created): {diff}; was the dataset filtered?")
    return split


# --- exploration -------------------------------------------------------------------------------
def rating_distribution(ds: Dataset) -> pd.DataFrame:
    """Number and share of ratings per rating value: [rating, ratings, share]."""
    counts = ds.ratings["rating"].value_counts().sort_index()
    return pd.DataFrame({"rating": counts.index.to_numpy(np.float64),
                         "ratings": counts.to_numpy(np.int64),
                         "share": counts.to_numpy() / max(ds.n_ratings, 1)})


def ratings_over_time(ds: Dataset, freq: str | None = None) -> pd.DataFrame:
    """Ratings and active users per period: [period, ratings, users] (empty without timestamps).

    Args:
        ds: the dataset.
        freq: pandas period start alias ("W", "MS", "QS", "YS"); default weekly for data
            spanning under two years, else monthly.
    """
    ts = ds.ratings["timestamp"].to_numpy()
    if not len(ts) or ts.max() <= 0:
        return pd.DataFrame({"period": pd.DatetimeIndex([]), "ratings": [], "users": []})
    when = pd.to_datetime(ts, unit="s")
    if freq is None:
        freq = "W" if (when.max() - when.min()) < pd.Timedelta(days=730) else "MS"
    frame = pd.DataFrame({"user_id": ds.ratings["user_id"].to_numpy()}, index=when)
    grouped = frame.resample(freq)["user_id"]
    out = pd.DataFrame({"ratings": grouped.size(), "users": grouped.nunique()})
    return out.rename_axis("period").reset_index()


def genre_popularity(ds: Dataset, top: int | None = 15) -> pd.DataFrame:
    """Movies and ratings per genre: [genre, movies, ratings, rating_share], most rated first.

    A movie with several genres counts in each; `movies` counts the item table's movies,
    `ratings` the ratings of those movies, `rating_share` their share of all ratings.
    """
    if ds.items is None or not ds.genres:
        return pd.DataFrame({"genre": [], "movies": [], "ratings": [], "rating_share": []})
    per_item = ds.ratings["item_id"].value_counts()
    exploded = ds.items[["item_id", "genres"]].explode("genres").dropna(subset=["genres"])
    exploded = exploded.assign(ratings=exploded["item_id"].map(per_item).fillna(0).astype(int))
    out = exploded.groupby("genres").agg(movies=("item_id", "size"), ratings=("ratings", "sum"))
    out = out.rename_axis("genre").reset_index()
    out["rating_share"] = out["ratings"] / max(ds.n_ratings, 1)
    out = out.sort_values(["ratings", "movies"], ascending=False, kind="stable")
    return (out if top is None else out.head(top)).reset_index(drop=True)


def item_popularity(ds: Dataset, head_share: float = 0.2) -> pd.DataFrame:
    """Items from most to least rated: [item_id, ratings, rank, cumulative_share, head].

    `cumulative_share` is the share of all ratings held by the items up to this rank; `head`
    marks the most popular items that together make up `head_share` of the ratings.
    """
    counts = ds.ratings["item_id"].value_counts(sort=False)
    order = np.lexsort((counts.index.to_numpy(), -counts.to_numpy()))
    ratings = counts.to_numpy(np.int64)[order]
    cum = np.cumsum(ratings) / max(ratings.sum(), 1)
    before = cum - ratings / max(ratings.sum(), 1)  # share held before this item
    return pd.DataFrame({"item_id": counts.index.to_numpy(np.int64)[order], "ratings": ratings,
                         "rank": np.arange(1, len(ratings) + 1), "cumulative_share": cum,
                         "head": before < head_share})


def degree_distribution(ds: Dataset, side: Literal["user", "item"]) -> pd.DataFrame:
    """How many users (or items) have each number of ratings: [degree, count]."""
    if side not in ("user", "item"):
        raise ValueError(f"side must be 'user' or 'item', not {side!r}")
    degrees = ds.ratings[f"{side}_id"].value_counts().to_numpy()
    values, counts = np.unique(degrees, return_counts=True)
    return pd.DataFrame({"degree": values.astype(np.int64), "count": counts.astype(np.int64)})


def sparsity(ds: Dataset) -> pd.DataFrame:
    """One row: users, items, ratings, possible (users x items), density and sparsity."""
    return pd.DataFrame([{"users": ds.n_users, "items": ds.n_items, "ratings": ds.n_ratings,
                          "possible": ds.n_users * ds.n_items, "density": ds.density,
                          "sparsity": 1.0 - ds.density}])


def bipartite_sample(ds: Dataset, n_users: int = 20, n_items: int = 20, *, rng: RNGLike = 0
                     ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A sampled user-movie subgraph: `n_users` random users and `n_items` of the movies they rated.

    Movies are drawn among the sample's movies with probability proportional to how many sampled
    users rated them, so the drawing shows shared movies and some of the tail rather than a fan
    of one-off edges. Node order is a barycentre ordering (two sweeps) that keeps edges short.

    Args:
        ds: the dataset.
        n_users: users to sample (at most all users). Default 20.
        n_items: movies to keep (at most those the sample rated). Default 20.
        rng: seed or Generator of the sample. Default 0.

    Returns:
        (nodes, edges): nodes [kind ("user"/"movie"), id, label, degree (ratings in the whole
        dataset), order (0..n-1 within its kind)]; edges [user_id, item_id, rating].
    """
    r = ds.ratings
    gen = as_generator(rng)
    users = gen.choice(ds.user_vocab.index, size=min(n_users, ds.n_users), replace=False)
    sub = r[np.isin(r["user_id"].to_numpy(), users)]
    overall = r["item_id"].value_counts()
    in_sample = sub["item_id"].value_counts()
    weights = in_sample.to_numpy(np.float64)
    items = gen.choice(in_sample.index.to_numpy(), size=min(n_items, len(in_sample)),
                       replace=False, p=weights / weights.sum())
    edges = sub.loc[np.isin(sub["item_id"].to_numpy(), items), ["user_id", "item_id", "rating"]]
    edges = edges.reset_index(drop=True)
    user_deg = r["user_id"].value_counts()
    u_pos = pd.Series(np.argsort(np.argsort(-user_deg.reindex(users).to_numpy(), kind="stable")),
                      index=users, dtype=np.float64)
    i_pos = pd.Series(np.arange(len(items), dtype=np.float64), index=items)
    for _ in range(2):  # barycentre sweeps: each side ordered by the mean place of its neighbours
        i_pos = _reorder(edges.assign(p=edges["user_id"].map(u_pos))
                         .groupby("item_id")["p"].mean(), i_pos)
        u_pos = _reorder(edges.assign(p=edges["item_id"].map(i_pos))
                         .groupby("user_id")["p"].mean(), u_pos)
    titles = _titles(ds, items)
    nodes = pd.concat([
        pd.DataFrame({"kind": "user", "id": users, "label": [f"user {u}" for u in users],
                      "degree": user_deg.reindex(users).to_numpy(), "order": u_pos[users]}),
        pd.DataFrame({"kind": "movie", "id": items, "label": titles,
                      "degree": overall.reindex(items).to_numpy(), "order": i_pos[items]}),
    ], ignore_index=True)
    nodes["order"] = nodes["order"].astype(np.int64)
    return nodes, edges


def _reorder(barycentre: pd.Series, current: pd.Series) -> pd.Series:
    """Ranks 0..n-1 of nodes by barycentre (nodes without edges keep their relative place)."""
    key = barycentre.reindex(current.index).fillna(current)
    return pd.Series(np.argsort(np.argsort(key.to_numpy(), kind="stable")).astype(np.float64),
                     index=current.index)


def user_attribute(ds: Dataset, attribute: Literal["age", "gender", "occupation"]
                   ) -> pd.DataFrame:
    """Users per value of a users-table attribute: [value, users, share].

    Ages are grouped as in the ML-1M README (under 18, 18-24, ..., 56+), in age order; genders
    and occupations are listed most frequent first. Only users with ratings are counted.

    Raises:
        ValueError: the dataset has no users table or no such column.
    """
    if ds.users is None or attribute not in ds.users:
        raise ValueError(f"{ds.name} has no users table with a {attribute!r} column")
    users = ds.users[np.isin(ds.users["user_id"].to_numpy(), ds.user_vocab.index)]
    values = users[attribute]
    if attribute == "age":
        groups = pd.cut(values.astype(float), AGE_BINS, right=False, labels=list(AGE_LABELS))
        counts = groups.value_counts().reindex(list(AGE_LABELS), fill_value=0)
    else:
        counts = values.astype(str).value_counts()
    return pd.DataFrame({"value": counts.index.astype(str), "users": counts.to_numpy(np.int64),
                         "share": counts.to_numpy() / max(len(users), 1)})


def release_years(ds: Dataset) -> pd.DataFrame:
    """Movies and ratings per release year: [year, movies, ratings] (rated movies only)."""
    if ds.items is None or "year" not in ds.items:
        return pd.DataFrame({"year": [], "movies": [], "ratings": []})
    per_item = ds.ratings["item_id"].value_counts()
    items = ds.items[ds.items["item_id"].isin(per_item.index)].dropna(subset=["year"])
    items = items.assign(ratings=items["item_id"].map(per_item), year=items["year"].astype(int))
    out = items.groupby("year").agg(movies=("item_id", "size"), ratings=("ratings", "sum"))
    return out.reset_index()


# --- results -----------------------------------------------------------------------------------
def metric_frame(result: BenchmarkResult, k: int | None = None) -> pd.DataFrame:
    """Every metric of every model in long form, over seeds.

    Returns:
        [model, metric, family ("rating"/"ranking"/"beyond"), mean, std (NaN with one seed),
        seeds]; ranking and beyond-accuracy metrics at list length `k` (default 10 or the
        largest evaluated k), models in run order.
    """
    k = default_k(result) if k is None else k
    frame = result.frame()
    family = {name: fam for fam, names in FAMILIES.items() for name in names}
    metrics = [c for c in frame.columns if c in ("rmse", "mae")
               or (c.endswith(f"@{k}") and c.split("@")[0] in family)]
    long = frame.melt(id_vars=["model", "seed"], value_vars=metrics, var_name="metric")
    long = long.dropna(subset=["value"])
    out = long.groupby(["model", "metric"], sort=False)["value"].agg(["mean", "std", "count"])
    out = out.rename(columns={"count": "seeds"}).reset_index()
    out.insert(2, "family", out["metric"].str.split("@").str[0].map(family))
    return out


def training_history(result: BenchmarkResult) -> pd.DataFrame:
    """Per-epoch records of the neural runs: [model, seed, epoch, train_loss, valid_metric, metric].

    Empty when no run kept a history (classic models have none).
    """
    rows = [{"model": run["model"], "seed": run["seed"], **epoch}
            for run in result.runs for epoch in run.get("history") or []]
    cols = ["model", "seed", "epoch", "train_loss", "valid_metric", "metric"]
    frame = pd.DataFrame(rows)
    for col in cols:
        if col not in frame:
            frame[col] = pd.Series(dtype=object if col == "metric" else np.float64)
    frame["valid_metric"] = pd.to_numeric(frame["valid_metric"], errors="coerce")
    return frame[cols]


def _genre_matrix(train: Dataset) -> tuple[list[str], sp.csr_matrix]:
    """(genres, item x genre binary CSR in `train`'s item codes)."""
    genres = train.genres
    return genres, train.genre_matrix(train.item_vocab.index, genres).tocsr()


def _item_counts(train: Dataset, item_ids: np.ndarray) -> np.ndarray:
    """How often each training item code occurs in `item_ids` (ids unknown to train dropped)."""
    codes = train.item_vocab.codes(np.asarray(item_ids), missing="negative")
    return np.bincount(codes[codes >= 0], minlength=train.n_items).astype(np.float64)


def genre_distribution(train: Dataset, lists: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Share of movies carrying each genre: catalog vs users' histories vs each model's lists.

    A movie with several genres counts in each, so a column need not sum to 1. "catalog" counts
    each training item once; "history" each training rating of the users who got lists; a model
    column each (user, recommended item) entry of its lists.

    Args:
        train: the training part (its item table gives genres).
        lists: model name -> top-k lists [user_id, item_id, ...] (see `model_lists`).

    Returns:
        Frame indexed by genre (sorted by catalog share, largest first) with columns catalog,
        history and one per model.
    """
    genres, g = _genre_matrix(train)
    if not genres:
        raise ValueError(f"{train.name} has no genres to compare")
    out = {"catalog": np.asarray(g.sum(axis=0)).ravel() / max(train.n_items, 1)}
    list_users = (np.unique(np.concatenate([df["user_id"].to_numpy() for df in lists.values()]))
                  if lists else train.user_vocab.index)
    r = train.ratings
    hist = _item_counts(train, r["item_id"].to_numpy()[np.isin(r["user_id"].to_numpy(),
                                                                  list_users)])
    out["history"] = (hist @ g) / max(hist.sum(), 1)
    for model, df in lists.items():
        counts = _item_counts(train, df["item_id"].to_numpy())
        out[model] = (counts @ g) / max(counts.sum(), 1)
    frame = pd.DataFrame(out, index=pd.Index(genres, name="genre"))
    return frame.sort_values("catalog", ascending=False, kind="stable")


def _user_genre_sets(train: Dataset, user_ids: np.ndarray, item_ids: np.ndarray,
                     users: np.ndarray, g: sp.csr_matrix) -> np.ndarray:
    """Bool [len(users), n_genres]: which genres occur among each user's given items."""
    rows = pd.Index(users).get_indexer(user_ids)
    cols = train.item_vocab.codes(item_ids, missing="negative")
    keep = (rows >= 0) & (cols >= 0)
    m = sp.csr_matrix((np.ones(int(keep.sum())), (rows[keep], cols[keep])),
                      shape=(len(users), train.n_items))
    return (m @ g).toarray() > 0


def genre_overlap(train: Dataset, lists: pd.DataFrame) -> pd.DataFrame:
    """Per user, genres only in the training history, in both, and only in the recommendations.

    Average over users with `.mean()`; one user's sets come from `genre_sets`.

    Returns:
        [user_id, only_history, both, only_recommended] (numbers of genres), one row per user
        with a list.
    """
    genres, g = _genre_matrix(train)
    users = np.unique(lists["user_id"].to_numpy())
    r = train.ratings
    hist = _user_genre_sets(train, r["user_id"].to_numpy(), r["item_id"].to_numpy(), users, g)
    rec = _user_genre_sets(train, lists["user_id"].to_numpy(), lists["item_id"].to_numpy(),
                           users, g)
    return pd.DataFrame({"user_id": users, "only_history": (hist & ~rec).sum(axis=1),
                         "both": (hist & rec).sum(axis=1),
                         "only_recommended": (~hist & rec).sum(axis=1)})


def genre_sets(train: Dataset, lists: pd.DataFrame, user_id: int) -> pd.DataFrame:
    """One user's genres: [genre, history (movies rated), recommended (movies listed), where].

    `where` is "only history", "both" or "only recommended"; genres in neither are left out.
    """
    genres, g = _genre_matrix(train)
    r = train.ratings
    hist = _item_counts(train, r.loc[r["user_id"] == user_id, "item_id"].to_numpy()) @ g
    rec = _item_counts(train, lists.loc[lists["user_id"] == user_id, "item_id"].to_numpy()) @ g
    where = np.select([(hist > 0) & (rec > 0), hist > 0, rec > 0],
                      ["both", "only history", "only recommended"], default="")
    out = pd.DataFrame({"genre": genres, "history": hist.astype(np.int64),
                        "recommended": rec.astype(np.int64), "where": where})
    return out[out["where"] != ""].reset_index(drop=True)


def popularity_bias(train: Dataset, lists: Mapping[str, pd.DataFrame], head_share: float = 0.2
                    ) -> pd.DataFrame:
    """Share of recommendations from the head and the tail of the training popularity curve.

    The head is the most rated training items that together make up `head_share` of the
    training ratings; every other item is tail. Two reference rows show the split of the
    catalog's items and of the training ratings themselves.

    Returns:
        Frame indexed by source ("catalog items", "training ratings", then each model) with
        columns head, tail (shares summing to 1) and head_items (size of the head).
    """
    pop = item_popularity(train, head_share)
    head = pop.loc[pop["head"], "item_id"].to_numpy()
    rows = {"catalog items": len(head) / max(len(pop), 1),
            "training ratings": float(pop.loc[pop["head"], "ratings"].sum())
            / max(train.n_ratings, 1)}
    for model, df in lists.items():
        rows[model] = float(np.isin(df["item_id"].to_numpy(), head).mean()) if len(df) else 0.0
    out = pd.DataFrame({"head": pd.Series(rows)})
    out["tail"] = 1.0 - out["head"]
    out["head_items"] = len(head)
    return out.rename_axis("source")


def pick_user(train: Dataset, lists: pd.DataFrame) -> int:
    """A typical user for a user card: the one with a list whose history length is the median."""
    users = np.unique(lists["user_id"].to_numpy())
    if not len(users):
        raise ValueError("no user has a recommendation list")
    sizes = train.ratings["user_id"].value_counts().reindex(users, fill_value=0).to_numpy()
    return int(users[np.argmin(np.abs(sizes - np.median(sizes)))])


def _titles(ds: Dataset, item_ids: np.ndarray) -> list[str]:
    """Titles of `item_ids` ("movie <id>" where the item table has none)."""
    ids = np.asarray(item_ids)
    if ds.items is None:
        return [f"movie {i}" for i in ids]
    titles = ds.items.drop_duplicates("item_id").set_index("item_id")["title"].reindex(ids)
    return [t if isinstance(t, str) and t else f"movie {i}"
            for t, i in zip(titles.to_numpy(), ids, strict=True)]


def _genre_text(ds: Dataset, item_ids: np.ndarray) -> list[str]:
    if ds.items is None:
        return [""] * len(item_ids)
    genres = ds.items.drop_duplicates("item_id").set_index("item_id")["genres"].reindex(item_ids)
    return [", ".join(g) if isinstance(g, tuple | list) else "" for g in genres]


def user_card(train: Dataset, lists: pd.DataFrame, user_id: int, *, n_history: int = 10,
              k: int = 10, relevance: float = 4.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The movies a user rated highest next to the movies recommended, with explanations.

    "Because you liked" names the user's liked training movie (rating >= `relevance`, or any
    rated movie when none is) most similar to the recommended one, by the cosine of the two
    movies' columns in the training interaction matrix (who rated both), as
    `movierec.explain` does for models without item vectors.

    Returns:
        (history [item_id, title, genres, rating], best first; recommended [rank, item_id,
        title, genres, score, because_you_liked]).
    """
    r = train.ratings
    mine = r[r["user_id"] == user_id]
    if mine.empty:
        raise ValueError(f"user {user_id} has no training ratings")
    mine = mine.sort_values(["rating", "timestamp"], ascending=False, kind="stable")
    top = mine.head(n_history)["item_id"].to_numpy()
    history = pd.DataFrame({"item_id": top, "title": _titles(train, top),
                            "genres": _genre_text(train, top),
                            "rating": mine.head(n_history)["rating"].to_numpy()})
    recs = lists[lists["user_id"] == user_id].sort_values("rank").head(k)
    rec_ids = recs["item_id"].to_numpy()
    liked = mine.loc[mine["rating"] >= relevance, "item_id"].to_numpy()
    liked = liked if len(liked) else mine["item_id"].to_numpy()
    x = sp.csc_matrix(train.matrix("binary"))
    norms = np.sqrt(np.asarray(x.sum(axis=0)).ravel())
    rc = train.item_vocab.codes(rec_ids, missing="negative")
    lc = train.item_vocab.codes(liked)
    sims = (x[:, np.maximum(rc, 0)].T @ x[:, lc]).toarray()
    sims /= np.maximum(np.outer(norms[np.maximum(rc, 0)], norms[lc]), 1e-12)
    sims[rc < 0] = 0.0
    best = liked[np.argmax(sims, axis=1)] if len(rec_ids) else np.array([], dtype=np.int64)
    because = [t if s > 0 else "" for t, s in
               zip(_titles(train, best), sims.max(axis=1, initial=0.0), strict=True)]
    recommended = pd.DataFrame({"rank": recs["rank"].to_numpy(), "item_id": rec_ids,
                                "title": _titles(train, rec_ids),
                                "genres": _genre_text(train, rec_ids),
                                "score": recs["score"].to_numpy(), "because_you_liked": because})
    return history, recommended


__all__ = [
    "AGE_LABELS", "FAMILIES", "bipartite_sample", "default_k", "degree_distribution",
    "genre_distribution", "genre_overlap", "genre_popularity", "genre_sets", "item_popularity",
    "load_benchmark", "metric_frame", "model_lists", "pick_user", "popularity_bias",
    "rating_distribution", "ratings_over_time", "recreate_split", "release_years", "sparsity",
    "training_history", "user_attribute", "user_card",
]
