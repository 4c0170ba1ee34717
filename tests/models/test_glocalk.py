"""GLocal-K's own maths: the local kernel, the masked loss, the global convolution, L-BFGS
training, fallbacks, validation, seeds and save/load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402

from movierec.data.dataset import Dataset  # noqa: E402
from movierec.models.glocalk import (  # noqa: E402
    GLocalK,
    GLocalKModule,
    LocalKernelLayer,
    global_conv,
    lbfgs,
    local_kernel,
    masked_sse,
)

QUICK = {"hidden_size": 16, "kernel_dim": 3, "reg": 1.0, "pretrain_epochs": 6, "epochs": 6,
         "device": "cpu"}


pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def low_rank(low_rank_factory) -> Dataset:
    """120 users x 50 items of rank-2 ratings."""
    return low_rank_factory(120, 50)


@pytest.fixture(scope="module")
def fitted(low_rank: Dataset) -> GLocalK:
    return GLocalK(**QUICK).fit(low_rank, rng=0, progress=False)


def rmse(model: GLocalK, data: Dataset) -> float:
    r = data.ratings
    pred = model.predict(r["user_id"].to_numpy(), r["item_id"].to_numpy())
    return float(np.sqrt(np.mean((pred - r["rating"].to_numpy()) ** 2)))


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1 + np.tanh(x / 2))  # 1 / (1 + e^−x), without overflow


# --- the local kernel ----------------------------------------------------------------------------
def test_local_kernel_matches_a_hand_computation() -> None:
    u = torch.tensor([[0.0, 0.0], [0.5, 0.0]])
    v = torch.tensor([[0.0, 0.0], [0.3, 0.4], [1.0, 0.0], [0.0, 2.0]])
    # ‖u_i − v_j‖²: row 0: 0, 0.25, 1, 4; row 1: 0.25, 0.2, 0.25, 4.25.
    expected = [[1.0, 0.75, 0.0, 0.0], [0.75, 0.8, 0.75, 0.0]]
    np.testing.assert_allclose(local_kernel(u, v).numpy(), expected, atol=1e-6)


def test_local_kernel_is_zero_from_unit_distance_on() -> None:
    gen = torch.Generator().manual_seed(0)
    u, v = torch.rand(40, 3, generator=gen), torch.rand(30, 3, generator=gen)
    k = local_kernel(u, v).numpy()
    dist = np.linalg.norm(u.numpy()[:, None].astype(np.float64) - v.numpy()[None], axis=2)
    assert (dist >= 1).sum() > 50 and (dist < 1).sum() > 50  # both cases occur
    assert np.all(k[dist >= 1 + 1e-6] == 0.0)
    np.testing.assert_allclose(k[dist < 1], 1 - dist[dist < 1] ** 2, atol=1e-5)
    assert np.all(k <= 1.0 + 1e-6)
    # Beyond the support nothing flows back: a u far from every v gets no gradient.
    u_far = torch.cat([u, torch.full((1, 3), 5.0)]).requires_grad_()
    local_kernel(u_far, v).sum().backward()
    assert u_far.grad is not None
    assert torch.all(u_far.grad[-1] == 0) and u_far.grad[:-1].abs().sum() > 0


def test_layer_gates_its_weights_with_the_kernel() -> None:
    torch.manual_seed(0)
    layer = LocalKernelLayer(4, 3, kernel_dim=2, activation=False)
    with torch.no_grad():
        layer.u.copy_(torch.tensor([[0.0, 0.0], [0.0, 0.0], [3.0, 0.0], [0.0, 0.0]]))
        layer.v.zero_()
    x = torch.ones(1, 4)
    w = layer.weight.detach().numpy()
    # Input 2 is 3 away from every v: its weights are switched off.
    expected = w[[0, 1, 3]].sum(0) + layer.bias.detach().numpy()
    np.testing.assert_allclose(layer(x).detach().numpy()[0], expected, rtol=1e-6)


# --- the loss ------------------------------------------------------------------------------------
def test_masked_sse_ignores_unobserved_entries() -> None:
    pred = torch.tensor([[1.0, 2.0, 9.0], [4.0, -7.0, 3.0]])
    target = torch.tensor([[2.0, 0.0, 5.0], [4.0, 0.0, 1.0]])
    mask = torch.tensor([[True, False, True], [True, False, True]])
    # ½ (1 + 16 + 0 + 4): the reference's tf.nn.l2_loss of the masked errors.
    assert float(masked_sse(pred, target, mask)) == pytest.approx(10.5)
    other = pred.clone()
    other[:, 1] = 100.0
    assert float(masked_sse(other, target, mask)) == pytest.approx(10.5)
    assert float(masked_sse(pred, target, torch.zeros_like(mask))) == 0.0


def numpy_forward(module: GLocalKModule, r: np.ndarray, finetuned: bool) -> np.ndarray:
    """The model's equations, written again in numpy (float64)."""
    layers = [{k: p.detach().numpy().astype(np.float64) for k, p in layer.named_parameters()}
              for layer in module.layers]

    def ae(x: np.ndarray) -> np.ndarray:
        for n, p in enumerate(layers):
            d2 = ((p["u"][:, None, :] - p["v"][None, :, :]) ** 2).sum(-1)
            x = x @ (p["weight"] * np.maximum(0, 1 - d2)) + p["bias"]
            x = x if n == len(layers) - 1 else sigmoid(x)
        return x

    if not finetuned:
        return ae(r)
    c = module.conv_kernel.detach().numpy().astype(np.float64)
    g = (ae(r).mean(axis=1) @ c * module.dot_scale).reshape(3, 3)
    padded = np.pad(r, 1)
    conv = sum(g[a, b] * padded[a:a + r.shape[0], b:b + r.shape[1]]
               for a in range(3) for b in range(3))
    return ae(np.maximum(conv, 0))


def test_training_loss_is_the_references_objective(fitted: GLocalK) -> None:
    module = fitted.module_
    ratings, mask = fitted.dense_ratings(torch.device("cpu"))
    r, m = ratings.numpy().astype(np.float64), mask.numpy()
    penalty = 0.0
    for layer in module.layers:
        w = layer.weight.detach().numpy().astype(np.float64)
        k = local_kernel(layer.u, layer.v).detach().numpy().astype(np.float64)
        penalty += QUICK["reg"] / 2 * (w**2).sum() + 0.006 / 2 * (k**2).sum()
    for finetuned in (False, True):
        with torch.no_grad():
            loss = float(fitted.training_loss(module, ratings, mask, finetuned))
        by_hand = 0.5 * ((numpy_forward(module, r, finetuned) - r)[m] ** 2).sum() + penalty
        assert loss == pytest.approx(by_hand, rel=1e-4)


# --- the global kernel ---------------------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel")
def test_global_conv_shapes_and_hand_cases() -> None:
    gen = torch.Generator().manual_seed(0)
    r = torch.rand(7, 5, generator=gen) * 5
    identity = torch.zeros(3, 3)
    identity[1, 1] = 1.0
    np.testing.assert_allclose(global_conv(r, identity).numpy(), r.numpy(), rtol=1e-6)
    # All ones: the sum of each cell's 3x3 neighbourhood, zero outside the matrix.
    padded = np.pad(r.numpy(), 1)
    sums = sum(padded[a:a + 7, b:b + 5] for a in range(3) for b in range(3))
    np.testing.assert_allclose(global_conv(r, torch.ones(3, 3)).numpy(), sums, rtol=1e-5)
    # The ReLU: a negative kernel on nonnegative ratings gives zeros.
    assert torch.all(global_conv(r, -torch.ones(3, 3)) == 0)
    # Any kernel, odd or even: torch's (= TensorFlow's) "same" cross-correlation, then ReLU.
    for k in (1, 2, 3, 4):
        kernel = torch.randn(k, k, generator=gen)
        out = global_conv(r, kernel)
        ref = torch.relu(F.conv2d(r[None, None], kernel[None, None], padding="same")[0, 0])
        assert out.shape == r.shape
        np.testing.assert_allclose(out.numpy(), ref.numpy(), rtol=1e-5, atol=1e-5)


def test_global_kernel_pools_the_reconstruction_over_users() -> None:
    torch.manual_seed(0)
    module = GLocalKModule(n_users=6, n_items=5, hidden_size=4, n_layers=2, kernel_dim=2,
                           global_kernel_size=3, dot_scale=0.5)
    recon = torch.rand(5, 6)
    g = module.global_kernel(recon)
    assert g.shape == (3, 3)
    by_hand = 0.5 * recon.numpy().mean(axis=1) @ module.conv_kernel.detach().numpy()
    np.testing.assert_allclose(g.detach().numpy().ravel(), by_hand, rtol=1e-5)
    ratings = torch.rand(5, 6) * 5
    assert module(ratings, finetuned=True).shape == (5, 6)
    assert module(ratings, finetuned=False).shape == (5, 6)
    assert module.encode(ratings).shape == (5, 4)
    # Fine-tuning feeds the convolved matrix to the same autoencoder.
    convolved = module.global_input(ratings)
    np.testing.assert_allclose(module(ratings).detach().numpy(),
                               module.local(convolved).detach().numpy(), rtol=1e-6)


def test_lbfgs_minimizes_over_several_parameters() -> None:
    a = torch.nn.Parameter(torch.zeros(2, 3))
    b = torch.nn.Parameter(torch.zeros(4))
    target_a, target_b = torch.arange(6.0).reshape(2, 3), -torch.arange(4.0)

    def objective() -> torch.Tensor:
        return (a - target_a).pow(2).sum() + 3 * (b - target_b).pow(2).sum()

    with torch.no_grad():
        start = float(objective())
    one = lbfgs([a, b], objective, iterations=1)
    assert one < start
    final = lbfgs([a, b], objective, iterations=30)
    with torch.no_grad():
        assert final < 1e-8 and final == pytest.approx(float(objective()))
    np.testing.assert_allclose(a.detach().numpy(), target_a.numpy(), atol=1e-4)
    np.testing.assert_allclose(b.detach().numpy(), target_b.numpy(), atol=1e-4)


# --- fitting -------------------------------------------------------------------------------------
def test_fit_lowers_the_training_error(low_rank: Dataset, fitted: GLocalK) -> None:
    short = GLocalK(**{**QUICK, "pretrain_epochs": 1, "epochs": 0}).fit(low_rank, rng=0,
                                                                          progress=False)
    assert rmse(fitted, low_rank) < 0.8 * rmse(short, low_rank)
    assert rmse(fitted, low_rank) < 0.6 * low_rank.ratings["rating"].std()
    stages = [h["stage"] for h in fitted.history_]
    assert stages == ["pretrain"] * 6 + ["finetune"] * 6
    # Each L-BFGS run only takes descent steps and starts where the last one ended, so the
    # objective never rises within a stage (it jumps when fine-tuning changes the input).
    for stage in ("pretrain", "finetune"):
        losses = [h["train_loss"] for h in fitted.history_ if h["stage"] == stage]
        assert all(b <= a * (1 + 1e-6) for a, b in zip(losses, losses[1:], strict=False))
    assert fitted.history_[-1]["train_loss"] < 0.5 * fitted.history_[0]["train_loss"]


def test_scores_are_the_reconstruction_of_the_last_stage(fitted: GLocalK, low_rank: Dataset
                                                         ) -> None:
    users = low_rank.user_vocab.index[:5]
    ratings, _ = fitted.dense_ratings(torch.device("cpu"))
    with torch.no_grad():
        recon = fitted.module_(ratings, finetuned=True).numpy()
    scores = fitted.score(users)
    assert scores.shape == (5, fitted.n_items) and scores.dtype == np.float32
    np.testing.assert_allclose(scores, recon[:, :5].T, rtol=1e-5, atol=1e-5)
    u, i = np.meshgrid(users, low_rank.item_vocab.index, indexing="ij")
    pred = fitted.predict(u.ravel(), i.ravel()).reshape(u.shape)
    np.testing.assert_allclose(pred, np.clip(recon[:, :5].T, 1, 5), rtol=1e-5, atol=1e-5)
    assert fitted.item_vectors().shape == (fitted.n_items, QUICK["hidden_size"])
    # Without fine-tuning, the scores are the local-kernel autoencoder's alone.
    local = GLocalK(**{**QUICK, "epochs": 0}).fit(low_rank, rng=0, progress=False)
    with torch.no_grad():
        alone = local.module_(ratings, finetuned=False).numpy()
    np.testing.assert_allclose(local.score(users), alone[:, :5].T, rtol=1e-5, atol=1e-5)


def test_unknown_users_and_items_fall_back_to_means(fitted: GLocalK, low_rank: Dataset) -> None:
    r = low_rank.ratings
    user, item = low_rank.user_vocab.index[2], low_rank.item_vocab.index[4]
    pred = fitted.predict(np.array([999, user, 999]), np.array([item, 999, 998]))
    expected = [r.loc[r["item_id"] == item, "rating"].mean(),
                r.loc[r["user_id"] == user, "rating"].mean(), r["rating"].mean()]
    np.testing.assert_allclose(pred, expected, rtol=1e-5)


def test_same_seed_same_model_other_seed_other_model(low_rank: Dataset, fitted: GLocalK) -> None:
    users = low_rank.user_vocab.index
    again = GLocalK(**QUICK).fit(low_rank, rng=0, progress=False)
    np.testing.assert_array_equal(again.score(users), fitted.score(users))
    other = GLocalK(**QUICK).fit(low_rank, rng=1, progress=False)
    assert not np.allclose(other.score(users), fitted.score(users))


def test_validation_keeps_the_best_epoch_of_either_stage(low_rank: Dataset) -> None:
    gen = np.random.default_rng(1)
    is_valid = gen.random(low_rank.n_ratings) < 0.1
    train = Dataset(low_rank.ratings[~is_valid], name="t", rating_scale=(1.0, 5.0))
    valid = Dataset(low_rank.ratings[is_valid], name="v", rating_scale=(1.0, 5.0))
    seen: list[dict] = []
    model = GLocalK(**{**QUICK, "reg": 0.1, "epochs": 10, "patience": 2}).fit(
        train, valid, rng=0, progress=False, on_epoch=seen.append)
    assert seen == model.history_
    assert all(h["metric"] == "rmse" for h in model.history_)
    finetune = [h for h in model.history_ if h["stage"] == "finetune"]
    best = min(model.history_, key=lambda h: h["valid_metric"])
    assert model.best_epoch_ == best["epoch"]
    assert model.finetuned_ == (best["stage"] == "finetune")
    assert rmse(model, valid) == pytest.approx(best["valid_metric"], rel=1e-5)
    # Patience 2: training stops two epochs after the best one, or runs to the end.
    assert finetune[-1]["epoch"] in (best["epoch"] + 2, QUICK["pretrain_epochs"] + 10)


def test_pretrained_autoencoder_is_kept_when_finetuning_does_not_help(low_rank: Dataset,
                                                                       monkeypatch) -> None:
    """Validation that fine-tuning only worsens: the pre-trained epoch wins, no global kernel."""
    gen = np.random.default_rng(2)
    is_valid = gen.random(low_rank.n_ratings) < 0.1
    train = Dataset(low_rank.ratings[~is_valid], name="t", rating_scale=(1.0, 5.0))
    valid = Dataset(low_rank.ratings[is_valid], name="v", rating_scale=(1.0, 5.0))
    real = GLocalK.validation_metric

    def penalised(model, data, train):  # fine-tuned epochs look 1.0 worse than they are
        name, value = real(model, data, train)
        return name, value + (1.0 if model.finetuned_ else 0.0)

    monkeypatch.setattr(GLocalK, "validation_metric", penalised)
    model = GLocalK(**QUICK).fit(train, valid, rng=0, progress=False)
    pre = [h for h in model.history_ if h["stage"] == "pretrain"]
    best = min(pre, key=lambda h: h["valid_metric"])
    assert not model.finetuned_ and model.best_epoch_ == best["epoch"]
    assert len(model.history_) == QUICK["pretrain_epochs"] + QUICK["epochs"]
    assert rmse(model, valid) == pytest.approx(best["valid_metric"], rel=1e-5)


def test_on_epoch_can_stop_training(low_rank: Dataset) -> None:
    def stop(record: dict) -> None:
        if record["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        GLocalK(**QUICK).fit(low_rank, rng=0, progress=False, on_epoch=stop)


def test_interrupted_fit_resumes_exactly_across_the_stages(low_rank: Dataset,
                                                          tmp_path: Path) -> None:
    """The shared Trainer's checkpoints: L-BFGS keeps no state, so resuming is exact."""
    gen = np.random.default_rng(3)
    is_valid = gen.random(low_rank.n_ratings) < 0.1
    train = Dataset(low_rank.ratings[~is_valid], name="t", rating_scale=(1.0, 5.0))
    valid = Dataset(low_rank.ratings[is_valid], name="v", rating_scale=(1.0, 5.0))
    params = {**QUICK, "pretrain_epochs": 3, "epochs": 3}
    straight = GLocalK(**params).fit(train, valid, rng=0, progress=False)

    def stop(record: dict) -> None:
        if record["epoch"] == 2:  # inside pre-training
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        GLocalK(**params).fit(train, valid, rng=0, progress=False, checkpoint_dir=tmp_path,
                              on_epoch=stop)
    resumed = GLocalK(**params).fit(train, valid, rng=0, progress=False,
                                    checkpoint_dir=tmp_path, resume=True)
    assert resumed.resumed_from_epoch_ == 2 and GLocalK.trains_by_epochs
    assert [h["stage"] for h in resumed.history_] == ["pretrain"] * 3 + ["finetune"] * 3
    assert [h["valid_metric"] for h in resumed.history_] == [
        h["valid_metric"] for h in straight.history_]
    assert resumed.finetuned_ == straight.finetuned_
    assert resumed.best_epoch_ == straight.best_epoch_
    users = train.user_vocab.index
    np.testing.assert_array_equal(resumed.score(users), straight.score(users))


def test_save_load_round_trip(fitted: GLocalK, low_rank: Dataset, tmp_path: Path) -> None:
    fitted.save(tmp_path / "glocalk")
    loaded = GLocalK.load(tmp_path / "glocalk")
    assert isinstance(loaded, GLocalK) and loaded.params() == fitted.params()
    assert loaded.finetuned_ and loaded.history_ == fitted.history_
    users = low_rank.user_vocab.index
    np.testing.assert_array_equal(loaded.score(users), fitted.score(users))
    u, i = low_rank.ratings["user_id"].to_numpy(), low_rank.ratings["item_id"].to_numpy()
    np.testing.assert_array_equal(loaded.predict(u, i[::-1].copy()),
                                  fitted.predict(u, i[::-1].copy()))


def test_reconstruction_is_reused_until_the_weights_change(fitted: GLocalK) -> None:
    with fitted._eval() as module:
        first = fitted.reconstruction(module)
        assert fitted.reconstruction(module) is first
        before = module.conv_kernel.detach().clone()
        module.conv_kernel.mul_(0.5)
        try:
            assert not torch.equal(fitted.reconstruction(module), first)
        finally:
            module.conv_kernel.copy_(before)
    np.testing.assert_array_equal(fitted.reconstruction(fitted.module_).numpy(), first.numpy())


@pytest.mark.parametrize("param, value", [
    ("hidden_size", 0), ("n_layers", 0), ("kernel_dim", 2.5), ("reg", -1.0),
    ("reg_kernel", float("nan")), ("pretrain_epochs", -1), ("iterations", 0),
    ("global_kernel_size", 0), ("dot_scale", 0.0), ("patience", 0), ("device", "tpu"),
])
def test_invalid_params_name_the_field(param: str, value: object) -> None:
    with pytest.raises(ValueError, match=param):
        GLocalK(**{param: value})


def test_nothing_to_train_is_refused() -> None:
    with pytest.raises(ValueError, match="epochs"):
        GLocalK(pretrain_epochs=0, epochs=0)
    assert GLocalK(pretrain_epochs=0, epochs=1).epochs == 1
