"""The maths of EDLAE: the dropout penalty, p = 0 is EASE, fold-in, the memory guard."""

from __future__ import annotations

import numpy as np
import pytest

from movierec.data.dataset import Dataset
from movierec.errors import MovieRecError
from movierec.fold_in import fold_in
from movierec.models import get, param_key
from movierec.models.ease import EASE
from movierec.models.edlae import EDLAE


def edlae_direct(x: np.ndarray, p: float, lam: float) -> np.ndarray:
    """Steck (2020), eqs. 8-9, with a dense inverse: Λ = p/(1-p) diag(XᵀX) + λI."""
    g = x.T @ x
    lam_diag = p / (1 - p) * np.diag(g) + lam
    inv = np.linalg.inv(g + np.diag(lam_diag))
    b = np.eye(x.shape[1]) - inv @ np.diag(1.0 / np.diag(inv))
    np.fill_diagonal(b, 0.0)
    return b


@pytest.mark.parametrize(("p", "lam"), [(0.25, 1.0), (0.6, 0.0), (0.1, 20.0)])
def test_weights_match_the_closed_form(low_rank: Dataset, p: float, lam: float) -> None:
    model = EDLAE(dropout=p, lambda_=lam).fit(low_rank, progress=False)
    x = low_rank.matrix("binary").toarray().astype(float)
    b = edlae_direct(x, p, lam)
    np.testing.assert_allclose(model.item_weights_, b, rtol=1e-4, atol=1e-6)
    assert np.all(np.diag(model.item_weights_) == 0)
    np.testing.assert_allclose(model.score(low_rank.user_vocab.index), x @ b, rtol=1e-4,
                               atol=1e-5)


def test_no_dropout_is_ease(low_rank: Dataset) -> None:
    a = EDLAE(dropout=0.0, lambda_=30.0).fit(low_rank, progress=False)
    b = EASE(lambda_=30.0).fit(low_rank, progress=False)
    np.testing.assert_array_equal(a.item_weights_, b.item_weights_)


def test_dropout_shrinks_popular_items_more(low_rank: Dataset) -> None:
    # With λ = 0 the penalty of item j is p/(1-p) · pop_j: EDLAE equals EASE with that
    # per-item λ, not any single λ (so the test would fail if the dropout term were constant).
    x = low_rank.matrix("binary").toarray().astype(float)
    pop = x.sum(axis=0)
    assert pop.min() < pop.max()
    w = EDLAE(dropout=0.5, lambda_=0.0).fit(low_rank, progress=False).item_weights_
    for lam in (pop.min(), pop.mean(), pop.max()):
        ease = EASE(lambda_=float(lam)).fit(low_rank, progress=False).item_weights_
        assert not np.allclose(w, ease, rtol=1e-3, atol=1e-5)


def test_fold_in_equals_a_training_user(low_rank: Dataset) -> None:
    model = EDLAE().fit(low_rank, progress=False)
    user = int(low_rank.user_vocab.index[2])
    history = low_rank.ratings[low_rank.ratings["user_id"] == user]
    new = fold_in(model, history["item_id"].to_numpy(), history["rating"].to_numpy())
    assert new.method == "model"
    np.testing.assert_allclose(new.scores, model.score([user])[0], rtol=1e-5, atol=1e-5)


def test_memory_guard_names_the_need(tiny: Dataset) -> None:
    with pytest.raises(MovieRecError, match=r"EDLAE needs .* max_memory_mb") as info:
        EDLAE(max_memory_mb=1e-7).fit(tiny)
    assert "5 x 5" in str(info.value)


def test_cli_key_lambda_maps_to_lambda_() -> None:
    model = get("edlae", **{param_key("lambda"): 5.0, "dropout": 0.5})
    assert model.params() == {"dropout": 0.5, "lambda_": 5.0, "max_memory_mb": 4000.0}


@pytest.mark.parametrize(("params", "name"), [({"dropout": 1.0}, "dropout"),
                                              ({"dropout": -0.1}, "dropout"),
                                              ({"lambda_": -1.0}, "lambda_"),
                                              ({"dropout": 0.0, "lambda_": 0.0}, "lambda_"),
                                              ({"max_memory_mb": 0}, "max_memory_mb")])
def test_bad_params_give_one_line_naming_them(params: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name) as info:
        EDLAE(**params)
    assert "\n" not in str(info.value)
