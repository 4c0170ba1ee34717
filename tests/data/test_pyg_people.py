"""Person nodes in the PyG view of a Dataset (skipped without torch_geometric)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("torch_geometric")

from movierec.data.dataset import Dataset  # noqa: E402
from movierec.data.pyg import (  # noqa: E402
    ACTED_IN_BY,
    DIRECTED_BY,
    EDGE,
    REV_ACTED_IN_BY,
    REV_DIRECTED_BY,
    to_heterodata,
)
from movierec.errors import MovieRecError  # noqa: E402


@pytest.fixture
def credits() -> Dataset:
    """Movies 10, 20, 30 rated; 40 in the table only. nmA1 acts in 10 and directs 30; nmA4 is
    billed fourth in 10; nmP9 is only in the unrated 40."""
    ratings = pd.DataFrame({"user_id": [1, 1, 2, 2], "item_id": [30, 10, 20, 10],
                            "rating": [4.0, 3.0, 5.0, 2.0], "timestamp": [1, 2, 3, 4]})
    items = pd.DataFrame({"item_id": [10, 20, 30, 40], "title": ["a", "b", "c", "d"]})
    cols = {
        "director_ids": [("nmD1",), ("nmD1",), ("nmA1",), ("nmP9",)],
        "directors": [("Dee",), ("Dee",), ("Ann",), ("Pat",)],
        "actor_ids": [("nmA1", "nmA2", "nmA3", "nmA4"), ("nmA2",), (), ("nmA1",)],
        "actors": [("Ann", "Bob", "Cy", "Di"), ("Bob",), (), ("Ann",)],
    }
    for col, values in cols.items():
        items[col] = pd.Series(values, dtype=object)
    return Dataset(ratings, items=items, name="credits")


def edges(data, edge) -> list[tuple[int, int]]:  # noqa: ANN001
    return sorted(map(tuple, data[edge].edge_index.numpy().T.tolist()))


def test_people_nodes_and_edges_by_hand(credits: Dataset) -> None:
    data = to_heterodata(credits)
    code = dict(zip(credits.item_vocab.index.tolist(),
                    credits.item_vocab.codes(credits.item_vocab.index).tolist(), strict=True))
    assert data["person"].person_id == ["nmA1", "nmA2", "nmA3", "nmD1"]  # no nmA4, no nmP9
    assert data["person"].num_nodes == 4
    assert data["person"].name == ["Ann", "Bob", "Cy", "Dee"]
    a1, a2, a3, d1 = range(4)
    assert edges(data, DIRECTED_BY) == sorted([(code[10], d1), (code[20], d1), (code[30], a1)])
    acted = sorted([(code[10], a1), (code[10], a2), (code[10], a3), (code[20], a2)])
    assert edges(data, ACTED_IN_BY) == acted
    billing = dict(zip(map(tuple, data[ACTED_IN_BY].edge_index.numpy().T.tolist()),
                       data[ACTED_IN_BY].order.tolist(), strict=True))
    assert billing == {(code[10], a1): 0, (code[10], a2): 1, (code[10], a3): 2,
                       (code[20], a2): 0}
    # Reverse edges: the same pairs, flipped, with the same billing order.
    np.testing.assert_array_equal(data[REV_DIRECTED_BY].edge_index.numpy(),
                                  data[DIRECTED_BY].edge_index.numpy()[::-1])
    np.testing.assert_array_equal(data[REV_ACTED_IN_BY].edge_index.numpy(),
                                  data[ACTED_IN_BY].edge_index.numpy()[::-1])
    np.testing.assert_array_equal(data[REV_ACTED_IN_BY].order.numpy(),
                                  data[ACTED_IN_BY].order.numpy())
    assert data[EDGE].edge_index.shape == (2, 4)  # the ratings are untouched
    data.validate()


def test_max_actors_and_switching_people_off(credits: Dataset) -> None:
    one = to_heterodata(credits, max_actors=1)
    assert one["person"].person_id == ["nmA1", "nmA2", "nmD1"]
    assert one[ACTED_IN_BY].edge_index.shape[1] == 2
    assert one[ACTED_IN_BY].order.tolist() == [0, 0]
    off = to_heterodata(credits, people=False)
    assert "person" not in off.node_types and DIRECTED_BY not in off.edge_types
    with pytest.raises(ValueError, match="max_actors"):
        to_heterodata(credits, max_actors=-1)


def test_tables_without_people(tiny: Dataset, credits: Dataset) -> None:
    assert "person" not in to_heterodata(tiny).node_types  # default: only when listed
    with pytest.raises(MovieRecError, match="directors or actors"):
        to_heterodata(tiny, people=True)
    # People only in a movie nobody rated: a person type without nodes or edges.
    assert credits.items is not None
    only_40 = credits.items.copy()
    for col in ("director_ids", "directors", "actor_ids", "actors"):
        only_40[col] = pd.Series([(), (), (), only_40[col][3]], dtype=object)
    data = to_heterodata(Dataset(credits.ratings, items=only_40, name="x"))
    assert data["person"].num_nodes == 0 and data[DIRECTED_BY].edge_index.shape == (2, 0)


def test_dataset_method_includes_people(credits: Dataset) -> None:
    data = credits.to_heterodata()
    assert data["person"].num_nodes == 4 and ACTED_IN_BY in data.edge_types
    # the options pass through the Dataset method
    assert "person" not in credits.to_heterodata(people=False).node_types
    assert credits.to_heterodata(max_actors=0)[ACTED_IN_BY].edge_index.shape[1] == 0
