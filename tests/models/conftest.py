"""Fixtures shared by the model tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pandas as pd
import pytest

from movierec.data.dataset import Dataset


def make_low_rank(n_users: int = 150, n_items: int = 60, *, seed: int = 0) -> Dataset:
    """n_users x n_items, ratings 1-5 from a rank-2 model plus noise, 40% observed."""
    gen = np.random.default_rng(seed)
    p, q = gen.normal(size=(n_users, 2)), gen.normal(size=(n_items, 2))
    u, i = np.nonzero(gen.random((n_users, n_items)) < 0.4)
    r = np.clip(np.round(3 + (p[u] * q[i]).sum(1) + gen.normal(0, 0.3, len(u))), 1, 5)
    frame = pd.DataFrame({"user_id": u + 1, "item_id": i + 1, "rating": r,
                          "timestamp": np.arange(len(u))})
    return Dataset(frame, name="low-rank", rating_scale=(1.0, 5.0))


@pytest.fixture(scope="session")
def low_rank_factory() -> Callable[..., Dataset]:
    """`make_low_rank` as a fixture, for modules that want another size."""
    return make_low_rank


@pytest.fixture(scope="module")
def low_rank() -> Dataset:
    """150 users x 60 items of rank-2 ratings (a module may override it with another size)."""
    return make_low_rank()


@pytest.fixture(scope="module")
def torch_one_thread() -> Iterator[None]:
    """One torch thread for a test module, restored afterwards: tiny tensors gain nothing from
    threads, and on a busy shared CPU OpenMP's spinning threads make such tests ten times slower.
    Use with `pytestmark = pytest.mark.usefixtures("torch_one_thread")`."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
