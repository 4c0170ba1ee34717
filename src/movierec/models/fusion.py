"""Fusion: a weighted sum of ranking models' standardized scores, weights learned on a carve-out.

Score fusion in the manner of CombSUM over z-normalized scores (Fox & Shaw, "Combination of
Multiple Searches", TREC-2 1994; Montague & Aslam, "Relevance Score Normalization for
Metasearch", CIKM 2001) with weights chosen, as in stacked ensembles, on ratings the members did
not see: each member's scores for a user are standardized over the items the user has not rated
(mean 0, deviation 1), and the fused score is Σ_m w_m z_m(u, i).

Different model families make different mistakes: on the ML-100K per-user random split EASE (a
closed-form item model) and RecVAE (a variational autoencoder over users) rank the held-out
movies with errors that partly cancel, so their fusion is ahead of either, where no single
model got more than 1 % past a tuned EASE (docs/results.md, "Ranking ahead of EASE").
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from typing import Any, ClassVar, Self

import numpy as np

from movierec.data.dataset import Dataset
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

__all__ = ["DEFAULT_GRID", "DEFAULT_MEMBERS", "Fusion", "choose_weights", "fused",
           "member_groups", "normalize_members", "standardize"]

logger = logging.getLogger(__name__)

#: EASE (λ 500) and RecVAE fit with three seeds (one weight for their mean), both at their
#: defaults: a linear item model and an autoencoder over users (picked on the ML-100K
#: user-random validation carve-out of split seed 1; see the class docstring).
DEFAULT_MEMBERS: tuple[Member, ...] = (("ease", {}), ("recvae", {}), ("recvae", {}),
                                       ("recvae", {}))
#: The weights coordinate ascent tries for each group after the first (whose weight is 1).
DEFAULT_GRID: tuple[float, ...] = (0.0, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0)
# A score no item gets (non-finite member scores, seen items of a model that masks them).
_FLOOR = -1e3
_USERS_PER_BLOCK = 256


def _refuse_member(name: str, cls: type[Recommender]) -> str | None:
    if (refusal := ranking_refusal(name)) is not None:
        return refusal
    if issubclass(cls, Fusion):
        return "a model other than fusion"
    return None


def normalize_members(members: Any) -> tuple[Member, ...]:
    """Check `members` and return it as a tuple of (registered name, params dict) pairs.

    See `parse_nested`; a member must rank items (not `mean`) and cannot be a fusion.
    """
    return parse_nested(members, "members", "(('ease', {}), ('recvae', {}))", _refuse_member)


def standardize(scores: np.ndarray, seen: np.ndarray) -> np.ndarray:
    """Scores float32 [b, n] standardized per row over the unseen items (mean 0, deviation 1).

    Seen items are shifted and scaled with the same row's mean and deviation; a non-finite score
    becomes `_FLOOR` (below every standardized one in practice); a row whose unseen scores are
    all equal becomes 0 there.
    """
    s = np.asarray(scores, dtype=np.float64)
    finite = np.isfinite(s)
    use = finite & ~seen
    count = use.sum(axis=1, keepdims=True)
    safe = np.where(use, s, 0.0)
    mean = safe.sum(axis=1, keepdims=True) / np.maximum(count, 1)
    var = (np.where(use, s - mean, 0.0) ** 2).sum(axis=1, keepdims=True) / np.maximum(count, 1)
    std = np.sqrt(var)
    z = np.divide(s - mean, std, out=np.zeros_like(s), where=(std > 0) & finite)
    return np.where(finite, z, _FLOOR).astype(np.float32)


def member_groups(members: Sequence[Member]) -> np.ndarray:
    """Group index int [members] of each member: equal (name, params) share one, in order."""
    keys: dict[str, int] = {}
    return np.array([keys.setdefault(json.dumps([name, params], sort_keys=True, default=str),
                                     len(keys)) for name, params in members], dtype=np.int64)


def ndcg_at(scores: np.ndarray, seen: np.ndarray, truth: np.ndarray, k: int) -> float:
    """Mean NDCG@k over rows: every `truth` item relevant, `seen` items never ranked."""
    from movierec.metrics import ndcg
    from movierec.ranking import topk_rows

    top, _ = topk_rows(np.where(seen, -np.inf, scores).astype(np.float32), k)
    hits = truth[np.arange(len(truth))[:, None], top] & (top >= 0)
    return float(np.mean(ndcg(hits, truth.sum(axis=1))))


def fused(blocks: Sequence[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """Σ_g w_g · blocks[g] (blocks with weight 0 skipped), float32."""
    out = np.zeros(blocks[0].shape, dtype=np.float32)
    for w, block in zip(weights, blocks, strict=True):
        if w:
            out += np.float32(w) * block
    return out


def choose_weights(blocks: Sequence[np.ndarray], seen: np.ndarray, truth: np.ndarray,
                   grid: Sequence[float], passes: int, k: int) -> tuple[np.ndarray, float]:
    """Coordinate ascent on NDCG@k: (weights float64 [groups], the NDCG they reach).

    Args:
        blocks: each group's standardized scores float32 [users, items]; the first one's weight
            stays 1.
        seen: bool [users, items], never ranked.
        truth: bool [users, items], the relevant movies.
        grid: the weights tried for each other group, in turn, starting from 0.
        passes: passes over the groups.
        k: list length.
    """
    weights = np.r_[1.0, np.zeros(len(blocks) - 1)]
    best = ndcg_at(blocks[0], seen, truth, k)
    for _ in range(passes):
        for group in range(1, len(blocks)):
            for g in grid:
                if g == weights[group]:
                    continue
                trial = weights.copy()
                trial[group] = g
                value = ndcg_at(fused(blocks, trial), seen, truth, k)
                if value > best + 1e-12:
                    weights, best = trial, value
    return weights, best


class Fusion(Recommender):
    """Score fusion: s(u, i) = Σ_m w_m z_m(u, i), z_m member m's standardized score.

    z_m(u, i) is member m's score of item i for user u minus its mean over the items u has not
    rated, divided by their standard deviation (`standardize`), so that members with scores on
    different scales (a regression's weights, an autoencoder's logits, a dot product) add up.

    Members listed more than once with equal parameters are one model fit with different seeds
    (each member gets its own seed): they form a group whose mean standardized score gets one
    weight, shared equally among them (seed averaging, which steadies a neural member).

    Fitting, when `weights` is not given: a per-user `holdout_size` share of `train` is carved out
    (`movierec.split.carve_validation`; "random" or each user's "latest", as for `rerank`), the
    members are fit on the rest and score the held-out users (at most `max_holdout_users` of
    them, a seeded sample), and the weights are chosen by coordinate ascent on the held-out
    ratings' NDCG@`k` (every held-out movie relevant): the first group's weight is 1, each other
    group's weight takes the best value of `grid` in turn (starting from 0, so the fusion is
    never worse on the carve-out than the first group alone), for `passes` passes. Then the
    members are refit on all of `train` with the same seeds. With `weights` given, the carve-out
    is skipped. The test part of an evaluation is never read: the weights come from the
    training part only.

    Scoring: members whose weight is 0 are not asked to score. Fold-in (`_score_history`): each
    member scores the new user by its own fold-in (`movierec.fold_in.fold_in`) and the scores
    are standardized over the items the user has not rated.

    Learned state: `members_` (saved inside the artifact as prefixed tensors and JSON, never
    pickled), `weights_` (float64 [members]), `holdout_ndcg_` (NDCG@k on the carve-out of each
    member alone and of the fusion; empty when `weights` was given), `holdout_users_`,
    `holdout_used_`, `fit_seconds_`.

    The default members were picked on ML-100K's per-user random split, seed 1, validation
    carve-out (10 % of each user's training ratings; the test part never read), every member at
    its defaults and trained without early stopping: alone, EASE (λ 300) 0.1988, RecVAE
    0.1892-0.1927 over three seeds, LightGCN 0.1623; with the weights chosen on half of the
    users and judged on the other half (both ways), EASE + RecVAE 1.018 × EASE, EASE + LightGCN
    + RecVAE 1.023 ×, EASE + the mean of three RecVAE seeds 1.035 ×, and that plus LightGCN
    1.038 × (not kept: twice the fit time for a gain within the noise); Mult-VAE and XSimGCL
    did not help, nor did linear members (EDLAE, SLIM, RP3beta, kNN).

    Args:
        members: the models fused, as (registered name, {params}) pairs or bare names; any model
            that ranks (not `mean`). Put the strongest first: its weight is the fixed 1.
            Default: `DEFAULT_MEMBERS` (EASE and three seeds of RecVAE, at their defaults).
        weights: one weight ≥ 0 per member (not per group), not all 0, to skip the carve-out;
            default None (learned).
        holdout: "auto" (default: "latest" when `fit` is told the split is time-ordered, else
            "random"), "random" or "latest": which training ratings the weights are chosen on.
        holdout_size: per-user share of the training ratings held out, in (0, 1) (default 0.1).
        grid: the weights tried for each group after the first: a non-empty sequence of
            numbers ≥ 0 (default `DEFAULT_GRID`, 0 to 12).
        passes: coordinate-ascent passes over the groups (default 2, ≥ 1).
        k: the list length whose NDCG the weights maximize (default 10, ≥ 1).
        max_holdout_users: held-out users the weights are chosen on at most, a seeded sample
            (default 2000, ≥ 1); bounds the memory of the members' scores, users × items ×
            members float32 numbers.
    """

    name: ClassVar[str] = "fusion"
    nested_param: ClassVar[str | None] = "members"
    uses_sequence: ClassVar[bool] = True  # holdout="latest" reads the time order
    adapts_to_split_order: ClassVar[bool] = True  # fit(time_ordered=...) decides holdout="auto"
    supports_fold_in: ClassVar[bool] = True
    # The fusion's own settings (the members keep theirs; tune them first, separately).
    search_space: ClassVar[SearchSpace] = {
        "holdout_size": Float(0.05, 0.3),
        "passes": Int(1, 3),
    }

    members_: list[Recommender]
    weights_: np.ndarray
    holdout_ndcg_: dict[str, float]

    def __init__(self, *, members: Sequence[Any] | None = None,
                 weights: Sequence[float] | None = None, holdout: str = "auto",
                 holdout_size: float = 0.1, grid: Sequence[float] = DEFAULT_GRID,
                 passes: int = 2, k: int = 10, max_holdout_users: int = 2000) -> None:
        self.members = normalize_members(DEFAULT_MEMBERS if members is None else members)
        if weights is not None:
            check_param("weights", weights, isinstance(weights, list | tuple)
                        and len(weights) == len(self.members)
                        and all(is_number(w) and w >= 0 for w in weights)
                        and any(w > 0 for w in weights),
                        f"one number ≥ 0 per member ({len(self.members)}), not all 0, or None "
                        "(learned on a carve-out)")
            weights = tuple(float(w) for w in weights)
        check_param("holdout", holdout, holdout in HOLDOUTS, f"one of {HOLDOUTS}")
        check_param("holdout_size", holdout_size,
                    is_number(holdout_size) and 0 < holdout_size < 1, "a number in (0, 1)")
        check_param("grid", grid, isinstance(grid, list | tuple) and len(grid) > 0
                    and all(is_number(g) and g >= 0 for g in grid),
                    "a non-empty sequence of numbers ≥ 0")
        check_param("passes", passes, is_int(passes, 1), "an integer ≥ 1")
        check_param("k", k, is_int(k, 1), "an integer ≥ 1")
        check_param("max_holdout_users", max_holdout_users, is_int(max_holdout_users, 1),
                    "an integer ≥ 1")
        self.weights = weights
        self.holdout = holdout
        self.holdout_size = holdout_size
        self.grid = tuple(float(g) for g in grid)
        self.passes = passes
        self.k = k
        self.max_holdout_users = max_holdout_users

    # --- fitting -------------------------------------------------------------------------------
    def fit(self, train: Dataset, valid: Dataset | None = None, *, rng: RNGLike = None,
            progress: bool = True, time_ordered: bool | None = None) -> Self:
        """Choose the weights on a carve-out of `train` (unless given), then fit the members.

        Args:
            train: training data; the weights' holdout is always carved from it.
            valid: optional validation data, handed to every member's `fit` (early stopping of
                neural members); the weights never see it.
            rng: seed or Generator; seeds the carve-out, the user sample and each member.
            progress: passed on to the members.
            time_ordered: whether the evaluation split orders each user's ratings by time
                (decides `holdout="auto"`; None counts as False).
        """
        self.holdout_used_ = resolve_holdout(self.holdout, time_ordered)
        self._setup(train)
        gen = as_generator(rng)
        carve_seed = derive_seed(gen)
        seeds = [derive_seed(gen) for _ in self.members]
        self.fit_seconds_: dict[str, float] = {}
        self.holdout_ndcg_ = {}
        self.holdout_users_ = 0
        if self.weights is not None:
            weights = np.asarray(self.weights, dtype=np.float64)
        elif len(set(member_groups(self.members).tolist())) == 1:
            weights = np.full(len(self.members), 1.0 / len(self.members))
        else:
            weights = self._learn(train, valid, carve_seed, seeds, progress)
        self.weights_ = weights
        self.members_ = fit_nested(self.members, train, valid, seeds, progress,
                                   self.fit_seconds_)
        return self

    def _learn(self, train: Dataset, valid: Dataset | None, seed: int, seeds: list[int],
               progress: bool) -> np.ndarray:
        """Weights chosen by coordinate ascent on the carve-out's NDCG@k (see the class)."""
        labels = nested_labels(self.members)
        groups = member_groups(self.members)
        n_groups = int(groups.max()) + 1
        first = self._member_weights(np.r_[1.0, np.zeros(n_groups - 1)], groups)
        if train.n_ratings < 2:
            logger.warning("fusion: too few ratings to carve out; the first member alone")
            return first
        inner, _, hu, hi, ok = carve_held(train, self.holdout_size, seed,
                                          self.holdout_used_ == "latest")
        users = np.unique(hu[ok])
        if len(users) == 0:
            logger.warning("fusion: the %.2f carve-out left no held-out rating of a known user "
                           "and item; the first member alone", self.holdout_size)
            return first
        if len(users) > self.max_holdout_users:
            pick = np.random.default_rng(seed).choice(len(users), self.max_holdout_users,
                                                      replace=False)
            users = np.sort(users[pick])
        self.holdout_users_ = len(users)
        row = np.full(inner.n_users, -1)
        row[users] = np.arange(len(users))
        keep = ok & (row[np.where(ok, hu, 0)] >= 0)
        truth = np.zeros((len(users), inner.n_items), dtype=bool)
        truth[row[hu[keep]], hi[keep]] = True
        seen = inner.matrix("binary")[users].toarray() > 0
        models = fit_nested(self.members, inner, valid, seeds, progress, self.fit_seconds_)
        start = time.perf_counter()
        z = [np.concatenate([standardize(m._score(users[blk]), seen[blk])
                             for blk in user_blocks(len(users), _USERS_PER_BLOCK)])
             for m in models]
        self.holdout_ndcg_ = {label: ndcg_at(zm, seen, truth, int(self.k))
                              for label, zm in zip(labels, z, strict=True)}
        # Each group's mean standardized score: seeds of one model average before weighing.
        mean = [np.asarray(np.mean([zm for zm, g in zip(z, groups, strict=True) if g == group],
                                   axis=0, dtype=np.float32)) for group in range(n_groups)]
        del z
        weights, best = choose_weights(mean, seen, truth, self.grid, int(self.passes),
                                       int(self.k))
        self.holdout_ndcg_["fusion"] = best
        self.fit_seconds_["weights"] = time.perf_counter() - start
        out = self._member_weights(weights, groups)
        logger.info("fusion: weights %s on %d held-out users (NDCG@%d %.4f; alone %s)",
                    dict(zip(labels, out.round(4).tolist(), strict=True)), len(users), self.k,
                    best, {k: round(v, 4) for k, v in self.holdout_ndcg_.items()
                           if k != "fusion"})
        return out

    @staticmethod
    def _member_weights(group_weights: np.ndarray, groups: np.ndarray) -> np.ndarray:
        """Each member's weight: its group's weight shared equally among the group."""
        return group_weights[groups] / np.bincount(groups)[groups]

    # --- scoring -------------------------------------------------------------------------------
    def _fuse(self, scores: Sequence[np.ndarray | None], seen: np.ndarray) -> np.ndarray:
        """Σ w_m z_m over the members that scored (those with a weight)."""
        used = [(w, s) for w, s in zip(self.weights_, scores, strict=True)
                if w and s is not None]
        return fused([standardize(s, seen) for _, s in used], np.array([w for w, _ in used]))

    def _score(self, user_codes: np.ndarray, item_codes: np.ndarray | None = None) -> np.ndarray:
        self._check_fitted()
        users = np.asarray(user_codes, dtype=np.int64)
        out = np.empty((len(users), self.n_items), dtype=np.float32)
        for blk in user_blocks(len(users), _USERS_PER_BLOCK):
            codes = users[blk]
            scores = [m._score(codes) if w else None
                      for m, w in zip(self.members_, self.weights_, strict=True)]
            out[blk] = self._fuse(scores, self.seen_[codes].toarray() > 0)
        return out if item_codes is None else out[:, np.asarray(item_codes, dtype=np.int64)]

    def _score_history(self, item_codes: np.ndarray, ratings: np.ndarray) -> np.ndarray:
        """Scores float32 [n_items] of a new user from their (item code, rating) history."""
        from movierec.fold_in import fold_in

        self._check_fitted()
        codes = np.asarray(item_codes, dtype=np.int64)
        ids = self.item_vocab_.ids(codes)
        r = np.asarray(ratings, dtype=np.float64)
        scores = [fold_in(m, ids, r).scores[None, :] if w else None
                  for m, w in zip(self.members_, self.weights_, strict=True)]
        seen = np.zeros((1, self.n_items), dtype=bool)
        seen[0, codes] = True
        return self._fuse(scores, seen)[0]

    # --- persistence ---------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        """Own state and each member's ("members.<n>.<key>")."""
        state = super()._state()
        state.update(member_state(state.pop("members_")))
        return state

    def _restore(self, state: dict[str, Any]) -> None:
        super()._restore({k: v for k, v in state.items() if not k.startswith(MEMBER_PREFIX)})
        self.weights_ = np.asarray(self.weights_, dtype=np.float64)
        if self.weights_.shape != (len(self.members),):
            raise ValueError(f"weights_ has shape {self.weights_.shape} for "
                             f"{len(self.members)} members")
        self.members_ = restore_members(state, self.members, "member",
                                        (None, len(self.item_vocab_)))
