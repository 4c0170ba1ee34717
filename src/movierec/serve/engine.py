"""What the service computes, free of HTTP: one `Engine` per loaded model.

Everything derived from the artifact is computed once, when the engine is built: the catalog
aligned to the model's item codes (JSON-ready movie records), genre masks, popularity (the
tie-breaker and the no-history fallback), search keys, and the model's own lazy caches (item
neighbourhoods, unit item vectors, user rows), which are warmed so that no request builds them.
A request then costs one score vector (the user's row, or a fold-in), one masked top-k and one
small similarity block for the explanations, all vectorized over items.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from movierec.errors import MovieRecError, UnknownIdError
from movierec.explain import item_similarity
from movierec.fold_in import fold_in, fold_in_method
from movierec.models.base import Recommender
from movierec.models.baseline import item_popularity

__all__ = ["Engine", "InvalidRequestError"]

_ARTICLE = re.compile(r"^(?P<name>.*), (?P<article>the|a|an|les|la|le|il|das|der|die|el)"
                      r"(?P<rest>\s*\(\d{4}\))?\s*$")


class InvalidRequestError(MovieRecError, ValueError):
    """A well-formed request asks for something impossible (e.g. an unknown genre): HTTP 422."""


def _fold(text: str) -> str:
    """Lower case without accents, so that "amelie" finds "Amélie"."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


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
        keys = pd.Series([_fold(t) for t in titles], dtype="string")
        moved = keys.str.replace(_ARTICLE, lambda m: f"{m['article']} {m['name']}"
                                 f"{m['rest'] or ''}", regex=True)
        self._search_keys = keys
        self._search_moved = moved
        self._search_bare = moved.str.replace(r"\s*\(\d{4}\)\s*$", "", regex=True)

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
        return self.genre_masks[rows].any(axis=0)

    def history_codes(self, code: int) -> np.ndarray:
        """Item codes a training user rated."""
        return self.seen.indices[self.seen.indptr[code]:self.seen.indptr[code + 1]]

    # --- ranking --------------------------------------------------------------------------------
    def top(self, scores: np.ndarray, k: int, *, exclude: np.ndarray | None = None,
            mask: np.ndarray | None = None) -> np.ndarray:
        """Codes of the k best items, best first; ties go to the more popular, then lower code.

        Args:
            scores: float scores [n_items] (modified in place: a private copy is expected).
            k: list length (fewer come back when fewer items are allowed).
            exclude: item codes never to return.
            mask: bool [n_items], only True items may be returned.
        """
        scores[np.isnan(scores)] = -np.inf
        if exclude is not None and len(exclude):
            scores[exclude] = -np.inf
        if mask is not None:
            scores[~mask] = -np.inf
        n_ok = int(np.count_nonzero(scores > -np.inf))
        kk = min(k, n_ok)
        if kk == 0:
            return np.empty(0, dtype=np.int64)
        kth = np.partition(scores, len(scores) - kk)[len(scores) - kk]
        cand = np.flatnonzero(scores >= kth)
        order = np.lexsort((cand, -self.popularity[cand], -scores[cand]))[:kk]
        return cand[order]

    def explain(self, codes: np.ndarray, history: np.ndarray) -> list[list[dict[str, Any]]]:
        """For each recommended code, the most similar history items (positive similarity)."""
        n = self.n_explanations
        if len(history) == 0 or len(codes) == 0 or n == 0:
            return [[] for _ in range(len(codes))]
        sims = item_similarity(self.model, codes)[:, history]
        order = np.argsort(-sims, axis=1, kind="stable")[:, :n]
        vals = np.take_along_axis(sims, order, axis=1)
        picks = history[order]
        return [[{"item_id": self.movies[c]["item_id"], "title": self.titles[c],
                  "similarity": float(v)} for c, v in zip(row_c, row_v, strict=True) if v > 0]
                for row_c, row_v in zip(picks.tolist(), vals.tolist(), strict=True)]

    def _cards(self, codes: np.ndarray, scores: np.ndarray, history: np.ndarray,
               predicted: np.ndarray | None = None) -> list[dict[str, Any]]:
        why = self.explain(codes, history)
        pred = [None] * len(codes) if predicted is None else [float(p) for p in predicted]
        return [{**self.movies[c], "rank": r + 1, "score": float(scores[c]),
                 "predicted_rating": pred[r], "because_you_liked": why[r]}
                for r, c in enumerate(codes.tolist())]

    # --- requests -------------------------------------------------------------------------------
    def recommend_user(self, user_id: int, k: int = 10, *, exclude_seen: bool = True,
                       genres: list[str] | None = None) -> dict[str, Any]:
        """Top-k for a training user, with titles and "because you liked"."""
        code = self.user_code(user_id)
        mask = self.genre_mask(genres)
        raw = np.asarray(self.model._score(np.array([code], dtype=np.int64))[0],
                         dtype=np.float32)
        history = self.history_codes(code)
        top = self.top(raw.copy(), k, exclude=history if exclude_seen else None, mask=mask)
        predicted = None
        if self.model.rates and len(top):
            predicted = self.model._predict(np.full(len(top), code, dtype=np.int64), top)
        return {"user_id": user_id, "model": self.model.name, "k": k,
                "exclude_seen": exclude_seen, "genres": genres or None,
                "recommendations": self._cards(top, raw, history, predicted)}

    def recommend_new(self, items: list[int], ratings: list[float], k: int = 10, *,
                      exclude_rated: bool = True, genres: list[str] | None = None
                      ) -> dict[str, Any]:
        """Top-k for a new user from their ratings (fold-in; nothing is retrained)."""
        mask = self.genre_mask(genres)
        result = fold_in(self.model, np.asarray(items, dtype=np.int64),
                         np.asarray(ratings, dtype=np.float64))
        raw = result.scores
        top = self.top(raw.copy(), k, exclude=result.item_codes if exclude_rated else None,
                       mask=mask)
        r = result.ratings
        # "Because you liked": the rated movies at or above the user's own mean rating.
        liked = result.item_codes[r >= r.mean()] if len(r) else result.item_codes
        if result.method == "popularity":
            liked = liked[:0]
        return {"model": self.model.name, "k": k, "method": result.method,
                "used_ratings": len(result.item_codes),
                "ignored_items": result.unknown_item_ids.tolist(), "genres": genres or None,
                "recommendations": self._cards(top, raw, liked)}

    def similar(self, item_id: int, k: int = 10) -> dict[str, Any]:
        """The k movies most similar to one movie, in the model's item space."""
        code = self.item_code(item_id)
        sims = np.asarray(item_similarity(self.model, np.array([code]))[0], dtype=np.float32)
        top = self.top(sims.copy(), k, exclude=np.array([code]))
        return {"movie": self.movies[code], "k": k,
                "similar": [{**self.movies[c], "rank": r + 1, "similarity": float(sims[c])}
                            for r, c in enumerate(top.tolist())]}

    def search(self, query: str, limit: int = 20) -> dict[str, Any]:
        """Titles containing `query` (case- and accent-insensitive; "the godfather" finds
        "Godfather, The"): exact titles first, then prefixes, then by popularity."""
        q = _fold(query.strip())
        if not q:
            raise InvalidRequestError("q must contain a non-space character")
        hit = (self._search_keys.str.contains(q, regex=False)
               | self._search_moved.str.contains(q, regex=False)).to_numpy(dtype=bool)
        codes = np.flatnonzero(hit)
        exact = (self._search_bare.iloc[codes] == q).to_numpy(dtype=bool)
        prefix = (self._search_moved.iloc[codes].str.startswith(q)
                  | self._search_keys.iloc[codes].str.startswith(q)).to_numpy(dtype=bool)
        order = np.lexsort((codes, -self.popularity[codes], ~prefix, ~exact))[:limit]
        picked = codes[order]
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
