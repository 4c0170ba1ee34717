"""The evaluator reproduces the independent reference figures on ML-100K u1.base / u1.test.

See ../shared/reference/README.md. Two scorers are written here from scratch so that this checks
the evaluator and nothing else: popularity and EASE (Steck 2019, lambda = 500).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from movierec.data.dataset import Dataset
from movierec.evaluate import evaluate
from movierec.models.base import Recommender
from movierec.split import Split

COLUMNS = ["user_id", "item_id", "rating", "timestamp"]
KEYS = ["precision@10", "recall@10", "ndcg@10", "hit@10", "map@10", "coverage@10"]
# model, relevance -> precision, recall, NDCG, hit, MAP, coverage at k = 10
REFERENCE = {
    ("pop", 0): [0.3044, 0.0974, 0.3251, 0.8715, 0.1989, 0.0309],
    ("pop", 4): [0.2129, 0.1179, 0.2446, 0.7829, 0.1330, 0.0309],
    ("ease", 0): [0.5144, 0.1917, 0.5652, 0.9564, 0.4308, 0.1612],
    ("ease", 4): [0.3768, 0.2326, 0.4476, 0.9189, 0.3050, 0.1612],
}


class Popularity(Recommender):
    """score(u, i) = number of training interactions of item i."""

    def fit(self, train: Dataset, valid: Dataset | None = None, *, rng: Any = None,
            progress: bool = True) -> Popularity:
        self._setup(train)
        self.counts_ = np.asarray(self.seen_.sum(axis=0), dtype=np.float32).ravel()
        return self

    def _score(self, user_codes: np.ndarray, item_codes: np.ndarray | None = None) -> np.ndarray:
        return np.broadcast_to(self.counts_, (len(user_codes), len(self.counts_)))


class EASE(Recommender):
    """B = I - P diag(1/diag P), P = (X'X + lambda I)^-1, diag B = 0; score = X B."""

    def fit(self, train: Dataset, valid: Dataset | None = None, *, rng: Any = None,
            progress: bool = True) -> EASE:
        self._setup(train)
        x = self.seen_.toarray().astype(np.float64)
        p = np.linalg.inv(x.T @ x + 500.0 * np.eye(x.shape[1]))
        b = -p / np.diag(p)
        np.fill_diagonal(b, 0.0)
        self.b_ = b.astype(np.float32)
        return self

    def _score(self, user_codes: np.ndarray, item_codes: np.ndarray | None = None) -> np.ndarray:
        return np.asarray(self.seen_[user_codes] @ self.b_, dtype=np.float32)


@pytest.fixture(scope="module")
def u1(data_dir: Path) -> Split:
    folder = data_dir / "ml-100k"
    train = pd.read_csv(folder / "u1.base", sep="\t", names=COLUMNS)
    test = pd.read_csv(folder / "u1.test", sep="\t", names=COLUMNS)
    return Split(Dataset(train, name="ml-100k"), Dataset(test, name="ml-100k"), name="u1")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["pop", "ease"])
def test_reference_figures(u1: Split, name: str) -> None:
    model = (Popularity() if name == "pop" else EASE()).fit(u1.train)
    assert model.n_items == 1650
    for relevance, users in ((0, 459), (4, 456)):
        res = evaluate(model, u1, ks=(5, 10, 20), relevance=relevance)
        assert res.counts["users_evaluated"] == users
        got = [res.summary[k] for k in KEYS]
        # Popularity ties are broken by item code here, by np.argsort in the reference: the
        # third decimal may move a little (documented in the reference README).
        np.testing.assert_allclose(got, REFERENCE[name, relevance], atol=1e-3,
                                   err_msg=f"{name} at relevance {relevance}: {got}")
        if name == "ease":  # no ties: every figure to the reference's four decimals
            np.testing.assert_allclose(got, REFERENCE[name, relevance], atol=6e-5)
