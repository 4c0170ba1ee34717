"""The one evaluator: `evaluate(model, split)` ranks, scores and summarises into `Results`.

Full protocol (the default, see /shared/reference/README.md):

- Test users: users of `split.test` known to the model. Every one of them gets a top-k list, and
  beyond-accuracy metrics (coverage, diversity, novelty, ARP, personalization) describe all those
  lists. Ranking metrics are averaged over the test users with at least one relevant test item;
  the others are counted (`users_no_relevant`) and have NaN ranking values in `per_user`.
- Relevant: the user's test items with rating >= `relevance` (`relevance <= 0`: every test item).
  Relevant items unknown to the model (never rated in training) still count in |relevant| — the
  protocol takes |relevant| from the test file — but can never be hit; they are counted in
  `counts["relevant_unknown_items"]`. This is the choice that reproduces the reference recall.
- Candidates: every training item outside the user's training history (full ranking).
- Users are scored in blocks of `block_size` users, or of as many as `max_memory_mb` allows
  (block = max_memory_mb / (n_items x 20 bytes)); the top max(ks) is computed once and sliced.
  Nothing is ever held for all users x all items: besides one block of scores, memory grows
  with the test users x max(ks) lists and the number of test and training ratings.
- Data-parallel (every process of a `torch.distributed` group calls `evaluate`, e.g. under
  `torchrun -m movierec train`): the full protocol's test users are split into one contiguous
  share per rank, each rank scores only its share, and the top-max(ks) lists are all-reduced
  (each rank contributes its rows, zeros elsewhere), as are the rating predictions of each rank's
  share of the test rows. Every rank then holds the lists and predictions a single process would
  have computed, bit for bit, and derives the same metrics from them. Lists rather than metric
  sums are reduced because coverage, personalization and Gini are not sums over users; the lists
  are small (test users x max(ks) x 8 bytes). The sampled protocol draws its negatives from one
  random stream in user order and is not sharded: every rank computes all of it.

Sampled protocol (NCF paper, He et al. 2017): each of the user's relevant test items that the model
knows is ranked against `n_negatives` items drawn uniformly without replacement from the training
items the user never interacted with (in train or test). Ties count against the held-out item.
Keys are prefixed ("sampled_hit@10", "sampled_ndcg@10") so they are never confused with full
ranking; with leave-one-out and `relevance=0` this is the paper's HR@10 / NDCG@10.

Rated-items protocol (`evaluate_rated_items`, common in course projects): no ranking and no k.
Only the user's *rated* test items are looked at; an item is "recommended" when the predicted
rating is >= `threshold` and "relevant" when the true rating is. Keys `precision_rated`,
`recall_rated`, `f1_rated` (per-user values averaged over users, see
`metrics.rated_precision_recall` for the empty-set conventions) and `rmse_scaled` (RMSE with both
ratings mapped linearly from the rating scale to [0, 1]). It only measures how well predicted
ratings separate liked from disliked items the user chose to watch; it says nothing about finding
them among thousands of unwatched ones, which is what the full protocol measures.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Literal, overload

import numpy as np
import pandas as pd
import scipy.sparse as sp

from movierec import __version__
from movierec import metrics as M
from movierec.data.dataset import Dataset
from movierec.errors import MovieRecError
from movierec.models.base import Recommender
from movierec.random import RNGLike, as_generator
from movierec.ranking import BYTES_PER_SCORE, mask_rows, progress_blocks, resolve_block_size
from movierec.results import Results
from movierec.split import Split

logger = logging.getLogger(__name__)

Protocol = Literal["full", "sampled"]

# Bytes per (user, item) of a sampled-protocol block: the float64 sampling keys and their int64
# argpartition indices (16), then the model's scores (as BYTES_PER_SCORE).
_SAMPLED_BYTES_PER_SCORE = 28

_RANKING: dict[str, Any] = {
    "precision": lambda h, n: M.precision(h),
    "recall": M.recall,
    "f1": M.f1,
    "ndcg": M.ndcg,
    "map": M.average_precision,
    "mrr": lambda h, n: M.reciprocal_rank(h),
    "hit": lambda h, n: M.hit_rate(h),
}


def rating_errors(model: Recommender, split: Split) -> dict[str, float]:
    """RMSE and MAE of a rating model on every row of `split.test`, on the dataset's scale.

    Unknown users or items get the model's fallback (its global mean); under torchrun each
    process predicts its share of the rows.
    """
    test = split.test.ratings
    yhat = _predict_sharded(model, test["user_id"].to_numpy(), test["item_id"].to_numpy())
    y = test["rating"].to_numpy()
    return {"rmse": M.rmse(y, yhat), "mae": M.mae(y, yhat)}


def rating_errors_per_user(model: Recommender, split: Split) -> pd.DataFrame:
    """Each test user's rating errors: user_id, rmse, mse, mae and n_rated (test rows).

    The per-user counterpart of `rating_errors` (same predictions and fallbacks), for paired
    tests over users; note that the mean of per-user RMSEs is not the RMSE over all rows.
    """
    test = split.test.ratings
    users = test["user_id"].to_numpy()
    yhat = _predict_sharded(model, users, test["item_id"].to_numpy()).astype(np.float64)
    err = test["rating"].to_numpy(np.float64) - yhat
    ids, inverse = np.unique(users, return_inverse=True)
    n = np.bincount(inverse, minlength=len(ids))
    mse = np.bincount(inverse, weights=err**2, minlength=len(ids)) / np.maximum(n, 1)
    mae = np.bincount(inverse, weights=np.abs(err), minlength=len(ids)) / np.maximum(n, 1)
    return pd.DataFrame({"user_id": ids, "rmse": np.sqrt(mse), "mse": mse, "mae": mae,
                         "n_rated": n})


def evaluate(
    model: Recommender,
    split: Split,
    *,
    ks: Sequence[int] = (5, 10, 20),
    relevance: float = 4.0,
    protocol: Protocol = "full",
    block_size: int | None = None,
    max_memory_mb: float | None = None,
    n_negatives: int = 100,
    rng: RNGLike = None,
    keep_lists: bool = False,
    progress: bool = False,
    exclude: Dataset | None = None,
) -> Results:
    """Evaluate a fitted model on `split.test`.

    Args:
        model: a fitted Recommender (trained on `split.train`).
        split: the split; `split.train` gives popularity, genres and the catalog size.
        ks: list lengths at which ranking metrics are reported (default 5, 10, 20).
        relevance: rating threshold of a relevant test item (default 4.0; 0 = every test item).
        protocol: "full" (rank every unseen training item) or "sampled" (NCF: 1 + n_negatives).
        block_size: users scored at once, about block_size x n_items x 20 bytes (default 1024
            users, fewer where that would exceed 250 MB). Give this or `max_memory_mb`.
        max_memory_mb: working memory for one block of scores, in MB (10⁶ bytes): the block is
            max_memory_mb / (n_items x 20 bytes) users (28 bytes for the sampled protocol).
            On top come per-test-rating arrays (about 50 bytes a test rating at the peak) and
            the test users' top-max(ks) lists.
        n_negatives: sampled negatives per user (sampled protocol only; default 100).
        rng: seed or Generator for the sampled negatives (sampled protocol only).
        keep_lists: keep the top-max(ks) lists in `Results.lists` (full protocol only).
        progress: show a progress bar over user blocks.
        exclude: further ratings of the users' known history that the model was not fitted on
            (a validation part carved from the training part): their items are never candidates
            (full protocol) nor sampled negatives, as the training items are not. Without it,
            a model fitted on 90 % of the training part would be asked to rank the other 10 %
            as if unseen.

    Returns:
        Results with summary, per-user values, counts, protocol, timings and meta.
    """
    ks = _check_args(ks, protocol, n_negatives)
    model._check_fitted()
    block_size = resolve_block_size(
        model.n_items, block_size, max_memory_mb,
        bytes_per_score=BYTES_PER_SCORE if protocol == "full" else _SAMPLED_BYTES_PER_SCORE)
    t_start = time.perf_counter()
    test = split.test.ratings
    t_users = model.user_vocab_.codes(test["user_id"].to_numpy(), missing="negative")
    t_items = model.item_vocab_.codes(test["item_id"].to_numpy(), missing="negative")
    rel = (test["rating"].to_numpy() >= relevance) if relevance > 0 else np.ones(len(test), bool)
    counts = _test_counts(test, t_users, t_items)
    proto: dict[str, Any] = {"protocol": protocol, "relevance": float(relevance), "k": list(ks)}
    extra = _exclusions(model, exclude)
    if extra is not None:
        counts["excluded_history_pairs"] = int(extra.nnz)
        proto["excluded"] = "training items and the validation part's items"

    t0 = time.perf_counter()
    lists = None
    if protocol == "full":
        proto["candidates"] = "all-unseen"
        per_user, summary, lists = _full(model, split, ks, t_users, t_items, rel, counts,
                                         block_size, keep_lists, progress, extra)
    else:
        proto.update(candidates=f"1 held-out + {n_negatives} sampled", n_negatives=n_negatives,
                     ties="pessimistic", seed=rng if isinstance(rng, int) else None)
        per_user, summary = _sampled(model, ks, t_users, t_items, rel, counts, block_size,
                                     n_negatives, as_generator(rng), progress, extra)
    timings = {"ranking": time.perf_counter() - t0}

    if model.rates:
        t0 = time.perf_counter()
        summary = {**rating_errors(model, split), **summary}
        counts["rating_rows_predicted"] = len(test)
        counts["rating_rows_fallback"] = int(((t_users < 0) | (t_items < 0)).sum())
        timings["rating"] = time.perf_counter() - t0
    timings["total"] = time.perf_counter() - t_start
    meta: dict[str, Any] = {"model": type(model).__name__, "params": model.params(),
                            "split": split.describe(),
                            "train_fingerprint": split.train.fingerprint, "version": __version__}
    if (world := _group()[0]) > 1:
        meta["processes"] = world
    return Results(summary=summary, per_user=per_user, counts=counts, protocol=proto,
                   timings=timings, lists=lists, meta=meta)


@overload
def evaluate_rated_items(model: Recommender, split: Split, threshold: float = ..., *,
                         with_counts: Literal[False] = ...) -> dict[str, float]: ...
@overload
def evaluate_rated_items(model: Recommender, split: Split, threshold: float = ..., *,
                         with_counts: Literal[True]) -> tuple[dict[str, float], dict[str, int]]: ...
def evaluate_rated_items(model: Recommender, split: Split, threshold: float = 4.0, *,
                         with_counts: bool = False
                         ) -> dict[str, float] | tuple[dict[str, float], dict[str, int]]:
    """Precision / recall / F1 over each user's rated test items, and RMSE on a [0, 1] scale.

    Every row of `split.test` is predicted (unknown users or items get the model's fallback, as
    for RMSE). Per user u: recommended_u = rated test items with predicted rating >= threshold,
    relevant_u = those with true rating >= threshold. precision_rated is the mean of precision_u
    over the users with at least one recommended item, recall_rated the mean of recall_u over the
    users with at least one relevant item, f1_rated the mean of F1_u over the users where both are
    defined (F1_u = 0 when precision_u + recall_u = 0). A key is NaN when no user qualifies.
    rmse_scaled = RMSE after mapping true and predicted ratings by (r - lo) / (hi - lo), where
    (lo, hi) is the training data's rating scale (else its min and max rating); predictions are
    not clipped, so it equals RMSE / (hi - lo).

    Args:
        model: a fitted model that `rates` (predicts ratings, trained on them).
        split: the split the model was trained on.
        threshold: rating at or above which an item is recommended / relevant (default 4.0).
        with_counts: also return the counts of users behind each average.

    Returns:
        {"precision_rated", "recall_rated", "f1_rated", "rmse_scaled"}, and with `with_counts`
        a second dict (rated_users, rated_users_with_recommended, rated_users_with_relevant,
        rated_users_f1, rated_rows).

    Raises:
        MovieRecError: the model does not predict ratings.
    """
    model._check_fitted()
    if not model.rates:
        raise MovieRecError(f"{type(model).__name__} does not predict ratings: the rated-items "
                            "protocol needs predicted ratings")
    if not np.isfinite(threshold):
        raise ValueError(f"threshold must be a finite rating, got {threshold!r}")
    test = split.test.ratings
    y = test["rating"].to_numpy(np.float64)
    yhat = model.predict(test["user_id"].to_numpy(), test["item_id"].to_numpy()).astype(np.float64)
    _, users = np.unique(test["user_id"].to_numpy(), return_inverse=True)
    n_users = int(users.max()) + 1 if len(users) else 0
    p, r, f = M.rated_precision_recall(users, yhat >= threshold, y >= threshold, n_users)
    lo, hi = _rating_scale(split)

    def mean(v: np.ndarray) -> float:
        return float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")

    out = {"precision_rated": mean(p), "recall_rated": mean(r), "f1_rated": mean(f),
           "rmse_scaled": M.rmse((y - lo) / (hi - lo), (yhat - lo) / (hi - lo))}
    if not with_counts:
        return out
    counts = {"rated_rows": len(test), "rated_users": n_users,
              "rated_users_with_recommended": int(np.isfinite(p).sum()),
              "rated_users_with_relevant": int(np.isfinite(r).sum()),
              "rated_users_f1": int(np.isfinite(f).sum())}
    return out, counts


def _rating_scale(split: Split) -> tuple[float, float]:
    """(lowest, highest) rating of the training data: its declared scale, else min and max."""
    scale = split.train.rating_scale
    if scale is None:
        ratings = split.train.ratings["rating"].to_numpy(np.float64)
        scale = (float(ratings.min()), float(ratings.max())) if len(ratings) else (0.0, 0.0)
    lo, hi = float(scale[0]), float(scale[1])
    if not hi > lo:
        raise ValueError(f"rmse_scaled needs a rating scale with highest > lowest, got {scale}")
    return lo, hi


def _check_args(ks: Sequence[int] | int, protocol: str, n_negatives: int) -> list[int]:
    kk = sorted({int(k) for k in (ks if isinstance(ks, Iterable) else [ks])})
    if not kk or kk[0] <= 0:
        raise ValueError(f"ks must be positive list lengths, got {ks!r}")
    if protocol not in ("full", "sampled"):
        raise ValueError(f"protocol must be 'full' or 'sampled', got {protocol!r}")
    if n_negatives <= 0:
        raise ValueError(f"n_negatives must be positive, got {n_negatives}")
    return kk


def _test_counts(test: pd.DataFrame, t_users: np.ndarray, t_items: np.ndarray) -> dict[str, int]:
    users = test["user_id"].to_numpy()
    return {
        "test_rows": len(test),
        "test_users": int(len(np.unique(users))),
        "test_users_unknown": int(len(np.unique(users[t_users < 0]))),
        "test_rows_unknown_user": int((t_users < 0).sum()),
        "test_rows_unknown_item": int((t_items < 0).sum()),
    }


def _relevant(t_users: np.ndarray, t_items: np.ndarray, item_ids: np.ndarray, rel: np.ndarray,
              n_users: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per model user: |relevant| (unknown items included), relevant known-item keys, unknown.

    Distinct (user, item) pairs are found on one int64 key per row (a 1-d sort), not by
    `np.unique(axis=0)`, which sorts rows as opaque records and is far slower on millions.
    """
    keep = rel & (t_users >= 0)
    users = t_users[keep].astype(np.int64)
    _, item_rank = np.unique(item_ids[keep], return_inverse=True)
    n_distinct = int(item_rank.max()) + 1 if len(item_rank) else 1
    _, first = np.unique(users * n_distinct + item_rank.ravel(), return_index=True)
    users, codes = users[first], t_items[keep][first].astype(np.int64)
    n_rel = np.bincount(users, minlength=n_users)
    known = codes >= 0
    n_unknown = np.bincount(users[~known], minlength=n_users)
    return n_rel, np.stack([users[known], codes[known]], axis=1), n_unknown


def _in_keys(keys: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Boolean mask of `query` values present in the sorted array `keys`."""
    if len(keys) == 0:
        return np.zeros(query.shape, dtype=bool)
    pos = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
    return keys[pos] == query


def _group() -> tuple[int, int]:
    """(world size, rank) of the torch.distributed group this process belongs to, else (1, 0).

    Without torch imported no group can exist, so a torch-free install never imports it here.
    """
    if "torch" not in sys.modules:
        return 1, 0
    from movierec import distributed

    return distributed.world_size(), distributed.rank()


def _share(n: int, world: int, rank: int) -> tuple[int, int]:
    """[lo, hi): rank's contiguous share of n rows (sizes differ by at most one)."""
    return n * rank // world, n * (rank + 1) // world


def _all_gather_rows(arrays: list[np.ndarray], lo: int, hi: int) -> list[np.ndarray]:
    """Every rank's rows of `arrays`, where each rank filled only rows [lo, hi) of its own.

    Summed over ranks with every other row zeroed: x + 0 is exact (also for -inf), so the result
    equals a single process's arrays bit for bit. Integer arrays travel as int64.
    """
    import torch

    from movierec import distributed

    out = []
    for a in arrays:
        t = torch.zeros(a.shape, dtype=torch.int64 if a.dtype.kind in "iu" else torch.float64)
        t[lo:hi] = torch.from_numpy(np.ascontiguousarray(a[lo:hi]))
        out.append(distributed.all_reduce_sum(t).numpy().astype(a.dtype, copy=False))
    return out


def _predict_sharded(model: Recommender, users: np.ndarray, items: np.ndarray) -> np.ndarray:
    """`model.predict` of every (user, item) row; data-parallel, each rank predicts a share."""
    world, me = _group()
    if world == 1:
        return model.predict(users, items)
    lo, hi = _share(len(users), world, me)
    part = np.asarray(model.predict(users[lo:hi], items[lo:hi]))
    yhat = np.zeros(len(users), dtype=part.dtype)
    yhat[lo:hi] = part
    return _all_gather_rows([yhat], lo, hi)[0]


def _blocks(n: int, block_size: int, progress: bool) -> Iterator[slice]:
    return progress_blocks(n, block_size, progress, desc="evaluate")


def _stored(matrix: sp.csr_matrix, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Whether matrix[rows[j], cols[j]] is nonzero, by lookups in the CSR (no dense keys)."""
    if len(rows) == 0:
        return np.zeros(0, dtype=bool)
    return np.asarray(matrix[rows, cols]).ravel() != 0


def _popularity(model: Recommender, split: Split) -> tuple[np.ndarray, np.ndarray]:
    """Training rating count and user share p_i per model item code.

    A Dataset holds one rating per (user, item), so both come from the stored entries per column
    of the (cached) binary train matrix, moved from train item codes to model item codes: no
    pass over the rating rows.
    """
    train = split.train
    per_item = np.bincount(train.matrix("binary").indices, minlength=train.n_items)
    to_model = model.item_vocab_.codes(train.item_vocab.index, missing="negative")
    counts = np.zeros(model.n_items, dtype=np.float64)
    counts[to_model[to_model >= 0]] = per_item[to_model >= 0]
    return counts, counts / max(train.n_users, 1)


def _exclusions(model: Recommender, exclude: Dataset | None) -> sp.csr_matrix | None:
    """`exclude`'s (user, item) pairs known to the model, as a binary [n_users, n_items] matrix."""
    if exclude is None or exclude.n_ratings == 0:
        return None
    r = exclude.ratings
    u = model.user_vocab_.codes(r["user_id"].to_numpy(), missing="negative")
    i = model.item_vocab_.codes(r["item_id"].to_numpy(), missing="negative")
    ok = (u >= 0) & (i >= 0)
    m = sp.csr_matrix((np.ones(int(ok.sum()), dtype=np.float32), (u[ok], i[ok])),
                      shape=(model.n_users, model.n_items))
    m.sum_duplicates()
    m.data[:] = 1.0
    m.sort_indices()
    return m if m.nnz else None


def _top_k_without(model: Recommender, users: np.ndarray, k: int,
                   extra: sp.csr_matrix | None) -> tuple[np.ndarray, np.ndarray]:
    """`model.top_k_codes` of a block, the items of `extra`'s rows left out too.

    Asks the model for k + (the block's largest `extra` row) items, drops the excluded ones and
    keeps the first k, so every model's own `top_k_codes` (candidate pools, ties) is respected.
    """
    if extra is None:
        return model.top_k_codes(users, k, exclude_seen=True)
    rows = extra[users]
    more = int(np.diff(rows.indptr).max()) if len(users) else 0
    if more == 0:
        return model.top_k_codes(users, k, exclude_seen=True)
    top, scores = model.top_k_codes(users, min(k + more, model.n_items), exclude_seen=True)
    drop = _stored(rows, np.repeat(np.arange(len(users)), top.shape[1]),
                   np.maximum(top, 0).ravel()).reshape(top.shape) & (top >= 0)
    keep = ~drop & (top >= 0)
    order = np.argsort(~keep, axis=1, kind="stable")[:, :k]  # kept entries first, in rank order
    out = np.take_along_axis(np.where(keep, top, -1), order, axis=1).astype(np.int32)
    out_scores = np.take_along_axis(np.where(keep, scores, -np.inf), order, axis=1)
    if out.shape[1] < k:  # a catalog smaller than k: pad as top_k_codes does
        pad = k - out.shape[1]
        out = np.pad(out, ((0, 0), (0, pad)), constant_values=-1)
        out_scores = np.pad(out_scores, ((0, 0), (0, pad)), constant_values=-np.inf)
    return out, out_scores.astype(np.float32)


def _full(model: Recommender, split: Split, ks: list[int], t_users: np.ndarray,
          t_items: np.ndarray, rel: np.ndarray, counts: dict[str, int], block_size: int,
          keep_lists: bool, progress: bool, extra: sp.csr_matrix | None = None
          ) -> tuple[pd.DataFrame, dict[str, float], pd.DataFrame | None]:
    n_items = model.n_items
    item_ids = split.test.ratings["item_id"].to_numpy()
    n_rel, rel_pairs, n_unknown = _relevant(t_users, t_items, item_ids, rel, model.n_users)
    # Every known test user gets a list: beyond-accuracy metrics describe all of them; ranking
    # metrics are averaged over those with at least one relevant test item.
    users = np.unique(t_users[t_users >= 0])
    nr = n_rel[users]
    judged = nr > 0
    rel_keys = np.sort(rel_pairs[:, 0] * n_items + rel_pairs[:, 1])
    counts.update(users_evaluated=int(judged.sum()),
                  users_no_relevant=int((~judged).sum()),
                  users_with_lists=len(users),
                  relevant_items=int(nr.sum()),
                  relevant_unknown_items=int(n_unknown[users].sum()),
                  relevant_in_train=int(_stored(model.seen_, rel_pairs[:, 0],
                                                rel_pairs[:, 1]).sum()))

    kmax = ks[-1]
    top = np.full((len(users), kmax), -1, dtype=np.int32)
    top_scores = np.full((len(users), kmax), -np.inf, dtype=np.float32)
    world, me = _group()
    lo, hi = _share(len(users), world, me)
    for blk in _blocks(hi - lo, block_size, progress and me == 0):
        mine = slice(lo + blk.start, lo + blk.stop)
        top[mine], top_scores[mine] = _top_k_without(model, users[mine], kmax, extra)
    if world > 1:
        top, top_scores = _all_gather_rows([top, top_scores], lo, hi)
    valid = top >= 0
    hits = valid & _in_keys(rel_keys, users[:, None].astype(np.int64) * n_items + top)

    per_user: dict[str, Any] = {"user_id": model.user_vocab_.ids(users), "n_relevant": nr}
    summary: dict[str, float] = {}
    for k in ks:
        for name, fn in _RANKING.items():
            values = np.full(len(users), np.nan)
            values[judged] = fn(hits[judged, :k], nr[judged])
            per_user[f"{name}@{k}"] = values
            summary[f"{name}@{k}"] = float(np.mean(values[judged])) if judged.any() else np.nan
    extra_cols, extra_summary = _beyond_accuracy(model, split, top, ks)
    per_user.update(extra_cols)
    summary.update(extra_summary)
    # Order summary keys by k, then metric, as the tables show them.
    summary = {f"{name}@{k}": summary[f"{name}@{k}"] for k in ks
               for name in [*_RANKING, *_BEYOND] if f"{name}@{k}" in summary}

    lists = None
    if keep_lists:
        rows, ranks = np.nonzero(valid)
        lists = pd.DataFrame({"user_id": model.user_vocab_.ids(users[rows]),
                              "item_id": model.item_vocab_.ids(top[rows, ranks]),
                              "score": top_scores[rows, ranks], "rank": ranks + 1})
    return pd.DataFrame(per_user), summary, lists


_BEYOND = ("coverage", "diversity", "novelty", "arp", "personalization", "gini")


def _beyond_accuracy(model: Recommender, split: Split, top: np.ndarray,
                     ks: list[int]) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    n_ratings, share = _popularity(model, split)
    genres = _genre_matrix(model, split)
    cols: dict[str, np.ndarray] = {}
    summary: dict[str, float] = {}
    if len(top) == 0:
        return cols, summary
    for k in ks:
        lists = top[:, :k]
        summary[f"coverage@{k}"] = M.coverage(lists, model.n_items)
        if genres is not None:
            cols[f"diversity@{k}"] = M.intra_list_diversity(lists, genres)
        cols[f"novelty@{k}"] = M.novelty(lists, share)
        cols[f"arp@{k}"] = M.arp(lists, n_ratings)
        summary[f"personalization@{k}"] = M.personalization(lists, k)
        summary[f"gini@{k}"] = M.gini(lists, model.n_items)
    for key, v in cols.items():
        if np.isfinite(v).any():
            summary[key] = float(np.nanmean(v))
    return cols, summary


def _genre_matrix(model: Recommender, split: Split) -> sp.csr_matrix | None:
    """Item x genre matrix in model item codes, or None when the train split has no genres."""
    if split.train.items is None or not split.train.genres:
        return None
    g = split.train.genre_matrix(model.item_vocab_.index)
    return g if g.nnz else None


def _sampled(model: Recommender, ks: list[int], t_users: np.ndarray, t_items: np.ndarray,
             rel: np.ndarray, counts: dict[str, int], block_size: int, n_negatives: int,
             gen: np.random.Generator, progress: bool, extra: sp.csr_matrix | None = None
             ) -> tuple[pd.DataFrame, dict[str, float]]:
    n_users, n_items = model.n_users, model.n_items
    known = (t_users >= 0) & (t_items >= 0)
    pos = sp.csr_matrix((np.ones(int((known & rel).sum())),
                         (t_users[known & rel], t_items[known & rel])), shape=(n_users, n_items))
    pos.sum_duplicates()
    pos.sort_indices()
    test_all = sp.csr_matrix((np.ones(int(known.sum())), (t_users[known], t_items[known])),
                             shape=(n_users, n_items))
    interacted = model.seen_ + test_all
    if extra is not None:
        interacted = interacted + extra
    interacted = interacted.tocsr()
    known_test_users = np.unique(t_users[t_users >= 0])
    users = known_test_users[np.diff(pos.indptr)[known_test_users] > 0]
    counts.update(users_evaluated=len(users),
                  users_no_relevant=len(known_test_users) - len(users),
                  relevant_items=int(pos[users].nnz),
                  relevant_unknown_items=int((rel & (t_users >= 0) & (t_items < 0)).sum()))

    n_neg = min(n_negatives, n_items)
    hit_sum = {k: np.zeros(len(users)) for k in ks}
    ndcg_sum = {k: np.zeros(len(users)) for k in ks}
    n_pos = np.zeros(len(users))
    for blk in _blocks(len(users), block_size, progress):
        u = users[blk]
        # Uniform sampling without replacement: the n_neg smallest of i.i.d. uniform keys.
        keys = gen.random((len(u), n_items))
        mask_rows(keys, interacted, u)
        keys[np.isneginf(keys)] = np.inf
        # Copied out of argpartition's [block, n_items] indices so that they are freed at once.
        neg = np.argpartition(keys, n_neg - 1, axis=1)[:, :n_neg].copy() if n_neg < n_items else (
            np.broadcast_to(np.arange(n_items), (len(u), n_items)))
        neg_ok = np.isfinite(np.take_along_axis(keys, neg, axis=1))
        del keys
        scores = np.array(model._score(u), dtype=np.float32)
        scores[np.isnan(scores)] = -np.inf
        neg_scores = np.where(neg_ok, np.take_along_axis(scores, neg, axis=1), -np.inf)
        sub = pos[u]
        rows = np.repeat(np.arange(len(u)), np.diff(sub.indptr))
        pos_scores = scores[rows, sub.indices]
        # Pessimistic ties: a negative scored equal to the held-out item ranks above it.
        rank = ((neg_scores[rows] >= pos_scores[:, None]) & neg_ok[rows]).sum(axis=1)
        n_pos[blk] = np.bincount(rows, minlength=len(u))
        for k in ks:
            hit = rank < k
            hit_sum[k][blk] = np.bincount(rows, weights=hit, minlength=len(u))
            gain = np.where(hit, 1.0 / np.log2(rank + 2.0), 0.0)
            ndcg_sum[k][blk] = np.bincount(rows, weights=gain, minlength=len(u))
    per_user: dict[str, Any] = {"user_id": model.user_vocab_.ids(users)}
    denom = np.maximum(n_pos, 1)
    for k in ks:
        per_user[f"sampled_hit@{k}"] = hit_sum[k] / denom
        per_user[f"sampled_ndcg@{k}"] = ndcg_sum[k] / denom
    summary = {key: float(np.mean(v)) for key, v in per_user.items()
               if key != "user_id" and len(v)}
    return pd.DataFrame(per_user), summary


__all__ = ["Protocol", "evaluate", "evaluate_rated_items", "rating_errors_per_user"]
