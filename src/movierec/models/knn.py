"""Neighbourhood models: item-based and user-based k-nearest neighbours.

Both share one engine. Similarities between the columns of a (centred) value matrix are computed
by sparse products in column blocks, shrunk, and pruned to each target's `n_neighbors` most
similar positive neighbours, so the stored model is a sparse matrix with at most n_neighbors
entries per row (`neighbors_[t, n] = s(t, n)`, t the target, n one of its neighbours). (The
parameter was called `k` before; `k` is the list length everywhere else. The old name is still
accepted with a DeprecationWarning.)

Two uses of the same neighbourhood:

* ranking (`score`) is the neighbourhood sum over binary interactions (Deshpande & Karypis 2004),
  the top-N form that implicit-feedback evaluation calls for;
* rating prediction (`predict`) is the baseline-corrected weighted average (Koren 2010, eq. 3;
  Surprise's `KNNBaseline`), restricted to the neighbours the context has rated.

So both classes always predict ratings; `feedback` only chooses which matrix the similarities
are computed from.

Fold-in (`_score_history`, a new user given a few ratings, nothing refitted): ItemKNN sums the
stored neighbourhoods of the rated items, exactly the ranking score of a training user with
that history; UserKNN computes the new user's similarity to every training user the way `fit`
did (same centring, cosine and shrinkage), keeps the n_neighbors most similar, and sums their
rows.
"""

from __future__ import annotations

import logging
from typing import ClassVar, Self

import numpy as np
import scipy.sparse as sp

from movierec.data.dataset import Dataset
from movierec.models.base import Recommender, check_param, is_int
from movierec.models.baseline import baseline_predict, clip_to_scale, fit_biases
from movierec.models.space import Float, Int, SearchSpace
from movierec.random import RNGLike

__all__ = ["ItemKNN", "UserKNN", "similarity_matrix", "similarity_pairs"]

logger = logging.getLogger(__name__)

SIMILARITIES = ("cosine", "pearson", "adjusted_cosine", "pearson_baseline")
FEEDBACK = ("implicit", "explicit")
# Bytes of the dense similarity block computed at once (targets x block columns, float32 + counts).
_BLOCK_BYTES = 1 << 27
_PAIR_BLOCK = 8192
# Products above which `fit` warns that the similarity will take long (tens of minutes on a core).
_SLOW_PAIRS = 1e11


def _center(values: sp.csr_matrix, by: np.ndarray, axis: int) -> sp.csr_matrix:
    """Subtract from each stored entry the mean of its row (axis=0) or column (axis=1)."""
    m = values.tocoo()
    idx = m.row if axis == 0 else m.col
    return sp.csr_matrix((m.data - by[idx], (m.row, m.col)), shape=m.shape)


def _means(values: sp.csr_matrix, axis: int) -> np.ndarray:
    """Mean of the stored entries of each row (axis=0) or column (axis=1); 0 where empty."""
    s = np.asarray(values.sum(axis=1 - axis)).ravel()
    n = (
        np.diff(values.indptr)
        if axis == 0
        else np.bincount(values.indices, minlength=values.shape[1])
    )
    return np.divide(s, n, out=np.zeros_like(s, dtype=np.float64), where=n > 0)


def similarity_matrix(values: sp.csr_matrix, *, k: int, shrinkage: float = 0.0) -> sp.csr_matrix:
    """Cosine similarity between the columns of `values`, pruned to the top-k per column.

    s(a, b) = ⟨v_a, v_b⟩ / (‖v_a‖ ‖v_b‖) · n_ab / (n_ab + shrinkage), with n_ab the number of
    rows where both columns are stored; self-similarity is 0 and only positive similarities are
    kept. Computed for a block of targets at a time, never as a whole n x n matrix: the block
    holds `_BLOCK_BYTES // (16 n)` targets, so with the sparse product, its dense copy and the
    top-k temporaries the working memory stays under about 4 x `_BLOCK_BYTES` (512 MB) whatever
    n is, besides the input, its normalized copy and transpose (about 36 bytes a stored value)
    and the result (n x k). Time grows with Σ_c m_c², m_c the number of stored values of context
    row c, since every pair of values in a row is multiplied once.

    Args:
        values: context x target sparse matrix (e.g. users x items for item-item similarity).
        k: neighbours kept per target (column).
        shrinkage: shrinkage towards 0 for pairs with little common support (0 = none).

    Returns:
        CSR [n_targets, n_targets] whose row t holds the (≤ k) neighbours of target t.
    """
    v = sp.csr_matrix(values, dtype=np.float64)
    v.sum_duplicates()
    n = v.shape[1]
    norms = np.sqrt(np.bincount(v.indices, weights=v.data * v.data, minlength=n))
    inv = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    # context x target (CSR) and its transpose: block rows of the transpose times the whole
    # matrix touch only the block's own values, so no block pays a pass over all of them.
    vn = sp.csr_matrix((v.data * inv[v.indices], v.indices, v.indptr), shape=v.shape)
    del v
    vn_t = sp.csr_matrix(vn.T)
    binary = binary_t = None
    if shrinkage > 0:
        binary = sp.csr_matrix((np.ones_like(vn.data), vn.indices, vn.indptr), shape=vn.shape)
        binary_t = sp.csr_matrix(binary.T)
    block = max(1, _BLOCK_BYTES // (16 * max(n, 1)))
    kk = min(k, n)
    rows, cols, vals = [], [], []
    for start in range(0, n, block):
        stop = min(n, start + block)
        # [block, n]: row b holds s(start + b, ·), equal to column start + b of the full matrix.
        sims = (vn_t[start:stop] @ vn).toarray()
        if binary is not None and binary_t is not None:
            common = (binary_t[start:stop] @ binary).toarray()
            common /= common + shrinkage
            sims *= common
            del common
        sims[np.arange(stop - start), np.arange(start, stop)] = 0.0
        # Select on the negated block laid out [n, block] as before this loop ran over block
        # rows: argpartition then cuts through ties at the k-th value exactly as it always did,
        # so the neighbourhoods (and the reference figures) are unchanged.
        neg = np.negative(sims.T, order="C")
        del sims
        if kk < n:
            top = np.argpartition(neg, kk - 1, axis=0)[:kk]
        else:
            top = np.broadcast_to(np.arange(n)[:, None], neg.shape)
        top_vals = -np.take_along_axis(neg, top, axis=0)
        del neg
        keep = top_vals > 0
        rows.append(np.broadcast_to(np.arange(start, stop, dtype=np.int32), top.shape)[keep])
        cols.append(top[keep].astype(np.int32))
        vals.append(top_vals[keep].astype(np.float32))
    # rows = target, cols = neighbour: row t lists t's neighbours.
    out = sp.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n)
    )
    out.sort_indices()
    return out


def similarity_pairs(values: sp.spmatrix) -> float:
    """Products `similarity_matrix(values)` multiplies: Σ over context rows of (stored values)².

    For ItemKNN on a users x items matrix that is Σ_u |I_u|², for UserKNN Σ_i |U_i|²: a few
    very popular items make UserKNN on a large catalog far slower than ItemKNN.
    """
    per_row = np.diff(sp.csr_matrix(values).indptr).astype(np.float64)
    return float((per_row * per_row).sum())


def _weighted_average(
    neighbors: sp.csr_matrix,
    residuals: sp.csr_matrix,
    rated: sp.csr_matrix,
    target: np.ndarray,
    context: np.ndarray,
) -> np.ndarray:
    """Σ_n s(t, n) res[c, n] / Σ_n s(t, n) over neighbours n of t rated in c; NaN where none."""
    out = np.full(len(target), np.nan)
    for start in range(0, len(target), _PAIR_BLOCK):
        t = target[start : start + _PAIR_BLOCK]
        c = context[start : start + _PAIR_BLOCK]
        w = neighbors[t]
        num = np.asarray(w.multiply(residuals[c]).sum(axis=1)).ravel()
        den = np.asarray(w.multiply(rated[c]).sum(axis=1)).ravel()
        ok = den > 0
        out[start : start + len(t)][ok] = num[ok] / den[ok]
    return out


class _KNN(Recommender):
    """Shared engine of ItemKNN and UserKNN (see the module docstring)."""

    predicts_ratings: ClassVar[bool] = True
    supports_fold_in: ClassVar[bool] = True
    deterministic: ClassVar[bool] = True
    renamed_params: ClassVar[dict[str, str]] = {"k": "n_neighbors"}
    # True: targets are items (columns of the user x item matrix); False: targets are users.
    _item_based: ClassVar[bool] = True

    def __init__(self, *, n_neighbors: int, similarity: str, shrinkage: float,
                 feedback: str) -> None:
        check_param("n_neighbors", n_neighbors, is_int(n_neighbors, 1), "an integer ≥ 1")
        check_param("similarity", similarity, similarity in SIMILARITIES, f"one of {SIMILARITIES}")
        check_param(
            "shrinkage",
            shrinkage,
            isinstance(shrinkage, int | float)
            and not isinstance(shrinkage, bool)
            and np.isfinite(shrinkage)
            and shrinkage >= 0,
            "a number ≥ 0",
        )
        check_param("feedback", feedback, feedback in FEEDBACK, f"one of {FEEDBACK}")
        check_param(
            "similarity",
            similarity,
            feedback == "explicit" or similarity == "cosine",
            "'cosine' with feedback='implicit' (centring needs ratings)",
        )
        self.n_neighbors = n_neighbors
        self.similarity = similarity
        self.shrinkage = shrinkage
        self.feedback = feedback

    def fit(
        self,
        train: Dataset,
        valid: Dataset | None = None,
        *,
        rng: RNGLike = None,
        progress: bool = True,
    ) -> Self:
        """Learn the baselines and the pruned neighbourhoods; returns self."""
        u, i = self._setup(train)
        ratings = train.ratings["rating"].to_numpy(np.float64)
        mu, b_u, b_i = fit_biases(u, i, ratings, self.n_users, self.n_items)
        self.global_mean_, self.user_bias_, self.item_bias_ = mu, b_u, b_i
        res = ratings - baseline_predict(mu, b_u, b_i, u, i)
        self.residuals_ = sp.csr_matrix(
            (res.astype(np.float32), (u, i)), shape=(self.n_users, self.n_items)
        )
        self.residuals_.sort_indices()
        values = self._similarity_input(train)
        if not self._item_based:
            values = sp.csr_matrix(values.T)
        pairs = similarity_pairs(values)
        if pairs > _SLOW_PAIRS:
            hint = "" if self._item_based else (
                f"; itemknn multiplies {similarity_pairs(self.seen_):.2g} on the same data")
            logger.warning(
                "%s: the similarities of %d targets multiply about %.2g pairs of co-rated "
                "values, roughly %.0f minutes on one core at 10^8 a second (memory stays "
                "bounded: a block of targets at a time)%s",
                type(self).__name__, values.shape[1], pairs, pairs / 1e8 / 60, hint)
        self.neighbors_ = similarity_matrix(values, k=self.n_neighbors, shrinkage=self.shrinkage)
        self._cache: dict[str, sp.csr_matrix] = {}
        return self

    def _similarity_input(self, train: Dataset) -> sp.csr_matrix:
        """Users x items matrix whose (target-axis) columns are compared."""
        if self.feedback == "implicit":
            return self.seen_.astype(np.float64)
        r = train.matrix("rating").astype(np.float64)
        # Axis of the compared entity's mean: items (1) for ItemKNN, users (0) for UserKNN.
        own, other = (1, 0) if self._item_based else (0, 1)
        if self.similarity == "pearson":
            return _center(r, _means(r, own), own)
        if self.similarity == "adjusted_cosine":
            return _center(r, _means(r, other), other)
        if self.similarity == "pearson_baseline":
            return self.residuals_.astype(np.float64)
        return r

    def _cached(self, key: str) -> sp.csr_matrix:
        cache = self.__dict__.setdefault("_cache", {})
        if key not in cache:
            source = {
                "neighbors": self.neighbors_,
                "residuals": self.residuals_,
                "seen": self.seen_,
            }[key.removesuffix("_t")]
            cache[key] = sp.csr_matrix(source.T) if key.endswith("_t") else source
        return cache[key]

    def _predict(self, user_codes: np.ndarray, item_codes: np.ndarray) -> np.ndarray:
        """r̂_ui = b_ui + Σ_n s(t, n)(r_cn − b_cn) / Σ_n s(t, n), n ∈ N(t) rated by c."""
        self._check_fitted()
        u = np.asarray(user_codes)
        i = np.asarray(item_codes)
        pred = baseline_predict(self.global_mean_, self.user_bias_, self.item_bias_, u, i)
        known = np.flatnonzero((u >= 0) & (i >= 0))
        if self._item_based:
            target, context, suffix = i[known], u[known], ""
        else:
            target, context, suffix = u[known], i[known], "_t"
        adj = _weighted_average(
            self.neighbors_,
            self._cached("residuals" + suffix),
            self._cached("seen" + suffix),
            target,
            context,
        )
        ok = ~np.isnan(adj)
        pred[known[ok]] += adj[ok]
        return clip_to_scale(pred, self.rating_scale_).astype(np.float32)


class ItemKNN(_KNN):
    """Item-based k-nearest neighbours (Sarwar et al., WWW 2001; Deshpande & Karypis, TOIS 2004).

    Ranking: score(u, j) = Σ_{i ∈ I_u} s_ij, with s_ij kept only when i is among the
    n_neighbors most similar items of j (self-similarity 0). With the defaults (binary cosine,
    100 neighbours) this is exactly the project's reference `itemknn`.

    Rating prediction (Koren 2010, eq. 3): r̂_uj = b_uj + Σ_{i ∈ N(j) ∩ I_u} s_ij (r_ui − b_ui)
    / Σ_{i ∈ N(j) ∩ I_u} s_ij, N(j) the neighbours of j, with ALS baselines b (Surprise
    `BaselineOnly` defaults); the baseline alone where j has no rated neighbour. Clipped to the
    rating scale.

    Args:
        n_neighbors: neighbours kept per item (default 100, ≥ 1; formerly `k`, still accepted
            with a DeprecationWarning).
        similarity: "cosine" (default), "pearson" (item-mean-centred cosine), "adjusted_cosine"
            (user-mean-centred cosine) or "pearson_baseline" (cosine of the residuals r − b_ui).
            Only "cosine" is allowed with implicit feedback.
        shrinkage: s_ij ← s_ij · n_ij / (n_ij + shrinkage), n_ij the common users (default 0).
        feedback: "implicit" (default): similarities from the binary matrix; "explicit": from the
            ratings (centred as `similarity` says).
    """

    name: ClassVar[str] = "itemknn"
    search_space: ClassVar[SearchSpace] = {
        "n_neighbors": Int(5, 500, log=True),
        "shrinkage": Float(0.0, 100.0),
    }
    _item_based: ClassVar[bool] = True

    def __init__(
        self,
        *,
        n_neighbors: int = 100,
        similarity: str = "cosine",
        shrinkage: float = 0.0,
        feedback: str = "implicit",
    ) -> None:
        super().__init__(n_neighbors=n_neighbors, similarity=similarity, shrinkage=shrinkage,
                         feedback=feedback)

    def _score(self, user_codes: np.ndarray, item_codes: np.ndarray | None = None) -> np.ndarray:
        self._check_fitted()
        neighbors_t = self._cached("neighbors_t")  # [neighbour i, target j] = s_ij
        if item_codes is not None:
            neighbors_t = neighbors_t[:, item_codes]
        return np.asarray((self.seen_[user_codes] @ neighbors_t).toarray(), dtype=np.float32)

    def _score_history(self, item_codes: np.ndarray, ratings: np.ndarray) -> np.ndarray:
        """Scores float32 [n_items] of a new user: score(j) = Σ_{i rated} s_ij.

        The new user's binary history row times the item-item weights, the same ranking score a
        training user with that history gets (ratings only mark which items were rated, as in
        `_score`); codes of −1 (unknown items) are ignored.
        """
        self._check_fitted()
        codes = np.unique(np.asarray(item_codes, dtype=np.int64))
        codes = codes[codes >= 0]
        neighbors_t = self._cached("neighbors_t")  # [neighbour i, target j] = s_ij
        return np.asarray(neighbors_t[codes].sum(axis=0), dtype=np.float32).ravel()

    def _item_similarity(self, item_codes: np.ndarray, columns: np.ndarray | None = None
                         ) -> np.ndarray:
        """ItemKNN's own similarities: entry [a, b] = s_ab where a is among b's kept neighbours.

        0 elsewhere; what having item a adds to item b's ranking score.
        """
        self._check_fitted()
        rows = self._cached("neighbors_t")[np.asarray(item_codes, dtype=np.int64)]
        if columns is not None:
            rows = rows[:, np.asarray(columns, dtype=np.int64)]
        return np.asarray(rows.toarray(), dtype=np.float32)


class UserKNN(_KNN):
    """User-based k-nearest neighbours (Herlocker et al., SIGIR 1999; Resnick et al., CSCW 1994).

    Ranking: score(u, j) = Σ_{v ∈ N(u)} s_uv x_vj, N(u) the n_neighbors most similar users of u
    and x the binary interaction matrix.

    Rating prediction: r̂_uj = b_uj + Σ_{v ∈ N(u) ∩ U_j} s_uv (r_vj − b_vj) / Σ s_uv (the
    baseline alone where no neighbour rated j). Clipped to the rating scale.

    Args:
        n_neighbors: neighbours kept per user (default 100, ≥ 1; formerly `k`, still accepted
            with a DeprecationWarning).
        similarity: "cosine" (default), "pearson" (user-mean-centred cosine), "adjusted_cosine"
            (item-mean-centred cosine) or "pearson_baseline" (cosine of the residuals r − b_ui).
            Only "cosine" is allowed with implicit feedback.
        shrinkage: s_uv ← s_uv · n_uv / (n_uv + shrinkage), n_uv the common items (default 0).
        feedback: "implicit" (default): similarities from the binary matrix; "explicit": from the
            ratings (centred as `similarity` says).
    """

    name: ClassVar[str] = "userknn"
    search_space: ClassVar[SearchSpace] = {
        "n_neighbors": Int(5, 500, log=True),
        "shrinkage": Float(0.0, 100.0),
    }
    _item_based: ClassVar[bool] = False

    def __init__(
        self,
        *,
        n_neighbors: int = 100,
        similarity: str = "cosine",
        shrinkage: float = 0.0,
        feedback: str = "implicit",
    ) -> None:
        super().__init__(n_neighbors=n_neighbors, similarity=similarity, shrinkage=shrinkage,
                         feedback=feedback)

    def _score(self, user_codes: np.ndarray, item_codes: np.ndarray | None = None) -> np.ndarray:
        self._check_fitted()
        seen = self.seen_ if item_codes is None else self.seen_[:, item_codes]
        return np.asarray((self.neighbors_[user_codes] @ seen).toarray(), dtype=np.float32)

    def _score_history(self, item_codes: np.ndarray, ratings: np.ndarray) -> np.ndarray:
        """Scores float32 [n_items] of a new user: score(j) = Σ_{v ∈ N(new)} s(new, v) x_vj.

        s(new, v) is computed as in `fit`: the new user's row is built like the training rows
        (binary, raw, user-centred, item-centred or baseline residuals, as `feedback` and
        `similarity` say), compared by cosine with every training user's row, shrunk by
        n / (n + shrinkage) with n the common items, and pruned to the n_neighbors most similar
        positive neighbours. Codes of −1 (unknown items) are ignored.
        """
        self._check_fitted()
        codes = np.asarray(item_codes, dtype=np.int64)
        keep = codes >= 0
        codes, r = codes[keep], np.asarray(ratings, dtype=np.float64)[keep]
        if len(codes) == 0:
            return np.zeros(self.n_items, dtype=np.float32)
        values, norms = self._user_rows()
        row = np.zeros(self.n_items)
        row[codes] = self._new_user_values(codes, r)
        norm = float(np.linalg.norm(row))
        sims = values @ row
        sims = np.divide(sims, norms * norm, out=np.zeros_like(sims),
                         where=(norms > 0) & (norm > 0))
        if self.shrinkage > 0:
            present = np.zeros(self.n_items)
            present[codes] = 1.0
            common = self.seen_ @ present
            sims *= common / (common + self.shrinkage)
        kk = min(self.n_neighbors, len(sims))
        top = np.argpartition(-sims, kk - 1)[:kk] if kk < len(sims) else np.arange(len(sims))
        top = top[sims[top] > 0]
        scores = self.seen_[top].T @ sims[top]
        return np.asarray(scores, dtype=np.float32).ravel()

    def _user_rows(self) -> tuple[sp.csr_matrix, np.ndarray]:
        """The training users' rows that `fit` compared, and their norms (cached per object)."""
        cache = self.__dict__.setdefault("_cache", {})
        if "user_rows" not in cache:
            if self.feedback == "implicit":
                values = self.seen_.astype(np.float64)
            elif self.similarity == "pearson_baseline":
                values = self.residuals_.astype(np.float64)
            else:
                r = self._rating_matrix()
                if self.similarity == "pearson":
                    values = _center(r, _means(r, 0), 0)
                elif self.similarity == "adjusted_cosine":
                    values = _center(r, _means(r, 1), 1)
                else:
                    values = r
            values = sp.csr_matrix(values)
            norms = np.sqrt(np.asarray(values.multiply(values).sum(axis=1)).ravel())
            cache["user_rows"] = (values, norms)
        return cache["user_rows"]

    def _rating_matrix(self) -> sp.csr_matrix:
        """Training ratings rebuilt from the stored state: r = b_ui + (r − b_ui)."""
        seen = self.seen_.tocoo()
        base = baseline_predict(self.global_mean_, self.user_bias_, self.item_bias_,
                                seen.row, seen.col)
        pattern = sp.csr_matrix((base, (seen.row, seen.col)), shape=seen.shape)
        return sp.csr_matrix(pattern + self.residuals_.astype(np.float64))

    def _new_user_values(self, codes: np.ndarray, r: np.ndarray) -> np.ndarray:
        """The new user's entries at `codes`, centred as the training rows were."""
        if self.feedback == "implicit":
            return np.ones(len(codes))
        if self.similarity == "pearson":
            return r - r.mean()
        if self.similarity == "adjusted_cosine":
            cache = self.__dict__.setdefault("_cache", {})
            if "item_means" not in cache:
                cache["item_means"] = _means(self._rating_matrix(), 1)
            return r - cache["item_means"][codes]
        if self.similarity == "pearson_baseline":
            res = r - self.global_mean_ - self.item_bias_[codes]
            # The user bias as the last ALS step of `fit_biases` (reg_user 15) would set it.
            return res - res.sum() / (15.0 + len(codes))
        return r
