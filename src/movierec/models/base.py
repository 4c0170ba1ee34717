"""The Recommender protocol: models score; selection, exclusion and top-k live here, once."""

from __future__ import annotations

import functools
import inspect
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np
import pandas as pd
import scipy.sparse as sp

from movierec.data.dataset import Dataset
from movierec.data.vocab import Vocabulary
from movierec.errors import ArtifactError, MovieRecError, NotFittedError
from movierec.models.space import SearchSpace
from movierec.random import RNGLike
from movierec.ranking import (  # noqa: F401  (re-exported: the kernel's names before ranking.py)
    BYTES_PER_SCORE,
    DEFAULT_BLOCK_SIZE,
    DEFAULT_MEMORY_MB,
    DotVectors,
    block_size_for,
    mask_rows,
    progress_blocks,
    rank_block,
    resolve_block_size,
    top_k_frame,
    topk_rows,
    user_blocks,
)

ARTIFACT_FORMAT = 1


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
        trains_by_epochs: the shared Trainer fits it (checkpoints, resume, early stopping).
        deterministic: its fit does not depend on `rng`.
        adapts_to_split_order: its `fit` takes `time_ordered=` (whether the evaluation split
            orders each user's ratings by time), passed by `movierec.pipeline.fit_evaluate`.
    """

    name: ClassVar[str] = ""
    predicts_ratings: ClassVar[bool] = False
    uses_features: ClassVar[bool] = False
    uses_sequence: ClassVar[bool] = False
    supports_fold_in: ClassVar[bool] = False
    # Trained epoch by epoch by the Trainer (checkpoints, resume, early stopping on validation).
    trains_by_epochs: ClassVar[bool] = False
    # The fit ignores `rng` (closed forms, counts): one fit serves every seed of a benchmark.
    deterministic: ClassVar[bool] = False
    # `fit(..., time_ordered=)` is accepted: e.g. rerank carves its ranker's holdout to match.
    adapts_to_split_order: ClassVar[bool] = False
    # Parameters `movierec tune` searches (see movierec.models.space); empty: nothing to tune.
    search_space: ClassVar[SearchSpace] = {}
    # Old hyper-parameter names still accepted, with a DeprecationWarning, by the constructor,
    # `models.get` (so `--param`, experiment files and saved model.json too): old name -> new
    # name, or (new name, function turning an old value into a new one).
    renamed_params: ClassVar[Mapping[str, str | tuple[str, Callable[[Any], Any]]]] = {}
    # The parameter listing the models this one is made of, as (registered name, {params})
    # pairs (blend's and fusion's "members", rerank's "generators"); None: made of none.
    nested_param: ClassVar[str | None] = None

    # Learned state common to every model, set by `_setup`.
    user_vocab_: Vocabulary
    item_vocab_: Vocabulary
    seen_: sp.csr_matrix

    @classmethod
    def rates_with(cls, params: Mapping[str, Any]) -> bool:
        """Whether a model built with `params` estimates ratings.

        True when the class can (`predicts_ratings`) and, where the model has a `loss`, it is
        trained on ratings ("mse", the given value or the constructor's default). A model trained
        with BPR/BCE still predicts, but only a ranking score: the evaluator reports no RMSE/MAE for
        it, the service shows no predicted rating, and rating studies (tune, experiments) skip or
        refuse it.
        """
        if not cls.predicts_ratings:
            return False
        loss = inspect.signature(cls.__init__).parameters.get("loss")
        return loss is None or params.get("loss", loss.default) == "mse"

    @property
    def rates(self) -> bool:
        """`rates_with(self.params())`: this instance's `predict` estimates ratings."""
        return self.rates_with(self.params())

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.renamed_params and "__init__" in cls.__dict__:
            cls.__init__ = _accepting_renamed(cls.__dict__["__init__"])  # type: ignore[method-assign]

    if not TYPE_CHECKING:  # hidden from type checkers, which would then accept any attribute

        def __getattr__(self, name: str) -> Any:
            # Only reached when normal lookup fails: a renamed hyper-parameter read under its
            # old name (`itemknn.k`) warns and gives the new one.
            target = type(self).renamed_params.get(name)
            if isinstance(target, str):
                warnings.warn(f"{type(self).__name__}: attribute {name!r} is deprecated; use "
                              f"{target!r}", DeprecationWarning, stacklevel=2)
                return getattr(self, target)
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # --- hyper-parameters ----------------------------------------------------------------------
    @classmethod
    def canonical_params(cls, params: Mapping[str, Any]) -> dict[str, Any]:
        """`params` with old names (`renamed_params`) replaced by the current ones.

        Each old name gives a DeprecationWarning naming its replacement.

        Raises:
            ValueError: naming both when a parameter is given under its old and its new name.
        """
        out = dict(params)
        for old, target in cls.renamed_params.items():
            if old not in out:
                continue
            new, convert = (target, None) if isinstance(target, str) else target
            if new in out:
                raise ValueError(f"{cls.__name__}: give {new!r} only ({old!r} is its old name)")
            value = out.pop(old)
            out[new] = value if convert is None else convert(value)
            how = "" if convert is None else f" (converted: {old}={value!r} is {new}={out[new]!r})"
            warnings.warn(f"{cls.__name__}: parameter {old!r} is deprecated; use {new!r}{how}",
                          DeprecationWarning, stacklevel=3)
        return out

    @classmethod
    def param_names(cls) -> list[str]:
        """Names of the hyper-parameters: the constructor's keyword-only arguments."""
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values()
                if p.name != "self" and p.kind is inspect.Parameter.KEYWORD_ONLY]

    @classmethod
    def with_overrides(cls, params: Mapping[str, Any],
                       overrides: Mapping[str, Any]) -> dict[str, Any]:
        """`params` with the `overrides` this model takes applied (experiments' `--quick`).

        Overrides name parameters across models (`epochs`, `embedding_size`...); each model
        keeps those it has. Models made of other models (a blend) pass them on to their parts.
        """
        names = set(cls.param_names())
        out = {**params, **{k: v for k, v in overrides.items() if k in names}}
        if (key := cls.nested_param) is not None:
            from movierec.models import get_class

            # The constructor checks the specs and fills in the defaults (blend-light's too).
            specs = getattr(cls(**{key: params.get(key) or None}), key)
            out[key] = [[name, get_class(name).with_overrides(p, overrides)]
                        for name, p in specs]
        return out

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
        lo, hi = train.rating_scale or (0.0, 0.0)
        self.rating_scale_ = (float(lo), float(hi))
        self.train_fingerprint_ = train.fingerprint
        self.train_name_ = train.name
        from movierec.explain import liked_matrix

        # Which training ratings say "liked", for "because you liked" (movierec.explain).
        self.liked_ = liked_matrix(train)
        # The item table, for `save`'s default catalog: not learned state (no trailing "_").
        self._train_items = train.items
        return train.codes

    def _check_fitted(self) -> None:
        if not hasattr(self, "item_vocab_"):
            raise NotFittedError(f"{type(self).__name__} is not fitted yet: call fit() first")

    @property
    def n_users(self) -> int:
        """Number of training users (NotFittedError before `fit`)."""
        self._check_fitted()
        return len(self.user_vocab_)

    @property
    def n_items(self) -> int:
        """Number of training items (NotFittedError before `fit`)."""
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

    def can_score_new_items(self) -> bool:
        """Whether `score_new_items` works for this instance.

        False here; models that can place a movie by its side data override it, true only with
        the options that make it possible (e.g. `people=True`, `knowledge=True`).
        """
        return False

    def score_new_items(self, user_ids: np.ndarray, items: pd.DataFrame) -> np.ndarray:
        """Scores float32 [users, len(items)] of movies without any training rating.

        Cold start: `items` holds item-table rows (item_id, genres, year, director_ids,
        actor_ids, ... as `movierec.data.load` gives them) of movies the model never saw rated;
        only their side data can place them. Scores are comparable among themselves for a user
        (rank new movies against each other), not with `score`'s.

        Raises:
            MovieRecError: the model knows a movie only from its ratings (see
                `can_score_new_items`), or an unknown user.
        """
        self._check_fitted()
        if not self.can_score_new_items():
            raise MovieRecError(
                f"{type(self).__name__} knows a movie only from its ratings and cannot score "
                "movies without one; use featurenet or an NCF model with people=True, or "
                "lightgcn/ngcf with knowledge=True")
        u = self.user_vocab_.codes(np.asarray(user_ids))
        return np.asarray(self._score_new_items(u, items.reset_index(drop=True)),
                          dtype=np.float32)

    def _score_new_items(self, user_codes: np.ndarray, items: pd.DataFrame) -> np.ndarray:
        """`score_new_items` in codes: float32 [len(user_codes), len(items)]."""
        raise NotImplementedError

    def top_k_codes(self, user_codes: np.ndarray, k: int, *, exclude_seen: bool = True,
                    candidates: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Top-k item codes and scores for a block of user codes (the one top-k code path).

        Args:
            user_codes: codes of known users.
            k: list length.
            exclude_seen: never return items the user rated in training.
            candidates: optional items to restrict the ranking to: item codes, or a bool mask
                [n_items] (e.g. a genre filter); see `movierec.ranking.candidate_mask`.

        Returns:
            (codes int32 [users, k], scores float32 [users, k]), best first; among equal scores
            the lower item code first; -1/-inf padded where fewer than k items are allowed.
        """
        user_codes = np.asarray(user_codes)
        seen = self.seen_[user_codes] if exclude_seen else None
        return rank_block(self._score(user_codes), k, exclude=seen, candidates=candidates)

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

    def dot_vectors(self) -> DotVectors | None:
        """The scores as a dot product of user and item vectors (`movierec.ranking.DotVectors`).

        `movierec.ann.ANNIndex` indexes them; None (the default) for models that do not score by a
        dot product.
        """
        return None

    def _item_similarity(self, item_codes: np.ndarray, columns: np.ndarray | None = None
                         ) -> np.ndarray | None:
        """The model's own item-to-item weights [len(item_codes), n_items or len(columns)].

        Entry [a, b]: how much item a supports item b. None to compare items by the cosine of
        `item_vectors()` or of co-occurrence (see movierec.explain).
        """
        return None

    def similar_items(self, item_id: int, k: int = 10, *, min_support: int | None = None,
                      shrinkage: float | None = None) -> pd.DataFrame:
        """The k most similar items: [item_id, similarity, rank] (see movierec.explain).

        Args:
            item_id: original id of a training item.
            k: list length.
            min_support: leave out items with fewer training ratings (default
                `movierec.explain.MIN_SUPPORT`, 5; 0 keeps every item).
            shrinkage: λ of the shrinkage n / (n + λ) of a similarity by the item's number of
                training ratings n (default `movierec.explain.SHRINKAGE`, 10; 0: none).
        """
        from movierec.explain import MIN_SUPPORT, SHRINKAGE, similar_items

        return similar_items(self, item_id, k,
                             min_support=MIN_SUPPORT if min_support is None else min_support,
                             shrinkage=SHRINKAGE if shrinkage is None else shrinkage)

    def explain(self, user_id: int, item_ids: np.ndarray | list[int], n: int = 3
                ) -> dict[int, list[tuple[int, float]]]:
        """For each item, the user's training items that most support it (see movierec.explain)."""
        from movierec.explain import explain

        return explain(self, user_id, item_ids, n)

    # --- persistence ---------------------------------------------------------------------------
    def save(self, path: str | Path, *, catalog: pd.DataFrame | None | bool = None,
             extra: dict[str, Any] | None = None) -> Path:
        """Write the model folder atomically; returns its path.

        Args:
            path: the folder (replaced whole once the new one is complete).
            catalog: the item table (item_id, title, year, genres) so that the saved model can
                answer with titles; written as items.json. Default (None): the item table of
                the dataset the model was fitted on, where it had one. False: no item table.
            extra: more JSON-able fields for model.json (dataset, split, metrics, ...).
        """
        from movierec.artifact import save_model

        self._check_fitted()
        if catalog is None or catalog is True:
            catalog = self.__dict__.get("_train_items")
        return save_model(self, path, catalog=None if catalog is False else catalog,
                          extra=extra)

    @classmethod
    def load(cls, path: str | Path) -> Recommender:
        """Load a model folder written by `save` (no pickle is ever read)."""
        from movierec.artifact import load_model

        model = load_model(path)
        if not isinstance(model, cls):
            raise ArtifactError(f"{path}: holds a {type(model).__name__}, not a {cls.__name__}")
        return model

    def _state(self) -> dict[str, Any]:
        """Learned state: every attribute whose name ends in '_' (see artifact.py for types).

        Except hyper-parameters so named (EASE's `lambda_`), which model.json records.
        """
        params = set(self.param_names())
        return {k: v for k, v in vars(self).items()
                if k.endswith("_") and not k.startswith("_") and k not in params}

    def _restore(self, state: dict[str, Any]) -> None:
        # Older artifacts saved hyper-parameters such as EASE's `lambda_` as state too: the
        # constructor has set them from model.json already.
        params = set(self.param_names())
        for k, v in state.items():
            if k not in params:
                setattr(self, k, v)


def _accepting_renamed(init: Callable[..., None]) -> Callable[..., None]:
    """Wrap a constructor so that it also takes the class's old parameter names."""

    @functools.wraps(init)  # keeps the signature that `param_names` reads
    def __init__(self: Recommender, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **type(self).canonical_params(kwargs))

    return __init__


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

