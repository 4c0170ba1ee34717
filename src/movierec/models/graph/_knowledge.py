"""The user–movie–person graph of the graph models (`knowledge=True`) and cold-start movies.

`people_matrix` turns item-table rows into a binary movies × persons matrix under a people
vocabulary (`movierec.data.people`); `KnowledgeGraph` is the part of `_GraphRecommender` that
holds it (`item_people_`, `people_spec_`) and places a movie without ratings in the trained graph
through its people (`_score_new_items`). See `_GraphRecommender` for the whole design.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from torch import Tensor, nn

from movierec.data.people import people_lists
from movierec.models.base import check_param, is_int
from movierec.models.graph._graph import bipartite_degrees, knowledge_degrees
from movierec.models.graph._modules import _GraphModule
from movierec.ranking import user_blocks
from movierec.training import TorchRecommender

__all__ = ["KnowledgeGraph", "check_knowledge", "people_matrix"]


def check_knowledge(knowledge: object, max_actors: object) -> None:
    check_param("knowledge", knowledge, isinstance(knowledge, bool), "True or False")
    check_param("max_actors", max_actors, is_int(max_actors, 0), "an integer ≥ 0")


def people_matrix(items: pd.DataFrame | None, spec: dict, n_rows: int) -> sp.csr_matrix:
    """Binary float32 rows × persons CSR of the rows' known people.

    A person in two roles of one movie is one edge.
    """
    indptr, persons, _ = people_lists(items, spec)
    m = sp.csr_matrix((np.ones(len(persons), np.float32), persons, indptr),
                      shape=(n_rows, len(spec["persons"])))
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


class KnowledgeGraph(TorchRecommender):
    """Knowledge-graph state and cold-start scoring: the base of `_GraphRecommender`."""

    knowledge: bool = False
    max_actors: int = 3
    item_people_: sp.csr_matrix
    people_spec_: dict[str, Any]

    # Defined by `_GraphRecommender` (declared here for `_score_new_items`).
    def pair_scores(self, module: nn.Module, users: Tensor, items: Tensor,
                    item_codes: Tensor | None, user_bias: Tensor | None) -> Tensor:
        raise NotImplementedError

    def _user_bias(self, module: nn.Module, user_codes: Tensor) -> Tensor | None:
        raise NotImplementedError

    def _people(self) -> sp.csr_matrix | None:
        """The binary items × persons matrix of the knowledge graph (None without knowledge)."""
        return self.item_people_ if self.knowledge else None

    def _item_people(self) -> tuple[Tensor, Tensor, int] | None:
        """(indptr, person codes, n_persons) of `item_people_` for the module, or None."""
        people = self._people()
        if people is None:
            return None
        m = sp.csr_matrix(people)
        return (torch.from_numpy(m.indptr.astype(np.int64)),
                torch.from_numpy(m.indices.astype(np.int64)), int(m.shape[1]))

    def _degrees(self) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """(user, item, person or None) degrees of the training graph, float64.

        Cached per (`seen_`, `item_people_`) object, so a refit or a load recomputes them.
        """
        people = self._people()
        cached = getattr(self, "_degree_cache", None)
        if cached is None or cached[0] is not self.seen_ or cached[1] is not people:
            degrees = ((*bipartite_degrees(self.seen_), None) if people is None
                       else knowledge_degrees(self.seen_, people))
            cached = (self.seen_, people, degrees)
            self._degree_cache = cached
        return cached[2]

    def can_score_new_items(self) -> bool:
        """True with `knowledge=True`: a new movie is placed in the graph by its people."""
        return bool(self.knowledge)

    def _score_new_items(self, user_codes: np.ndarray, items: pd.DataFrame) -> np.ndarray:
        """Scores float32 [len(user_codes), len(items)] of movies placed by their people alone.

        Each movie m of `items` joins the trained knowledge graph as a new node whose only
        edges go to its known people P_m (`people_lists` with the saved `people_spec_`; persons
        without any training movie are left out, their ego rows were never trained), degree
        d_m = |P_m|. As for a folded-in user (`_score_history`), its messages are those of the
        full model, sides_k = Σ_{p∈P_m} e_p^(k) / √(d_m d_p), from the persons' trained layer-k
        rows (`person_layers`, degrees d_p of the training graph; the new edges' effect on the
        persons is neglected). Its own ego row is unknown and set to zero (no rating to fit it
        to); its layers go through the model's `step` (`node_layers`), are combined as in
        training and scored against the users' final representations by the model's head
        (NGCF-MSE: μ + b_u + e*_uᵀ e*_m, the unknown item bias b_m taken as 0, as `predict`
        does for an unknown item). A movie with no known person gets messages of zero: the
        same score as every other such movie (0 for LightGCN).
        """
        self._check_fitted()
        links = people_matrix(items, self.people_spec_, len(items))
        trained = self._degrees()[2]
        assert trained is not None  # knowledge=True
        links = sp.csr_matrix(links @ sp.diags((trained > 0).astype(np.float32)))
        links.eliminate_zeros()
        own = np.asarray(links.sum(axis=1)).ravel()
        coo = links.tocoo()
        weights = 1.0 / np.sqrt(own[coo.row] * trained[coo.col])
        user_codes = np.asarray(user_codes, dtype=np.int64)
        out = np.empty((len(user_codes), len(items)), dtype=np.float32)
        with self._eval() as module:
            assert isinstance(module, _GraphModule)
            dev = self.device_
            layers = module.person_layers()  # [n_persons, K+1, d]
            n_layers, d = layers.shape[1], layers.shape[2]
            rows = torch.from_numpy(coo.row.astype(np.int64)).to(dev)
            cols = torch.from_numpy(coo.col.astype(np.int64)).to(dev)
            w = torch.from_numpy(weights).to(device=dev, dtype=layers.dtype)
            sides = layers.new_zeros(len(items), n_layers, d)
            sides.index_add_(0, rows, layers[cols] * w[:, None, None])
            ego = layers.new_zeros(len(items), d)
            rep = module.combine(module.node_layers(ego, sides.transpose(0, 1)))
            users = module.final()[0]
            for blk in user_blocks(len(user_codes), self.score_block_size):
                u = torch.from_numpy(user_codes[blk]).to(dev)
                out[blk] = self._new_item_scores(module, users[u], rep,
                                                 self._user_bias(module, u)).float().cpu().numpy()
        return out

    def _new_item_scores(self, module: nn.Module, users: Tensor, items: Tensor,
                         user_bias: Tensor | None) -> Tensor:
        """Scores [B, n] of final user representations against new items' representations."""
        return self.pair_scores(module, users, items, None, user_bias)
