"""The maths of EASE: the closed form, the zero diagonal, the memory guard."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from contract import precision_at_10, read_u1

from movierec.data.dataset import Dataset
from movierec.errors import MovieRecError
from movierec.models import get, param_key
from movierec.models.ease import EASE


def ease_direct(x: np.ndarray, lam: float) -> np.ndarray:
    """Steck (2019), eq. 8, straight from the paper with a dense inverse."""
    p = np.linalg.inv(x.T @ x + lam * np.eye(x.shape[1]))
    b = np.eye(x.shape[1]) - p @ np.diag(1.0 / np.diag(p))
    np.fill_diagonal(b, 0.0)
    return b


@pytest.mark.parametrize("lam", [0.5, 10.0])
def test_weights_and_scores_match_the_closed_form(tiny: Dataset, lam: float) -> None:
    model = EASE(lambda_=lam).fit(tiny)
    x = tiny.matrix("binary").toarray().astype(float)
    b = ease_direct(x, lam)
    np.testing.assert_allclose(model.item_weights_, b, rtol=1e-5, atol=1e-6)
    assert np.all(np.diag(model.item_weights_) == 0)
    np.testing.assert_allclose(model.score(tiny.user_vocab.index), x @ b, rtol=1e-5, atol=1e-6)


def test_binary_input_ignores_rating_values(rng: np.random.Generator) -> None:
    u, i = np.nonzero(rng.random((15, 10)) < 0.4)
    frame = pd.DataFrame({"user_id": u, "item_id": i, "rating": rng.integers(1, 6, len(u))})
    ones = frame.assign(rating=1)
    a = EASE(lambda_=3.0).fit(Dataset(frame)).item_weights_
    b = EASE(lambda_=3.0).fit(Dataset(ones)).item_weights_
    np.testing.assert_array_equal(a, b)


def test_memory_guard_names_the_need(tiny: Dataset) -> None:
    with pytest.raises(MovieRecError, match=r"max_memory_mb") as info:
        EASE(max_memory_mb=1e-7).fit(tiny)
    assert "GB" in str(info.value) and "5 x 5" in str(info.value)


def test_memory_guard_refuses_before_allocating(tiny: Dataset, monkeypatch) -> None:
    def explode(*args: object, **kwargs: object) -> None:
        raise AssertionError("the Gram matrix was built before the memory check")

    monkeypatch.setattr("movierec.models.ease._gram", explode)
    model = EASE(max_memory_mb=1e-7)
    with pytest.raises(MovieRecError, match=r"3e-07 GB .* keep at most 0 items"):
        model.fit(tiny)
    assert not hasattr(model, "item_weights_") and not hasattr(model, "seen_")


def test_in_place_inverse_equals_the_dense_formula(rng: np.random.Generator,
                                                   monkeypatch) -> None:
    # Blocks of 3 rows, so the blocked Gram rows and symmetrization are exercised.
    monkeypatch.setattr("movierec.models.ease._BLOCK_BYTES", 3 * 20 * 12)
    u, i = np.nonzero(rng.random((30, 12)) < 0.4)
    train = Dataset(pd.DataFrame({"user_id": u, "item_id": i, "rating": 1.0}))
    x = train.matrix("binary").toarray().astype(float)
    np.testing.assert_allclose(EASE(lambda_=2.0).fit(train).item_weights_, ease_direct(x, 2.0),
                               rtol=1e-5, atol=1e-6)


def test_cli_key_lambda_maps_to_lambda_() -> None:
    model = get("ease", **{param_key("lambda"): 50.0})
    assert model.params() == {"lambda_": 50.0, "max_memory_mb": 4000.0}
    with pytest.raises(ValueError, match="lambda_"):
        EASE(lambda_=0.0)


@pytest.mark.slow
def test_ml100k_u1_reference(data_dir: Path) -> None:
    train, test = read_u1(data_dir)
    assert precision_at_10(EASE().fit(train), test) == pytest.approx(0.5144, abs=0.001)
