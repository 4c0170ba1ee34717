"""PyTorch Geometric views of a Dataset (optional: `torch_geometric` is imported lazily).

- `to_heterodata(ds)`: a `HeteroData` bipartite graph with node types "user" and "movie", edge type
  ("user", "rates", "movie") carrying the rating (and timestamp) per edge, plus the reverse
  ("movie", "rev_rates", "user") edges that message passing needs. Node indices are the dataset's
  codes (`ds.user_vocab` / `ds.item_vocab`); the original ids are stored as `node_id`. When the
  item table lists directors or actors (IMDb-joined data, hetrec-ml-2k), node type "person" and
  the edge types `DIRECTED_BY` ("movie", "directed_by", "person") and `ACTED_IN_BY` ("movie",
  "acted_in_by", "person", with the actor's billing position `order`), each with its reverse
  ("person", "directed", "movie") / ("person", "acted_in", "movie"), are added.
- `link_neighbor_loader(ds, ...)`: mini-batches of supervision edges with their sampled
  k-hop neighbourhood (PyG's `LinkNeighborLoader`, Hamilton et al. 2017 style sampling), for
  training on subgraphs instead of the full graph.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from movierec.data.dataset import Dataset, item_rows
from movierec.data.people import has_people, people_lists, people_spec, person_names
from movierec.errors import MissingExtraError

__all__ = ["ACTED_IN_BY", "DIRECTED_BY", "EDGE", "REV_ACTED_IN_BY", "REV_DIRECTED_BY",
           "REV_EDGE", "link_neighbor_loader", "to_heterodata"]

EDGE = ("user", "rates", "movie")
REV_EDGE = ("movie", "rev_rates", "user")
DIRECTED_BY = ("movie", "directed_by", "person")
REV_DIRECTED_BY = ("person", "directed", "movie")
ACTED_IN_BY = ("movie", "acted_in_by", "person")
REV_ACTED_IN_BY = ("person", "acted_in", "movie")


def _pyg() -> Any:
    try:
        import torch_geometric
    except ImportError as exc:
        raise MissingExtraError("PyG views need torch_geometric: pip install torch_geometric"
                                ) from exc
    return torch_geometric


def to_heterodata(ds: Dataset, *, people: bool | None = None, max_actors: int = 3) -> Any:
    """The ratings of `ds` as a `torch_geometric.data.HeteroData` (see the module docstring).

    data["user"].num_nodes = ds.n_users, data["movie"].num_nodes = ds.n_items;
    data[EDGE].edge_index [2, n_ratings] (user code, item code), data[EDGE].rating float32,
    data[EDGE].time int64; data[REV_EDGE].edge_index is the flipped index.

    With people: data["person"].num_nodes, data["person"].person_id (a list of the person ids,
    sorted; their position is the node index) and, where the table has ids and names,
    data["person"].name (a list); data[DIRECTED_BY].edge_index [2, n] (movie code, person
    index) for every director of every movie node; data[ACTED_IN_BY].edge_index for its first
    `max_actors` billed actors and data[ACTED_IN_BY].order int64 (0 = top billed); the reverse
    types carry the flipped index (and `order`). Every person of a movie node is kept, even one
    in a single movie (`people_spec` with min_movies=1); movies of the table without a rating
    are not movie nodes, and their people appear only through rated movies.

    Args:
        ds: the dataset.
        people: add the person nodes: None (default) when the item table lists any director
            or actor, True always (MovieRecError when it lists none), False never.
        max_actors: top-billed actors linked per movie (default 3, ≥ 0).

    Raises:
        MovieRecError: `people=True` and the item table lists no director or actor.
        ValueError: a negative `max_actors`.
    """
    _pyg()
    import torch
    from torch_geometric.data import HeteroData


    u, i = ds.codes
    data = HeteroData()
    data["user"].num_nodes = ds.n_users
    data["movie"].num_nodes = ds.n_items
    data["user"].node_id = torch.from_numpy(np.array(ds.user_vocab.index, dtype=np.int64))
    data["movie"].node_id = torch.from_numpy(np.array(ds.item_vocab.index, dtype=np.int64))
    edge_index = torch.from_numpy(np.vstack([np.asarray(u, np.int64), np.asarray(i, np.int64)]))
    data[EDGE].edge_index = edge_index
    data[EDGE].rating = torch.from_numpy(ds.ratings["rating"].to_numpy(np.float32, copy=True))
    data[EDGE].time = torch.from_numpy(ds.ratings["timestamp"].to_numpy(np.int64, copy=True))
    data[REV_EDGE].edge_index = edge_index.flip(0)
    if people is None:
        people = has_people(ds.items)
    if people:
        _add_people(data, ds, max_actors)
    return data


def _add_people(data: Any, ds: Dataset, max_actors: int) -> None:
    """Person nodes and the movie–person edges of `to_heterodata`."""
    import torch


    rows = item_rows(ds.items, ds.item_vocab.index)
    if has_people(rows):
        spec = people_spec(rows, max_actors=max_actors, min_movies=1)
        indptr, persons, roles = people_lists(rows, spec)
    else:  # nobody in the rated movies: no person node (MovieRecError: nobody in the table)
        people_spec(ds.items, max_actors=max_actors)
        spec = {"persons": []}
        indptr = np.zeros(ds.n_items + 1, np.int64)
        persons, roles = np.zeros(0, np.int64), np.zeros(0, np.int8)
    movie = np.repeat(np.arange(len(indptr) - 1, dtype=np.int64), np.diff(indptr))
    data["person"].num_nodes = len(spec["persons"])
    data["person"].person_id = list(spec["persons"])
    names = person_names(ds.items, spec)
    if names:
        data["person"].name = [names.get(p, p) for p in spec["persons"]]
    for role, (edge, rev) in enumerate(((DIRECTED_BY, REV_DIRECTED_BY),
                                        (ACTED_IN_BY, REV_ACTED_IN_BY))):
        mine = roles == role
        index = torch.from_numpy(np.vstack([movie[mine], persons[mine]]).reshape(2, -1))
        data[edge].edge_index = index
        data[rev].edge_index = index.flip(0)
        if edge == ACTED_IN_BY:
            # Billing position: the entry's rank among its movie's actors (people_lists keeps
            # the billing order).
            m = movie[mine]
            order = torch.from_numpy(np.arange(len(m)) - np.searchsorted(m, m, side="left"))
            data[edge].order = order
            data[rev].order = order


def link_neighbor_loader(ds: Dataset, *, num_neighbors: tuple[int, ...] = (10, 10),
                         batch_size: int = 1024, shuffle: bool = True,
                         neg_sampling_ratio: float | None = None, **kwargs: Any) -> Any:
    """`LinkNeighborLoader` over the ("user", "rates", "movie") edges of `to_heterodata(ds)`.

    Each batch is the subgraph sampled around `batch_size` supervision edges (labels =
    ratings in `edge_label`; with `neg_sampling_ratio`, binary labels with sampled negatives).
    Needs PyG's sampling backend (pyg-lib or torch-sparse).
    """
    _pyg()
    from torch_geometric.loader import LinkNeighborLoader

    data = to_heterodata(ds)
    extra: dict[str, Any] = dict(kwargs)
    if neg_sampling_ratio is not None:
        extra["neg_sampling_ratio"] = neg_sampling_ratio
    else:
        extra["edge_label"] = data[EDGE].rating
    return LinkNeighborLoader(data, num_neighbors=list(num_neighbors), batch_size=batch_size,
                              shuffle=shuffle,
                              edge_label_index=(EDGE, data[EDGE].edge_index), **extra)
