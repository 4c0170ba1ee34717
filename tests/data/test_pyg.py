"""PyG views of a Dataset (skipped without torch_geometric)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch_geometric")

from movierec.data.dataset import Dataset  # noqa: E402
from movierec.data.pyg import EDGE, REV_EDGE, link_neighbor_loader, to_heterodata  # noqa: E402


def test_to_heterodata(tiny: Dataset) -> None:
    data = to_heterodata(tiny)
    assert data["user"].num_nodes == tiny.n_users and data["movie"].num_nodes == tiny.n_items
    ei = data[EDGE].edge_index.numpy()
    u, i = tiny.codes
    np.testing.assert_array_equal(ei, np.vstack([u, i]))
    np.testing.assert_array_equal(data[REV_EDGE].edge_index.numpy(), ei[::-1])
    np.testing.assert_allclose(data[EDGE].rating.numpy(), tiny.ratings["rating"].to_numpy())
    np.testing.assert_array_equal(data["movie"].node_id.numpy(), tiny.item_vocab.index)


def test_link_neighbor_loader(tiny: Dataset) -> None:
    try:
        loader = link_neighbor_loader(tiny, num_neighbors=(2, 2), batch_size=4)
        batch = next(iter(loader))
    except ImportError as exc:  # no pyg-lib / torch-sparse sampling backend
        pytest.skip(f"PyG sampling backend missing: {exc}")
    assert batch[EDGE].edge_label.shape[0] == 4
    assert batch[EDGE].edge_label_index.shape == (2, 4)


def test_dataset_method_is_the_same_view(tiny: Dataset) -> None:
    data = tiny.to_heterodata()
    assert data[EDGE].edge_index.shape[1] == tiny.n_ratings
