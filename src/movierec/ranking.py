"""The ranking kernel: block budget, top-k and candidate masks, written once.

Every ranked list in movierec comes from here: `Recommender.recommend` and the evaluator (a
block of users at a time), the ANN index (its rescored candidates and exact fallback) and the
service (one user, with a genre mask). A model only scores; this module turns a block of scores
into lists:

1. `resolve_block_size` picks how many users are scored at once (a memory budget);
2. `rank_block` copies the scores to float32 with NaN as -inf, sets excluded items (seen in
   training, or given) and items outside the candidates to -inf, and takes `topk_rows`;
3. `top_k_frame` turns a block's codes into [user_id, item_id, score, rank] in original ids.

One tie rule everywhere: among equal scores the lower item code comes first.

`DotVectors` describes the scores of a dot-product model (`Recommender.dot_vectors`), which
`movierec.ann` indexes. Imports point down: this module uses nothing of `movierec.models`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import pandas as pd
import scipy.sparse as sp

from movierec.data.vocab import Vocabulary
from movierec.errors import MovieRecError

__all__ = [
    "BYTES_PER_SCORE",
    "DEFAULT_BLOCK_SIZE",
    "DEFAULT_MEMORY_MB",
    "DotVectors",
    "block_size_for",
    "candidate_mask",
    "mask_rows",
    "progress_blocks",
    "rank_block",
    "resolve_block_size",
    "top_k_frame",
    "topk_rows",
    "user_blocks",
]


class Vocabularies(Protocol):
    """What `top_k_frame` reads of a fitted model: its user and item vocabularies."""

    user_vocab_: Vocabulary
    item_vocab_: Vocabulary


#: Working memory per (user, item) score while a block of users is ranked, in bytes. The peak is
#: while the model scores: MF's float32 output plus torch's matmul and bias sums take 16 bytes a
#: score (an ItemKNN sparse product and its dense copy 12); the float32 working copy that NaN and
#: exclusions are written into and the top-k mask (1 byte) come after. 4 more bytes cover the
#: memory allocator's slack (benchmarks/scale_scoring.py measures the peak RSS).
BYTES_PER_SCORE = 20
#: Users per block when neither `block_size` nor `max_memory_mb` is given...
DEFAULT_BLOCK_SIZE = 1024
#: ...unless that block would need more than this many MB (catalogs above ~12,000 items). Smaller
#: blocks were also faster at 60,000 items (benchmarks/scale_scoring.py): every large block
#: array is fresh memory from the kernel, whose pages are zeroed and faulted in once more.
DEFAULT_MEMORY_MB = 250.0
# Scores per row chunk of `topk_rows`. Most rows need only a 1-byte mask per score; rows handed
# back to argpartition need its int64 indices and a negated copy (12 bytes a score), so the
# top-k temporaries stay under ~13 MB whatever the block.
_TOPK_CHUNK = 1 << 20
_MB = 1e6


def block_size_for(n_items: int, max_memory_mb: float, *,
                   bytes_per_score: int = BYTES_PER_SCORE) -> int:
    """Users per block whose scores fit in `max_memory_mb`: ⌊budget / (n_items × bytes_per_score)⌋.

    Args:
        n_items: columns scored per user (the catalog size).
        max_memory_mb: working memory allowed for one block, in MB (10⁶ bytes).
        bytes_per_score: bytes per (user, item) score (default `BYTES_PER_SCORE`).

    Raises:
        ValueError: max_memory_mb is not a positive number.
        MovieRecError: not even one user fits; the message gives the memory one user needs.
    """
    if not (_is_number(max_memory_mb) and max_memory_mb > 0):
        raise ValueError(f"max_memory_mb must be a number > 0, got {max_memory_mb!r}")
    per_user = max(1, n_items) * bytes_per_score
    block = int(max_memory_mb * _MB // per_user)
    if block < 1:
        raise MovieRecError(
            f"max_memory_mb={max_memory_mb:g} cannot hold the scores of one user: ranking "
            f"{n_items:,} items needs {per_user / _MB:.2f} MB a user ({bytes_per_score} bytes a "
            "score); raise max_memory_mb")
    return block


def resolve_block_size(n_items: int, block_size: int | None = None,
                       max_memory_mb: float | None = None, *,
                       bytes_per_score: int = BYTES_PER_SCORE) -> int:
    """The users scored at once: `block_size`, or what `max_memory_mb` allows, never both.

    With neither, `DEFAULT_BLOCK_SIZE` users, fewer where that would take more than
    `DEFAULT_MEMORY_MB` (large catalogs).

    Raises:
        ValueError: both are given, or one is not positive.
        MovieRecError: max_memory_mb is too small for one user (see `block_size_for`).
    """
    if block_size is not None and max_memory_mb is not None:
        raise ValueError(f"give block_size or max_memory_mb, not both (got block_size="
                         f"{block_size!r}, max_memory_mb={max_memory_mb!r})")
    if block_size is not None:
        if not _is_positive_int(block_size):
            raise ValueError(f"block_size must be a positive integer, got {block_size!r}")
        return int(block_size)
    if max_memory_mb is not None:
        return block_size_for(n_items, max_memory_mb, bytes_per_score=bytes_per_score)
    fits = int(DEFAULT_MEMORY_MB * _MB // (max(1, n_items) * bytes_per_score))
    return max(1, min(DEFAULT_BLOCK_SIZE, fits))


def topk_rows(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k columns of every row of `scores`, best first.

    Ties are broken by the lower column index, so results are deterministic. Entries equal to
    -inf are never returned: their positions are -1 (and scores -inf) when a row has fewer than
    k finite candidates. Rows are ranked in chunks of about 10⁶ scores, so the temporaries stay
    small whatever the size of `scores`.

    Returns:
        (columns int32 [rows, k], scores float32 [rows, k]).
    """
    n_rows, n_cols = scores.shape
    cols = np.full((n_rows, k), -1, dtype=np.int32)
    vals = np.full((n_rows, k), -np.inf, dtype=np.float32)
    kk = min(k, n_cols)
    if kk <= 0:
        return cols, vals
    step = max(1, _TOPK_CHUNK // max(1, n_cols))
    prefilter = n_cols >= 8 * _sample_size(kk, n_cols)
    for start in range(0, n_rows, step):
        rows = slice(start, min(n_rows, start + step))
        chunk = scores[rows]
        if prefilter:
            c, v, rest = _topk_by_threshold(chunk, kk)
            if len(rest):
                c[rest], v[rest] = _topk_chunk(chunk[rest], kk)
        else:
            c, v = _topk_chunk(chunk, kk)
        cols[rows, :kk], vals[rows, :kk] = c, v
    return cols, vals


def _sample_size(kk: int, n_cols: int) -> int:
    return min(n_cols, max(64 * kk, 2048))


def _topk_by_threshold(scores: np.ndarray, kk: int
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`_topk_chunk` for wide rows, from the few columns that can be in the top kk.

    The kk-th largest score of an evenly spaced sample of columns is a lower bound of the row's
    kk-th largest, so only columns scoring at least that much are sorted (by score, then column,
    as `_topk_chunk` orders them): one comparison a score instead of a partition of the row.
    Rows where the bound keeps fewer than kk or too many columns (NaN, -inf, columns ordered by
    score) are returned in `rest` for `_topk_chunk`.

    Returns:
        (columns int32 [rows, kk], scores float32 [rows, kk], row indices left to do).
    """
    n_rows, n_cols = scores.shape
    stride = n_cols // _sample_size(kk, n_cols)
    sample = scores[:, ::stride]
    bound = np.partition(sample, sample.shape[1] - kk, axis=1)[:, sample.shape[1] - kk]
    keep = scores >= bound[:, None]
    counts = keep.sum(axis=1)
    ok = (counts >= kk) & (counts <= 16 * kk * stride + 1024)
    keep[~ok] = False
    r, c = np.nonzero(keep)
    del keep
    v = scores[r, c]
    order = np.lexsort((c, -v, r))
    starts = np.cumsum(counts[ok]) - counts[ok]
    first = (np.arange(len(order)) - np.repeat(starts, counts[ok])) < kk
    order = order[first]
    cols = np.full((n_rows, kk), -1, dtype=np.int32)
    vals = np.full((n_rows, kk), -np.inf, dtype=np.float32)
    cols[ok] = c[order].reshape(-1, kk)
    vals[ok] = v[order].reshape(-1, kk)
    cols[~np.isfinite(vals) & (vals < 0)] = -1
    return cols, vals, np.flatnonzero(~ok)


def _topk_chunk(scores: np.ndarray, kk: int) -> tuple[np.ndarray, np.ndarray]:
    """`topk_rows` of one chunk for kk <= n_cols (no padding)."""
    n_rows, n_cols = scores.shape
    if kk < n_cols:
        part = np.argpartition(-scores, kk - 1, axis=1)[:, :kk].copy()
        # argpartition may cut through a tie at the k-th value; in the rows where it does, take
        # the tied columns of lowest index so that results are deterministic.
        kth = np.take_along_axis(scores, part, axis=1).min(axis=1, keepdims=True)
        tied = np.flatnonzero(np.sum(scores >= kth, axis=1) > kk)
        if len(tied) == n_rows:  # every row (pop, coarse scores): no copy of the rows
            part = _lowest_index_ties(scores, kth, kk)
        elif len(tied):
            part[tied] = _lowest_index_ties(scores[tied], kth[tied], kk)
    else:
        part = np.broadcast_to(np.arange(n_cols), (n_rows, n_cols))
    vals = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -vals), axis=1)
    cols = np.take_along_axis(part, order, axis=1).astype(np.int32)
    vals = np.take_along_axis(vals, order, axis=1).astype(np.float32)
    cols[~np.isfinite(vals) & (vals < 0)] = -1
    return cols, vals


def _lowest_index_ties(scores: np.ndarray, kth: np.ndarray, kk: int) -> np.ndarray:
    """Per row, the kk columns made of every score above `kth` and the lowest-index ties."""
    chosen = scores == kth
    need = kk - np.sum(scores > kth, axis=1, keepdims=True)
    # In place, so that the temporaries stay near 6 bytes a score on top of `scores`.
    chosen &= np.cumsum(chosen, axis=1, dtype=np.int32) <= need
    chosen |= scores > kth
    return np.nonzero(chosen)[1].reshape(len(scores), kk)


def mask_rows(scores: np.ndarray, matrix: sp.csr_matrix, rows: np.ndarray) -> None:
    """Set scores[r, j] = -inf in place wherever matrix[rows[r], j] is stored."""
    _mask_csr(scores, matrix[rows])


def _mask_csr(scores: np.ndarray, sub: sp.csr_matrix) -> None:
    """Set scores[r, j] = -inf in place wherever sub[r, j] is stored."""
    r = np.repeat(np.arange(sub.shape[0]), np.diff(sub.indptr))
    scores[r, sub.indices] = -np.inf


def top_k_frame(model: Vocabularies, user_codes: np.ndarray, cols: np.ndarray,
                vals: np.ndarray) -> pd.DataFrame:
    """[user_id, item_id, score, rank] in original ids from a block's top-k codes and scores.

    cols is −1 where a user has fewer than k candidates.
    """
    valid = cols >= 0
    rows = np.repeat(np.arange(cols.shape[0]), valid.sum(axis=1))
    return pd.DataFrame({
        "user_id": model.user_vocab_.ids(user_codes[rows]),
        "item_id": model.item_vocab_.ids(cols[valid]),
        "score": vals[valid],
        "rank": np.nonzero(valid)[1] + 1,
    })


def user_blocks(n: int, block_size: int) -> Iterator[slice]:
    """Slices that cover range(n) in blocks of at most `block_size`."""
    for start in range(0, n, max(1, block_size)):
        yield slice(start, min(n, start + block_size))


def progress_blocks(n: int, block_size: int, progress: bool, desc: str) -> Iterator[slice]:
    """`user_blocks`, behind a tqdm bar when `progress` (disabled off terminals by tqdm.auto)."""
    blocks: Iterable[slice] = user_blocks(n, block_size)
    if progress:
        from tqdm.auto import tqdm

        blocks = tqdm(list(blocks), desc=desc, unit="block")
    yield from blocks


# --- candidates and exclusions -----------------------------------------------------------------
def candidate_mask(candidates: np.ndarray | None, n_items: int) -> np.ndarray | None:
    """The items a list may hold, as bool [n_items], or None for every item.

    Args:
        candidates: None (every item), a bool mask of length `n_items` (True: allowed) or
            item codes (each in [0, n_items)).
        n_items: the catalog size.

    Raises:
        ValueError: a bool mask of another length, or a code outside [0, n_items).
    """
    if candidates is None:
        return None
    cand = np.asarray(candidates)
    if cand.dtype == bool:
        if cand.shape != (n_items,):
            raise ValueError(f"candidates: a bool mask must have shape ({n_items},), got "
                             f"{cand.shape}")
        return cand
    codes = cand.astype(np.int64, copy=False).ravel()
    if len(codes) and (codes.min() < 0 or codes.max() >= n_items):
        bad = codes[(codes < 0) | (codes >= n_items)][0]
        raise ValueError(f"candidates: item code {int(bad)} is outside [0, {n_items})")
    keep = np.zeros(n_items, dtype=bool)
    keep[codes] = True
    return keep


def rank_block(scores: np.ndarray, k: int, *, exclude: sp.csr_matrix | np.ndarray | None = None,
               candidates: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Top-k item codes and scores of a block of score rows: the one ranking step.

    `scores` itself is left unchanged: one fresh float32 copy (NaN turned into -inf in the same
    pass) receives the exclusions and the candidate mask before `topk_rows`.

    Args:
        scores: float [rows, n_items].
        k: list length.
        exclude: items never returned: a CSR matrix [rows, n_items] whose row r holds those of
            row r (e.g. `seen[user_codes]`), or item codes left out of every row; None: none.
        candidates: see `candidate_mask` (None: every item).

    Returns:
        (codes int32 [rows, k], scores float32 [rows, k]), best first, ties to the lower code,
        -1/-inf padded where a row has fewer than k allowed items.
    """
    block = np.fmax(scores, np.float32(-np.inf), dtype=np.float32)
    if block.ndim != 2:
        raise ValueError(f"scores must be 2-D [rows, items], got shape {block.shape}")
    if sp.issparse(exclude):
        _mask_csr(block, sp.csr_matrix(exclude))
    elif exclude is not None and len(exclude):
        block[:, np.asarray(exclude, dtype=np.int64)] = -np.inf
    keep = candidate_mask(candidates, block.shape[1])
    if keep is not None:
        block[:, ~keep] = -np.inf
    return topk_rows(block, k)


# --- the vectors of a dot-product model ------------------------------------------------------
@dataclass(frozen=True)
class DotVectors:
    """A model's scores as s(u, i) = output(user_offset[u] + item_bias[i] + users[u] · items[i]).

    Attributes:
        users: float32 [n_users, d].
        items: float32 [n_items, d].
        user_offset: float32 [n_users] added after the product (μ + b_u), or None for zeros.
        item_bias: float32 [n_items] (b_i), or None for zeros.
        output: an increasing map applied last (e.g. a scaled sigmoid), or None for the identity.
    """

    users: np.ndarray
    items: np.ndarray
    user_offset: np.ndarray | None = None
    item_bias: np.ndarray | None = None
    output: Callable[[np.ndarray], np.ndarray] | None = None

    def augmented(self) -> tuple[np.ndarray, np.ndarray]:
        """(p_u' [n_users, d'], q_i' [n_items, d']) with p_u' · q_i' = b_i + p_u · q_i."""
        users = np.ascontiguousarray(self.users, dtype=np.float32)
        items = np.ascontiguousarray(self.items, dtype=np.float32)
        if users.ndim != 2 or items.ndim != 2 or users.shape[1] != items.shape[1]:
            raise ValueError(f"users {users.shape} and items {items.shape} must be 2-D with the "
                             "same dimension")
        if self.item_bias is None:
            return users, items
        bias = np.asarray(self.item_bias, dtype=np.float32).reshape(-1, 1)
        if len(bias) != len(items):
            raise ValueError(f"item_bias has {len(bias)} rows, items {len(items)}")
        return (np.hstack([users, np.ones((len(users), 1), np.float32)]),
                np.hstack([items, bias]))

    def finish(self, user_codes: np.ndarray, products: np.ndarray) -> np.ndarray:
        """Scores from inner products p_u' · q_i' [rows, ...] of the users `user_codes`."""
        z = products.astype(np.float32, copy=False)
        if self.user_offset is not None:
            offset = np.asarray(self.user_offset, dtype=np.float32)[user_codes]
            z = z + offset.reshape((-1,) + (1,) * (z.ndim - 1))
        if self.output is not None:
            z = np.asarray(self.output(z), dtype=np.float32)
        return z


def _is_number(x: object) -> bool:
    return (isinstance(x, int | float | np.integer | np.floating) and not isinstance(x, bool)
            and bool(np.isfinite(x)))


def _is_positive_int(x: object) -> bool:
    return isinstance(x, int | np.integer) and not isinstance(x, bool) and bool(x >= 1)
