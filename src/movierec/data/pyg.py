"""PyTorch Geometric views of a Dataset (optional: `torch_geometric` is imported lazily).

- `to_heterodata(ds)`: a `HeteroData` bipartite graph with node types "user" and "movie", edge type
  ("user", "rates", "movie") carrying the rating (and timestamp) per edge, plus the reverse
  ("movie", "rev_rates", "user") edges that message passing needs. Node indices are the dataset's
  codes (`ds.user_vocab` / `ds.item_vocab`); the original ids are stored as `node_id`.
- `link_neighbor_loader(ds, ...)`: mini-batches of supervision edges with their sampled
  k-hop neighbourhood (PyG's `LinkNeighborLoader`, Hamilton et al. 2017 style sampling), for
  training on subgraphs instead of the full graph.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from movierec.data.dataset import Dataset
from movierec.errors import MissingExtraError

__all__ = ["EDGE", "REV_EDGE", "link_neighbor_loader", "to_heterodata"]

EDGE = ("user", "rates", "movie")
REV_EDGE = ("movie", "rev_rates", "user")


def _pyg() -> Any:
    try:
        import torch_geometric
    except ImportError as exc:
        raise MissingExtraError("PyG views need torch_geometric: pip install torch_geometric"
                                ) from exc
    return torch_geometric


def to_heterodata(ds: Dataset) -> Any:
    """The ratings of `ds` as a `torch_geometric.data.HeteroData` (see the module docstring).

    data["user"].num_nodes = ds.n_users, data["movie"].num_nodes = ds.n_items;
    data[EDGE].edge_index [2, n_ratings] (user code, item code), data[EDGE].rating float32,
    data[EDGE].time int64; data[REV_EDGE].edge_index is the flipped index.
    """
    _pyg()
    import torch
    from torch_geometric.data import HeteroData

    u, i = ds.codes
    data = HeteroData()
    data["user"].num_nodes = ds.n_users
    data["movie"].num_nodes = ds.n_items
    data["user"].node_id = torch.from_numpy(np.asarray(ds.user_vocab.index, dtype=np.int64))
    data["movie"].node_id = torch.from_numpy(np.asarray(ds.item_vocab.index, dtype=np.int64))
    edge_index = torch.from_numpy(np.vstack([np.asarray(u, np.int64), np.asarray(i, np.int64)]))
    data[EDGE].edge_index = edge_index
    data[EDGE].rating = torch.from_numpy(ds.ratings["rating"].to_numpy(np.float32))
    data[EDGE].time = torch.from_numpy(ds.ratings["timestamp"].to_numpy(np.int64))
    data[REV_EDGE].edge_index = edge_index.flip(0)
    return data


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
