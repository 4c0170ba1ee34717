"""The Recommender protocol: models score; selection, exclusion and top-k live here, once."""

from __future__ import annotations

import inspect
from collections.abc import Iterator, Mapping
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


def topk_rows(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k columns of every row of `scores`, best first.

    Ties are broken by the lower column index, so results are deterministic. Entries equal to
    -inf are never returned: their positions are -1 (and scores -inf) when a row has fewer than
    k finite candidates.

    Returns:
        (columns int32 [rows, k], scores float32 [rows, k]).
    """
    n_rows, n_cols = scores.shape
    kk = min(k, n_cols)
    if kk <= 0:
        return (np.full((n_rows, k), -1, dtype=np.int32),
                np.full((n_rows, k), -np.inf, dtype=np.float32))
    if kk < n_cols:
        part = np.argpartition(-scores, kk - 1, axis=1)[:, :kk]
        # argpartition may cut through a tie at the k-th value; take every column tied with the
        # k-th score so that the lower index wins deterministically.
        kth = np.take_along_axis(scores, part, axis=1).min(axis=1, keepdims=True)
        if (np.sum(scores >= kth, axis=1) > kk).any():
            part = _ties_by_index(scores, kk)
    else:
        part = np.broadcast_to(np.arange(n_cols), (n_rows, n_cols))
    vals = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -vals), axis=1)
    cols = np.take_along_axis(part, order, axis=1).astype(np.int32)
    vals = np.take_along_axis(vals, order, axis=1).astype(np.float32)
    cols[~np.isfinite(vals) & (vals < 0)] = -1
    if kk < k:
        cols = np.pad(cols, ((0, 0), (0, k - kk)), constant_values=-1)
        vals = np.pad(vals, ((0, 0), (0, k - kk)), constant_values=-np.inf)
    return cols, vals


def _ties_by_index(scores: np.ndarray, k: int) -> np.ndarray:
    order = np.lexsort((np.broadcast_to(np.arange(scores.shape[1]), scores.shape), -scores),
                       axis=1)
    return order[:, :k]


def mask_rows(scores: np.ndarray, matrix: sp.csr_matrix, rows: np.ndarray) -> None:
    """Set scores[r, j] = -inf in place wherever matrix[rows[r], j] is stored."""
    sub = matrix[rows]
    r = np.repeat(np.arange(len(rows)), np.diff(sub.indptr))
    scores[r, sub.indices] = -np.inf


def user_blocks(n: int, block_size: int) -> Iterator[slice]:
    """Slices that cover range(n) in blocks of at most `block_size`."""
    for start in range(0, n, max(1, block_size)):
        yield slice(start, min(n, start + block_size))


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
        scores = np.array(self._score(user_codes), dtype=np.float32, copy=True)
        scores[np.isnan(scores)] = -np.inf
        if exclude_seen:
            mask_rows(scores, self.seen_, user_codes)
        if candidates is not None:
            keep = np.zeros(scores.shape[1], dtype=bool)
            keep[candidates] = True
            scores[:, ~keep] = -np.inf
        return topk_rows(scores, k)

    def recommend(self, user_ids: np.ndarray | list[int] | int, k: int = 10, *,
                  exclude_seen: bool = True, candidates: np.ndarray | None = None,
                  block_size: int = 1024) -> pd.DataFrame:
        """Top-k items for each user as a frame [user_id, item_id, score, rank] (rank from 1).

        Args:
            user_ids: original ids of users known to the model (UnknownIdError otherwise).
            k: list length; fewer rows come back for a user with fewer than k candidates.
            exclude_seen: leave out items the user rated in training.
            candidates: optional original item ids to choose from (unknown ones are ignored).
            block_size: users scored at once (bounds memory to block_size x n_items floats).
        """
        self._check_fitted()
        if k <= 0:
            raise ValueError(f"k must be positive, got {k}")
        codes = self.user_vocab_.codes(np.atleast_1d(np.asarray(user_ids)))
        cand = None
        if candidates is not None:
            cand = self.item_vocab_.codes(np.asarray(candidates), missing="negative")
            cand = cand[cand >= 0]
        frames = []
        for blk in user_blocks(len(codes), block_size):
            cols, vals = self.top_k_codes(codes[blk], k, exclude_seen=exclude_seen,
                                          candidates=cand)
            valid = cols >= 0
            rows = np.repeat(np.arange(cols.shape[0]), valid.sum(axis=1))
            frames.append(pd.DataFrame({
                "user_id": self.user_vocab_.ids(codes[blk][rows]),
                "item_id": self.item_vocab_.ids(cols[valid]),
                "score": vals[valid],
                "rank": np.nonzero(valid)[1] + 1,
            }))
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

