"""The shared training loop: determinism, exact resume, early stopping, negatives, losses."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

torch = pytest.importorskip("torch")

from movierec.data.dataset import Dataset  # noqa: E402
from movierec.errors import MovieRecError  # noqa: E402
from movierec.models.mf import MF  # noqa: E402
from movierec.train import (  # noqa: E402
    NegativeSampler,
    bce_loss,
    bpr_loss,
    mse_loss,
    resolve_device,
    sample_negatives,
)


def low_rank(n_users: int = 60, n_items: int = 40, density: float = 0.3, seed: int = 0
             ) -> Dataset:
    """Ratings 1-5 from a rank-2 model plus noise, about `density` of the cells observed."""
    gen = np.random.default_rng(seed)
    p, q = gen.normal(size=(n_users, 2)), gen.normal(size=(n_items, 2))
    u, i = np.nonzero(gen.random((n_users, n_items)) < density)
    r = np.clip(np.round(3 + (p[u] * q[i]).sum(1)
                         + gen.normal(0, 0.3, len(u))), 1, 5)
    frame = pd.DataFrame({"user_id": u + 1, "item_id": i + 1, "rating": r,
                          "timestamp": np.arange(len(u))})
    return Dataset(frame, name="low-rank", rating_scale=(1.0, 5.0))


def weights(model: MF) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().numpy().copy() for k, v in model.module_.state_dict().items()}


def assert_same_weights(a: MF, b: MF) -> None:
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        np.testing.assert_array_equal(wa[k], wb[k], err_msg=k)


QUICK = {"embedding_size": 8, "epochs": 4, "batch_size": 64, "learning_rate": 0.01,
         "device": "cpu"}


# --- determinism and resume --------------------------------------------------------------------
@pytest.mark.parametrize("extra", [{"dropout": 0.3}, {"loss": "bpr", "n_negatives": 2}])
def test_same_seed_same_weights(extra: dict) -> None:
    data = low_rank()
    a = MF(**QUICK, **extra).fit(data, rng=3, progress=False)
    b = MF(**QUICK, **extra).fit(data, rng=3, progress=False)
    assert_same_weights(a, b)
    c = MF(**QUICK, **extra).fit(data, rng=4, progress=False)
    assert not np.array_equal(weights(a)["user_factors.weight"],
                              weights(c)["user_factors.weight"])


def test_training_does_not_touch_global_torch_rng() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    MF(**QUICK, dropout=0.2).fit(low_rank(), rng=0, progress=False)
    torch.testing.assert_close(torch.rand(3), expected)


@pytest.mark.parametrize("extra", [{"dropout": 0.3}, {"loss": "bpr", "n_negatives": 2},
                                   {"sparse_updates": True}])
def test_resume_equals_uninterrupted_run(extra: dict, tmp_path: Path) -> None:
    data = low_rank()
    valid = low_rank(seed=1)
    params = {**QUICK, **extra, "patience": None}
    straight = MF(**params).fit(data, valid, rng=5, progress=False)
    first = MF(**{**params, "epochs": 2}).fit(data, valid, rng=5, progress=False,
                                              checkpoint_dir=tmp_path)
    assert json.loads((tmp_path / "last.json").read_text())["epoch"] == 2
    resumed = MF(**params).fit(data, valid, rng=5, progress=False, checkpoint_dir=tmp_path,
                               resume=True)
    assert_same_weights(straight, resumed)
    assert [h["epoch"] for h in resumed.history_] == [1, 2, 3, 4]
    assert [h["train_loss"] for h in resumed.history_] == [h["train_loss"]
                                                          for h in straight.history_]
    assert len(first.history_) == 2


def test_mf_with_sparse_updates_learns_and_leaves_dense_embeddings() -> None:
    data = low_rank()
    params = {**QUICK, "epochs": 8}
    lazy = MF(**params, sparse_updates=True).fit(data, rng=3, progress=False)
    again = MF(**params, sparse_updates=True).fit(data, rng=3, progress=False)
    dense = MF(**params).fit(data, rng=3, progress=False)
    losses = [h["train_loss"] for h in lazy.history_]
    assert losses[-1] < 0.6 * losses[0]
    # Same seed, same weights; a different optimizer from dense Adam, of similar quality.
    np.testing.assert_array_equal(lazy.module_.user_factors.weight.detach().numpy(),
                                  again.module_.user_factors.weight.detach().numpy())
    assert losses[-1] == pytest.approx(dense.history_[-1]["train_loss"], rel=0.3)
    assert not np.array_equal(lazy.module_.user_factors.weight.detach().numpy(),
                              dense.module_.user_factors.weight.detach().numpy())
    assert not lazy.module_.user_factors.sparse
    assert lazy.params()["sparse_updates"] is True


@pytest.mark.parametrize("name", ["gmf", "mlp", "neumf"])
def test_ncf_models_train_with_sparse_updates(name: str) -> None:
    from movierec.models import get

    params = {"embedding_size": 8, "epochs": 6, "batch_size": 64, "learning_rate": 0.01,
              "device": "cpu", "patience": None}
    lazy = get(name, **params, sparse_updates=True).fit(low_rank(), rng=1, progress=False)
    dense = get(name, **params).fit(low_rank(), rng=1, progress=False)
    losses = [h["train_loss"] for h in lazy.history_]
    assert losses[-1] < 0.8 * losses[0]
    # Lazy Adam gives untouched rows no momentum step, so on tiny data it converges a little
    # slower (GMF: 0.55 vs 0.42 after 6 epochs); it must still be the same order of fit.
    assert losses[-1] < 1.5 * dense.history_[-1]["train_loss"]
    a, b = lazy.module_.state_dict(), dense.module_.state_dict()
    assert any(not torch.equal(a[k], b[k]) for k in a)
    assert not any(getattr(m, "sparse", False) for m in lazy.module_.modules())
    with pytest.raises(ValueError, match="sparse_updates"):
        get(name, sparse_updates=True, grad_clip=1.0)


def test_sparse_updates_refuse_grad_clip() -> None:
    with pytest.raises(ValueError, match="sparse_updates"):
        MF(sparse_updates=True, grad_clip=1.0)


def test_resume_without_checkpoint_is_an_error_unless_auto(tmp_path: Path) -> None:
    data = low_rank()
    with pytest.raises(MovieRecError, match=r"--resume: no checkpoint in .*new"):
        MF(**QUICK).fit(data, rng=1, progress=False, checkpoint_dir=tmp_path / "new",
                        resume=True)
    # "auto" (what automated runners use) starts over when there is nothing to resume.
    a = MF(**QUICK).fit(data, rng=1, progress=False)
    b = MF(**QUICK).fit(data, rng=1, progress=False, checkpoint_dir=tmp_path / "new",
                        resume="auto")
    assert_same_weights(a, b)
    assert b.resumed_from_epoch_ is None and a.resumed_from_epoch_ is None
    with pytest.raises(ValueError, match="resume"):
        MF(**QUICK).fit(data, rng=1, progress=False, checkpoint_dir=tmp_path, resume="yes")


def test_resume_says_which_epoch_it_continues_from(tmp_path: Path,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    data = low_rank()
    MF(**{**QUICK, "epochs": 3}).fit(data, rng=1, progress=False, checkpoint_dir=tmp_path)
    with caplog.at_level("INFO", logger="movierec.training"):
        model = MF(**QUICK).fit(data, rng=1, progress=False, checkpoint_dir=tmp_path,
                                resume=True)
    assert model.resumed_from_epoch_ == 3
    assert [h["epoch"] for h in model.history_] == [1, 2, 3, 4]
    assert any("after epoch 3 of 4" in r.getMessage() and r.levelname == "INFO"
               for r in caplog.records)


def test_resume_with_other_parameters_is_one_line(tmp_path: Path) -> None:
    from movierec.errors import ArtifactError

    MF(**{**QUICK, "epochs": 1}).fit(low_rank(), rng=1, progress=False, checkpoint_dir=tmp_path)
    with pytest.raises(ArtifactError) as info:
        MF(**{**QUICK, "embedding_size": 16}).fit(low_rank(), rng=1, progress=False,
                                                  checkpoint_dir=tmp_path, resume=True)
    message = str(info.value)
    assert "\n" not in message
    assert "'user_factors.weight' has shape [60, 8], the model's [60, 16]" in message
    assert "embedding_size=8 (now 16)" in message and "last.safetensors" in message


def test_no_validation_data_warns_when_early_stopping_is_asked(
        caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING", logger="movierec.training"):
        MF(**QUICK).fit(low_rank(), rng=0, progress=False)
    assert any("no validation data" in r.getMessage() and r.levelname == "WARNING"
               for r in caplog.records)
    caplog.clear()
    with caplog.at_level("WARNING", logger="movierec.training"):
        MF(**QUICK).fit(low_rank(), low_rank(seed=1), rng=0, progress=False)
        MF(**{**QUICK, "patience": None}).fit(low_rank(), rng=0, progress=False)
    assert not [r for r in caplog.records if r.levelname == "WARNING"]


def test_resume_checks_the_data(tmp_path: Path) -> None:
    MF(**{**QUICK, "epochs": 1}).fit(low_rank(), rng=1, progress=False, checkpoint_dir=tmp_path)
    with pytest.raises(MovieRecError, match="fingerprint"):
        MF(**QUICK).fit(low_rank(seed=9), rng=1, progress=False, checkpoint_dir=tmp_path,
                        resume=True)
    with pytest.raises(ValueError, match="checkpoint_dir"):
        MF(**QUICK).fit(low_rank(), rng=1, progress=False, resume=True)


def test_checkpoint_files_are_safetensors_and_json(tmp_path: Path) -> None:
    from safetensors import safe_open

    MF(**{**QUICK, "epochs": 2}).fit(low_rank(), low_rank(seed=1), rng=0, progress=False,
                                     checkpoint_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.json", "last.safetensors"]
    meta = json.loads((tmp_path / "last.json").read_text())
    assert meta["epoch"] == 2 and len(meta["history"]) == 2 and meta["model"] == "mf"
    with safe_open(str(tmp_path / "last.safetensors"), framework="pt") as fh:
        keys = set(fh.keys())
        assert json.loads(fh.metadata()["checkpoint"]) == meta
    assert "module.user_factors.weight" in keys and "generator" in keys
    # The first release's format: old checkpoints resume, new single-stage ones read as before.
    assert set(meta) == {"format", "model", "params", "train_fingerprint", "epoch", "history",
                         "best_metric", "best_epoch", "bad_epochs", "stopped", "has_best",
                         "optimizer"} and meta["format"] == 1
    assert any(k.startswith("optim.") for k in keys) and any(k.startswith("best.") for k in keys)


# --- early stopping ----------------------------------------------------------------------------
def test_early_stopping_restores_best_weights() -> None:
    train = low_rank()
    # Validation asks for the mirror image of the training ratings: fitting train hurts it.
    flipped = train.ratings.assign(rating=6.0 - train.ratings["rating"])
    valid = train.with_ratings(flipped)
    params = {**QUICK, "epochs": 20, "patience": 2, "learning_rate": 0.05}
    model = MF(**params).fit(train, valid, rng=2, progress=False)
    metrics = [h["valid_metric"] for h in model.history_]
    assert model.best_epoch_ == 1 and metrics[1] > metrics[0]
    assert len(model.history_) == 3  # epoch 1 plus `patience` worse epochs
    one_epoch = MF(**{**params, "epochs": 1}).fit(train, rng=2, progress=False)
    assert_same_weights(model, one_epoch)


def test_ranking_objective_validates_on_ndcg() -> None:
    data = low_rank()
    model = MF(**QUICK, loss="bpr").fit(data, low_rank(seed=1), rng=0, progress=False)
    assert {h["metric"] for h in model.history_} == {"ndcg@10"}
    assert all(0.0 <= h["valid_metric"] <= 1.0 for h in model.history_)


def test_progress_false_prints_nothing(capfd: pytest.CaptureFixture[str]) -> None:
    MF(**QUICK).fit(low_rank(), low_rank(seed=1), rng=0, progress=False)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_history_is_saved_in_the_artifact(tmp_path: Path) -> None:
    model = MF(**QUICK).fit(low_rank(), rng=0, progress=False)
    model.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert len(meta["state"]["history_"]["value"]) == 4
    loaded = MF.load(tmp_path / "m")
    assert loaded.history_ == model.history_
    assert_same_weights(model, loaded)  # type: ignore[arg-type]
    assert not list((tmp_path / "m").glob("*.pt"))


def test_device_resolution() -> None:
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


# --- negative sampling -------------------------------------------------------------------------
def test_negatives_are_unseen_with_the_right_shape() -> None:
    gen = np.random.default_rng(0)
    seen = sp.random(50, 30, density=0.6, format="csr", random_state=gen)
    seen.data[:] = 1.0
    users = gen.integers(0, 50, size=400)
    neg = sample_negatives(seen, users, 7, torch.Generator().manual_seed(0))
    assert neg.shape == (400, 7) and neg.dtype == torch.int64
    n = neg.numpy()
    assert ((n >= 0) & (n < 30)).all()
    dense = seen.toarray() > 0
    assert not dense[users[:, None], n].any()


def test_negatives_are_uniform_over_unseen_items() -> None:
    seen = sp.csr_matrix(np.array([[0, 1, 0, 1, 0, 1], [1, 1, 1, 1, 1, 0]], dtype=np.float32))
    sampler = NegativeSampler(seen)
    draws = sampler(np.zeros(30000, dtype=np.int64), 1, torch.Generator().manual_seed(1))
    counts = np.bincount(draws.numpy().ravel(), minlength=6)
    assert counts[[1, 3, 5]].sum() == 0
    np.testing.assert_allclose(counts[[0, 2, 4]] / 30000, 1 / 3, atol=0.015)
    only = sampler(np.ones(100, dtype=np.int64), 3, torch.Generator().manual_seed(1))
    assert (only == 5).all()


def test_user_who_saw_everything_gets_some_item() -> None:
    seen = sp.csr_matrix(np.ones((1, 4), dtype=np.float32))
    neg = sample_negatives(seen, np.array([0, 0]), 5, torch.Generator().manual_seed(0))
    assert neg.shape == (2, 5) and ((neg >= 0) & (neg < 4)).all()


# --- losses ------------------------------------------------------------------------------------
def test_losses_on_hand_values() -> None:
    t = torch.tensor
    assert float(mse_loss(t([1.0, 2.0]), t([0.0, 0.0]))) == pytest.approx(2.5)
    assert float(bpr_loss(t([0.0]), t([0.0]))) == pytest.approx(math.log(2))
    expected = (math.log1p(math.exp(-1.0)) + math.log1p(math.exp(1.0))) / 2
    assert float(bpr_loss(t([1.0]), t([[0.0, 2.0]]))) == pytest.approx(expected)
    # positives labelled 1, negatives 0, averaged over all three terms
    value = float(bce_loss(t([2.0]), t([[0.0, -1.0]])))
    by_hand = (math.log1p(math.exp(-2.0)) + math.log(2) + math.log1p(math.exp(-1.0))) / 3
    assert value == pytest.approx(by_hand)


# --- stages, validation through evaluate, capabilities -----------------------------------------
class TwoStageMF(MF):
    """MF trained in two stages: item side only (lr 0.05), then everything (the model's lr)."""

    def training_stages(self):
        from movierec.training import Stage

        def items(module):
            return [module.item_factors.weight, module.item_bias.weight]

        return [Stage(epochs=2, name="items", parameters=items, learning_rate=0.05),
                Stage(epochs=self.epochs, name="all")]


def test_stages_run_in_order_with_their_own_parameters() -> None:
    data = low_rank()
    model = TwoStageMF(**{**QUICK, "epochs": 2, "patience": None}).fit(data, rng=0,
                                                                      progress=False)
    assert [(h["epoch"], h["stage"]) for h in model.history_] == [
        (1, "items"), (2, "items"), (3, "all"), (4, "all")]
    # The first stage steps only the item side: the user factors stay where they started.
    model = TwoStageMF(**{**QUICK, "epochs": 2, "patience": None})
    users, items = [], []

    def snapshot(record: dict) -> None:
        users.append(model.module_.user_factors.weight.detach().clone())
        items.append(model.module_.item_factors.weight.detach().clone())

    model.fit(data, rng=0, progress=False, on_epoch=snapshot)
    assert torch.equal(users[0], users[1]) and not torch.equal(users[1], users[2])
    assert not torch.equal(items[0], items[1])


def test_resume_across_a_stage_boundary_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    data, valid = low_rank(), low_rank(seed=1)
    params = {**QUICK, "epochs": 2, "patience": None}
    straight = TwoStageMF(**params).fit(data, valid, rng=4, progress=False)

    def interrupt(record: dict) -> None:
        if record["epoch"] == 3:  # the first epoch of the second stage
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        TwoStageMF(**params).fit(data, valid, rng=4, progress=False, checkpoint_dir=tmp_path,
                                 on_epoch=interrupt)
    meta = json.loads((tmp_path / "last.json").read_text())
    assert meta["epoch"] == 3 and meta["stage"] == 1
    resumed = TwoStageMF(**params).fit(data, valid, rng=4, progress=False,
                                       checkpoint_dir=tmp_path, resume=True)
    assert resumed.resumed_from_epoch_ == 3
    assert_same_weights(straight, resumed)
    assert resumed.history_ == [{**h, "seconds": r["seconds"]} for h, r in
                                zip(straight.history_, resumed.history_, strict=True)]


def test_validation_goes_through_evaluate() -> None:
    from movierec.evaluate import evaluate
    from movierec.split import Split

    train, valid = low_rank(), low_rank(seed=1)
    model = MF(**{**QUICK, "epochs": 1}, loss="bpr").fit(train, valid, rng=0, progress=False)
    summary = evaluate(model, Split(train=train, test=valid), ks=(10,), relevance=0).summary
    assert model.history_[0]["metric"] == "ndcg@10"
    assert model.history_[0]["valid_metric"] == summary["ndcg@10"]
    rating = MF(**{**QUICK, "epochs": 1}).fit(train, valid, rng=0, progress=False)
    pred = rating.predict(valid.ratings["user_id"].to_numpy(), valid.ratings["item_id"].to_numpy())
    by_hand = float(np.sqrt(np.mean((pred - valid.ratings["rating"].to_numpy()) ** 2)))
    assert rating.history_[0]["valid_metric"] == pytest.approx(by_hand, rel=1e-6)


def test_models_trained_by_the_trainer_declare_it() -> None:
    from movierec.models import available, get_class
    from movierec.models.base import Recommender
    from movierec.training import TorchRecommender

    assert Recommender.trains_by_epochs is False
    for name in available():
        cls = get_class(name)
        assert cls.trains_by_epochs == issubclass(cls, TorchRecommender), name


def test_shared_trainer_parameters_are_checked_and_documented_once() -> None:
    from movierec.models.glocalk import GLocalK
    from movierec.models.ncf import NeuMF

    for bad in ({"epochs": 0}, {"batch_size": 0}, {"learning_rate": 0.0},
                {"weight_decay": -1.0}, {"patience": 0}, {"grad_clip": -1.0},
                {"device": "tpu"}):
        (name,) = bad
        with pytest.raises(ValueError, match=name):
            NeuMF(**bad)
        with pytest.raises(ValueError, match=name):
            MF(**bad)
    # Each model's help names its own defaults of the shared parameters, read from its signature.
    assert "epochs=25, batch_size=1024, learning_rate=0.002" in (MF.__doc__ or "")
    assert "epochs=20" in (NeuMF.__doc__ or "") and "patience=None" in (GLocalK.__doc__ or "")
    assert MF().params()["epochs"] == 25 and NeuMF().params()["learning_rate"] == 1e-3


def test_train_module_re_exports_the_training_package() -> None:
    from movierec import train, training

    for name in training.__all__:
        assert getattr(train, name) is getattr(training, name), name
