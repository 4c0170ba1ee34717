"""Mult-VAE and RecVAE maths: KL by hand, annealing, composite prior, alternation, fold-in."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from movierec.data.dataset import Dataset  # noqa: E402
from movierec.models.autorec import dense_rows  # noqa: E402
from movierec.models.vae import (  # noqa: E402
    DECODER,
    ENCODER,
    PRIOR_WEIGHTS,
    WIDE_LOGVAR,
    CompositePrior,
    MultVAE,
    MultVAEModule,
    RecVAE,
    RecVAEModule,
    anneal,
    gaussian_kl,
    log_normal,
)

pytestmark = pytest.mark.usefixtures("torch_one_thread")

MULT: dict[str, Any] = {"hidden_size": 16, "latent_size": 4, "total_anneal_steps": 10,
                        "epochs": 8, "batch_size": 16, "learning_rate": 0.01, "device": "cpu"}
REC: dict[str, Any] = {"hidden_size": 16, "latent_size": 4, "encoder_epochs": 2, "epochs": 6,
                       "batch_size": 16, "learning_rate": 0.01, "device": "cpu"}


@pytest.fixture(scope="module")
def low_rank(low_rank_factory) -> Dataset:
    """40 users x 30 items, 40% observed."""
    return low_rank_factory(40, 30)


@pytest.fixture(scope="module")
def mult(low_rank: Dataset) -> MultVAE:
    return MultVAE(**MULT).fit(low_rank, rng=0, progress=False)


@pytest.fixture(scope="module")
def rec(low_rank: Dataset) -> RecVAE:
    return RecVAE(**REC).fit(low_rank, rng=0, progress=False)


def np_log_normal(z: np.ndarray, mu: np.ndarray, var: np.ndarray) -> np.ndarray:
    return -0.5 * np.log(2 * np.pi * var) - (z - mu) ** 2 / (2 * var)


# --- the maths --------------------------------------------------------------------------------
def test_anneal_grows_linearly_to_the_cap() -> None:
    assert [anneal(s, 10, 0.2) for s in (0, 1, 2, 5, 100)] == pytest.approx(
        [0.0, 0.1, 0.2, 0.2, 0.2])
    assert anneal(3, 4, 1.0) == 0.75


def test_gaussian_kl_by_hand() -> None:
    mu = torch.tensor([[0.5, -1.0], [0.0, 0.0]])
    logvar = torch.tensor([[0.0, math.log(2.0)], [0.0, 0.0]])
    # ½ Σ (σ² + μ² − 1 − log σ²): (1 + .25 − 1 − 0) + (2 + 1 − 1 − log 2), and 0 for N(0, I).
    expected = 0.5 * (0.25 + 2.0 - math.log(2.0))
    np.testing.assert_allclose(gaussian_kl(mu, logvar).numpy(), [expected, 0.0], rtol=1e-6)


def test_log_normal_is_the_gaussian_log_density() -> None:
    z, mu, var = np.array([0.3, -2.0]), np.array([1.0, 0.5]), np.array([0.5, 3.0])
    got = log_normal(torch.tensor(z), torch.tensor(mu), torch.tensor(np.log(var))).numpy()
    np.testing.assert_allclose(got, np_log_normal(z, mu, var), rtol=1e-12)


def test_composite_prior_density_by_hand() -> None:
    torch.manual_seed(0)
    prior = CompositePrior(n_items=5, hidden_size=6, latent_size=3).eval()
    x = torch.tensor([[1.0, 0.0, 1.0, 1.0, 0.0], [0.0, 1.0, 0.0, 0.0, 0.0]])
    z = torch.tensor([[0.2, -1.5, 3.0], [0.0, 0.7, -0.4]], dtype=torch.float64)
    with torch.no_grad():
        mu_old, logvar_old = (t.double().numpy() for t in prior.encoder(x))
        got = prior.log_density(x, z.float()).double().numpy()
    zn = z.numpy()
    w = PRIOR_WEIGHTS
    density = (w[0] * np.exp(np_log_normal(zn, 0.0, 1.0))
               + w[1] * np.exp(np_log_normal(zn, mu_old, np.exp(logvar_old)))
               + w[2] * np.exp(np_log_normal(zn, 0.0, math.exp(WIDE_LOGVAR))))
    np.testing.assert_allclose(got, np.log(density), rtol=1e-5)
    assert prior.encoder.mu.weight.requires_grad is False


def test_multvae_module_shapes_and_eval_is_deterministic() -> None:
    torch.manual_seed(0)
    module = MultVAEModule(n_items=7, hidden_size=5, latent_size=3, dropout=0.5)
    x = (torch.rand(4, 7) < 0.5).float()
    logits, mu, logvar = module.eval()(x)
    assert logits.shape == (4, 7) and mu.shape == logvar.shape == (4, 3)
    torch.manual_seed(123)
    again, _, _ = module(x)
    torch.testing.assert_close(logits, again)  # no dropout, no sampling in eval mode
    torch.testing.assert_close(logits, module.decoder(mu))


def test_multvae_batch_loss_by_hand(mult: MultVAE) -> None:
    module = mult.module_
    module.eval()  # z = μ and no dropout, so the loss is a closed form
    rows = first_rows(mult)
    beta = torch.tensor([0.0, 0.3, 0.3, 1.0])
    with torch.no_grad():
        loss = float(mult.batch_loss(module, {"user": torch.arange(4), "rating": rows,
                                              "beta": beta}))
    w = [layer.weight.double().detach().numpy() for layer in (module.encoder[0],
                                                              module.encoder[2],
                                                              module.decoder[0],
                                                              module.decoder[2])]
    b = [layer.bias.double().detach().numpy() for layer in (module.encoder[0],
                                                            module.encoder[2],
                                                            module.decoder[0],
                                                            module.decoder[2])]
    x = rows.double().numpy()
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    h = np.tanh(xn @ w[0].T + b[0]) @ w[1].T + b[1]
    mu, logvar = h[:, :4], h[:, 4:]
    logits = np.tanh(mu @ w[2].T + b[2]) @ w[3].T + b[3]
    log_softmax = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    kl = 0.5 * (np.exp(logvar) + mu**2 - 1 - logvar).sum(1)
    by_hand = (-(log_softmax * x).sum(1) + beta.numpy() * kl).mean()
    assert loss == pytest.approx(by_hand, rel=1e-5)


def first_rows(model: MultVAE | RecVAE) -> torch.Tensor:
    """The binary training rows of users 0-3."""
    return dense_rows(model.seen_, np.arange(4))[0]


# --- training ---------------------------------------------------------------------------------
def test_multvae_batches_carry_the_annealed_beta(low_rank: Dataset) -> None:
    model = MultVAE(**{**MULT, "epochs": 1, "total_anneal_steps": 5}).fit(
        low_rank, rng=0, progress=False)
    steps = -(-low_rank.n_users // MULT["batch_size"])  # 3 batches of 16 users
    assert int(model.module_.anneal_step) == steps
    gen = torch.Generator().manual_seed(0)
    betas = [float(b["beta"][0]) for b in model.batches(model.training_data(low_rank), gen)]
    assert betas == pytest.approx([anneal(s, 5, 0.2) for s in range(steps, 2 * steps)])
    assert betas == pytest.approx([0.2, 0.2, 0.2])  # steps 3, 4, 5 of 5, capped at 0.2
    assert int(model.module_.anneal_step) == 2 * steps


@pytest.mark.parametrize("cls, params", [(MultVAE, MULT), (RecVAE, REC)])
def test_training_loss_falls(cls, params, low_rank: Dataset) -> None:
    model = cls(**{**params, "epochs": 10}).fit(low_rank, rng=0, progress=False)
    losses = [h["train_loss"] for h in model.history_]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]


def test_recvae_alternates_encoder_and_decoder_updates(low_rank: Dataset) -> None:
    rec = RecVAE(**{**REC, "epochs": 1}).fit(low_rank, rng=0, progress=False)
    module = rec.module_
    assert isinstance(module, RecVAEModule)
    module.train()
    gen = torch.Generator().manual_seed(1)
    phases, prior_matches_at_switch = [], None
    for batch in rec.batches(rec.training_data(low_rank), gen):
        phase = int(batch["phase"][0])
        if phase == DECODER and prior_matches_at_switch is None:
            prior_matches_at_switch = all(
                torch.equal(a, b) for a, b in zip(module.encoder.state_dict().values(),
                                                  module.prior.encoder.state_dict().values(),
                                                  strict=True))
        phases.append(phase)
        module.zero_grad(set_to_none=True)
        rec.batch_loss(module, batch).backward()
        enc = [p.grad for p in module.encoder.parameters()]
        dec = [p.grad for p in module.decoder.parameters()]
        assert all(p.grad is None for p in module.prior.parameters())
        if phase == ENCODER:
            assert all(g is not None for g in enc) and all(g is None for g in dec)
        else:
            assert all(g is None for g in enc) and all(g is not None for g in dec)
        # Perturb the encoder so that the prior copy is observable.
        with torch.no_grad():
            module.encoder.mu.bias.add_(0.01)
    n = -(-low_rank.n_users // REC["batch_size"])
    assert phases == [ENCODER] * (REC["encoder_epochs"] * n) + [DECODER] * n
    assert prior_matches_at_switch is True


def test_recvae_batch_loss_weights_kl_by_activity(rec: RecVAE) -> None:
    module = rec.module_
    rows = first_rows(rec)
    batch = {"user": torch.arange(4), "rating": rows,
             "phase": torch.full((4,), DECODER, dtype=torch.int64)}
    gamma_free = RecVAE(**{**REC, "gamma": 0.0})
    with torch.no_grad():
        torch.manual_seed(5)
        loss = float(rec.batch_loss(module, batch))
        torch.manual_seed(5)
        nll = float(gamma_free.batch_loss(module, batch))
    # Same z (same seed): the difference is mean_u gamma |x_u| KL_u, with KL_u recomputed.
    torch.manual_seed(5)
    with torch.no_grad():
        mu, logvar = module.encoder(rows, 0.0)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        kl = (log_normal(z, mu, logvar) - module.prior.log_density(rows, z)).sum(-1)
    expected = float((rec.gamma * rows.sum(-1) * kl).mean())
    assert loss - nll == pytest.approx(expected, rel=1e-4, abs=1e-6)


# --- scoring, fold-in, persistence ------------------------------------------------------------
@pytest.mark.parametrize("which", ["mult", "rec"])
def test_fold_in_of_a_training_history_equals_its_scores(which: str, request) -> None:
    model = request.getfixturevalue(which)
    for user in (0, 7, 39):
        items = model.seen_[user].indices
        folded = model._score_history(np.append(items, -1), np.ones(len(items) + 1))
        np.testing.assert_allclose(folded, model._score(np.array([user]))[0], rtol=1e-5,
                                   atol=1e-5)
        assert folded.dtype == np.float32 and folded.shape == (model.n_items,)


@pytest.mark.parametrize("which", ["mult", "rec"])
def test_scores_do_not_depend_on_the_torch_rng(which: str, request) -> None:
    model = request.getfixturevalue(which)
    torch.manual_seed(1)
    first = model._score(np.arange(10))
    torch.manual_seed(2)
    np.testing.assert_array_equal(first, model._score(np.arange(10)))


@pytest.mark.parametrize("which", ["mult", "rec"])
def test_save_load_keeps_weights_prior_and_schedule(which: str, request,
                                                    tmp_path: Path) -> None:
    model = request.getfixturevalue(which)
    loaded = type(model).load(model.save(tmp_path / "m"))
    before, after = model.module_.state_dict(), loaded.module_.state_dict()
    assert before.keys() == after.keys()
    for key in before:
        torch.testing.assert_close(before[key].cpu(), after[key].cpu())
    np.testing.assert_array_equal(model._score(np.arange(5)), loaded._score(np.arange(5)))


@pytest.mark.parametrize("cls, params", [(MultVAE, MULT), (RecVAE, REC)])
def test_resume_equals_an_uninterrupted_run(cls, params, low_rank: Dataset,
                                            tmp_path: Path) -> None:
    params = {**params, "epochs": 4}
    whole = cls(**params).fit(low_rank, rng=3, progress=False)

    def stop_after_two(record: dict) -> None:
        if record["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cls(**params).fit(low_rank, rng=3, progress=False, checkpoint_dir=tmp_path,
                          on_epoch=stop_after_two)
    resumed = cls(**params).fit(low_rank, rng=3, progress=False, checkpoint_dir=tmp_path,
                                resume=True)
    assert resumed.resumed_from_epoch_ == 2
    for key, value in whole.module_.state_dict().items():
        torch.testing.assert_close(resumed.module_.state_dict()[key], value)


@pytest.mark.parametrize("cls, params", [
    (MultVAE, {"beta_cap": -0.1}), (MultVAE, {"total_anneal_steps": 0}),
    (MultVAE, {"latent_size": 0}), (MultVAE, {"dropout": 1.0}), (RecVAE, {"gamma": -1.0}),
    (RecVAE, {"encoder_epochs": 0}), (RecVAE, {"decoder_epochs": 1.5}),
    (RecVAE, {"hidden_size": "600"}),
])
def test_invalid_parameters_name_themselves(cls, params) -> None:
    name = next(iter(params))
    with pytest.raises(ValueError, match=f"^{name} must be") as info:
        cls(**params)
    assert "\n" not in str(info.value)
