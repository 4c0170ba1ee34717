"""Rerank: candidate generators, then a LightGBM LambdaRank model over their candidates.

The two-stage design of production recommenders (Covington, Adams & Sargin, "Deep Neural
Networks for YouTube Recommendations", RecSys 2016): cheap generators each propose their top-N
items, and a learning-to-rank model (LambdaMART: Burges, "From RankNet to LambdaRank to
LambdaMART", MSR-TR-2010-82; LightGBM's `lambdarank` objective, Ke et al., NeurIPS 2017)
orders the union of the proposals using the generators' scores and ranks plus item, user and
genre features computed from the training data only.

Needs the `rank` extra (`pip install 'movierec[rank]'`, LightGBM ≥ 4).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Self

import numpy as np
import pandas as pd
import scipy.sparse as sp

from movierec.data.dataset import Dataset
from movierec.errors import MissingExtraError, MovieRecError
from movierec.models._rerank_features import (
    CONTEXT_FEATURES,
    RECENT,
    SEQUENCE_FEATURES,
    SEQUENCE_KEYS,
    TIMELINE_KEYS,
    context_columns,
    sequence_columns,
    sequence_side,
    side_features,
    timeline,
    user_rows,
)
from movierec.models.base import Recommender, check_param, is_int, is_number, user_blocks
from movierec.models.blend import (
    HOLDOUTS,
    MEMBER_PREFIX,
    Member,
    carve_held,
    fit_nested,
    member_state,
    nested_labels,
    parse_nested,
    ranking_refusal,
    resolve_holdout,
    restore_members,
)
from movierec.models.space import Float, Int, SearchSpace
from movierec.random import RNGLike, as_generator, derive_seed

if TYPE_CHECKING:
    import lightgbm

__all__ = ["DEFAULT_GENERATORS", "Rerank", "SIDE_FEATURES", "normalize_generators",
           "side_features"]

logger = logging.getLogger(__name__)

#: EASE (λ 500), item-kNN (cosine, 100 neighbours) and popularity: three cheap generators.
DEFAULT_GENERATORS: tuple[Member, ...] = (("ease", {}), ("itemknn", {}), ("pop", {}))
RELEVANCES = ("binary", "graded")
#: The features that do not come from a generator, in the ranker's column order.
SIDE_FEATURES = ("item_log_count", "item_mean_rating", "item_days_since_last",
                 "item_days_since_first", "item_year", "user_log_count", "user_mean_rating",
                 "user_days_since_last", "genre_overlap", "user_age", "user_gender",
                 "user_occupation")
CATEGORICAL = ("user_occupation",)
RANKER_FILE = "ranker.txt"
SIDE_PREFIX = "side."
_USERS_PER_BLOCK = 256
# Candidates tied by the ranker are ordered by the first generator: its normalized rank is
# added with this weight times the spread of the ranker's training predictions.
_TIE_WEIGHT = 1e-3
# The ranker boosts from the first generator's standardized score (its "zscore" column).
_BASE_COLUMN = 1
# Share of the ranker's users set aside for early stopping.
_STOP_SHARE = 0.2


def _lightgbm() -> Any:
    """The lightgbm module, or a MissingExtraError naming the extra."""
    try:
        import lightgbm
    except ImportError as exc:
        raise MissingExtraError("rerank needs lightgbm for its LambdaRank ranker: "
                                "pip install 'movierec[rank]'") from exc
    return lightgbm


def _refuse_generator(name: str, cls: type[Recommender]) -> str | None:
    if (refusal := ranking_refusal(name)) is not None:
        return refusal
    if issubclass(cls, Rerank):
        return "a model other than rerank"
    return None


def normalize_generators(generators: Any) -> tuple[Member, ...]:
    """Check `generators` and return it as a tuple of (registered name, params dict) pairs.

    See `parse_nested`; a generator must rank items (not `mean`) and cannot be a re-ranker.
    """
    return parse_nested(generators, "generators", "(('ease', {}),)", _refuse_generator)


class Rerank(Recommender):
    """Two-stage re-ranker: s(u, i) = f(x_ui) for i in C(u) = ∪_g top-N_g(u), else below.

    f is a LightGBM LambdaRank model (gradient-boosted trees maximizing NDCG over each user's
    candidates) and x_ui the features `feature_names_`: for each generator g its score and its
    score standardized within the user's pool and its rank among the user's unseen items
    ("<g>.score", "<g>.zscore", "<g>.rank"), then `SIDE_FEATURES`: the
    item's log training count, mean rating, days since its last and first training rating,
    release year; the user's log count, mean rating, days since their last rating; the genre
    overlap Σ_g p_ug x_ig / Σ_g x_ig (p_ug: share of the user's rated items with genre g; x_ig:
    the item's genres); and the user's age, gender and occupation where the users table has them.
    With `time_context` (the default), `CONTEXT_FEATURES` place the movie in the user's own
    time: its log training count up to the user's last training day, its log count and share of
    all ratings within the user's active period (from `context_days` before their first
    training rating to their last), and its age in days on the user's last day. Nothing after
    the user's last training day is counted, so a time-ordered split's features do not look
    into the user's future; a new user folded in is placed at the training end.
    With `sequence_window` > 0 (default 3), `SEQUENCE_FEATURES` add what users rated close
    together in time: Σ_j S[j, i] over the user's training movies j and over their `RECENT` (5)
    latest, S the item-kNN cosine of movies rated within `sequence_window` places of each other
    in a user's time-ordered ratings (`sequence_weights`); a folded-in user's latest movies are
    the last ones given.

    Fitting: a per-user `holdout_size` share of `train` is carved out
    (`movierec.split.carve_validation`; `holdout="random"`, the default: a seeded random share,
    for random splits; "latest": each user's latest ratings, for time-ordered evaluation and
    serving; `n_holdouts` random carve-outs learned from together). The generators are fit on the
    rest; their candidates for the held-out users, with features from the rest, are the
    ranker's rows, and a held-out rating is a relevant candidate (label 1; with
    `relevance="graded"` its rating rounded, 1-5 stars as 1-5). Users without a held-out
    candidate are left out. Then the generators are refit on all of `train` for serving.

    The trees boost from the first generator's pool-standardized score (LightGBM's
    init_score), so the ranker learns corrections to it, and stop early on the NDCG@10 of a
    seeded 20% of the ranker's users (`early_stopping_rounds`).

    Scoring (`_score`): a candidate's score is that standardized score plus the trees' output
    (ties broken by the first generator's order);
    every other item gets a score below every candidate, in the first generator's order, so a
    list longer than the pool is filled by the first generator (a warning says so when k is
    larger than `n_candidates`) and full-ranking evaluation stays well defined. Seen items come
    last of all.

    Fold-in (`_score_history`): each generator scores the new user by its own fold-in
    (`movierec.fold_in.fold_in`), and the user's features come from the given history
    (demographics missing).

    Learned state: `generators_` (saved inside the artifact as prefixed tensors and JSON, never
    pickled), the ranker as LightGBM's own text format (`ranker_model_`, its bytes in the
    safetensors file; `save` also writes it as ranker.txt for `lightgbm.Booster(model_file=...)`),
    `feature_names_`, `feature_importances_` (total gain by feature name, also in model.json),
    `n_ranker_users_`, `n_ranker_rows_`, `fit_seconds_`.

    Args:
        generators: candidate generators as (registered name, {params}) pairs or bare names;
            any model that ranks (not `mean`). Default: `DEFAULT_GENERATORS` (EASE λ=500,
            item-kNN, popularity).
        n_candidates: items each generator proposes per user, N (default 100, ≥ 1).
        holdout: "auto" (default), "random" or "latest": which training ratings the ranker
            learns from. "latest" suits time-ordered evaluation and serving what comes next
            (ML-100K user-time validation: NDCG@10 0.198 against 0.164 with "random"), but
            not random splits, where it teaches the ranker a recency that is not there
            (user-random validation: 0.151 against 0.267). "auto" takes "latest" when `fit` is
            told the split is time-ordered (`time_ordered=True`, which `movierec.pipeline`
            passes for user-time, time and loo splits), else "random"; `holdout_used_` records
            the choice.
        holdout_size: per-user share of the training ratings held out, in (0, 1) (default 0.2).
        n_holdouts: random carve-outs (different seeds) whose rows the ranker learns from
            together; more rows for the price of fitting the generators once more each
            (default 1; must be 1 with holdout="latest"; 3 did not help on ML-100K).
        relevance: "binary" (default: every held-out rating is relevant) or "graded".
        n_estimators: boosting rounds at most (default 300, ≥ 1).
        learning_rate: shrinkage of each tree (default 0.05, > 0).
        num_leaves: leaves per tree (default 7, ≥ 2).
        min_child_samples: rows per leaf at least (default 200, ≥ 1).
        early_stopping_rounds: stop boosting once the NDCG@10 of a held-aside 20% of the
            ranker's users has not improved for this many rounds (default 30; 0: no stopping,
            all users fit, `n_estimators` rounds).
        time_context: add the `CONTEXT_FEATURES` (default True). Picked on validation
            carve-outs (split seed 1, the test parts never read): ml-latest-small user-time
            NDCG@10 0.0982 without, 0.1055 with (EASE 0.0950); ML-100K user-random 0.1975
            without, 0.1982 with (EASE 0.1988); ML-100K user-time 0.1489 without, 0.1478 with.
        context_days: days before the user's first training rating that still count as their
            active period (default 30, ≥ 0; 7 gave 0.1050 and 0.1444 on the carve-outs above).
        sequence_window: places apart in a user's time order within which two movies count as
            rated together for the `SEQUENCE_FEATURES` (default 3, ≥ 0; 0: no such features).
            Picked on the same carve-outs (with the time context): window 0 / 1 / 3 gave
            ml-latest-small user-time 0.1055 / 0.1203 / 0.1249, ML-100K user-time 0.1478 /
            0.1676 / 0.1796, ML-100K user-random 0.1982 / 0.1990 / 0.1995 (10: 0.1923).
        n_threads: LightGBM threads for fitting and scoring (default 1, ≥ 1).
    """

    name: ClassVar[str] = "rerank"
    nested_param: ClassVar[str | None] = "generators"
    uses_features: ClassVar[bool] = True
    uses_sequence: ClassVar[bool] = True  # holdout="latest" reads the time order
    adapts_to_split_order: ClassVar[bool] = True  # fit(time_ordered=...) decides holdout="auto"
    # The ranker's own settings (the generators keep theirs; tune them first, separately).
    search_space: ClassVar[SearchSpace] = {
        "n_candidates": Int(50, 300, log=True),
        "learning_rate": Float(0.01, 0.2, log=True),
        "num_leaves": Int(3, 31, log=True),
        "min_child_samples": Int(20, 500, log=True),
        "context_days": Int(0, 90),
        "sequence_window": Int(0, 10),
    }
    supports_fold_in: ClassVar[bool] = True

    generators_: list[Recommender]
    feature_names_: list[str]
    feature_importances_: dict[str, float]
    ranker_model_: np.ndarray

    def __init__(self, *, generators: Sequence[Any] | None = None, n_candidates: int = 100,
                 holdout: str = "auto", holdout_size: float = 0.2, n_holdouts: int = 1,
                 relevance: str = "binary",
                 n_estimators: int = 300, learning_rate: float = 0.05, num_leaves: int = 7,
                 min_child_samples: int = 200, early_stopping_rounds: int = 30,
                 time_context: bool = True, context_days: int = 30, sequence_window: int = 3,
                 n_threads: int = 1) -> None:
        self.generators = normalize_generators(DEFAULT_GENERATORS if generators is None
                                               else generators)
        check_param("n_candidates", n_candidates, is_int(n_candidates, 1), "an integer ≥ 1")
        check_param("holdout", holdout, holdout in HOLDOUTS, f"one of {HOLDOUTS}")
        check_param("holdout_size", holdout_size,
                    is_number(holdout_size) and 0 < holdout_size < 1, "a number in (0, 1)")
        check_param("n_holdouts", n_holdouts, is_int(n_holdouts, 1)
                    and (n_holdouts == 1 or holdout != "latest"),
                    "an integer ≥ 1, and 1 with holdout='latest' (its carve-out is unique)")
        check_param("relevance", relevance, relevance in RELEVANCES, f"one of {RELEVANCES}")
        check_param("n_estimators", n_estimators, is_int(n_estimators, 1), "an integer ≥ 1")
        check_param("learning_rate", learning_rate,
                    is_number(learning_rate) and learning_rate > 0, "a number > 0")
        check_param("num_leaves", num_leaves, is_int(num_leaves, 2), "an integer ≥ 2")
        check_param("min_child_samples", min_child_samples, is_int(min_child_samples, 1),
                    "an integer ≥ 1")
        check_param("early_stopping_rounds", early_stopping_rounds,
                    is_int(early_stopping_rounds, 0), "an integer ≥ 0")
        check_param("time_context", time_context, isinstance(time_context, bool), "true or false")
        check_param("context_days", context_days, is_int(context_days, 0), "an integer ≥ 0")
        check_param("sequence_window", sequence_window, is_int(sequence_window, 0),
                    "an integer ≥ 0")
        check_param("n_threads", n_threads, is_int(n_threads, 1), "an integer ≥ 1")
        self.sequence_window = sequence_window
        self.time_context = time_context
        self.context_days = context_days
        self.n_candidates = n_candidates
        self.holdout = holdout
        self.holdout_size = holdout_size
        self.n_holdouts = n_holdouts
        self.relevance = relevance
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.num_leaves = num_leaves
        self.min_child_samples = min_child_samples
        self.early_stopping_rounds = early_stopping_rounds
        self.n_threads = n_threads

    # --- fitting -------------------------------------------------------------------------------
    def fit(self, train: Dataset, valid: Dataset | None = None, *, rng: RNGLike = None,
            progress: bool = True, time_ordered: bool | None = None) -> Self:
        """Fit the generators on a carve-out of `train`, the ranker on the rest, then refit.

        Args:
            train: training data; the ranker's holdout is always carved from it.
            valid: optional validation data, handed to every generator's `fit` (early stopping
                of neural generators); the ranker never sees it.
            rng: seed or Generator; seeds the carve-out, each generator and the ranker.
            progress: passed on to the generators.
            time_ordered: whether the evaluation split orders each user's ratings by time
                (decides `holdout="auto"`; None counts as False).
        """
        lgb = _lightgbm()
        self.holdout_used_ = resolve_holdout(self.holdout, time_ordered)
        if self.holdout_used_ == "latest" and self.n_holdouts != 1:
            raise MovieRecError(f"rerank: n_holdouts={self.n_holdouts} needs random carve-outs, "
                                "but holdout resolves to 'latest' (a time-ordered split); set "
                                "n_holdouts=1 or holdout='random'")
        self._setup(train)
        gen = as_generator(rng)
        carve_seed, ranker_seed = derive_seed(gen), derive_seed(gen)
        seeds = [derive_seed(gen) for _ in self.generators]
        self.genres_ = list(train.genres)
        users = train.users
        self.occupations_ = ([] if users is None or "occupation" not in users else sorted(
            {str(o) for o in users.loc[users["user_id"].isin(train.user_vocab.index),
                                       "occupation"].dropna()}))
        self.feature_names_ = [*(f"{label}.{what}" for label in nested_labels(self.generators)
                                 for what in ("score", "zscore", "rank")), *SIDE_FEATURES,
                               *(CONTEXT_FEATURES if self.time_context else ()),
                               *(SEQUENCE_FEATURES if self.sequence_window else ())]
        self.fit_seconds_: dict[str, float] = {}
        x, y, groups, group_users = self._ranker_rows(train, valid, carve_seed, seeds, progress)
        self.n_ranker_users_, self.n_ranker_rows_ = len(np.unique(group_users)), len(y)
        start = time.perf_counter()
        self._booster: lightgbm.Booster | None = None
        self.tie_scale_ = 1.0
        if len(groups):
            self._booster = self._train_ranker(lgb, x, y, groups, group_users, ranker_seed)
            pred = self._booster.predict(x, num_threads=self.n_threads) + x[:, _BASE_COLUMN]
            spread = float(np.std(pred))
            self.tie_scale_ = _TIE_WEIGHT * spread if spread > 0 else 1.0
        else:
            logger.warning("rerank: the %.2f carve-out gave no held-out candidate; ranking by "
                           "the first generator alone", self.holdout_size)
        self.fit_seconds_["ranker"] = time.perf_counter() - start
        self.ranker_model_ = np.frombuffer(self._ranker_text().encode(), dtype=np.uint8).copy()
        self.feature_importances_ = self._importances()
        self.generators_ = fit_nested(self.generators, train, valid, seeds, progress,
                                      self.fit_seconds_)
        self._side = self._side_features(train)
        return self

    def _side_features(self, train: Dataset) -> dict[str, np.ndarray]:
        side = side_features(train, self.genres_, self.occupations_)
        if self.time_context:
            side.update(timeline(train))
        if self.sequence_window:
            side.update(sequence_side(train, int(self.sequence_window)))
        return side

    def _train_ranker(self, lgb: Any, x: np.ndarray, y: np.ndarray, groups: np.ndarray,
                      group_users: np.ndarray, seed: int) -> lightgbm.Booster:
        """LambdaRank boosting from the first generator's standardized score, early-stopped.

        With `early_stopping_rounds`, a seeded `_STOP_SHARE` of the ranker's users is set aside
        and boosting stops once their NDCG@10 has not risen for that many rounds.
        """
        names = [re.sub(r"[^A-Za-z0-9_.]", "_", f) for f in self.feature_names_]
        base = x[:, _BASE_COLUMN]
        params = self._lgb_params(seed)
        user = np.repeat(np.arange(len(groups)), groups)
        stop = np.zeros(len(groups), dtype=bool)
        distinct = np.unique(group_users)
        if self.early_stopping_rounds and len(distinct) >= 10:
            # By user, so that no user of the stopping set is also fit (several carve-outs).
            order = np.random.default_rng(seed).permutation(distinct)
            stop = np.isin(group_users, order[: max(1, round(_STOP_SHARE * len(distinct)))])

        def dataset(rows: np.ndarray, part: np.ndarray, **kw: Any) -> Any:
            return lgb.Dataset(x[rows], label=y[rows], group=groups[part], init_score=base[rows],
                               feature_name=names, categorical_feature=list(CATEGORICAL), **kw)

        fit_rows = ~stop[user]
        data = dataset(fit_rows, ~stop)
        if not stop.any():
            return lgb.train(params, data, num_boost_round=self.n_estimators)
        held = dataset(~fit_rows, stop, reference=data)
        params.update(metric="ndcg", eval_at=[10])
        callbacks = [lgb.early_stopping(self.early_stopping_rounds, verbose=False)]
        return lgb.train(params, data, num_boost_round=self.n_estimators, valid_sets=[held],
                         callbacks=callbacks)

    def _lgb_params(self, seed: int) -> dict[str, Any]:
        return {"objective": "lambdarank", "learning_rate": float(self.learning_rate),
                "num_leaves": int(self.num_leaves),
                "min_data_in_leaf": int(self.min_child_samples), "min_sum_hessian_in_leaf": 0.0,
                "feature_fraction": 0.9, "bagging_fraction": 0.9, "bagging_freq": 1,
                "seed": int(seed % (2**31)), "deterministic": True, "force_row_wise": True,
                "num_threads": int(self.n_threads), "verbosity": -1,
                "lambdarank_truncation_level": 20, "metric": "none"}

    def _ranker_rows(self, train: Dataset, valid: Dataset | None, seed: int, seeds: list[int],
                     progress: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """(features [n, p], labels int [n], group sizes, group user ids) over the carve-outs."""
        parts = []
        carve_seeds = np.random.default_rng(seed).integers(0, 2**31, size=self.n_holdouts)
        for carve_seed in carve_seeds.tolist() if train.n_ratings >= 2 else []:
            parts.append(self._carve_rows(train, valid, carve_seed, seeds, progress))
        if not parts:
            parts = [(np.empty((0, len(self.feature_names_))), np.empty(0, np.int32),
                      np.empty(0, np.int64), np.empty(0, np.int64))]
        x, y, groups, users = (np.concatenate(p) for p in zip(*parts, strict=True))
        return x, y, groups, users

    def _carve_rows(self, train: Dataset, valid: Dataset | None, seed: int, seeds: list[int],
                    progress: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The ranker's rows of one carve-out (see `_ranker_rows`)."""
        inner, held, hu, hi, ok = carve_held(train, self.holdout_size, seed,
                                             self.holdout_used_ == "latest")
        rating = held.ratings["rating"].to_numpy(np.float64)[ok]
        label = (np.ones(ok.sum()) if self.relevance == "binary"
                 else np.clip(np.rint(rating), 1, 31))
        labels = sp.csr_matrix((label, (hu[ok], hi[ok])), shape=(inner.n_users, inner.n_items))
        models = fit_nested(self.generators, inner, valid, seeds, progress, self.fit_seconds_)
        side = self._side_features(inner)
        seen = inner.matrix("binary")
        users = np.unique(hu[ok])
        xs = [np.empty((0, len(self.feature_names_)))]
        ys, gs, us = [np.empty(0, np.int32)], [np.empty(0, np.int64)], [np.empty(0, np.int64)]
        for blk in user_blocks(len(users), _USERS_PER_BLOCK):
            codes = users[blk]
            scores = [m._score(codes) for m in models]
            pool, ranks = self._pool(scores, seen[codes].toarray() > 0)
            rows, cols = np.nonzero(pool)
            y = np.asarray(labels[codes][rows, cols]).ravel().astype(np.int32)
            keep_user = np.bincount(rows, weights=y, minlength=len(codes)) > 0
            keep = keep_user[rows]
            xs.append(self._design(scores, ranks, rows[keep], cols[keep],
                                   user_rows(side, codes, seen[codes]), side))
            ys.append(y[keep])
            gs.append(np.bincount(rows[keep], minlength=len(codes))[keep_user])
            us.append(inner.user_vocab.ids(codes[keep_user]).astype(np.int64))
        return np.concatenate(xs), np.concatenate(ys), np.concatenate(gs), np.concatenate(us)

    # --- the candidate pool and its features ---------------------------------------------------
    def _pool(self, scores: list[np.ndarray], seen: np.ndarray
              ) -> tuple[np.ndarray, list[np.ndarray]]:
        """(pool bool [b, n], each generator's rank int32 [b, n]: 1 = best unseen item).

        Ranks order the unseen items first, ties to the lower item code (as `rank_block`), and
        the seen ones after them.
        """
        pool = np.zeros(seen.shape, dtype=bool)
        ranks = []
        steps = np.broadcast_to(np.arange(1, seen.shape[1] + 1, dtype=np.int32), seen.shape)
        for s in scores:
            block = np.where(seen, -np.inf, np.nan_to_num(np.asarray(s, np.float64), nan=-np.inf))
            order = np.argsort(-block, axis=1, kind="stable")
            rank = np.empty(seen.shape, dtype=np.int32)
            np.put_along_axis(rank, order, steps, axis=1)
            pool |= rank <= self.n_candidates
            ranks.append(rank)
        return pool & ~seen, ranks

    def _design(self, scores: list[np.ndarray], ranks: list[np.ndarray], rows: np.ndarray,
                cols: np.ndarray, user: dict[str, np.ndarray], side: dict[str, np.ndarray]
                ) -> np.ndarray:
        """Features float64 [len(rows), p] in `feature_names_` order for (row, item) pairs."""
        columns: list[np.ndarray] = []
        n_rows = int(rows.max()) + 1 if len(rows) else 0
        size = np.maximum(np.bincount(rows, minlength=n_rows), 1)
        for s, r in zip(scores, ranks, strict=True):
            value = np.asarray(s, np.float64)[rows, cols]
            # The score standardized within the user's pool: scales differ between users.
            mean = np.bincount(rows, weights=value, minlength=n_rows) / size
            dev = value - mean[rows]
            std = np.sqrt(np.bincount(rows, weights=dev**2, minlength=n_rows) / size)
            z = np.divide(dev, std[rows], out=np.zeros_like(dev), where=std[rows] > 0)
            columns += [value, z, r[rows, cols].astype(np.float64)]
        names = self.feature_names_[len(columns):]
        pair: dict[str, np.ndarray] = {}  # features of the (user, item) pair itself
        if any(n in CONTEXT_FEATURES for n in names):
            pair.update(context_columns(side, user, rows, cols, self.context_days))
        if any(n in SEQUENCE_FEATURES for n in names):
            pair.update(sequence_columns(side, user, rows, cols))
        for name in names:
            if name in pair:
                columns.append(pair[name])
            elif name == "genre_overlap":
                genres = side["item_genres"][cols]
                overlap = (user["user_genres"][rows] * genres).sum(axis=1)
                columns.append(overlap / np.maximum(genres.sum(axis=1), 1.0))
            elif name.startswith("item_"):
                columns.append(side[name][cols])
            else:
                columns.append(user[name][rows])
        return np.column_stack(columns) if columns else np.empty((0, 0))

    def _rerank(self, scores: list[np.ndarray], seen: np.ndarray, user: dict[str, np.ndarray]
                ) -> np.ndarray:
        """Final scores float32 [b, n_items] of a block (see the class docstring)."""
        pool, ranks = self._pool(scores, seen)
        rows, cols = np.nonzero(pool)
        n = seen.shape[1]
        pred = np.zeros(len(rows))
        booster = self._ranker()
        if booster is not None and len(rows):
            x = self._design(scores, ranks, rows, cols, user, self._side)
            pred = booster.predict(x, num_threads=self.n_threads) + x[:, _BASE_COLUMN]
        first = ranks[0].astype(np.float64) / n  # in (0, 1], the first generator's order
        cand = pred + self.tie_scale_ * (1.0 - first[rows, cols])
        floor = np.zeros(len(seen))
        if len(rows):
            low = np.full(len(seen), np.inf)
            np.minimum.at(low, rows, cand)
            floor = np.where(np.isfinite(low), low, 0.0)
        out = (floor - 1.0)[:, None] - first  # below every candidate of the row
        out[rows, cols] = cand
        return out.astype(np.float32)

    # --- scoring -------------------------------------------------------------------------------
    def _ranker(self) -> lightgbm.Booster | None:
        booster = self.__dict__.get("_booster", False)
        if booster is False:  # restored from an artifact: rebuild from the saved text
            text = bytes(np.asarray(self.ranker_model_, dtype=np.uint8)).decode()
            booster = _lightgbm().Booster(model_str=text) if text else None
            self._booster = booster
        return booster

    def _ranker_text(self) -> str:
        booster = self._ranker()
        return "" if booster is None else booster.model_to_string()

    def _importances(self) -> dict[str, float]:
        booster = self._ranker()
        if booster is None:
            return dict.fromkeys(self.feature_names_, 0.0)
        gain = booster.feature_importance(importance_type="gain")
        return {name: float(g) for name, g in zip(self.feature_names_, gain, strict=True)}

    def _score(self, user_codes: np.ndarray, item_codes: np.ndarray | None = None) -> np.ndarray:
        self._check_fitted()
        users = np.asarray(user_codes, dtype=np.int64)
        out = np.empty((len(users), self.n_items), dtype=np.float32)
        for blk in user_blocks(len(users), _USERS_PER_BLOCK):
            codes = users[blk]
            scores = [g._score(codes) for g in self.generators_]
            history = self.seen_[codes]
            out[blk] = self._rerank(scores, history.toarray() > 0,
                                    user_rows(self._side, codes, history))
        return out if item_codes is None else out[:, np.asarray(item_codes, dtype=np.int64)]

    def _score_history(self, item_codes: np.ndarray, ratings: np.ndarray) -> np.ndarray:
        """Scores float32 [n_items] of a new user from their (item code, rating) history."""
        from movierec.fold_in import fold_in

        self._check_fitted()
        codes = np.asarray(item_codes, dtype=np.int64)
        r = np.asarray(ratings, dtype=np.float64)
        ids = self.item_vocab_.ids(codes)
        scores = [fold_in(g, ids, r).scores[None, :] for g in self.generators_]
        seen = np.zeros((1, self.n_items), dtype=bool)
        seen[0, codes] = True
        genres = self._side["item_genres"]
        # Every per-user value unknown (NaN: no demographics; no training days, which places
        # the user at the training end), then what the history tells.
        user = {k: np.array([np.nan]) for k, v in self._side.items()
                if k.startswith("user_") and not sp.issparse(v) and np.ndim(v) == 1}
        user["user_log_count"] = np.array([np.log1p(len(codes))])
        user["user_mean_rating"] = np.array([r.mean() if len(r) else np.nan])
        user["user_days_since_last"] = np.array([0.0])  # rating now
        user["history"] = sp.csr_matrix(seen, dtype=np.float32)
        if "user_recent" in self._side:  # the last given movies are the latest
            recent = np.zeros((1, self.n_items), dtype=np.float32)
            recent[0, codes[codes >= 0][-RECENT:]] = 1.0
            user["user_recent"] = sp.csr_matrix(recent)
        user["user_genres"] = (genres[codes].mean(axis=0, keepdims=True) if len(codes)
                               else np.zeros((1, genres.shape[1]), np.float32))
        return self._rerank(scores, seen, user)[0]

    def top_k_codes(self, user_codes: np.ndarray, k: int, *, exclude_seen: bool = True,
                    candidates: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """As `Recommender.top_k_codes`; warns once when k exceeds the guaranteed pool size."""
        if k > self.n_candidates and not self.__dict__.get("_warned_k"):
            self._warned_k = True
            logger.warning("rerank: k=%d is larger than n_candidates=%d; places beyond a user's "
                           "candidate pool are filled in the first generator's (%s) order",
                           k, self.n_candidates, self.generators[0][0])
        return super().top_k_codes(user_codes, k, exclude_seen=exclude_seen,
                                   candidates=candidates)

    # --- persistence ---------------------------------------------------------------------------
    def save(self, path: str | Path, *, catalog: pd.DataFrame | None | bool = None,
             extra: dict[str, Any] | None = None) -> Path:
        """As `Recommender.save`, plus the ranker as LightGBM text (ranker.txt) and importances.

        The ranker that `load` uses is the copy inside the checksummed state.safetensors;
        ranker.txt is the same text, for `lightgbm.Booster(model_file=...)` outside movierec.
        """
        self._check_fitted()
        extra = {"feature_importances": self.feature_importances_, "ranker_file": RANKER_FILE,
                 **(extra or {})}
        out = super().save(path, catalog=catalog, extra=extra)
        (out / RANKER_FILE).write_text(self._ranker_text())
        return out

    def _state(self) -> dict[str, Any]:
        """Own state, each generator's ("members.<n>.<key>") and the side features ("side.")."""
        state = super()._state()
        state.update(member_state(state.pop("generators_")))
        for key, value in self._side.items():
            state[f"{SIDE_PREFIX}{key}"] = value
        return state

    def _restore(self, state: dict[str, Any]) -> None:
        own = {k: v for k, v in state.items()
               if not k.startswith((MEMBER_PREFIX, SIDE_PREFIX))}
        super()._restore(own)
        self._side = {k[len(SIDE_PREFIX):]: v if sp.issparse(v) else np.asarray(v)
                      for k, v in state.items() if k.startswith(SIDE_PREFIX)}
        self.generators_ = restore_members(state, self.generators, "generator",
                                           (None, len(self.item_vocab_)))
        missing = {*(f for f in SIDE_FEATURES if f != "genre_overlap"), "item_genres",
                   "user_genres"} - set(self._side)
        if any(f in CONTEXT_FEATURES for f in self.feature_names_):
            missing |= set(TIMELINE_KEYS) - set(self._side)
        if any(f in SEQUENCE_FEATURES for f in self.feature_names_):
            missing |= set(SEQUENCE_KEYS) - set(self._side)
        if missing:
            raise ValueError(f"side features missing from the saved state: {sorted(missing)}")
        self.__dict__.pop("_booster", None)
        self._ranker()
