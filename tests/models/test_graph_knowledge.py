"""The user–movie–person graph of LightGCN, NGCF and AttnGraphRec (`knowledge=True`), and cold
start: a movie without any training rating scored from its people (`score_new_items`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")

from movierec.artifact import load_model  # noqa: E402
from movierec.cold_start import evaluate_cold, item_cold_split  # noqa: E402
from movierec.data.dataset import Dataset  # noqa: E402
from movierec.data.synthetic import make_people_dataset  # noqa: E402
from movierec.errors import MovieRecError  # noqa: E402
from movierec.models.graph import NGCF, AttnGraphRec, LightGCN, NeighborSampler  # noqa: E402
from movierec.models.graph._models import _GraphRecommender  # noqa: E402
from movierec.models.graph._modules import _GraphModule  # noqa: E402

QUICK: dict[str, Any] = {"embedding_size": 8, "n_layers": 2, "epochs": 3, "batch_size": 128,
         "learning_rate": 0.01, "device": "cpu"}
ATTN: dict[str, Any] = {"attention_size": 4, "hidden_size": 16}  # 8: a constant after 3 epochs

MODELS: dict[str, Callable[..., _GraphRecommender]] = {
    "lightgcn": lambda **kw: LightGCN(**{**QUICK, **kw}),
    "ngcf": lambda **kw: NGCF(**{**QUICK, **kw}),
    "ngcf-mse": lambda **kw: NGCF(**{**QUICK, "loss": "mse", **kw}),
    "attngraphrec": lambda **kw: AttnGraphRec(**{**QUICK, **ATTN, **kw}),
}
CLASSES = [LightGCN, NGCF, AttnGraphRec]


def table(ds: Dataset) -> pd.DataFrame:
    assert ds.items is not None
    return ds.items


def module_of(model: _GraphRecommender) -> Any:
    return model.module_


@pytest.fixture(scope="module")
def people() -> Dataset:
    return make_people_dataset(60, 80, n_directors=12, n_actors=30, ratings_per_user=12, rng=0)


@pytest.fixture(scope="module")
def fitted(people: Dataset) -> dict[str, _GraphRecommender]:
    return {name: make(knowledge=True).fit(people, rng=0, progress=False)
            for name, make in MODELS.items()}


def tiny_people() -> Dataset:
    """2 users, 3 movies; people d1 (directs 10, 11), a1 (acts in 10, 12), a2 (10, 11); d2 and a3
    are in one movie each and are left out (a person must link two movies)."""
    ratings = pd.DataFrame({"user_id": [1, 1, 2, 2], "item_id": [10, 11, 11, 12],
                            "rating": [4.0, 5.0, 3.0, 4.0], "timestamp": [1, 2, 3, 4]})
    items = pd.DataFrame({"item_id": [10, 11, 12], "title": ["A", "B", "C"]})
    items["director_ids"] = pd.Series([("d1",), ("d1",), ("d2",)], dtype=object)
    items["actor_ids"] = pd.Series([("a1", "a2"), ("a2", "a3"), ("a1",)], dtype=object)
    return Dataset(ratings, items=items, name="tiny-people", rating_scale=(1.0, 5.0))


# --- parameters and data -----------------------------------------------------------------------
@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize(("param", "value"), [("knowledge", "yes"), ("knowledge", 1),
                                              ("max_actors", -1), ("max_actors", 1.5),
                                              ("max_actors", True)])
def test_bad_parameters_name_themselves(cls: type, param: str, value: object) -> None:
    with pytest.raises(ValueError, match=param):
        cls(**{param: value})


def test_parameters_round_trip() -> None:
    model = LightGCN(knowledge=True, max_actors=5)
    assert model.params()["knowledge"] is True and model.params()["max_actors"] == 5
    assert LightGCN().params()["knowledge"] is False


@pytest.mark.parametrize("cls", CLASSES)
def test_knowledge_without_people_is_a_clear_error(cls: type, people: Dataset) -> None:
    no_people = replace(people, items=table(people)[["item_id", "title", "year", "genres"]])
    for ds in (no_people, replace(people, items=None)):
        with pytest.raises(MovieRecError, match="directors or actors"):
            cls(**QUICK, knowledge=True).fit(ds, rng=0, progress=False)


# --- the graph ---------------------------------------------------------------------------------
def test_adjacency_by_hand() -> None:
    """Nodes: users 0, 1 | movies 10, 11, 12 → 2, 3, 4 | persons a1, a2, d1 → 5, 6, 7.
    Degrees: users 2, 2; movies 1+3, 2+2, 1+1; persons 2, 2, 2; Â = D^-1/2 A D^-1/2."""
    model = LightGCN(**QUICK, knowledge=True).fit(tiny_people(), rng=0, progress=False)
    assert model.people_spec_["persons"] == ["a1", "a2", "d1"]
    edges = {(0, 2): 8, (0, 3): 8, (1, 3): 8, (1, 4): 4,   # value 1/√(d_a d_b)
             (2, 5): 8, (2, 6): 8, (2, 7): 8, (3, 6): 8, (3, 7): 8, (4, 5): 4}
    want = np.zeros((8, 8))
    for (a, b), dd in edges.items():
        want[a, b] = want[b, a] = 1 / np.sqrt(dd)
    np.testing.assert_allclose(module_of(model).adj.to_dense().numpy(), want, rtol=1e-6)
    assert module_of(model).person_emb.weight.shape == (3, QUICK["embedding_size"])
    assert model.item_people_.toarray().tolist() == [[1, 1, 1], [0, 1, 1], [1, 0, 0]]
    # max_actors=1 keeps the first-billed actor: a2 then links one movie only and is left out.
    one = LightGCN(**QUICK, knowledge=True, max_actors=1).fit(tiny_people(), rng=0,
                                                                progress=False)
    assert one.people_spec_["persons"] == ["a1", "d1"]
    assert module_of(one).adj.shape == (7, 7)


def test_scores_and_vectors_cover_the_movies_only(people: Dataset,
                                                  fitted: dict[str, _GraphRecommender]) -> None:
    n_persons = len(fitted["lightgcn"].people_spec_["persons"])
    assert n_persons > 0
    for name, model in fitted.items():
        assert module_of(model).adj.shape[0] == people.n_users + people.n_items + n_persons
        scores = model.score(people.user_vocab.index[:5])
        assert scores.shape == (5, people.n_items) and np.isfinite(scores).all()
        top = model.recommend(people.user_vocab.index[:3], k=4)
        assert len(top) == 12
        assert model.item_vectors().shape[0] == people.n_items, name
    for name in ("lightgcn", "ngcf", "ngcf-mse"):
        vec = fitted[name].dot_vectors()
        assert vec is not None and vec.items.shape[0] == people.n_items


def test_knowledge_false_ignores_people(people: Dataset) -> None:
    """Without knowledge the graph, weights and scores are those of a table without people."""
    bare = replace(people, items=table(people)[["item_id", "title", "year", "genres"]])
    plain = LightGCN(**QUICK).fit(people, rng=0, progress=False)
    same = LightGCN(**QUICK).fit(bare, rng=0, progress=False)
    np.testing.assert_array_equal(plain.score(people.user_vocab.index),
                                  same.score(people.user_vocab.index))
    assert not hasattr(module_of(plain), "person_emb") and not hasattr(plain, "people_spec_")
    assert module_of(plain).adj.shape[0] == people.n_users + people.n_items
    assert not plain.can_score_new_items()
    with pytest.raises(MovieRecError, match="knowledge=True"):
        plain.score_new_items(people.user_vocab.index[:2], table(people).iloc[:3])


def test_person_penalty_counts_the_items_people(fitted: dict[str, _GraphRecommender]) -> None:
    model = fitted["lightgcn"]
    module = module_of(model)
    items = torch.tensor([0, 3, 0])
    want = sum(module.person_emb.weight[model.item_people_[i].indices].pow(2).sum()
               for i in (0, 3, 0))
    torch.testing.assert_close(module.person_penalty(items), want)


def test_full_fanout_sampling_equals_full_propagation(people: Dataset) -> None:
    model = LightGCN(**QUICK, knowledge=True, sampling="neighbor", num_neighbors=3).fit(
        people, rng=0, progress=False)
    module = module_of(model).eval()
    degree = np.diff(module.adj.to_sparse_csr().crow_indices().numpy()).max()
    sampler = NeighborSampler(model.seen_, int(degree), model.n_layers, model.item_people_)
    users, items = torch.tensor([0, 7, 30]), torch.tensor([[1, 5], [40, 2], [9, 9]])
    with torch.no_grad():
        full_users, full_items = module.final()
        sub = sampler(users, items, torch.Generator().manual_seed(0))
        rep = module.sampled(sub["sub_nodes"], sub["sub_dst"], sub["sub_src"], sub["sub_weight"])
    assert int(sub["sub_nodes"].max()) >= people.n_users + people.n_items  # persons reached
    torch.testing.assert_close(rep[sub["sub_user"]], full_users[users], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(rep[sub["sub_item"]], full_items[items], rtol=1e-5, atol=1e-6)


# --- fold-in of a new user and cold start of a new movie ---------------------------------------
def test_fold_in_messages_are_the_fitted_users_layers(people: Dataset) -> None:
    """Item degrees count the people: a training user's folded-in layers 1..K are its own."""
    model = LightGCN(**QUICK, knowledge=True).fit(people, rng=2, progress=False)
    model.fold_in_init, model.fold_in_steps = "zero", 0  # type: ignore[misc]
    module = module_of(model).eval()
    with torch.no_grad():
        items = module.final()[1].numpy().astype(np.float64)
        ego = module.user_emb.weight.numpy().astype(np.float64)
    rated = people.matrix("rating")
    for code in (0, 17, 42):
        row = rated[code]
        expected = model._score(np.array([code]))[0] - items @ ego[code] / (QUICK["n_layers"] + 1)
        np.testing.assert_allclose(model._score_history(row.indices, row.data), expected,
                                   rtol=1e-4, atol=1e-5)


def test_new_movie_messages_by_hand(people: Dataset, fitted: dict[str, _GraphRecommender]
                                    ) -> None:
    """LightGCN: a new movie m is mean(0, s_0, …, s_{K−1}) with s_k = Σ_p e_p^(k) / √(|P_m| d_p),
    scored by dot products with the users' final rows; people unknown to the model are ignored."""
    model = fitted["lightgcn"]
    spec = model.people_spec_
    p1, p2 = spec["persons"][0], spec["persons"][5]
    new = pd.DataFrame({"item_id": [9001, 9002]})
    new["director_ids"] = pd.Series([(p1,), ("nobody",)], dtype=object)
    new["actor_ids"] = pd.Series([("stranger", p2), ()], dtype=object)
    got = model.score_new_items(people.user_vocab.index, new)
    module = module_of(model).eval()
    degree = np.asarray(model.item_people_.sum(axis=0)).ravel()
    with torch.no_grad():
        layers = module.person_layers().numpy().astype(np.float64)  # [P, K+1, d]
        users = module.final()[0].numpy().astype(np.float64)
    sides = sum(layers[c] / np.sqrt(2 * degree[c]) for c in (0, 5))  # [K+1, d]
    rep = np.vstack([np.zeros(QUICK["embedding_size"]), sides[:-1]]).mean(0)
    np.testing.assert_allclose(got[:, 0], users @ rep, rtol=1e-4, atol=1e-6)
    np.testing.assert_array_equal(got[:, 1], 0.0)  # no known person: a constant score


@pytest.mark.parametrize("name", list(MODELS))
def test_new_movies_without_people_share_one_score(name: str, people: Dataset,
                                                   fitted: dict[str, _GraphRecommender]) -> None:
    model = fitted[name]
    assert model.can_score_new_items()
    new = table(people).iloc[:4].reset_index(drop=True)
    new.loc[[1, 3], ["director_ids", "actor_ids", "directors", "actors"]] = None
    scores = model.score_new_items(people.user_vocab.index[:6], new)
    assert scores.shape == (6, 4) and scores.dtype == np.float32 and np.isfinite(scores).all()
    np.testing.assert_array_equal(scores[:, 1], scores[:, 3])
    assert (scores[:, 0] != scores[:, 1]).any()


@pytest.mark.parametrize("name", list(MODELS))
def test_save_load_round_trip(name: str, people: Dataset, fitted: dict[str, _GraphRecommender],
                              tmp_path: Path) -> None:
    model = fitted[name]
    loaded = load_model(model.save(tmp_path / name, catalog=False))
    assert isinstance(loaded, _GraphRecommender) and loaded.knowledge
    assert loaded.people_spec_ == model.people_spec_
    users = people.user_vocab.index
    np.testing.assert_array_equal(loaded.score(users), model.score(users))
    np.testing.assert_array_equal(loaded.score_new_items(users, table(people).iloc[:9]),
                                  model.score_new_items(users, table(people).iloc[:9]))
    row = people.matrix("rating")[4]
    np.testing.assert_array_equal(loaded._score_history(row.indices, row.data),
                                  model._score_history(row.indices, row.data))


# Cold start on make_people_dataset(150 users, 200 movies), 15% of the movies held out
# (item_cold_split seed 0, 26 movies), LightGCN d=16, K=2, 8 epochs (fit 0.3 s on one core):
# mean AUC 0.717 (data seeds 1-3: 0.696, 0.739, 0.745), NDCG@10 0.42; with the person messages
# zeroed every cold movie gets one score, AUC 0.500; with the people of other movies (shuffled
# item table) 0.563 (seeds 1-3: 0.495, 0.568, 0.471).
def test_cold_movies_are_ranked_by_their_people(monkeypatch: pytest.MonkeyPatch) -> None:
    ds = make_people_dataset(150, 200, n_directors=20, n_actors=60, ratings_per_user=20, rng=0)
    split = item_cold_split(ds, test_size=0.15, rng=0)
    model = LightGCN(embedding_size=16, n_layers=2, epochs=8, batch_size=256,
                     learning_rate=0.01, knowledge=True, device="cpu").fit(
        split.train, rng=0, progress=False)
    auc = evaluate_cold(model, split)[0]["auc"]
    assert auc > 0.62
    # Someone else's people: the ranking falls towards chance.
    items = table(split.train).copy()
    perm = np.random.default_rng(0).permutation(len(items))
    for col in ("director_ids", "actor_ids", "directors", "actors"):
        items[col] = items[col].to_numpy()[perm]
    shuffled = replace(split, train=replace(split.train, items=items))
    assert evaluate_cold(model, shuffled)[0]["auc"] < auc - 0.08
    # No message from the people: one score for every cold movie, a chance ranking.
    real = _GraphModule.person_layers
    monkeypatch.setattr(_GraphModule, "person_layers",
                        lambda self: torch.zeros_like(real(self)))
    assert evaluate_cold(model, split)[0]["auc"] == pytest.approx(0.5)
