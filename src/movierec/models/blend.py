"""Blend: a stacked ensemble of rating models whose weights a ridge regression learns.

Stacking in the manner of the Netflix Prize blends (Töscher, Jahrer & Bell, "The BigChaos
Solution to the Netflix Grand Prize", 2009; Sill et al., "Feature-Weighted Linear Stacking",
2009): the members are fit on most of the training data, a linear model learns how to combine
their predictions on the rest, and the members are then refit on all of it.

Two registered defaults: `blend` stacks the seven members of `benchmarks/blend_ml100k.py`
(`STRONG_MEMBERS`: bias, item- and user-kNN, MF, FeatureNet, SVD++, AutoRec; RMSE 0.883 on
ML-100K u1.test, chosen on u1.base only) when torch is installed, and falls back, with a logged
warning, to the torch-free three of `blend-light` (`LIGHT_MEMBERS`: bias and the two kNNs,
about a second on ML-100K) when it is not.
"""

from __future__ import annotations

import importlib.util
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar, Self

import numpy as np

from movierec.data.dataset import Dataset
from movierec.models.base import Recommender, check_param, is_number, user_blocks
from movierec.models.baseline import clip_to_scale
from movierec.models.space import Choice, Float, SearchSpace
from movierec.random import RNGLike, as_generator, derive_seed

__all__ = ["LIGHT_MEMBERS", "STRONG_MEMBERS", "Blend", "LightBlend", "ridge_weights"]

logger = logging.getLogger(__name__)

Member = tuple[str, dict[str, Any]]

# Cheap rating models that need no extra: ALS baselines and the two neighbourhood models in
# Koren's rating-prediction setting (explicit ratings, residual similarities, shrunk).
_KNN_RATING = {"n_neighbors": 40, "similarity": "pearson_baseline", "shrinkage": 100.0,
               "feedback": "explicit"}
LIGHT_MEMBERS: tuple[Member, ...] = (
    ("bias", {}),
    ("itemknn", dict(_KNN_RATING)),
    ("userknn", dict(_KNN_RATING)),
)
# The light members plus four torch rating models with their defaults: the stack of
# `benchmarks/blend_ml100k.py`.
STRONG_MEMBERS: tuple[Member, ...] = (
    *LIGHT_MEMBERS,
    ("mf", {}),
    ("featurenet", {}),
    ("svdpp", {}),
    ("autorec", {}),
)
DEFAULT_MEMBERS = LIGHT_MEMBERS  # the default before `blend` became the strong stack
_WARNED_NO_TORCH = False
USER_COUNT = "log_user_count"
ITEM_COUNT = "log_item_count"
MEMBER_PREFIX = "members."
_PAIRS_PER_BLOCK = 1 << 18


def ridge_weights(x: np.ndarray, y: np.ndarray, alpha: float, prior: np.ndarray
                  ) -> tuple[np.ndarray, float]:
    """Ridge regression shrunk towards `prior`, with an unpenalized intercept.

    Solves min over (w, b) of ‖y − b − x w‖² + α ‖s ⊙ (w − prior)‖², with s the columns'
    standard deviations (so the penalty acts on standardized features and α is comparable to a
    number of rows). Constant columns keep their prior weight. With no rows, returns (prior, 0).

    Args:
        x: features float [n, p].
        y: targets float [n].
        alpha: penalty strength α (> 0).
        prior: weights float [p] that the solution is shrunk towards.

    Returns:
        (weights float64 [p], intercept).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    prior = np.asarray(prior, dtype=np.float64)
    if len(y) == 0:
        return prior.copy(), 0.0
    residual = y - x @ prior
    mean = x.mean(axis=0)
    scale = x.std(axis=0)
    scale[scale < 1e-12] = 1.0  # a constant column centres to 0 and so keeps its prior weight
    z = (x - mean) / scale
    gram = z.T @ z + alpha * np.eye(x.shape[1])
    delta = np.linalg.solve(gram, z.T @ (residual - residual.mean())) / scale
    return prior + delta, float(residual.mean() - mean @ delta)


def as_tuples(value: Any) -> Any:
    """Lists (as JSON and the command line give them) back to tuples, recursively."""
    if isinstance(value, list | tuple):
        return tuple(as_tuples(v) for v in value)
    return value


def member_state(members: Sequence[Recommender]) -> dict[str, Any]:
    """The saved state of nested models, keyed "members.<n>.<key>" (blend, rerank)."""
    return {f"{MEMBER_PREFIX}{n}.{key}": value for n, member in enumerate(members)
            for key, value in member._state().items()}


def restore_members(state: dict[str, Any], specs: Sequence[Member], what: str,
                    shape: tuple[int | None, int]) -> list[Recommender]:
    """Rebuild the nested models `member_state` saved, from their (name, params) `specs`.

    Args:
        state: the whole saved state (other keys are ignored).
        specs: (registered name, params) of each nested model, in saved order.
        what: "member" or "generator", for messages.
        shape: (users, items) the nested models' vocabularies must have (users None: any).

    Raises:
        ValueError: a nested model's state lacks vocabularies of that shape.
    """
    from movierec.models import get

    out = []
    for n, (name, params) in enumerate(specs):
        prefix = f"{MEMBER_PREFIX}{n}."
        sub = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if isinstance(sub.get("rating_scale_"), list):  # JSON has no tuples
            sub["rating_scale_"] = tuple(sub["rating_scale_"])
        model = get(name, **params)
        model._restore(sub)
        users, items = (getattr(model, "user_vocab_", None), getattr(model, "item_vocab_", None))
        if items is None or len(items) != shape[1] or (shape[0] is not None and (
                users is None or len(users) != shape[0])):
            size = f"{shape[1]} items" if shape[0] is None else \
                f"{shape[0]} users x {shape[1]} items"
            raise ValueError(f"{what} {n} ({name}): saved state lacks vocabularies of {size}")
        out.append(model)
    return out


def parse_nested(entries: Any, what: str, example: str,
                 refuse: Callable[[str, type[Recommender]], str | None]
                 ) -> tuple[Member, ...]:
    """Check nested-model specs (blend's members, rerank's generators); (name, params) pairs.

    A bare name stands for (name, {}); lists (from JSON or the command line) become tuples, both
    around the pairs and inside parameters, so a saved model loads with equal params; old
    parameter names become the current ones.

    Args:
        entries: the sequence given.
        what: the parameter's name ("members", "generators"), for messages.
        example: an example value for the message on a malformed sequence.
        refuse: (name, class) -> None when the model may be nested, else what is expected
            instead (the message's "expected ..." part).

    Raises:
        ValueError: naming `what` (and the entry) when the sequence is empty, an entry is
            malformed, names no registered model, a refused one, or parameters it rejects.
    """
    from movierec.models import REGISTRY, get_class

    check_param(what, entries, isinstance(entries, list | tuple) and len(entries) > 0,
                f"a non-empty sequence of (model name, {{params}}) pairs, e.g. {example}")
    out: list[Member] = []
    for n, entry in enumerate(entries):
        where = f"{what}[{n}]"
        if isinstance(entry, str):
            entry = (entry, {})
        check_param(where, entry, isinstance(entry, list | tuple) and len(entry) == 2
                    and isinstance(entry[0], str) and isinstance(entry[1], Mapping)
                    and all(isinstance(k, str) for k in entry[1]),
                    "a model name or a (model name, {params}) pair")
        name, params = entry[0], {k: as_tuples(v) for k, v in entry[1].items()}
        check_param(where, name, name in REGISTRY, f"a registered model ({', '.join(REGISTRY)})")
        cls = get_class(name)
        expected = refuse(name, cls)
        check_param(where, name, expected is None, expected or "")
        try:
            params = cls.canonical_params(params)
            unknown = sorted(set(params) - set(cls.param_names()))
            check_param(f"{where} ({name})", params, not unknown,
                        f"parameters of {name!r} ({cls.param_names()}); unknown: {unknown}")
            cls(**params)
        except ValueError as exc:
            raise ValueError(f"{where} ({name}): {exc}") from None
        out.append((name, params))
    return tuple(out)


def nested_labels(specs: Sequence[Member]) -> list[str]:
    """A label per nested model: its name, with "[n]" where the name occurs twice."""
    names = [name for name, _ in specs]
    return [name if names.count(name) == 1 else f"{name}[{n}]" for n, name in enumerate(names)]


#: Registered models whose scores do not order items, so no model can rank with them.
CANNOT_RANK = {"mean": "it gives every item the same score"}
#: Which training ratings a model that learns on a carve-out of `train` holds out.
HOLDOUTS = ("auto", "latest", "random")


def ranking_refusal(name: str) -> str | None:
    """`parse_nested`'s refusal for a model that cannot rank items, else None."""
    if name in CANNOT_RANK:
        return f"a model that ranks items ({name!r} cannot: {CANNOT_RANK[name]})"
    return None


def resolve_holdout(holdout: str, time_ordered: bool | None) -> str:
    """"auto" -> "latest" on a time-ordered split, else "random"; the others unchanged."""
    return holdout if holdout != "auto" else "latest" if time_ordered else "random"


def carve_held(train: Dataset, size: float, seed: int, latest: bool
               ) -> tuple[Dataset, Dataset, np.ndarray, np.ndarray, np.ndarray]:
    """A per-user carve-out of `train` and its ratings in the rest's codes (rerank, fusion).

    Returns:
        (rest, held, held user codes, held item codes, mask of the held ratings whose user and
        item the rest knows), codes -1 where it does not.
    """
    from movierec.split import carve_validation

    inner, held = carve_validation(train, size, seed, time_ordered=latest)
    hu = inner.user_vocab.codes(held.ratings["user_id"].to_numpy(), missing="negative")
    hi = inner.item_vocab.codes(held.ratings["item_id"].to_numpy(), missing="negative")
    return inner, held, hu, hi, (hu >= 0) & (hi >= 0)


def fit_nested(specs: Sequence[Member], train: Dataset, valid: Dataset | None,
               seeds: Sequence[int], progress: bool, fit_seconds: dict[str, float]
               ) -> list[Recommender]:
    """Fit each nested model on `train` with its seed; add its seconds to `fit_seconds`."""
    from movierec.models import get

    fitted = []
    for label, (name, params), seed in zip(nested_labels(specs), specs, seeds, strict=True):
        start = time.perf_counter()
        fitted.append(get(name, **params).fit(train, valid, rng=seed, progress=progress))
        fit_seconds[label] = fit_seconds.get(label, 0.0) + time.perf_counter() - start
    return fitted


def _refuse_member(name: str, cls: type[Recommender]) -> str | None:
    if issubclass(cls, Blend):
        return "a model other than blend or blend-light"
    # A member's prediction is a feature of the ridge: a BPR-trained member's score is allowed
    # (the ridge weighs it), a model with no `predict` at all is not.
    if not cls.predicts_ratings:
        return "a model that predicts ratings (a blend fits ratings by least squares)"
    return None


def normalize_members(members: Any) -> tuple[Member, ...]:
    """Check `members` and return it as a tuple of (registered name, params dict) pairs.

    See `parse_nested`; a member must predict ratings and cannot be a blend.
    """
    return parse_nested(members, "members", "(('bias', {}),)", _refuse_member)


class Blend(Recommender):
    """Stacked ensemble: r̂_ui = b + Σ_m (w_m + v_m·ℓ_u + t_m·ℓ_i) r̂ᵐ_ui + c·ℓ_u + d·ℓ_i.

    r̂ᵐ are the members' rating predictions and ℓ_u = log(1 + n_u), ℓ_i = log(1 + n_i) the
    user's and item's training rating counts (the meta-features of feature-weighted linear
    stacking, Sill et al. 2009: how much each member is trusted may depend on how much data a
    user or item has). With `meta_features=False` only b and the w_m are used.

    Fitting (`fit`): a per-user random `holdout` share of the training ratings is carved out
    (seeded; `movierec.split.user_random_split`); the members are fit on the rest and predict
    the held-out ratings; `ridge_weights` learns (b, w, v, t, c, d) on those predictions,
    shrunk towards the plain average (w_m = 1/M, everything else 0); finally every member is
    refit on all the training ratings. When the carve-out is empty (users with very few
    ratings), the weights are the plain average. Predictions are clipped to the rating scale;
    the ranking score (`_score`) is the unclipped blend over all items.

    Learned state: `members_` (the refit members; saved inside the blend's artifact as prefixed
    tensors and JSON, never pickled), `coef_` and `feature_names_` (read them together as the
    dict `weights_`), `intercept_`, `holdout_rmse_` (each member's and the blend's RMSE on the
    carve-out, the blend's in-sample), `n_holdout_` and `fit_seconds_` (each member's, both
    stages together).

    Args:
        members: the member models as (registered name, {params}) pairs, or bare names; only
            models that predict ratings. Default (None): `STRONG_MEMBERS` when torch is
            installed (bias; item- and user-kNN with explicit pearson_baseline similarities,
            40 neighbours, shrinkage 100; MF, FeatureNet, SVD++ and AutoRec with their
            defaults: about 0.02 RMSE better than the light stack on ML-100K, minutes instead of
            a second), else `LIGHT_MEMBERS` (the first three), with a logged warning.
            `params()` always records the members used.
        holdout: per-user share of the training ratings the weights are learned on (default
            0.1, in (0, 1)).
        alpha: ridge penalty α on the standardized features, towards the plain average; about
            the number of held-out ratings the prior is worth (default 10.0, > 0).
        meta_features: add the log-count features and their products with the members'
            predictions (default True).
    """

    name: ClassVar[str] = "blend"
    nested_param: ClassVar[str | None] = "members"
    search_space: ClassVar[SearchSpace] = {
        "alpha": Float(0.01, 1e4, log=True),
        "holdout": Float(0.05, 0.3),
        "meta_features": Choice([True, False]),
    }
    predicts_ratings: ClassVar[bool] = True

    members_: list[Recommender]
    coef_: np.ndarray
    intercept_: float
    feature_names_: list[str]

    def __init__(self, *, members: Sequence[Any] | None = None, holdout: float = 0.1,
                 alpha: float = 10.0, meta_features: bool = True) -> None:
        # Stored in canonical form (pairs, tuples for lists) so that params survive JSON.
        self.members = normalize_members(self.default_members() if members is None
                                         else members)
        check_param("holdout", holdout, is_number(holdout) and 0 < holdout < 1,
                    "a number in (0, 1)")
        check_param("alpha", alpha, is_number(alpha) and alpha > 0, "a number > 0")
        check_param("meta_features", meta_features, isinstance(meta_features, bool), "a bool")
        self.holdout = holdout
        self.alpha = alpha
        self.meta_features = meta_features

    @classmethod
    def default_members(cls) -> tuple[Member, ...]:
        """The members of `Blend()`: the strong stack, or the light one without torch."""
        if _torch_installed():
            return STRONG_MEMBERS
        global _WARNED_NO_TORCH
        if not _WARNED_NO_TORCH:
            _WARNED_NO_TORCH = True
            logger.warning("blend: torch is not installed, so the default blend is the light "
                           "torch-free stack (bias, itemknn, userknn), as `blend-light`; "
                           "pip install 'movierec[torch]' for the seven-member stack")
        return LIGHT_MEMBERS

    # --- fitting -------------------------------------------------------------------------------
    def fit(self, train: Dataset, valid: Dataset | None = None, *, rng: RNGLike = None,
            progress: bool = True) -> Self:
        """Fit the members on a carve-out of `train`, the weights on the rest, then refit.

        Args:
            train: training data; the ridge's holdout is always carved from it.
            valid: optional validation data, handed to every member's `fit` in both stages
                (early stopping of the neural members); the blend's weights never see it.
            rng: seed or Generator; seeds the carve-out and each member (the same member seed
                in both stages).
            progress: passed on to the members.
        """
        from movierec.split import user_random_split

        self._setup(train)
        gen = as_generator(rng)
        holdout_seed = derive_seed(gen)
        seeds = [derive_seed(gen) for _ in self.members]
        labels = nested_labels(self.members)
        self.feature_names_ = self._feature_names(labels)
        prior = np.zeros(len(self.feature_names_))
        prior[: len(labels)] = 1.0 / len(labels)
        if train.n_ratings >= 2:
            split = user_random_split(train, test_size=self.holdout, rng=holdout_seed)
            inner, held = split.train, split.test
        else:
            inner, held = train, train.with_ratings(train.ratings.iloc[:0])
        self.n_holdout_ = held.n_ratings
        self.holdout_rmse_: dict[str, float] = {}
        self.fit_seconds_: dict[str, float] = {}
        if held.n_ratings:
            logger.info("blend: fitting %d members on %d ratings, weights on %d", len(labels),
                        inner.n_ratings, held.n_ratings)
            models = fit_nested(self.members, inner, valid, seeds, progress, self.fit_seconds_)
            users = held.ratings["user_id"].to_numpy()
            items = held.ratings["item_id"].to_numpy()
            u = inner.user_vocab.codes(users, missing="negative")
            i = inner.item_vocab.codes(items, missing="negative")
            preds = np.stack([m._predict(u, i) for m in models]).astype(np.float64)
            x = self._design(preds, *self._log_counts(inner.matrix("binary"), u, i))
            y = held.ratings["rating"].to_numpy(np.float64)
            self.coef_, self.intercept_ = ridge_weights(x, y, float(self.alpha), prior)
            blended = clip_to_scale(x @ self.coef_ + self.intercept_, self.rating_scale_)
            for label, p in zip([*labels, "blend"], [*preds, blended], strict=True):
                self.holdout_rmse_[label] = float(np.sqrt(np.mean((p - y) ** 2)))
        else:
            logger.info("blend: the %.2f carve-out is empty; using the plain average",
                        self.holdout)
            self.coef_, self.intercept_ = prior, 0.0
        self.members_ = fit_nested(self.members, train, valid, seeds, progress, self.fit_seconds_)
        return self

    def _feature_names(self, labels: list[str]) -> list[str]:
        if not self.meta_features:
            return list(labels)
        return [*labels, *(f"{m}*{USER_COUNT}" for m in labels),
                *(f"{m}*{ITEM_COUNT}" for m in labels), USER_COUNT, ITEM_COUNT]

    def _design(self, preds: np.ndarray, log_users: np.ndarray, log_items: np.ndarray
                ) -> np.ndarray:
        """Features float64 [n, p] in `feature_names_` order from member predictions [M, n]."""
        if not self.meta_features:
            return preds.T
        return np.column_stack([preds.T, (preds * log_users).T, (preds * log_items).T,
                                log_users, log_items])

    @staticmethod
    def _log_counts(seen: Any, u: np.ndarray, i: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """log(1 + training ratings) of each pair's user and item (0 for codes of −1)."""
        n_user = np.diff(seen.indptr)
        n_item = np.bincount(seen.indices, minlength=seen.shape[1])
        lu = np.where(u >= 0, np.log1p(n_user[np.maximum(u, 0)]), 0.0)
        li = np.where(i >= 0, np.log1p(n_item[np.maximum(i, 0)]), 0.0)
        return lu, li

    # --- scoring -------------------------------------------------------------------------------
    @property
    def weights_(self) -> dict[str, float]:
        """The learned weights by feature name, plus "intercept"."""
        self._check_fitted()
        return {**dict(zip(self.feature_names_, self.coef_.tolist(), strict=True)),
                "intercept": float(self.intercept_)}

    def _blend(self, user_codes: np.ndarray, item_codes: np.ndarray) -> np.ndarray:
        """Unclipped blended predictions float64 [n] for code pairs."""
        preds = np.stack([m._predict(user_codes, item_codes) for m in self.members_])
        x = self._design(preds.astype(np.float64), *self._log_counts(self.seen_, user_codes,
                                                                      item_codes))
        return x @ self.coef_ + self.intercept_

    def _predict(self, user_codes: np.ndarray, item_codes: np.ndarray) -> np.ndarray:
        self._check_fitted()
        u = np.asarray(user_codes, dtype=np.int64)
        i = np.asarray(item_codes, dtype=np.int64)
        out = np.empty(len(u), dtype=np.float32)
        for blk in user_blocks(len(u), _PAIRS_PER_BLOCK):
            out[blk] = clip_to_scale(self._blend(u[blk], i[blk]), self.rating_scale_)
        return out

    def _score(self, user_codes: np.ndarray, item_codes: np.ndarray | None = None) -> np.ndarray:
        self._check_fitted()
        items = (np.arange(self.n_items) if item_codes is None
                 else np.asarray(item_codes)).astype(np.int64)
        users = np.asarray(user_codes, dtype=np.int64)
        out = np.empty((len(users), len(items)), dtype=np.float32)
        if out.size == 0:
            return out
        for blk in user_blocks(len(users), max(1, _PAIRS_PER_BLOCK // max(1, len(items)))):
            u = np.repeat(users[blk], len(items))
            i = np.tile(items, len(users[blk]))
            out[blk] = self._blend(u, i).reshape(-1, len(items))
        return out

    # --- persistence ---------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        """Own state plus each member's, keyed "members.<n>.<key>" (tensors and JSON, no pickle)."""
        state = super()._state()
        state.update(member_state(state.pop("members_")))
        return state

    def _restore(self, state: dict[str, Any]) -> None:
        super()._restore({k: v for k, v in state.items() if not k.startswith(MEMBER_PREFIX)})
        # The blend feeds its own codes to the members: their vocabularies must be its own.
        self.members_ = restore_members(state, self.members, "member",
                                        (len(self.user_vocab_), len(self.item_vocab_)))
        if len(np.ravel(self.coef_)) != len(self.feature_names_):
            raise ValueError(f"coef_ has {len(np.ravel(self.coef_))} weights for "
                             f"{len(self.feature_names_)} features")


class LightBlend(Blend):
    """`Blend` with the torch-free `LIGHT_MEMBERS` as default members (registered as `blend-light`).

    Bias, and item- and user-kNN with explicit pearson_baseline similarities (40 neighbours,
    shrinkage 100); about a second on ML-100K. Every argument is Blend's.
    """

    name: ClassVar[str] = "blend-light"

    @classmethod
    def default_members(cls) -> tuple[Member, ...]:
        """`LIGHT_MEMBERS`, with or without torch."""
        return LIGHT_MEMBERS


def _torch_installed() -> bool:
    """Whether torch can be imported (checked without importing it)."""
    return importlib.util.find_spec("torch") is not None
