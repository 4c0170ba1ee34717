"""Shared fixtures: seeded rng, hand-written tiny data, the checkerboard, real ML-100K."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import settings

from movierec.data.dataset import Dataset

REPO = Path(__file__).resolve().parents[1]

# pytest-xdist workers export COLUMNS=80 and the CLI honours COLUMNS (tables fold to fit), so
# tests that read whole tables from the CLI's output would depend on how pytest was started.
os.environ.pop("COLUMNS", None)

# Property and fuzz tests run the same examples on every run, so CI is reproducible; set
# HYPOTHESIS_PROFILE=explore to draw fresh examples (benchmarks/fuzz_loaders.py explores too).
settings.register_profile("repeatable", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "repeatable"))


def shared_data_dir() -> Path | None:
    """MOVIEREC_DATA_DIR, else ../shared/datasets beside the checkout; None when neither exists."""
    env = os.environ.get("MOVIEREC_DATA_DIR")
    candidates = [Path(env)] if env else []
    candidates.append(REPO.parent / "shared" / "datasets")
    for c in candidates:
        if (c / "ml-100k" / "u.data").is_file():
            return c.resolve()
    return None


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(42)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    d = shared_data_dir()
    if d is None:
        pytest.skip("real MovieLens data not found (set MOVIEREC_DATA_DIR)")
    return d


@pytest.fixture
def tiny() -> Dataset:
    """Four users, five items, ratings 1-5 with timestamps: small enough to check by hand."""
    rows = [
        (1, 10, 5.0, 100), (1, 20, 3.0, 200), (1, 30, 4.0, 300),
        (2, 10, 4.0, 110), (2, 30, 5.0, 210), (2, 40, 2.0, 310),
        (3, 20, 1.0, 120), (3, 40, 5.0, 220), (3, 50, 4.0, 320),
        (4, 10, 5.0, 130), (4, 50, 3.0, 230),
    ]
    return Dataset(pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"]),
                   name="tiny")


def checkerboard_frame(n_users: int = 8, n_items: int = 8) -> pd.DataFrame:
    """Two taste groups: even users like even items, odd users odd items (rating 5)."""
    rows = [(u, i, 5.0, u * 100 + i) for u in range(n_users) for i in range(n_items)
            if u % 2 == i % 2]
    return pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])


@pytest.fixture
def checkerboard() -> tuple[Dataset, dict[int, int]]:
    """Checkerboard with one withheld item per user; returns (train, {user: withheld item}).

    Every model worth its name ranks the withheld item of the user's own parity first.
    """
    frame = checkerboard_frame()
    withheld = {u: (u + 2) % 8 if u % 2 == 0 else (u + 2) % 8 for u in range(8)}
    keep = [withheld[u] != i for u, i in zip(frame.user_id, frame.item_id, strict=True)]
    return Dataset(frame[keep], name="checkerboard"), withheld


@pytest.fixture(scope="session")
def ml_100k(data_dir: Path):
    """The real ML-100K release, loaded once; checked at teardown that no test mutated it."""
    from movierec.data import load

    ds = load("ml-100k", data_dir=data_dir)
    before = ds.fingerprint
    n = len(ds.ratings)
    yield ds
    assert len(ds.ratings) == n
    ds.__dict__.pop("fingerprint", None)
    assert ds.fingerprint == before, "a test mutated the shared ml_100k dataset"


@pytest.fixture(autouse=True)
def _fresh_thread_count():
    """Each test starts without a remembered `set_threads` count (`movierec.pipeline._threads`)."""
    import movierec.pipeline as pipeline

    pipeline._threads = None
    yield
    pipeline._threads = None
