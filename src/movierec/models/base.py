"""The Recommender protocol: models score; selection, exclusion and top-k live here, once."""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, Self

import numpy as np
import pandas as pd
import scipy.sparse as sp

from movierec.data.dataset import Dataset
from movierec.data.vocab import Vocabulary
from movierec.errors import ArtifactError, MovieRecError, NotFittedError
from movierec.models.space import SearchSpace
from movierec.random import RNGLike

ARTIFACT_FORMAT = 1


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
    if not (is_number(max_memory_mb) and max_memory_mb > 0):
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
        if not is_int(block_size, 1):
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
    sub = matrix[rows]
    r = np.repeat(np.arange(len(rows)), np.diff(sub.indptr))
    scores[r, sub.indices] = -np.inf


def top_k_frame(model: Recommender, user_codes: np.ndarray, cols: np.ndarray,
                vals: np.ndarray) -> pd.DataFrame:
    """[user_id, item_id, score, rank] in original ids from a block's top-k codes and scores
    (cols −1 where a user has fewer than k candidates)."""
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


class Recommender:
    """Base class of every movierec model.

    Subclasses take keyword-only hyper-parameters (stored unchanged under the same name, validated
    at once) and implement `fit` (calling `self._setup(train)` first), `_score` and, for rating
    models, `_predict`. Everything in original ids is implemented here.

    Capabilities (class attributes, read by the evaluator instead of probing):
        predicts_ratings: `predict` gives ratings on the dataset's scale (RMSE/MAE are computed).
        uses_features: the model reads `items`/`users` side tables.
        uses_sequence: the model reads the time order of each user's ratings.
        supports_fold_in: the model can score a new user from a few ratings.
    """

    name: ClassVar[str] = ""
    predicts_ratings: ClassVar[bool] = False
    uses_features: ClassVar[bool] = False
    uses_sequence: ClassVar[bool] = False
    supports_fold_in: ClassVar[bool] = False
    # Parameters `movierec tune` searches (see movierec.models.space); empty: nothing to tune.
    search_space: ClassVar[SearchSpace] = {}

    # Learned state common to every model, set by `_setup`.
    user_vocab_: Vocabulary
    item_vocab_: Vocabulary
    seen_: sp.csr_matrix

    @classmethod
    def rates_with(cls, params: Mapping[str, Any]) -> bool:
        """Whether a model built with `params` estimates ratings: the class can
        (`predicts_ratings`) and, where the model has a `loss`, it is trained on ratings ("mse",
        the given value or the constructor's default). A model trained with BPR/BCE still
        predicts, but only a ranking score: the evaluator reports no RMSE/MAE for it, the
        service shows no predicted rating, and rating studies (tune, experiments) skip or
        refuse it."""
        if not cls.predicts_ratings:
            return False
        loss = inspect.signature(cls.__init__).parameters.get("loss")
        return loss is None or params.get("loss", loss.default) == "mse"

    @property
    def rates(self) -> bool:
        """`rates_with(self.params())`: this instance's `predict` estimates ratings."""
        return self.rates_with(self.params())

    # --- hyper-parameters ----------------------------------------------------------------------
    @classmethod
    def param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values()
                if p.name != "self" and p.kind is inspect.Parameter.KEYWORD_ONLY]

    def params(self) -> dict[str, Any]:
        """Hyper-parameters as given to the constructor (read back from the signature)."""
        return {name: getattr(self, name) for name in self.param_names()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({args})"

    # --- fitting -------------------------------------------------------------------------------
    def fit(self, train: Dataset, valid: Dataset | None = None, *, rng: RNGLike = None,
            progress: bool = True) -> Self:
        """Learn from `train` (and optionally early-stop on `valid`); returns self."""
        raise NotImplementedError

    def _setup(self, train: Dataset) -> tuple[np.ndarray, np.ndarray]:
        """Record the training vocabularies and seen matrix; return the train rows' codes."""
        if train.n_ratings == 0:
            raise MovieRecError(f"cannot fit {type(self).__name__} on an empty dataset")
        self.user_vocab_ = train.user_vocab
        self.item_vocab_ = train.item_vocab
        self.seen_ = train.matrix("binary")
        self.rating_scale_ = tuple(float(x) for x in (train.rating_scale or (0.0, 0.0)))
        self.train_fingerprint_ = train.fingerprint
        self.train_name_ = train.name
        return train.codes

    def _check_fitted(self) -> None:
        if not hasattr(self, "item_vocab_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted yet: call fit() first")

    @property
    def n_users(self) -> int:
        self._check_fitted()
        return len(self.user_vocab_)

    @property
    def n_items(self) -> int:
        self._check_fitted()
        return len(self.item_vocab_)

    # --- to implement --------------------------------------------------------------------------
    def _score(self, user_codes: np.ndarray, item_codes: np.ndarray | None = None) -> np.ndarray:
        """Scores float32 [len(user_codes), n_items or len(item_codes)]; higher is better."""
        raise NotImplementedError

    def _predict(self, user_codes: np.ndarray, item_codes: np.ndarray) -> np.ndarray:
        """Ratings float32 [n] for code pairs; codes are -1 for users/items unknown in training."""
        raise NotImplementedError(f"{type(self).__name__} does not predict ratings")

    # --- public API in original ids ------------------------------------------------------------
    def predict(self, user_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
        """Predicted ratings (float32, dataset scale) for pairs of original ids.

        Users or items unseen in training get the model's fallback (e.g. baseline or global mean).
        """
        self._check_fitted()
        if not self.predicts_ratings:
            raise MovieRecError(f"{type(self).__name__} ranks items but does not predict ratings")
        u = self.user_vocab_.codes(np.asarray(user_ids), missing="negative")
        i = self.item_vocab_.codes(np.asarray(item_ids), missing="negative")
        if len(u) != len(i):
            raise ValueError(f"user_ids ({len(u)}) and item_ids ({len(i)}) differ in length")
        return np.asarray(self._predict(u, i), dtype=np.float32)

    def score(self, user_ids: np.ndarray, item_ids: np.ndarray | None = None) -> np.ndarray:
        """Score block float32 [users, items] for known users (all training items by default)."""
        self._check_fitted()
        u = self.user_vocab_.codes(np.asarray(user_ids))
        i = None if item_ids is None else self.item_vocab_.codes(np.asarray(item_ids))
        return np.asarray(self._score(u, i), dtype=np.float32)

    def top_k_codes(self, user_codes: np.ndarray, k: int, *, exclude_seen: bool = True,
                    candidates: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k item codes and scores for a block of user codes (the one top-k code path).

        Args:
            user_codes: codes of known users.
            k: list length.
            exclude_seen: never return items the user rated in training.
            candidates: optional item codes to restrict the ranking to.
        """
        # A fresh float32 copy (never the model's own array) with NaN turned into -inf, in one pass.
        scores = np.fmax(self._score(user_codes), np.float32(-np.inf), dtype=np.float32)
        if exclude_seen:
            mask_rows(scores, self.seen_, user_codes)
        if candidates is not None:
            keep = np.zeros(scores.shape[1], dtype=bool)
            keep[candidates] = True
            scores[:, ~keep] = -np.inf
        return topk_rows(scores, k)

    def recommend(self, user_ids: np.ndarray | list[int] | int, k: int = 10, *,
                  exclude_seen: bool = True, candidates: np.ndarray | None = None,
                  block_size: int | None = None, max_memory_mb: float | None = None,
                  progress: bool = False) -> pd.DataFrame:
        """Top-k items for each user as a frame [user_id, item_id, score, rank] (rank from 1).

        Users are scored and ranked a block at a time, so memory is bounded by the block, never
        by the number of users: give `block_size` (users) or `max_memory_mb`, not both.

        Args:
            user_ids: original ids of users known to the model (UnknownIdError otherwise).
            k: list length; fewer rows come back for a user with fewer than k candidates.
            exclude_seen: leave out items the user rated in training.
            candidates: optional original item ids to choose from (unknown ones are ignored).
            block_size: users scored at once, about block_size x n_items x 20 bytes (default
                1024 users, fewer where that would exceed 250 MB).
            max_memory_mb: working memory for scoring, in MB (10⁶ bytes); the block is
                max_memory_mb / (n_items x 20 bytes) users. The returned frame (about 30 bytes
                a row) comes on top.
            progress: show a progress bar over the blocks.
        """
        self._check_fitted()
        if k <= 0:
            raise ValueError(f"k must be positive, got {k}")
        block = resolve_block_size(self.n_items, block_size, max_memory_mb)
        codes = self.user_vocab_.codes(np.atleast_1d(np.asarray(user_ids)))
        cand = None
        if candidates is not None:
            cand = self.item_vocab_.codes(np.asarray(candidates), missing="negative")
            cand = cand[cand >= 0]
        frames = []
        for blk in progress_blocks(len(codes), block, progress, desc="recommend"):
            cols, vals = self.top_k_codes(codes[blk], k, exclude_seen=exclude_seen,
                                          candidates=cand)
            frames.append(top_k_frame(self, codes[blk], cols, vals))
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
            columns=["user_id", "item_id", "score", "rank"])

    # --- similarity and explanations ------------------------------------------------------------
    def item_vectors(self) -> np.ndarray | None:
        """Item vectors [n_items, d] of models with an item embedding space, else None."""
        return None

    def similar_items(self, item_id: int, k: int = 10) -> pd.DataFrame:
        """The k most similar items: [item_id, similarity, rank] (see movierec.explain)."""
        from movierec.explain import similar_items

        return similar_items(self, item_id, k)

    def explain(self, user_id: int, item_ids: np.ndarray | list[int], n: int = 3
                ) -> dict[int, list[tuple[int, float]]]:
        """For each item, the user's training items that most support it (see movierec.explain)."""
        from movierec.explain import explain

        return explain(self, user_id, item_ids, n)

    # --- persistence ---------------------------------------------------------------------------
    def save(self, path: str | Path, *, catalog: pd.DataFrame | None = None,
             extra: dict[str, Any] | None = None) -> Path:
        """Write the model folder atomically; returns its path.

        Args:
            path: the folder (replaced whole once the new one is complete).
            catalog: the item table (item_id, title, year, genres) so that the saved model can
                answer with titles; written as items.json.
            extra: more JSON-able fields for model.json (dataset, split, metrics, ...).
        """
        from movierec.artifact import save_model

        self._check_fitted()
        return save_model(self, path, catalog=catalog, extra=extra)

    @classmethod
    def load(cls, path: str | Path) -> Recommender:
        """Load a model folder written by `save` (no pickle is ever read)."""
        from movierec.artifact import load_model

        model = load_model(path)
        if not isinstance(model, cls):
            raise ArtifactError(f"{path}: holds a {type(model).__name__}, not a {cls.__name__}")
        return model

    def _state(self) -> dict[str, Any]:
        """Learned state: every attribute whose name ends in '_' (see artifact.py for types)."""
        return {k: v for k, v in vars(self).items() if k.endswith("_") and not k.startswith("_")}

    def _restore(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            setattr(self, k, v)


def is_number(x: object) -> bool:
    """A finite real number (bools excluded): the test behind numeric hyper-parameters."""
    return (isinstance(x, int | float | np.integer | np.floating) and not isinstance(x, bool)
            and bool(np.isfinite(x)))


def is_int(x: object, minimum: int | None = None) -> bool:
    """An integer (bools excluded), at least `minimum` when given."""
    ok = isinstance(x, int | np.integer) and not isinstance(x, bool)
    return ok and (minimum is None or x >= minimum)  # type: ignore[operator]


def check_param(name: str, value: Any, ok: bool, expected: str) -> None:
    """Raise ValueError naming the hyper-parameter when `ok` is false."""
    if not ok:
        raise ValueError(f"{name} must be {expected}, got {value!r}")

