"""Pure, vectorized metric functions over blocks of users (imports nothing of movierec).

Ranking metrics take `hits: bool[u, k]` — `hits[r, j]` is true when the item at rank `j + 1` of
user `r`'s list is relevant — and `n_relevant: int[u]`, the number of relevant items of each user.
Each returns `float64[u]`, one value per user; summaries are means over users. A list is truncated
to a smaller k by slicing columns (`hits[:, :k]`), so ranking happens once at the largest k.

Beyond-accuracy metrics take blocks of top-k item codes `lists: int[u, k]`, padded with -1 where a
user has fewer than k candidates.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import scipy.sparse as sp

Direction = Literal["higher", "lower"]
Family = Literal["rating", "ranking", "sampled", "beyond", "rated"]

#: The list length that tables, plots and the CLI show when it was evaluated (else the largest).
DEFAULT_K = 10


@dataclass(frozen=True)
class Metric:
    """One entry of the metric catalogue.

    Attributes:
        name: the summary key before "@k" ("ndcg", "rmse").
        family: "rating" (error on the rating scale), "ranking" (full-ranking accuracy @k),
            "sampled" (1-plus-n-negatives protocol @k), "beyond" (beyond-accuracy @k) or "rated"
            (the rated-items protocol and scaled errors of experiment files).
        direction: which way an optimiser or a significance test orients it.
        label: the short column header of tables ("NDCG", "RMSE").
        at_k: whether the metric is computed per list length ("ndcg@10") or once ("rmse").
        judged: whether a better value is better *by definition*. Accuracy metrics are; beyond-
            accuracy ones (novelty, ARP, diversity...) are descriptions of a list, and a table
            must not crown a "best" among them.
    """

    name: str
    family: Family
    direction: Direction
    label: str
    at_k: bool
    judged: bool

    def key(self, k: int | None = None) -> str:
        """The summary key: "ndcg@10" for metrics at k, the bare name otherwise."""
        return f"{self.name}@{k}" if self.at_k and k is not None else self.name


def _m(name: str, family: Family, direction: Direction, label: str) -> Metric:
    at_k = family in ("ranking", "sampled", "beyond")
    return Metric(name, family, direction, label, at_k, judged=family != "beyond")


#: Every metric movierec reports, in table order. A new metric is one entry here plus its function.
CATALOGUE: dict[str, Metric] = {m.name: m for m in (
    _m("rmse", "rating", "lower", "RMSE"),
    _m("mae", "rating", "lower", "MAE"),
    _m("mse", "rating", "lower", "MSE"),
    _m("precision", "ranking", "higher", "P"),
    _m("recall", "ranking", "higher", "R"),
    _m("f1", "ranking", "higher", "F1"),
    _m("ndcg", "ranking", "higher", "NDCG"),
    _m("map", "ranking", "higher", "MAP"),
    _m("mrr", "ranking", "higher", "MRR"),
    _m("hit", "ranking", "higher", "HR"),
    _m("sampled_hit", "sampled", "higher", "sHR"),
    _m("sampled_ndcg", "sampled", "higher", "sNDCG"),
    _m("coverage", "beyond", "higher", "cov"),
    _m("diversity", "beyond", "higher", "div"),
    _m("novelty", "beyond", "higher", "nov"),
    _m("arp", "beyond", "lower", "ARP"),
    _m("personalization", "beyond", "higher", "pers"),
    _m("gini", "beyond", "lower", "Gini"),
    _m("precision_rated", "rated", "higher", "P_rated"),
    _m("recall_rated", "rated", "higher", "R_rated"),
    _m("f1_rated", "rated", "higher", "F1_rated"),
    _m("rmse_scaled", "rated", "lower", "RMSE[0,1]"),
)}

#: Metric name (the part before "@k") -> whether higher or lower values are better.
METRICS: dict[str, Direction] = {name: m.direction for name, m in CATALOGUE.items()}


def names(*families: Family) -> tuple[str, ...]:
    """The catalogue's metric names of the given families, in table order."""
    return tuple(name for name, m in CATALOGUE.items() if m.family in families)


def metric_info(key: str) -> Metric:
    """The catalogue entry of a summary key such as "ndcg@10", "rmse" or "NDCG@10".

    Raises:
        KeyError: the metric is unknown; the message lists the known names.
    """
    name = key.strip().lower().split("@", 1)[0]
    if name not in CATALOGUE:
        raise KeyError(f"unknown metric {key!r}; known: {', '.join(CATALOGUE)}")
    return CATALOGUE[name]


def direction(key: str) -> Direction:
    """Direction of a summary key such as "ndcg@10" or "rmse" ("higher" or "lower" is better).

    Raises:
        KeyError: the metric is unknown.
    """
    return metric_info(key).direction


def best_direction(key: str) -> Direction | None:
    """The direction in which a value is better by definition, or None (beyond-accuracy, unknown).

    Tables bold a "best" value only where this is not None.
    """
    name = key.split("@", 1)[0]
    m = CATALOGUE.get(name)
    return m.direction if m is not None and m.judged else None


def default_k(ks: Iterable[int]) -> int:
    """The list length tables show: `DEFAULT_K` when it was evaluated, else the largest k."""
    ks = [int(k) for k in ks]
    if not ks:
        return DEFAULT_K
    return DEFAULT_K if DEFAULT_K in ks else max(ks)


def short_label(key: str) -> str:
    """Column header of a summary key: "ndcg@10" -> "NDCG@10"; unknown names unchanged."""
    name, _, k = key.partition("@")
    m = CATALOGUE.get(name)
    label = m.label if m is not None else name
    return label + (f"@{k}" if k else "")


# --- ranking metrics ---------------------------------------------------------------------------
def _as_hits(hits: np.ndarray) -> np.ndarray:
    h = np.asarray(hits, dtype=bool)
    if h.ndim != 2:
        raise ValueError(f"hits must be a 2-d [users, k] array, got shape {h.shape}")
    return h


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.zeros(np.broadcast(num, den).shape, dtype=np.float64)
    np.divide(num, den, out=out, where=den > 0)
    return out


def discounts(k: int) -> np.ndarray:
    """Log2 rank discounts 1 / log2(rank + 1) for ranks 1..k (float64 [k])."""
    return 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))


def precision(hits: np.ndarray) -> np.ndarray:
    """Precision@k = hits in the top k / k (k = number of columns, padding counts as a miss)."""
    h = _as_hits(hits)
    return _safe_div(h.sum(axis=1), np.full(h.shape[0], h.shape[1]))


def recall(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """Recall@k = hits in the top k / number of relevant items (0 for users with none)."""
    h = _as_hits(hits)
    return _safe_div(h.sum(axis=1), n_relevant)


def f1(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """F1@k, the harmonic mean of precision@k and recall@k (0 when both are 0)."""
    p, r = precision(hits), recall(hits, n_relevant)
    return _safe_div(2.0 * p * r, p + r)


def ndcg(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """NDCG@k with binary relevance and log2 discount.

    DCG = sum over hit ranks i of 1 / log2(i + 1); the ideal DCG places min(n_relevant, k)
    relevant items at ranks 1, 2, ...
    """
    h = _as_hits(hits)
    k = h.shape[1]
    disc = discounts(k)
    dcg = h @ disc
    ideal_cum = np.concatenate([[0.0], np.cumsum(disc)])
    n_ideal = np.minimum(np.asarray(n_relevant, dtype=np.int64), k)
    return _safe_div(dcg, ideal_cum[np.maximum(n_ideal, 0)])


def average_precision(hits: np.ndarray, n_relevant: np.ndarray) -> np.ndarray:
    """AP@k (MAP@k once averaged): sum of precision@i at hit ranks i <= k / min(n_relevant, k)."""
    h = _as_hits(hits)
    k = h.shape[1]
    prec_at = np.cumsum(h, axis=1) / np.arange(1, k + 1, dtype=np.float64)
    return _safe_div((prec_at * h).sum(axis=1), np.minimum(np.asarray(n_relevant), k))


def reciprocal_rank(hits: np.ndarray) -> np.ndarray:
    """Reciprocal rank@k (MRR@k once averaged): 1 / rank of the first hit, 0 without a hit."""
    h = _as_hits(hits)
    any_hit = h.any(axis=1)
    first = np.argmax(h, axis=1)
    return np.where(any_hit, 1.0 / (first + 1.0), 0.0)


def hit_rate(hits: np.ndarray) -> np.ndarray:
    """Hit@k: 1.0 when at least one of the top k items is relevant, else 0.0."""
    return np.asarray(_as_hits(hits).any(axis=1), dtype=np.float64)


# --- rating metrics ----------------------------------------------------------------------------
def rmse(y: np.ndarray, yhat: np.ndarray) -> float:
    """Root mean squared error between true and predicted ratings (NaN for no ratings)."""
    y, yhat = np.asarray(y, dtype=np.float64), np.asarray(yhat, dtype=np.float64)
    if y.shape != yhat.shape:
        raise ValueError(f"y {y.shape} and yhat {yhat.shape} differ in shape")
    return float(np.sqrt(np.mean((y - yhat) ** 2))) if y.size else float("nan")


def mae(y: np.ndarray, yhat: np.ndarray) -> float:
    """Mean absolute error between true and predicted ratings (NaN for no ratings)."""
    y, yhat = np.asarray(y, dtype=np.float64), np.asarray(yhat, dtype=np.float64)
    if y.shape != yhat.shape:
        raise ValueError(f"y {y.shape} and yhat {yhat.shape} differ in shape")
    return float(np.mean(np.abs(y - yhat))) if y.size else float("nan")


def rated_precision_recall(
    users: np.ndarray, recommended: np.ndarray, relevant: np.ndarray, n_users: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-user precision, recall and F1 over the items each user rated (no ranking, no k).

    Every row is one rated (user, item) pair; an item is "recommended" when the model's predicted
    rating clears a threshold, "relevant" when the true one does. For user u, with TP_u the rows
    both recommended and relevant: precision_u = TP_u / |recommended_u|, recall_u = TP_u /
    |relevant_u|, F1_u = 2 P R / (P + R). Empty sets: precision is NaN for a user with nothing
    recommended, recall NaN for a user with nothing relevant (undefined, not 0, so that averages
    over users skip them); F1 is NaN where either is NaN and 0 where P + R = 0.

    Args:
        users: user index of each row, in [0, n_users).
        recommended: bool per row, predicted rating >= threshold.
        relevant: bool per row, true rating >= threshold.
        n_users: number of users (length of the outputs).

    Returns:
        (precision, recall, f1), each float64[n_users]; users without rows get NaN everywhere.
    """
    users = np.asarray(users, dtype=np.int64)
    rec = np.asarray(recommended, dtype=bool)
    rel = np.asarray(relevant, dtype=bool)
    if not (users.shape == rec.shape == rel.shape) or users.ndim != 1:
        raise ValueError(f"users {users.shape}, recommended {rec.shape} and relevant {rel.shape} "
                         "must be 1-d arrays of one length")
    n_rec = np.bincount(users, weights=rec, minlength=n_users)
    n_rel = np.bincount(users, weights=rel, minlength=n_users)
    tp = np.bincount(users, weights=rec & rel, minlength=n_users)
    precision = np.where(n_rec > 0, _safe_div(tp, n_rec), np.nan)
    recall = np.where(n_rel > 0, _safe_div(tp, n_rel), np.nan)
    f1 = np.where(np.isnan(precision) | np.isnan(recall), np.nan,
                  _safe_div(2 * np.nan_to_num(precision) * np.nan_to_num(recall),
                            np.nan_to_num(precision) + np.nan_to_num(recall)))
    return precision, recall, f1


# --- beyond accuracy ---------------------------------------------------------------------------
def _lists(lists: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    arr = np.asarray(lists)
    if arr.ndim != 2:
        raise ValueError(f"lists must be a 2-d [users, k] array, got shape {arr.shape}")
    return arr.astype(np.int64, copy=False), arr >= 0


def item_counts(lists: np.ndarray, n_items: int) -> np.ndarray:
    """How many lists contain each item code (int64 [n_items]); -1 padding is ignored."""
    arr, valid = _lists(lists)
    return np.bincount(arr[valid], minlength=n_items)


def coverage(lists: np.ndarray, n_catalog: int) -> float:
    """Catalog coverage: distinct recommended items / n_catalog."""
    arr, valid = _lists(lists)
    return float(len(np.unique(arr[valid])) / n_catalog) if n_catalog > 0 else float("nan")


def _mean_over_list(values: np.ndarray, lists: np.ndarray) -> np.ndarray:
    arr, valid = _lists(lists)
    v = np.where(valid, np.asarray(values, dtype=np.float64)[np.where(valid, arr, 0)], 0.0)
    n = valid.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, v.sum(axis=1) / np.maximum(n, 1), np.nan)


def novelty(lists: np.ndarray, popularity: np.ndarray) -> np.ndarray:
    """Mean self-information -log2(p_i) of each list's items (float64 [u], NaN for empty lists).

    Args:
        lists: item codes [u, k], -1 padding ignored.
        popularity: p_i per item code, the share of training users who rated item i
            (#users who rated i / #training users) — the common self-information definition.
            Items with p_i = 0 (never rated in training; normally never recommended) would have
            infinite novelty and are given half the smallest positive share to stay finite.
    """
    p = np.asarray(popularity, dtype=np.float64)
    floor = p[p > 0].min() / 2 if (p > 0).any() else 1.0
    info = -np.log2(np.where(p > 0, p, floor))
    return _mean_over_list(info, lists)


def arp(lists: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Average recommendation popularity: mean training rating count of each list's items."""
    return _mean_over_list(counts, lists)


def intra_list_diversity(lists: np.ndarray, features: sp.spmatrix | np.ndarray) -> np.ndarray:
    """Intra-list diversity: mean pairwise cosine distance (1 - cosine) of the items' features.

    With binary genre vectors as features, two items of identical genres have distance 0 and two
    items sharing no genre distance 1. Items whose feature row is empty (no genres) are left out
    of the pairs; a list with fewer than two featured items gets NaN. Computed without pairs:
    the sum of pairwise cosines of unit vectors v_1..v_m is (||sum v||^2 - m) / 2.

    Args:
        lists: item codes [u, k], -1 padding ignored.
        features: items x features matrix (CSR or dense) in the same item codes.

    Returns:
        float64 [u].
    """
    arr, valid = _lists(lists)
    feats = sp.csr_matrix(features, dtype=np.float64)
    norms = np.sqrt(np.asarray(feats.multiply(feats).sum(axis=1)).ravel())
    has = norms > 0
    unit = sp.diags(np.where(has, 1.0 / np.where(has, norms, 1.0), 0.0)) @ feats
    flat = np.where(valid, arr, 0).ravel()
    use = (valid.ravel() & has[flat])
    n_rows = arr.shape[0]
    rows = np.repeat(np.arange(n_rows), arr.shape[1])[use]
    pick = sp.csr_matrix((np.ones(len(rows)), (rows, flat[use])),
                         shape=(n_rows, feats.shape[0]))
    summed = pick @ unit
    sq = np.asarray(summed.multiply(summed).sum(axis=1)).ravel()
    m = np.bincount(rows, minlength=n_rows).astype(np.float64)
    pairs = m * (m - 1) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_cos = (sq - m) / 2 / pairs
    return np.where(pairs > 0, 1.0 - mean_cos, np.nan)


def personalization(lists: np.ndarray, k: int | None = None) -> float:
    """1 - mean overlap |L_a ∩ L_b| / k over all pairs of users' lists.

    Exact and O(u * k): with c_i the number of lists containing item i, the overlaps summed over
    pairs equal sum_i c_i (c_i - 1) / 2 (lists hold each item at most once).

    Args:
        lists: item codes [u, k], -1 padding ignored.
        k: list length of the overlap denominator (default: the number of columns).

    Returns:
        float in [0, 1]; NaN for fewer than two lists.
    """
    arr, valid = _lists(lists)
    u = arr.shape[0]
    k = arr.shape[1] if k is None else k
    if u < 2 or k <= 0:
        return float("nan")
    _, c = np.unique(arr[valid], return_counts=True)
    c = c.astype(np.float64)
    overlap = (c * (c - 1) / 2).sum()
    return float(1.0 - overlap / (u * (u - 1) / 2) / k)


def gini(lists: np.ndarray, n_items: int) -> float:
    """Gini index of how often each catalog item is recommended (0 = even, → 1 = concentrated)."""
    counts = np.sort(item_counts(lists, n_items).astype(np.float64))
    n, total = len(counts), counts.sum()
    if n == 0 or total == 0:
        return float("nan")
    idx = np.arange(1, n + 1)
    return float(((2 * idx - n - 1) * counts).sum() / (n * total))


__all__ = [
    "METRICS", "Direction", "arp", "average_precision", "coverage", "direction", "discounts",
    "f1", "gini", "hit_rate", "intra_list_diversity", "item_counts", "mae", "ndcg", "novelty",
    "personalization", "precision", "rated_precision_recall", "recall", "reciprocal_rank", "rmse",
]
