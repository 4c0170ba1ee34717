"""Online evaluation: how the lists each model version showed fared with the ratings that followed.

Input: the store's impressions (one row per shown movie: list_id, position, user_id, item_id,
model_version, shown_at) and ratings (user_id, item_id, rating, updated_at).

Attribution: a rating that cites a list (the ratings' `list_id`, given by the client that
showed it) belongs to that list when the list was shown to the same user. Any other rating
(last touch) belongs to the latest list shown to the same user strictly before the rating was
written (`updated_at > shown_at`); ratings written before any list are not attributed. So a
user who rates from the web page, which shows a fresh list after each rating, credits each
rating to the list on screen when it was given.

Per version, over its lists:

* `lists`, `users`: lists shown and distinct users;
* `rated_share`: share of lists after which the user rated at least one of the shown movies;
* `liked_lists`: lists followed by at least one rating >= `relevance` (any movie);
* `hit@k`: among those, the share whose top k held a movie the user then rated >= relevance;
* `ndcg@k`: among those, binary NDCG@k of the shown positions, the ideal placing all of the
  list's liked movies (shown or not, at most k) first (`movierec.metrics.ndcg`).

Against the full ranking (`full_ranking`, which needs the versions' models): each list
followed by a liked rating is ranked again as the version would have answered the user when the
list was shown: the user's training history plus the stored ratings written before it (the
store keeps the latest value of each rating, so a rating changed or deleted since is seen as it
is now), folded in with the model's own fold-in, top-k of the whole catalog without those
movies (`service_ranker`, the service's `recommend_with_feedback`). `full_hit@k` and
`full_ndcg@k` judge that list against the liked movies credited to the shown list.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from movierec import metrics as M

if TYPE_CHECKING:
    from movierec.models.base import Recommender

__all__ = ["COLUMNS", "Ranker", "attribute", "evaluate_feedback", "full_ranking",
           "service_ranker"]

#: (user_id, item ids, ratings of the user's stored history) -> ranked item ids (best first).
Ranker = Callable[[int, np.ndarray, np.ndarray], np.ndarray]

COLUMNS = ["version", "lists", "users", "rated_lists", "rated_share", "liked_lists"]


def attribute(impressions: pd.DataFrame, ratings: pd.DataFrame) -> pd.DataFrame:
    """Each rating with the list it is credited to (see the module).

    The ratings' columns plus list_id, model_version and shown_at; ratings credited to no list are
    dropped.
    """
    lists = (impressions.groupby("list_id", sort=False)
             .agg(user_id=("user_id", "first"), model_version=("model_version", "first"),
                  shown_at=("shown_at", "first")).reset_index())
    if lists.empty or ratings.empty:
        return ratings.iloc[:0].assign(list_id=pd.Series(dtype=object),
                                       model_version=pd.Series(dtype=object),
                                       shown_at=pd.Series(dtype=float))
    lists = lists.assign(user_id=lists["user_id"].astype(np.int64),
                         shown_at=lists["shown_at"].astype(np.float64))
    rated = ratings.assign(user_id=ratings["user_id"].astype(np.int64),
                           updated_at=ratings["updated_at"].astype(np.float64))
    cites = rated["list_id"] if "list_id" in rated.columns else pd.Series(None, rated.index)
    rated = rated.drop(columns=["list_id"], errors="ignore")
    owner = lists.set_index("list_id")["user_id"]
    valid = cites.notna() & (cites.map(owner) == rated["user_id"])
    cited = rated[valid].assign(list_id=cites[valid].astype(object)).merge(
        lists.drop(columns="user_id"), on="list_id", how="inner")
    merged = pd.merge_asof(rated[~valid].sort_values("updated_at", kind="stable"),
                           lists.sort_values("shown_at", kind="stable"), left_on="updated_at",
                           right_on="shown_at", by="user_id", direction="backward",
                           allow_exact_matches=False)
    merged = merged[merged["list_id"].notna()]
    return pd.concat([cited, merged], ignore_index=True).sort_values(
        "updated_at", kind="stable").reset_index(drop=True)


def evaluate_feedback(impressions: pd.DataFrame, ratings: pd.DataFrame, *, k: int = 10,
                      relevance: float = 4.0, versions: Iterable[str] = ()) -> pd.DataFrame:
    """Per model version: lists, users, rated share, hit@k and NDCG@k of liked movies.

    Args:
        impressions: `Store.impressions_since()`.
        ratings: `Store.all_ratings()` (needs user_id, item_id, rating, updated_at).
        k: cut-off of hit and NDCG (positions 1..k of each list).
        relevance: ratings at or above this are "liked".
        versions: versions to list even without impressions (zeros, metrics None).

    Returns:
        One row per version (sorted by name): the module's columns, `hit@k` and `ndcg@k`
        (None where no list was followed by a liked rating).
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, found {k}")
    hit_col, ndcg_col = f"hit@{k}", f"ndcg@{k}"
    credited = attribute(impressions, ratings)
    lists = impressions.groupby("list_id", sort=False).agg(
        user_id=("user_id", "first"), version=("model_version", "first")).reset_index()
    shown = credited.merge(impressions[["list_id", "item_id", "position"]],
                           on=["list_id", "item_id"], how="inner")
    rated = set(shown["list_id"])
    liked = credited[credited["rating"] >= relevance]
    n_liked = liked.groupby("list_id").size()
    liked_shown = shown[(shown["rating"] >= relevance) & (shown["position"] <= k)]
    lists["rated"] = lists["list_id"].isin(rated)
    lists["n_liked"] = lists["list_id"].map(n_liked).fillna(0).astype(np.int64)
    rows = []
    for version, group in lists.groupby("version", sort=True):
        judged = group[group["n_liked"] > 0]
        hits = np.zeros((len(judged), k), dtype=bool)
        index = pd.Series(np.arange(len(judged)), index=judged["list_id"].to_numpy())
        mine = liked_shown[liked_shown["list_id"].isin(index.index)]
        hits[index[mine["list_id"]].to_numpy(), mine["position"].to_numpy(np.int64) - 1] = True
        n = judged["n_liked"].to_numpy()
        rows.append({"version": str(version), "lists": len(group),
                     "users": int(group["user_id"].nunique()),
                     "rated_lists": int(group["rated"].sum()),
                     "rated_share": float(group["rated"].mean()),
                     "liked_lists": len(judged),
                     hit_col: float(M.hit_rate(hits).mean()) if len(judged) else None,
                     ndcg_col: float(M.ndcg(hits, n).mean()) if len(judged) else None})
    seen = {r["version"] for r in rows}
    for version in versions:
        if version not in seen:
            rows.append({"version": version, "lists": 0, "users": 0, "rated_lists": 0,
                         "rated_share": None, "liked_lists": 0, hit_col: None, ndcg_col: None})
    frame = pd.DataFrame(rows, columns=[*COLUMNS, hit_col, ndcg_col])
    return frame.sort_values("version", kind="stable").reset_index(drop=True)


def service_ranker(model: Recommender, k: int) -> Ranker:
    """Rank a user's top k as the service does (`Engine.recommend_with_feedback`).

    The user's training history (the model's `seen_`; valued by the model's own prediction,
    clipped to the rating scale, for rating models, else the scale's top) then the given stored
    ratings are folded in (`movierec.fold_in`); the top k of the whole catalog without those
    movies is returned as original item ids.
    """
    from movierec.fold_in import fold_in
    from movierec.ranking import rank_block

    scale = getattr(model, "rating_scale_", None) or (0.0, 0.0)
    lo, hi = float(scale[0]), float(scale[1])
    item_ids = np.asarray(model.item_vocab_.index, dtype=np.int64)

    def rank(user_id: int, items: np.ndarray, ratings: np.ndarray) -> np.ndarray:
        code = int(model.user_vocab_.codes([user_id], missing="negative")[0])
        seen = model.seen_
        hist = (seen.indices[seen.indptr[code]:seen.indptr[code + 1]].astype(np.int64)
                if code >= 0 else np.empty(0, dtype=np.int64))
        if len(hist) and model.rates:
            values = model._predict(np.full(len(hist), code, dtype=np.int64), hist)
            values = np.clip(values, lo, hi) if hi > lo else values
        else:
            values = np.full(len(hist), hi if hi > lo else 1.0)
        fold = fold_in(model, np.concatenate([item_ids[hist], np.asarray(items, np.int64)]),
                       np.concatenate([np.asarray(values, np.float64),
                                       np.asarray(ratings, np.float64)]))
        codes = rank_block(fold.scores[None, :], k, exclude=fold.item_codes)[0][0]
        return item_ids[codes[codes >= 0]]

    return rank


def full_ranking(impressions: pd.DataFrame, ratings: pd.DataFrame,
                 rankers: Mapping[str, Ranker], *, k: int = 10,
                 relevance: float = 4.0) -> pd.DataFrame:
    """Per version: hit@k and NDCG@k of the liked movies in the version's full ranking.

    Args:
        impressions: `Store.impressions_since()`.
        ratings: `Store.all_ratings()` (user_id, item_id, rating, updated_at).
        rankers: version -> a `Ranker` giving at least k items (`service_ranker`); lists of a
            version without one get NaN (full_lists 0).
        k: cut-off.
        relevance: ratings at or above this are "liked".

    Returns:
        One row per version with a list followed by a liked rating: version, full_lists (lists
        ranked again), `full_hit@k`, `full_ndcg@k`.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, found {k}")
    columns = ["version", "full_lists", f"full_hit@{k}", f"full_ndcg@{k}"]
    credited = attribute(impressions, ratings)
    liked = credited[credited["rating"] >= relevance]
    rated = ratings.assign(user_id=ratings["user_id"].astype(np.int64),
                           updated_at=ratings["updated_at"].astype(np.float64))
    by_user = dict(tuple(rated.groupby("user_id")))
    rows: list[dict[str, object]] = []
    for version, group in liked.groupby("model_version", sort=True):
        rank = rankers.get(str(version))
        lists = list(group.groupby("list_id", sort=False))
        if rank is None:
            rows.append({"version": str(version), "full_lists": 0})
            continue
        hits = np.zeros((len(lists), k), dtype=bool)
        n_liked = np.zeros(len(lists), dtype=np.int64)
        for row, (_, judged) in enumerate(lists):  # one fold-in per list: not a hot path
            user = int(judged["user_id"].iloc[0])
            history = by_user.get(user, rated.iloc[:0])
            history = history[history["updated_at"] < float(judged["shown_at"].iloc[0])]
            top = rank(user, history["item_id"].to_numpy(np.int64),
                       history["rating"].to_numpy(np.float64))[:k]
            hits[row, :len(top)] = np.isin(top, judged["item_id"].to_numpy(np.int64))
            n_liked[row] = len(judged)
        rows.append({"version": str(version), "full_lists": len(lists),
                     columns[2]: float(M.hit_rate(hits).mean()),
                     columns[3]: float(M.ndcg(hits, n_liked).mean())})
    return pd.DataFrame(rows, columns=columns)
