"""The whole pipeline — loader, predefined u1 split, registry models, evaluator — reproduces the
independent reference figures of ../shared/reference/README.md on ML-100K u1.

tests/test_reference.py checks the evaluator alone with scorers written inside the test; this file
checks that movierec's own models and data path give the same numbers.
"""

from __future__ import annotations

import pytest

from movierec.evaluate import evaluate
from movierec.models import get
from movierec.split import predefined_split

pytestmark = pytest.mark.slow

KEYS = ["precision@10", "recall@10", "ndcg@10", "hit@10", "map@10", "coverage@10"]
REFERENCE = {
    ("pop", 0): [0.3044, 0.0974, 0.3251, 0.8715, 0.1989, 0.0309],
    ("pop", 4): [0.2129, 0.1179, 0.2446, 0.7829, 0.1330, 0.0309],
    ("itemknn", 0): [0.4510, 0.1617, 0.4923, 0.9434, 0.3585, 0.2067],
    ("itemknn", 4): [0.3250, 0.1862, 0.3751, 0.8662, 0.2441, 0.2067],
    ("ease", 0): [0.5144, 0.1917, 0.5652, 0.9564, 0.4308, 0.1612],
    ("ease", 4): [0.3768, 0.2326, 0.4476, 0.9189, 0.3050, 0.1612],
}
PARAMS = {"pop": {},
          "itemknn": {"n_neighbors": 100, "similarity": "cosine", "feedback": "implicit"},
          "ease": {"lambda_": 500.0}}
# Surprise 1.1.5 defaults on the same split (reference README): RMSE, MAE.
RATING_REFERENCE = {"mean": (1.1537, 0.9680), "bias": (0.9599, 0.7616)}


@pytest.fixture(scope="module")
def u1(ml_100k, data_dir):
    return predefined_split(ml_100k, "u1", data_dir=data_dir)


@pytest.mark.parametrize("name", ["pop", "itemknn", "ease"])
def test_ranking_figures(u1, name):
    model = get(name, **PARAMS[name]).fit(u1.train, rng=0, progress=False)
    for relevance in (0, 4):
        res = evaluate(model, u1, ks=(10,), relevance=relevance)
        expected_users = 459 if relevance == 0 else 456
        assert res.counts["users_evaluated"] == expected_users
        got = [res.summary[k] for k in KEYS]
        # ±0.001 as the reference allows (ties at the k-th place may move pop a little)
        assert got == pytest.approx(REFERENCE[(name, relevance)], abs=1e-3), (name, relevance)


@pytest.mark.parametrize("name", ["mean", "bias"])
def test_rating_figures(u1, name):
    model = get(name).fit(u1.train, progress=False)
    res = evaluate(model, u1, ks=(10,))
    rmse, mae = RATING_REFERENCE[name]
    assert res.summary["rmse"] == pytest.approx(rmse, abs=2e-3)
    assert res.summary["mae"] == pytest.approx(mae, abs=2e-3)
