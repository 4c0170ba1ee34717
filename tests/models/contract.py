"""The model contract: every registered model passes these tests (imported by test_contract.py).

Parametrized over `movierec.models.available()`, so a model joins by being registered. Tables at
the top hold the only per-model knowledge: quick fitting parameters and the known exceptions.
"""

from __future__ import annotations

import functools
import inspect
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from movierec.data.dataset import Dataset
from movierec.errors import MovieRecError, NotFittedError, UnknownIdError
from movierec.models import available, get, get_class

try:  # torch is an extra: without it, torch models are skipped by the registry import anyway
    from movierec.train import TorchRecommender
except ImportError:  # pragma: no cover
    TorchRecommender = type("TorchRecommender", (), {})

# Parameters that keep a model quick on the tiny fixtures (e.g. few epochs); {} otherwise.
FIT_PARAMS: dict[str, dict] = {
    # BPR, so the checkerboard (all ratings 5, nothing for MSE to fit) has a ranking to learn.
    "mf": {"loss": "bpr", "embedding_size": 8, "epochs": 40, "batch_size": 32,
           "learning_rate": 0.02, "reg": 0.0, "weight_decay": 0.0, "device": "cpu"},
    # NCF: BCE with sampled negatives, so the all-5 checkerboard has a ranking to learn.
    "gmf": {"loss": "bce", "embedding_size": 8, "epochs": 40, "batch_size": 32,
            "learning_rate": 0.02, "weight_decay": 0.0, "device": "cpu"},
    "mlp": {"loss": "bce", "embedding_size": 8, "layers": (16, 8), "epochs": 40,
            "batch_size": 32, "learning_rate": 0.02, "weight_decay": 0.0, "device": "cpu"},
    "neumf": {"loss": "bce", "embedding_size": 8, "layers": (16, 8), "epochs": 40,
              "batch_size": 32, "learning_rate": 0.02, "weight_decay": 0.0, "device": "cpu"},
    # BPR as for mf; one full batch, so BatchNorm's running statistics match training's.
    "featurenet": {"loss": "bpr", "embedding_size": 8, "hidden_size": 16, "epochs": 40,
                   "batch_size": 32, "learning_rate": 0.02, "reg": 0.0, "dropout": 0.0,
                   "device": "cpu"},
    # Sequential models: BCE next-item ranking over the checkerboard's time order (u*100+i).
    "lstm": {"embedding_size": 8, "hidden_size": 16, "dropout": 0.0, "max_len": 8,
             "epochs": 40, "batch_size": 8, "learning_rate": 0.02, "device": "cpu"},
    "sasrec": {"embedding_size": 8, "n_layers": 2, "dropout": 0.0, "max_len": 8, "epochs": 40,
               "n_negatives": 3, "batch_size": 8, "learning_rate": 0.02, "device": "cpu"},
    # Graph models: BPR, one full batch per step, small sizes.
    "ngcf": {"loss": "bpr", "embedding_size": 8, "n_layers": 2, "node_dropout": 0.0,
             "message_dropout": 0.0, "epochs": 40, "batch_size": 64, "learning_rate": 0.02,
             "reg": 0.0, "device": "cpu"},
    "lightgcn": {"embedding_size": 8, "n_layers": 2, "epochs": 40, "batch_size": 64,
                 "learning_rate": 0.02, "reg": 0.0, "device": "cpu"},
    "attngraphrec": {"loss": "bpr", "embedding_size": 8, "n_layers": 2, "attention_size": 8,
                     "hidden_size": 16, "dropout": 0.0, "epochs": 40, "batch_size": 64,
                     "learning_rate": 0.02, "reg": 0.0, "device": "cpu"},
    # SVD++: BPR as for mf (the all-5 checkerboard has nothing for MSE to fit).
    "svdpp": {"loss": "bpr", "embedding_size": 8, "epochs": 40, "batch_size": 32,
              "learning_rate": 0.02, "reg": 0.0, "reg_implicit": 0.0, "weight_decay": 0.0,
              "device": "cpu"},
    # I-AutoRec: a small code, few items per step, no penalty (the fixtures are tiny).
    "autorec": {"hidden_size": 8, "epochs": 40, "batch_size": 4, "learning_rate": 0.02,
                "reg": 0.0, "device": "cpu"},
    # GLocal-K: a small autoencoder and few L-BFGS epochs (the fixtures are tiny).
    "glocalk": {"hidden_size": 8, "pretrain_epochs": 5, "epochs": 5, "device": "cpu"},
    # blend: two cheap members and the contract's quick BPR mf (which ranks the checkerboard),
    # not the default seven-member stack (minutes on ML-100K); blend-light runs its defaults;
    # a 40% carve-out so the ridge path runs, a strong alpha so weights stay near the average.
    "blend": {"members": (("bias", {}), ("itemknn", {"n_neighbors": 3}),
                          ("mf", {"loss": "bpr", "embedding_size": 8, "epochs": 40,
                                  "batch_size": 32, "learning_rate": 0.02, "reg": 0.0,
                                  "weight_decay": 0.0, "device": "cpu"})),
              "holdout": 0.4, "alpha": 1e4},
    # -- issue #21, linear models (rp3beta, slim, edlae) --
    # -- issue #21, autoencoders (multvae, recvae) --
    # Small VAEs; β reaches its cap within a few steps; whole-fixture batches.
    "multvae": {"hidden_size": 16, "latent_size": 8, "dropout": 0.0, "total_anneal_steps": 10,
                "epochs": 40, "batch_size": 64, "learning_rate": 0.01, "device": "cpu"},
    "recvae": {"hidden_size": 16, "latent_size": 8, "dropout": 0.0, "encoder_epochs": 2,
               "epochs": 20, "batch_size": 64, "learning_rate": 0.01, "device": "cpu"},
    # -- issue #21, graph models (ultragcn, xsimgcl) --
    # UltraGCN: few negatives and a larger init/step on the tiny fixtures; XSimGCL as lightgcn.
    "ultragcn": {"embedding_size": 8, "n_negatives": 4, "negative_weight": 4.0,
                 "n_neighbors": 3, "init_std": 0.1, "epochs": 40, "batch_size": 64,
                 "learning_rate": 0.02, "reg": 0.0, "device": "cpu"},
    "xsimgcl": {"embedding_size": 8, "n_layers": 2, "epochs": 40, "batch_size": 64,
                "learning_rate": 0.02, "reg": 0.0, "eps": 0.1, "device": "cpu"},
    # -- issue #21, re-ranker (rerank) --
    # rerank: small pools, a 40% carve-out and a few tiny trees (the fixtures are tiny).
    "rerank": {"generators": (("ease", {}), ("itemknn", {"n_neighbors": 3}), ("pop", {})),
               "n_candidates": 3, "holdout_size": 0.4, "n_estimators": 5,
               "min_child_samples": 1, "early_stopping_rounds": 0},
    # fusion: two cheap members and the contract's quick BPR mf; a 40% carve-out.
    "fusion": {"members": (("ease", {}), ("itemknn", {"n_neighbors": 3}),
                           ("mf", {"loss": "bpr", "embedding_size": 8, "epochs": 40,
                                   "batch_size": 32, "learning_rate": 0.02, "reg": 0.0,
                                   "weight_decay": 0.0, "device": "cpu"})),
               "holdout_size": 0.4},
}

# Models that cannot rank the checkerboard's withheld item first, and why.
CHECKERBOARD_EXCEPTIONS: dict[str, str] = {
    "mean": "not personalized: every item gets the global mean",
    "pop": "not personalized, and every checkerboard item has the same count",
    "bias": "all checkerboard ratings are 5, so every bias is 0 and all items tie",
    "svd": "SGD on ratings only (MSE): every checkerboard rating is 5, so the biases absorb them "
           "and the factors learn no order among unseen items",
    "autorec": "I-AutoRec fits ratings only (MSE, as in the paper): every checkerboard rating is "
               "5, so it reconstructs about 5 everywhere and unseen items tie up to noise",
    "glocalk": "GLocal-K fits ratings only (MSE, as in the paper): every checkerboard rating is "
               "5, so it reconstructs about 5 everywhere and unseen items tie up to noise",
    "blend-light": "its members (biases, kNNs on rating residuals) fit ratings only: every "
                   "checkerboard rating is 5, so biases and residuals are 0 and all items tie",
}

NAMES = available()


def make(name: str):
    """A fresh model with the contract's quick parameters."""
    return get(name, **FIT_PARAMS.get(name, {}))


def fitted(name: str, train: Dataset, seed: int = 0):
    return make(name).fit(train, rng=seed, progress=False)


@functools.cache
def read_u1(data_dir: Path) -> tuple[Dataset, pd.DataFrame]:
    """ML-100K u1.base as a Dataset and u1.test as a frame, read directly (cached per session)."""
    cols = ["user_id", "item_id", "rating", "timestamp"]
    base = pd.read_csv(data_dir / "ml-100k" / "u1.base", sep="\t", names=cols)
    test = pd.read_csv(data_dir / "ml-100k" / "u1.test", sep="\t", names=cols)
    return Dataset(base, name="ml-100k-u1", rating_scale=(1.0, 5.0)), test


def rmse_mae(model, test: pd.DataFrame) -> tuple[float, float]:
    pred = model.predict(test["user_id"].to_numpy(), test["item_id"].to_numpy())
    err = pred.astype(np.float64) - test["rating"].to_numpy(np.float64)
    return float(np.sqrt(np.mean(err**2))), float(np.mean(np.abs(err)))


def precision_at_10(model, test: pd.DataFrame) -> float:
    """Mean precision@10 over test users known in training (full ranking, relevance 0)."""
    test = test[test["user_id"].isin(model.user_vocab_.index)]
    users = np.unique(test["user_id"].to_numpy())
    rec = model.recommend(users, k=10)
    hits = rec.merge(test[["user_id", "item_id"]], on=["user_id", "item_id"]).shape[0]
    return hits / (10 * len(users))


def check_serves_known_and_new_users(model, train: Dataset, tmp_path: Path) -> None:
    """A fitted model, saved and served: a known user gets its own list, a new one a fold-in."""
    pytest.importorskip("fastapi", reason="the serve extra (fastapi) is not installed")
    import warnings

    with warnings.catch_warnings():
        # Starlette asks for httpx2 instead of httpx from 1.x on; either works.
        warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
        from fastapi.testclient import TestClient

    from movierec.artifact import load_catalog, load_model, read_meta
    from movierec.serve import create_app

    folder = model.save(tmp_path / "model")
    client = TestClient(create_app(load_model(folder), load_catalog(folder), read_meta(folder)))
    user = int(train.user_vocab.index[0])
    known = client.get(f"/users/{user}/recommendations", params={"k": 3})
    assert known.status_code == 200, known.text
    expected = model.recommend(user, k=3)["item_id"].tolist()
    assert [r["item_id"] for r in known.json()["recommendations"]] == expected
    new = client.post("/recommendations", json={"ratings": [{"item": 1, "rating": 5.0},
                                                            {"item": 3, "rating": 4.0}], "k": 3})
    assert new.status_code == 200, new.text
    assert new.json()["method"] == "model" and len(new.json()["recommendations"]) == 3


@pytest.mark.parametrize("name", NAMES)
def test_params_round_trip(name: str) -> None:
    model = make(name)
    assert get(name, **model.params()).params() == model.params()
    assert type(model).name == name


@pytest.mark.parametrize("name", NAMES)
def test_fit_returns_self(name: str, tiny: Dataset) -> None:
    model = make(name)
    assert model.fit(tiny, rng=0, progress=False) is model


@pytest.mark.parametrize("name", NAMES)
def test_use_before_fit_raises(name: str) -> None:
    model = make(name)
    with pytest.raises(NotFittedError):
        model.recommend([1])
    with pytest.raises(NotFittedError):
        model.score([1])
    if model.predicts_ratings:
        with pytest.raises(NotFittedError):
            model.predict(np.array([1]), np.array([10]))


@pytest.mark.parametrize("name", NAMES)
def test_score_shape_and_dtype(name: str, tiny: Dataset) -> None:
    model = fitted(name, tiny)
    users = tiny.user_vocab.index
    full = model.score(users)
    assert full.shape == (tiny.n_users, tiny.n_items)
    assert full.dtype == np.float32
    some = model.score(users[:2], np.array([50, 10]))
    assert some.shape == (2, 2)
    np.testing.assert_allclose(some, full[:2][:, [4, 0]], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_unknown_user_raises(name: str, tiny: Dataset) -> None:
    model = fitted(name, tiny)
    with pytest.raises(UnknownIdError, match="999"):
        model.recommend([1, 999])


@pytest.mark.parametrize("name", NAMES)
def test_predict_unknown_ids(name: str, tiny: Dataset) -> None:
    model = fitted(name, tiny)
    users, items = np.array([1, 999, 1, 999]), np.array([10, 10, 999, 999])
    if not model.predicts_ratings:
        with pytest.raises(MovieRecError):
            model.predict(users, items)
        return
    pred = model.predict(users, items)
    assert pred.shape == (4,) and pred.dtype == np.float32
    assert np.isfinite(pred).all()


@pytest.mark.parametrize("name", NAMES)
def test_exclude_seen(name: str, tiny: Dataset) -> None:
    model = fitted(name, tiny)
    rec = model.recommend(tiny.user_vocab.index, k=tiny.n_items)
    seen = tiny.ratings[["user_id", "item_id"]].merge(rec, on=["user_id", "item_id"])
    assert seen.empty
    # Every unseen item comes back once the list is long enough.
    assert len(rec) == tiny.n_users * tiny.n_items - tiny.n_ratings
    assert (rec.groupby("user_id")["score"].apply(lambda s: s.is_monotonic_decreasing)).all()


@pytest.mark.parametrize("name", NAMES)
def test_batch_equals_single(name: str, tiny: Dataset) -> None:
    model = fitted(name, tiny)
    users = tiny.user_vocab.index
    batch = model.recommend(users, k=3)
    single = pd.concat([model.recommend(int(u), k=3) for u in users], ignore_index=True)
    small_blocks = model.recommend(users, k=3, block_size=1)
    for other in (single, small_blocks):
        pd.testing.assert_frame_equal(
            batch[["user_id", "item_id", "rank"]], other[["user_id", "item_id", "rank"]]
        )
        np.testing.assert_allclose(batch["score"], other["score"], rtol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_scores(name: str, tiny: Dataset) -> None:
    a = fitted(name, tiny, seed=7).score(tiny.user_vocab.index)
    b = fitted(name, tiny, seed=7).score(tiny.user_vocab.index)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", [n for n in NAMES if get_class(n).deterministic])
def test_deterministic_models_ignore_the_seed(name: str, tiny: Dataset) -> None:
    # `deterministic` lets a benchmark fit such a model once for all seeds: it must be true.
    a = fitted(name, tiny, seed=1).score(tiny.user_vocab.index)
    b = fitted(name, tiny, seed=2).score(tiny.user_vocab.index)
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", NAMES)
def test_save_load_same_recommendations(name: str, tiny: Dataset, tmp_path: Path) -> None:
    model = fitted(name, tiny)
    model.save(tmp_path / "model")
    loaded = get_class(name).load(tmp_path / "model")
    assert type(loaded) is type(model) and loaded.params() == model.params()
    users = tiny.user_vocab.index
    pd.testing.assert_frame_equal(model.recommend(users, k=3), loaded.recommend(users, k=3))
    if model.predicts_ratings:
        u = tiny.ratings["user_id"].to_numpy()
        i = tiny.ratings["item_id"].to_numpy()[::-1].copy()
        np.testing.assert_array_equal(model.predict(u, i), loaded.predict(u, i))


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.xfail(reason=CHECKERBOARD_EXCEPTIONS[n], strict=True))
        if n in CHECKERBOARD_EXCEPTIONS
        else n
        for n in NAMES
    ],
)
def test_checkerboard_top1(name: str, checkerboard: tuple[Dataset, dict[int, int]]) -> None:
    train, withheld = checkerboard
    model = fitted(name, train)
    users = np.array(sorted(withheld))
    rec = model.recommend(users, k=1)
    assert dict(zip(rec["user_id"], rec["item_id"], strict=True)) == withheld


def _bad_value(default: object) -> object:
    """A value no sensible hyper-parameter with this default accepts."""
    if isinstance(default, bool):
        return "not-a-bool"
    if isinstance(default, int | float):
        return -1
    if isinstance(default, str):
        return "no-such-option"
    return object()


@pytest.mark.parametrize("name", [n for n in NAMES if get_class(n).param_names()])
def test_invalid_param_raises_naming_it(name: str) -> None:
    cls = get_class(name)
    defaults = {
        p.name: p.default
        for p in inspect.signature(cls.__init__).parameters.values()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }
    rejected = []
    for param, default in defaults.items():
        try:
            cls(**{param: _bad_value(default)})
        except ValueError as exc:
            assert param in str(exc), f"ValueError for {param} does not name it: {exc}"
            rejected.append(param)
    assert rejected, f"{name} accepted an invalid value for every one of {list(defaults)}"


@pytest.mark.parametrize("name", [n for n in NAMES if issubclass(get_class(n), TorchRecommender)])
def test_torch_training_loss_falls(name: str, checkerboard: tuple[Dataset, dict[int, int]]) -> None:
    train, _ = checkerboard
    model = fitted(name, train)
    losses = [h["train_loss"] for h in model.history_]
    assert len(losses) >= 2 and all(np.isfinite(losses))
    assert losses[-1] < losses[0]
