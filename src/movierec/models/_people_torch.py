"""People as item input for the neural models (torch): the shared part of `people=True`.

FeatureNet and the NCF family (GMF, MLP, NeuMF) add `PeopleBag`'s mean embedding of a movie's
directors and top-billed actors (`movierec.data.people`) to the movie's representation, and
train with DropoutNet's item-id dropout (`drop_ids`, Volkovs et al., NeurIPS 2017) so that the
people part can carry a movie nobody has rated yet (`score_new_items`, fed as `NewItems`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from movierec.data.dataset import item_rows
from movierec.data.people import people_lists, people_spec
from movierec.models.base import check_param, is_int, is_number
from movierec.models.svdpp import csr_bags

__all__ = ["ID_DROPOUT", "NewItems", "PeopleBag", "check_people_params", "drop_ids",
           "fit_people", "people_arrays"]

#: Default probability of DropoutNet's item-id dropout with `people=True` (see the module docs).
ID_DROPOUT = 0.5


def people_arrays(items: pd.DataFrame | None, item_ids: np.ndarray | None, spec: dict[str, Any]
                  ) -> tuple[np.ndarray, np.ndarray]:
    """(indptr int64 [n+1], person codes int64) of the movies' people under `spec`.

    `item_ids` picks the rows of `items` by item_id, in that order (a movie absent from the
    table, or without known people, gets an empty list); None takes the rows of `items` as
    they are (new movies to score).
    """
    if item_ids is not None:
        items = item_rows(items, item_ids)
    n = len(item_ids) if item_ids is not None else (0 if items is None else len(items))
    if items is None:
        return np.zeros(n + 1, np.int64), np.zeros(0, np.int64)
    indptr, codes, _ = people_lists(items, spec)
    return indptr, codes


def check_people_params(people: Any, max_actors: Any, id_dropout: Any) -> None:
    """ValueError naming `people`, `max_actors` or `id_dropout` when one is invalid."""
    check_param("people", people, isinstance(people, bool), "a bool")
    check_param("max_actors", max_actors, is_int(max_actors, 0), "an integer ≥ 0")
    check_param("id_dropout", id_dropout, is_number(id_dropout) and 0 <= id_dropout < 1,
                "a number in [0, 1)")


def fit_people(items: pd.DataFrame | None, item_ids: np.ndarray, max_actors: int
               ) -> tuple[dict[str, Any], np.ndarray, np.ndarray]:
    """(spec, indptr, codes): the people vocabulary of `items` and the training items' lists.

    Raises:
        MovieRecError: the item table lists no director or actor (from `people_spec`).
    """
    spec = people_spec(items, max_actors=max_actors)
    indptr, codes = people_arrays(items, item_ids, spec)
    return spec, indptr, codes


class PeopleBag(nn.Module):
    """e_i = mean_{p ∈ P(i)} e_p: the mean embedding of a movie's people (zeros without any).

    P(i) holds the movie's directors and top-billed actors known to the people vocabulary
    (`movierec.data.people`). The training movies' lists live in non-persistent buffers
    (rebuilt from the model's saved arrays on load); the state dict holds only the e_p.

    Args:
        n_persons: size of the people vocabulary.
        size: width of e_p.
        indptr: int64 [n_items + 1] row pointers of the training movies' lists.
        codes: int64 person codes of those lists.
    """

    indptr: Tensor
    keys: Tensor

    def __init__(self, n_persons: int, size: int, indptr: np.ndarray, codes: np.ndarray) -> None:
        super().__init__()
        self.embedding = nn.EmbeddingBag(max(n_persons, 1), size, mode="mean")
        self.register_buffer("indptr", torch.from_numpy(np.asarray(indptr, np.int64)),
                             persistent=False)
        self.register_buffer("keys", torch.from_numpy(np.asarray(codes, np.int64)),
                             persistent=False)

    @property
    def size(self) -> int:
        """Width of e_p."""
        return int(self.embedding.embedding_dim)

    def bags(self, indptr: Tensor, keys: Tensor, rows: Tensor) -> Tensor:
        """Mean embeddings [len(rows), size] of CSR rows (−1: zeros)."""
        flat, offsets, _, _ = csr_bags(indptr, keys, rows)
        return self.embedding(flat, offsets)

    def forward(self, codes: Tensor | None) -> Tensor:
        """e_i [..., size] for training item codes of any shape (−1: zeros); all items for None."""
        if codes is None:
            return self.bags(self.indptr, self.keys,
                             torch.arange(len(self.indptr) - 1, device=self.indptr.device))
        distinct, inverse = torch.unique(codes.reshape(-1), return_inverse=True)
        out = self.bags(self.indptr, self.keys, distinct)[inverse]
        return out.view(*codes.shape, self.size)

    def new(self, indptr: Tensor, keys: Tensor) -> Tensor:
        """e_i [n, size] of new movies given as their own CSR lists (indptr [n + 1], keys)."""
        return self.bags(indptr, keys, torch.arange(len(indptr) - 1, device=indptr.device))


class NewItems(NamedTuple):
    """Movies without training ratings, as the item side consumes them (tensors on one device).

    Attributes:
        n: number of movies.
        features: float32 [n, n_features] side input, or None.
        indptr: int64 [n + 1] row pointers of their people lists, or None without people.
        keys: int64 person codes of those lists, or None.
    """

    n: int
    features: Tensor | None
    indptr: Tensor | None
    keys: Tensor | None


def drop_ids(codes: Tensor, p: float, training: bool) -> Tensor | None:
    """DropoutNet's mask (Volkovs et al. 2017): False where an item's id part is dropped.

    Each element of `codes` keeps its id embedding with probability 1 − p (the global torch
    RNG, seeded by the Trainer); None (keep all) outside training or for p = 0.
    """
    if not training or p <= 0:
        return None
    return torch.rand(codes.shape, device=codes.device) >= p
