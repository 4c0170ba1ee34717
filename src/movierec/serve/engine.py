"""What the service computes, free of HTTP: one `Engine` per loaded model.

Everything derived from the artifact is computed once, when the engine is built: the catalog
aligned to the model's item codes (JSON-ready movie records), genre masks, popularity (the
search order and the no-history fallback), search keys, and the model's own lazy caches (item
neighbourhoods, unit item vectors, user rows), which are warmed so that no request builds them.
A request then costs one score vector (the user's row, or a fold-in), one masked top-k and one
small similarity block for the explanations, all vectorized over items.

Ranking is not done here: a training user's list is the model's own `top_k_codes` (the kernel
behind `Recommender.recommend`) with the genre filter as a candidate mask, and fold-in and
similar-movie lists go through the same `movierec.ranking.rank_block`. So the service and
`model.recommend` give the same items in the same order (ties to the lower item code); the
engine adds only presentation (titles, predicted ratings, explanations).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from movierec.data.search import TitleIndex
from movierec.errors import MovieRecError, UnknownIdError
from movierec.explain import (
    MIN_SUPPORT,
    SHRINKAGE,
    item_similarity,
    liked_codes,
    liked_mask,
    similar_scores,
    supports,
)
from movierec.fold_in import FoldIn, fold_in, fold_in_method
from movierec.models.base import Recommender
from movierec.models.baseline import item_popularity
from movierec.ranking import rank_block

__all__ = ["Engine", "InvalidRequestError"]


class InvalidRequestError(MovieRecError, ValueError):
    """A well-formed request asks for something impossible (e.g. an unknown genre): HTTP 422."""


class Engine:
    """Recommendations, fold-in, similar movies and search for one fitted model.

    Args:
        model: a fitted model (any family).
        catalog: item table (item_id, title, year, genres) or None; items of the model missing
            from it are shown as "item <id>".
        meta: the artifact's model.json (params, dataset, metrics, trained_at...) or None.
        max_k: largest list length a request may ask for.
        max_ratings: most ratings a new-user request may post.
        n_explanations: supporting history movies per recommendation.
        generation: 1 for the model loaded at start, one more per successful reload.

    An engine is never changed after it is built: a reload builds a new one and the app swaps
    its reference, so a request keeps the engine it started with.
    """

    def __init__(self, model: Recommender, catalog: pd.DataFrame | None = None,
                 meta: dict[str, Any] | None = None, *, max_k: int = 100,
                 max_ratings: int = 500, n_explanations: int = 3, generation: int = 1) -> None:
        model._check_fitted()
        if max_k < 1 or max_ratings < 1 or n_explanations < 0 or generation < 1:
            raise ValueError("max_k, max_ratings and generation must be ≥ 1, "
                             "n_explanations ≥ 0")
        self.model = model
        self.generation = generation
        self.loaded_at = datetime.now(UTC).isoformat(timespec="seconds")
        self.meta = dict(meta or {})
        self.max_k = max_k
        self.max_ratings = max_ratings
        self.n_explanations = n_explanations
        self.item_ids = model.item_vocab_.index
        self.seen = model.seen_
        self.popularity = item_popularity(model)
        self._build_catalog(catalog)
        self._warm()

    # --- set-up ---------------------------------------------------------------------------------
    def _build_catalog(self, catalog: pd.DataFrame | None) -> None:
        ids = self.item_ids
        # Every movie the site knows: the model's, and catalog movies it never saw rated (a
        # rating of one is stored, and a retrain learns it).
        self.known_item_ids = frozenset(ids.tolist()) | (
            frozenset() if catalog is None else frozenset(catalog["item_id"].tolist()))
        if catalog is None or len(catalog) == 0:
            cat = pd.DataFrame(index=pd.Index(ids, name="item_id"),
                               columns=["title", "year", "genres"])
        else:
            cat = (catalog.drop_duplicates("item_id").set_index("item_id")
                   .reindex(ids)[["title", "year", "genres"]])
        titles = [t if isinstance(t, str) and t else f"item {i}"
                  for i, t in zip(ids.tolist(), cat["title"].tolist(), strict=True)]
        years = [None if y is None or y != y else int(y) for y in cat["year"].tolist()]
        genres = [list(g) if isinstance(g, list | tuple) else [] for g in cat["genres"].tolist()]
        self.movies: list[dict[str, Any]] = [
            {"item_id": i, "title": t, "year": y, "genres": g}
            for i, t, y, g in zip(ids.tolist(), titles, years, genres, strict=True)]
        self.titles = titles
        names = sorted({g for gs in genres for g in gs})
        self.genre_names = names
        self._genre_index = {g.casefold(): n for n, g in enumerate(names)}
        flat = pd.Series(genres, index=np.arange(len(ids))).explode().dropna()
        self.genre_masks = np.zeros((len(names), len(ids)), dtype=bool)
        if len(flat):
            rows = pd.Categorical(flat.to_numpy(), categories=names).codes
            self.genre_masks[rows, flat.index.to_numpy(dtype=np.int64)] = True
        self._titles_index = TitleIndex(titles, self.popularity)

    def _warm(self) -> None:
        """Build every lazy cache of the model now, so that requests only read them."""
        module = getattr(self.model, "module_", None)
        if module is not None:
            # Eval mode once and for all: TorchRecommender's scoring then never toggles the
            # module's mode, which concurrent requests would race on.
            module.eval()
        first = np.zeros(1, dtype=np.int64)
        self.model._score(first)
        if self.model.rates:
            self.model._predict(first, first)
        item_similarity(self.model, first)
        fold_in(self.model, self.item_ids[:1], [(self.rating_scale or (1.0, 1.0))[1]])

    # --- properties -----------------------------------------------------------------------------
    @property
    def rating_scale(self) -> tuple[float, float] | None:
        """(lowest, highest) rating of the training data, or None when unknown."""
        scale = getattr(self.model, "rating_scale_", None) or (0.0, 0.0)
        lo, hi = float(scale[0]), float(scale[1])
        return (lo, hi) if hi > lo else None

    def health(self) -> dict[str, Any]:
        """Liveness payload."""
        return {"status": "ok", "model": self.model.name, "n_users": self.model.n_users,
                "n_items": self.model.n_items}

    def info(self) -> dict[str, Any]:
        """The model's name, parameters, dataset, metrics, training time and limits."""
        meta = self.meta
        metrics = meta.get("metrics") or {}
        return {
            "name": self.model.name,
            "model_class": type(self.model).__name__,
            "params": meta.get("params", self.model.params()),
            "dataset": meta.get("dataset") or (meta.get("train") or {}).get("name")
            or getattr(self.model, "train_name_", None),
            "split": meta.get("split"),
            "metrics": {str(k): (None if v is None or v != v else float(v))
                        for k, v in metrics.items()},
            "trained_at": meta.get("trained_at"),
            "movierec_version": meta.get("movierec_version"),
            "n_users": self.model.n_users,
            "n_items": self.model.n_items,
            "rating_scale": self.rating_scale,
            "predicts_ratings": self.model.rates,
            "fold_in": fold_in_method(self.model),
            "genres": self.genre_names,
            "max_k": self.max_k,
            "max_ratings": self.max_ratings,
            "generation": self.generation,
            "loaded_at": self.loaded_at,
            "version": None if meta.get("version") is None else str(meta["version"]),
        }

    # --- lookups --------------------------------------------------------------------------------
    def user_code(self, user_id: int) -> int:
        """Code of a training user; UnknownIdError (HTTP 404) otherwise."""
        code = int(self.model.user_vocab_.codes([user_id], missing="negative")[0])
        if code < 0:
            raise UnknownIdError(f"user {user_id} is not in the training data of this "
                                 f"{self.model.name} model")
        return code

    def item_code(self, item_id: int) -> int:
        """Code of a training item; UnknownIdError (HTTP 404) otherwise."""
        code = int(self.model.item_vocab_.codes([item_id], missing="negative")[0])
        if code < 0:
            raise UnknownIdError(f"movie {item_id} is not in the training data of this "
                                 f"{self.model.name} model")
        return code

    def genre_mask(self, genres: list[str] | None) -> np.ndarray | None:
        """Items of any of `genres` (case-insensitive), or None for no filter."""
        wanted = [g.strip() for g in (genres or []) if g and g.strip()]
        if not wanted:
            return None
        unknown = [g for g in wanted if g.casefold() not in self._genre_index]
        if unknown:
            known = ", ".join(self.genre_names) or "none (the model has no item table)"
            raise InvalidRequestError(f"unknown genre(s) {unknown}; known genres: {known}")
        rows = [self._genre_index[g.casefold()] for g in wanted]
        return np.asarray(self.genre_masks[rows].any(axis=0))

    def history_codes(self, code: int) -> np.ndarray:
        """Item codes a training user rated."""
        return self.seen.indices[self.seen.indptr[code]:self.seen.indptr[code + 1]]

    # --- ranking (the model's kernel) -----------------------------------------------------------
    @staticmethod
    def _listed(ranked: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(codes int64, scores float32) of the one row of a `rank_block`/`top_k_codes` result.

        Without the -1 padding.
        """
        cols, vals = ranked
        keep = cols[0] >= 0
        return cols[0][keep].astype(np.int64), vals[0][keep]

    def explain(self, codes: np.ndarray, history: np.ndarray) -> list[list[dict[str, Any]]]:
        """For each recommended code, the `history` items that support it most.

        Only positive similarity counts; `history` holds the movies the user liked (see
        `movierec.explain`).
        """
        n = self.n_explanations
        if len(history) == 0 or len(codes) == 0 or n == 0:
            return [[] for _ in range(len(codes))]
        picks, vals = supports(self.model, codes, history, n)
        return [[{"item_id": self.movies[c]["item_id"], "title": self.titles[c],
                  "similarity": float(v)} for c, v in zip(row_c, row_v, strict=True) if v > 0]
                for row_c, row_v in zip(picks.tolist(), vals.tolist(), strict=True)]

    def _cards(self, codes: np.ndarray, scores: np.ndarray, history: np.ndarray,
               predicted: np.ndarray | None = None) -> list[dict[str, Any]]:
        """Cards of the ranked `codes`, whose scores are `scores` (aligned with `codes`)."""
        why = self.explain(codes, history)
        pred = [None] * len(codes) if predicted is None else [float(p) for p in predicted]
        return [{**self.movies[c], "rank": r + 1, "score": float(scores[r]),
                 "predicted_rating": pred[r], "because_you_liked": why[r]}
                for r, c in enumerate(codes.tolist())]

    # --- requests -------------------------------------------------------------------------------
    def recommend_user(self, user_id: int, k: int = 10, *, exclude_seen: bool = True,
                       genres: list[str] | None = None) -> dict[str, Any]:
        """Top-k for a training user, with titles and "because you liked"."""
        code = self.user_code(user_id)
        mask = self.genre_mask(genres)
        top, scores = self._listed(self.model.top_k_codes(
            np.array([code], dtype=np.int64), k, exclude_seen=exclude_seen, candidates=mask))
        # "Because you liked" cites only the movies the user liked (movierec.explain.liked_mask).
        liked = liked_codes(self.model, code)
        predicted = None
        if self.model.rates and len(top):
            predicted = self.model._predict(np.full(len(top), code, dtype=np.int64), top)
        return {"user_id": user_id, "model": self.model.name, "k": k,
                "exclude_seen": exclude_seen, "genres": genres or None,
                "recommendations": self._cards(top, scores, liked, predicted)}

    def recommend_new(self, items: list[int], ratings: list[float], k: int = 10, *,
                      exclude_rated: bool = True, genres: list[str] | None = None
                      ) -> dict[str, Any]:
        """Top-k for a new user from their ratings (fold-in; nothing is retrained)."""
        mask = self.genre_mask(genres)
        result = fold_in(self.model, np.asarray(items, dtype=np.int64),
                         np.asarray(ratings, dtype=np.float64))
        return {"model": self.model.name, "k": k, "method": result.method,
                "used_ratings": len(result.item_codes),
                "ignored_items": result.unknown_item_ids.tolist(), "genres": genres or None,
                "recommendations": self._folded_cards(result, k, exclude_rated, mask)}

    def _folded_cards(self, result: FoldIn, k: int, exclude: bool,
                      mask: np.ndarray | None) -> list[dict[str, Any]]:
        """The top-k cards of a fold-in, explained by the folded movies the user liked."""
        top, scores = self._listed(rank_block(
            result.scores[None, :], k, exclude=result.item_codes if exclude else None,
            candidates=mask))
        r = result.ratings
        # "Because you liked": the folded movies rated ≥ 4 or above the user's own mean.
        liked = result.item_codes[liked_mask(np.zeros(len(r)), r,
                                             implicit=self.rating_scale is None)]
        if result.method == "popularity":
            liked = liked[:0]
        return self._cards(top, scores, liked)

    def recommend_with_feedback(self, user_id: int, items: list[int], ratings: list[float],
                                k: int = 10, *, exclude_seen: bool = True,
                                genres: list[str] | None = None) -> dict[str, Any]:
        """Top-k for a user from their training history plus stored ratings (fold-in).

        The training history (which movies, not the values: the artifact keeps only which) is
        folded in with the model's predicted rating of each movie for rating models, else the
        scale's top (any interaction counts as liked); the stored ratings come after it, so a
        stored rating of a training movie replaces its value. Models without their own fold-in
        rule are scored by item similarity, and users with no movie the model knows get the
        popularity list: `method` says which ("model", "item-similarity", "popularity").

        Args:
            user_id: a training user or one the API created (no training history).
            items: movie ids of the user's stored ratings (movies the model does not know are
                ignored and listed in `ignored_items`).
            ratings: the stored ratings, aligned with `items`.
            k: list length.
            exclude_seen: leave out the training history and the stored movies.
            genres: only movies of any of these genres.
        """
        mask = self.genre_mask(genres)
        code = int(self.model.user_vocab_.codes([user_id], missing="negative")[0])
        hist = self.history_codes(code) if code >= 0 else np.empty(0, dtype=np.int64)
        if len(hist) and self.model.rates:
            values = self.model._predict(np.full(len(hist), code, dtype=np.int64), hist)
            scale = self.rating_scale
            values = np.clip(values, *scale) if scale else values
        else:
            values = np.full(len(hist), (self.rating_scale or (1.0, 1.0))[1])
        ids = np.concatenate([np.asarray(self.item_ids[hist], dtype=np.int64),
                              np.asarray(items, dtype=np.int64)])
        result = fold_in(self.model, ids, np.concatenate([values, np.asarray(ratings, float)]))
        return {"user_id": user_id, "model": self.model.name, "k": k,
                "exclude_seen": exclude_seen, "genres": genres or None, "method": result.method,
                "n_training": len(hist), "ignored_items": result.unknown_item_ids.tolist(),
                "recommendations": self._folded_cards(result, k, exclude_seen, mask)}

    def similar(self, item_id: int, k: int = 10, *, min_support: int = MIN_SUPPORT,
                shrinkage: float = SHRINKAGE) -> dict[str, Any]:
        """The k movies most similar to one movie, in the model's terms.

        Leaves out movies with fewer than `min_support` training ratings and shrinks the similarity
        by the movie's ratings n, n / (n + shrinkage) (see `movierec.explain.similar_scores`).
        """
        code = self.item_code(item_id)
        sims = similar_scores(self.model, code, min_support=min_support, shrinkage=shrinkage)
        top, values = self._listed(rank_block(sims[None, :], k, exclude=np.array([code])))
        return {"movie": self.movies[code], "k": k,
                "similar": [{**self.movies[c], "rank": r + 1, "similarity": float(values[r])}
                            for r, c in enumerate(top.tolist())]}

    def search(self, query: str, limit: int = 20) -> dict[str, Any]:
        """Titles containing `query`: exact titles first, then prefixes, then by popularity.

        Matching is `movierec.data.search`'s: case, accents, punctuation and articles ignored, "the
        godfather" finds "Godfather, The".
        """
        if not query.strip():
            raise InvalidRequestError("q must contain a non-space character")
        picked = self._titles_index.search(query, limit)  # movierec.data.search
        return {"query": query, "results": [
            {**self.movies[c], "n_ratings": int(self.popularity[c])} for c in picked.tolist()]}

    def user_history(self, user_id: int, limit: int = 100) -> dict[str, Any]:
        """The movies a training user rated, most popular first."""
        code = self.user_code(user_id)
        hist = self.history_codes(code)
        order = np.lexsort((hist, -self.popularity[hist]))[:limit]
        return {"user_id": user_id, "n_ratings": len(hist),
                "history": [self.movies[c] for c in hist[order].tolist()]}

    def users(self, offset: int = 0, limit: int = 100) -> dict[str, Any]:
        """A page of training user ids, in id order."""
        ids = self.model.user_vocab_.index
        return {"n_users": len(ids), "offset": offset,
                "user_ids": ids[offset:offset + limit].tolist()}
