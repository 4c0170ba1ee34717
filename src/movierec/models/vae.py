"""Variational autoencoders over each user's row of interactions: Mult-VAE and RecVAE.

Both read a user's binary row x_u ∈ {0, 1}^n_items of the training matrix (every training rating
counts as an interaction), encode it into a Gaussian q(z | x_u) and decode z into logits over all
items, trained with the multinomial likelihood log softmax(f(z)) · x_u. Scores are the decoder's
logits at the posterior mean, z = μ(x_u): deterministic, no dropout, no sampling. A new user is
scored the same way from their history row (fold-in).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from movierec.data.dataset import Dataset
from movierec.models.autorec import dense_rows
from movierec.models.base import check_param, is_int, is_number
from movierec.models.space import Float, Int, SearchSpace
from movierec.training import TorchRecommender, check_trainer_params

__all__ = [
    "CompositePrior",
    "MultVAE",
    "MultVAEModule",
    "PRIOR_WEIGHTS",
    "RecVAE",
    "RecVAEEncoder",
    "RecVAEModule",
    "anneal",
    "gaussian_kl",
    "log_normal",
    "multinomial_log_likelihood",
]

#: RecVAE's composite prior: weights of the standard normal, the old posterior and the wide
#: normal (log-variance `WIDE_LOGVAR`), as in the reference code.
PRIOR_WEIGHTS = (3 / 20, 3 / 4, 1 / 10)
WIDE_LOGVAR = 10.0
#: `batch["phase"]` of RecVAE's alternating updates.
ENCODER, DECODER = 0, 1


# --- the maths --------------------------------------------------------------------------------
def anneal(step: int, total_anneal_steps: int, beta_cap: float) -> float:
    """β of Mult-VAE's KL annealing at optimizer step `step` (from 0): min(cap, step / total)."""
    return min(beta_cap, step / total_anneal_steps)


def multinomial_log_likelihood(logits: Tensor, x: Tensor) -> Tensor:
    """Σ_i x_ui log softmax(logits_u)_i per user [b] (the multinomial log-likelihood)."""
    return (F.log_softmax(logits, dim=-1) * x).sum(dim=-1)


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(μ, diag σ²) ‖ N(0, I)) per row [b] = ½ Σ_k (σ²_k + μ²_k − 1 − log σ²_k)."""
    return 0.5 * (logvar.exp() + mu.pow(2) - 1.0 - logvar).sum(dim=-1)


def log_normal(z: Tensor, mu: Tensor, logvar: Tensor) -> Tensor:
    """Element-wise log N(z; μ, e^logvar) (broadcasting)."""
    return -0.5 * (logvar + math.log(2 * math.pi) + (z - mu).pow(2) / logvar.exp())


def _user_rows(model: TorchRecommender, users: Tensor) -> Tensor:
    """Binary training rows [b, n_items] (float32, on the users' device) of user codes."""
    rows, _ = dense_rows(model.seen_, users.cpu().numpy())
    return rows.to(users.device)


# --- Mult-VAE ---------------------------------------------------------------------------------
class MultVAEModule(nn.Module):
    """Mult-VAE: q(z | x) = N(μ, diag σ²) from [μ, log σ²] = g(x̃), logits = f(z).

    x̃ is the L2-normalized row with dropout (training only); g = Linear ∘ tanh ∘ Linear
    (n_items → hidden_size → 2 · latent_size), f = Linear ∘ tanh ∘ Linear (latent_size →
    hidden_size → n_items).

    Args:
        n_items: input and output size.
        hidden_size: units of the hidden layer of both networks.
        latent_size: size of z.
        dropout: dropout probability on the normalized input during training.
    """

    anneal_step: Tensor

    def __init__(self, n_items: int, hidden_size: int, latent_size: int,
                 dropout: float) -> None:
        super().__init__()
        self.latent_size = latent_size
        self.dropout = nn.Dropout(dropout)
        self.encoder = nn.Sequential(nn.Linear(n_items, hidden_size), nn.Tanh(),
                                     nn.Linear(hidden_size, 2 * latent_size))
        self.decoder = nn.Sequential(nn.Linear(latent_size, hidden_size), nn.Tanh(),
                                     nn.Linear(hidden_size, n_items))
        # Optimizer steps so far: the annealing schedule's clock, saved with the weights so that
        # a resumed run continues the schedule.
        self.register_buffer("anneal_step", torch.zeros(1, dtype=torch.int64))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Xavier-uniform weights, biases ~ N(0, 0.001²) truncated at 2σ (the reference code)."""
        for layer in (*self.encoder, *self.decoder):
            if isinstance(layer, nn.Linear):
                nn.init.xavier_uniform_(layer.weight)
                nn.init.trunc_normal_(layer.bias, std=1e-3, a=-2e-3, b=2e-3)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior mean and log-variance [b, latent] of binary rows x [b, n_items]."""
        h = self.encoder(self.dropout(F.normalize(x, dim=-1)))
        return h[:, :self.latent_size], h[:, self.latent_size:]

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(logits, μ, log σ²); z is sampled in training mode and is μ in eval mode."""
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if self.training else mu
        return self.decoder(z), mu, logvar


class _UserVAE(TorchRecommender):
    """What Mult-VAE and RecVAE share.

    Users' binary rows in, early stopping on ranking, scoring and fold-in by the decoder at the
    encoder's mean (no dropout, no sampling).
    """

    @property
    def objective(self) -> str:  # type: ignore[override]
        """Always "ranking": early stopping on validation NDCG@10."""
        return "ranking"

    def training_data(self, train: Dataset) -> dict[str, Tensor]:
        """User codes only: `batches` densifies their rows of the training matrix."""
        return {"user": torch.arange(self.n_users_, dtype=torch.int64)}

    def _mean(self, module: nn.Module, rows: Tensor) -> Tensor:
        """The encoder's mean μ(x) of binary rows (each model's own encoder)."""
        raise NotImplementedError

    def _logits(self, module: nn.Module, rows: Tensor, item_codes: Tensor | None) -> Tensor:
        decoder: nn.Module = module.decoder  # type: ignore[assignment]
        logits = decoder(self._mean(module, rows))
        return logits if item_codes is None else logits[:, item_codes]

    def score_block(self, module: nn.Module, user_codes: Tensor, item_codes: Tensor | None
                    ) -> Tensor:
        """Logits f(μ(x_u)) [users, items] of the users' training rows."""
        return self._logits(module, _user_rows(self, user_codes), item_codes)

    def _score_history(self, item_codes: np.ndarray, ratings: np.ndarray) -> np.ndarray:
        """Scores float32 [n_items] of a new user: the decoder at the encoder's mean of the row.

        Ratings only mark which items were rated (the models learn from the binary matrix);
        unknown item codes (−1) are ignored.
        """
        return _fold_in(self, item_codes)


class MultVAE(_UserVAE):
    """Mult-VAE: a variational autoencoder of user rows with a multinomial likelihood.

    Liang, Krishnan, Hoffman & Jebara, "Variational Autoencoders for Collaborative Filtering",
    WWW 2018 (reference code: github.com/dawenl/vae_cf).

    A user's binary row x_u is L2-normalized, dropped out (training only) and encoded by
    n_items → hidden_size → 2 · latent_size (tanh) into q(z | x_u) = N(μ_u, diag σ_u²); the
    decoder latent_size → hidden_size → n_items (tanh) gives logits f(z), π(z) = softmax(f(z)).
    Training maximizes the β-weighted ELBO per batch of users,

        L = mean_u [ x_u · log π(z_u) − β · KL(q(z | x_u) ‖ N(0, I)) ],  z_u ~ q(z | x_u),

    with β annealed linearly from 0 by 1 / `total_anneal_steps` per optimizer step and capped at
    `beta_cap` (the reference code's `anneal_cap`). Scores: s_u = f(μ_u) (logits at the posterior
    mean, no dropout, no sampling). Fold-in: a new user's history row goes through the same
    encoder and decoder, so a training user's own history gives exactly its scores.

    The paper's defaults (ML-20M: 200 epochs of ~230 steps, 200,000 annealing steps, so β
    reaches its cap near the end) assume many steps per epoch; ML-100K has 2 steps per epoch at
    batch 500, so the defaults here (batch 100, 200 annealing steps: β = 0.2 after 40 steps)
    were chosen on a 10% validation carve-out of ML-100K's training part (see
    benchmarks/vae_ml100k.py --grid and docs/models/vae.md); `beta_cap` stays the paper's 0.2.

    Args:
        hidden_size: units of the hidden layer of encoder and decoder (default 600, ≥ 1).
        latent_size: size of z (default 200, ≥ 1).
        dropout: dropout probability on the normalized input during training (default 0.5,
            in [0, 1)).
        beta_cap: the largest KL weight β (default 0.2, ≥ 0).
        total_anneal_steps: optimizer steps for β to grow from 0 to 1 (it stops at `beta_cap`);
            β = min(beta_cap, step / total_anneal_steps) (default 200, ≥ 1).
    """

    name: ClassVar[str] = "multvae"
    trains_by_epochs: ClassVar[bool] = True
    supports_fold_in: ClassVar[bool] = True
    search_space: ClassVar[SearchSpace] = {
        "hidden_size": Int(100, 1000, log=True),
        "latent_size": Int(32, 400, log=True),
        "dropout": Float(0.0, 0.8),
        "beta_cap": Float(0.01, 1.0, log=True),
        "total_anneal_steps": Int(100, 200_000, log=True),
        "learning_rate": Float(1e-4, 3e-3, log=True),
        "batch_size": Int(32, 512, log=True),
    }

    def __init__(self, *, hidden_size: int = 600, latent_size: int = 200, dropout: float = 0.5,
                 beta_cap: float = 0.2, total_anneal_steps: int = 200, epochs: int = 200,
                 batch_size: int = 100, learning_rate: float = 1e-3, weight_decay: float = 0.0,
                 patience: int | None = 20, grad_clip: float | None = None,
                 device: str = "auto") -> None:
        _check_sizes(hidden_size, latent_size, dropout)
        check_param("beta_cap", beta_cap, is_number(beta_cap) and beta_cap >= 0, "a number ≥ 0")
        check_param("total_anneal_steps", total_anneal_steps, is_int(total_anneal_steps, 1),
                    "an integer ≥ 1")
        check_trainer_params(locals())
        self.hidden_size = hidden_size
        self.latent_size = latent_size
        self.dropout = dropout
        self.beta_cap = beta_cap
        self.total_anneal_steps = total_anneal_steps
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.patience = patience
        self.grad_clip = grad_clip
        self.device = device

    def build_module(self) -> MultVAEModule:
        """A fresh `MultVAEModule` for the fitted number of items."""
        return MultVAEModule(self.n_items_, self.hidden_size, self.latent_size, self.dropout)

    def batches(self, data: dict[str, Tensor], generator: torch.Generator
                ) -> Iterator[dict[str, Tensor]]:
        """Shuffled batches of users: codes, binary rows and the annealed β of the step."""
        module = self.module_
        assert isinstance(module, MultVAEModule)
        for users, rows in _shuffled_rows(self, data, generator):
            step = int(module.anneal_step.item())
            module.anneal_step += 1
            beta = anneal(step, self.total_anneal_steps, self.beta_cap)
            yield {"user": users, "rating": rows, "beta": torch.full((len(users),), beta)}

    def batch_loss(self, module: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        """Negative β-ELBO, mean over the batch's users."""
        assert isinstance(module, MultVAEModule)
        x = batch["rating"]
        logits, mu, logvar = module(x)
        nll = -multinomial_log_likelihood(logits, x)
        return (nll + batch["beta"] * gaussian_kl(mu, logvar)).mean()

    def _mean(self, module: nn.Module, rows: Tensor) -> Tensor:
        assert isinstance(module, MultVAEModule)
        return module.encode(rows)[0]


# --- RecVAE -----------------------------------------------------------------------------------
class RecVAEEncoder(nn.Module):
    """RecVAE's encoder: five dense-skip layers h_k = LN(swish(W_k h_{k−1} + Σ_{j<k} h_j)).

    The input is the L2-normalized row with dropout (training only); μ and log σ² are linear
    in h_5. LayerNorm's ε is 0.1, as in the reference code.
    """

    def __init__(self, n_items: int, hidden_size: int, latent_size: int) -> None:
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(n_items, hidden_size)] + [
            nn.Linear(hidden_size, hidden_size) for _ in range(4)])
        self.norms = nn.ModuleList([nn.LayerNorm(hidden_size, eps=0.1) for _ in range(5)])
        self.mu = nn.Linear(hidden_size, latent_size)
        self.logvar = nn.Linear(hidden_size, latent_size)

    def forward(self, x: Tensor, dropout: float = 0.0) -> tuple[Tensor, Tensor]:
        """(μ, log σ²) [b, latent] of binary rows x [b, n_items]."""
        h = F.dropout(F.normalize(x, dim=-1), p=dropout, training=self.training)
        skip: Tensor | float = 0.0  # the sum of every earlier layer's output
        for layer, norm in zip(self.layers, self.norms, strict=True):
            h = norm(F.silu(layer(h) + skip))
            skip = skip + h
        return self.mu(h), self.logvar(h)


class CompositePrior(nn.Module):
    """p(z | x) = 3/20 N(0, I) + 3/4 q_old(z | x) + 1/10 N(0, e^10 I), per latent dimension.

    q_old is the posterior of the encoder as it was at the last `RecVAEModule.update_prior`
    (a frozen copy: its parameters never get gradients).
    """

    log_weights: Tensor

    def __init__(self, n_items: int, hidden_size: int, latent_size: int) -> None:
        super().__init__()
        self.encoder = RecVAEEncoder(n_items, hidden_size, latent_size)
        self.encoder.requires_grad_(False)
        self.register_buffer("log_weights", torch.log(torch.tensor(PRIOR_WEIGHTS)))

    def log_density(self, x: Tensor, z: Tensor) -> Tensor:
        """The log-density log p(z | x) per element [b, latent]."""
        mu_old, logvar_old = self.encoder(x, 0.0)
        zero = torch.zeros_like(z)
        parts = torch.stack([log_normal(z, zero, zero), log_normal(z, mu_old, logvar_old),
                             log_normal(z, zero, torch.full_like(z, WIDE_LOGVAR))], dim=-1)
        return torch.logsumexp(parts + self.log_weights, dim=-1)


class RecVAEModule(nn.Module):
    """RecVAE: the dense-skip encoder, a composite prior and a linear decoder logits = W z + b.

    Args:
        n_items: input and output size.
        hidden_size: units of each encoder layer.
        latent_size: size of z.
    """

    def __init__(self, n_items: int, hidden_size: int, latent_size: int) -> None:
        super().__init__()
        self.encoder = RecVAEEncoder(n_items, hidden_size, latent_size)
        self.prior = CompositePrior(n_items, hidden_size, latent_size)
        self.decoder = nn.Linear(latent_size, n_items)
        self.update_prior()

    def update_prior(self) -> None:
        """Copy the encoder's weights into the prior's old-posterior encoder."""
        with torch.no_grad():
            self.prior.encoder.load_state_dict(self.encoder.state_dict())

    def forward(self, x: Tensor, dropout: float = 0.0) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(logits, z, μ, log σ²); z is sampled in training mode and is μ in eval mode."""
        mu, logvar = self.encoder(x, dropout)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp() if self.training else mu
        return self.decoder(z), z, mu, logvar


class RecVAE(_UserVAE):
    """RecVAE: Mult-VAE with a composite prior, activity-scaled KL and alternating updates.

    Shenbin, Alekseev, Tutubalina, Malykh & Nikolenko, "RecVAE: a New Variational Autoencoder
    for Top-N Recommendations with Implicit Feedback", WSDM 2020 (reference code:
    github.com/ilya-shenbin/RecVAE).

    Mult-VAE's multinomial likelihood with four changes, as in the reference code:

    - the encoder has five layers of `hidden_size` with swish, LayerNorm and dense skip
      connections (each layer's input adds every earlier layer's output); the decoder is linear,
      logits = W z + b;
    - the KL term is a one-sample estimate of KL(q(z | x) ‖ p(z | x)) against the composite
      prior p = 3/20 N(0, I) + 3/4 q_old(z | x) + 1/10 N(0, e^10 I), q_old the posterior of
      the encoder as it was after the last encoder phase;
    - its weight grows with the user's activity: β_u = `gamma` · |x_u|;
    - updates alternate: each epoch is `encoder_epochs` passes over the users updating only the
      encoder (input dropout `dropout`), then q_old ← q, then `decoder_epochs` passes updating
      only the decoder (no dropout). The loss of both phases is the negative ELBO
      mean_u [ −x_u · log softmax(W z_u + b) + β_u (log q(z_u | x_u) − log p(z_u | x_u)) ].

    Scores: s_u = W μ(x_u) + b (no dropout, no sampling); fold-in runs a new user's history row
    through the same encoder and decoder. Epochs and early stopping count these alternations,
    as the reference code evaluates after each.

    Args:
        hidden_size: units of each encoder layer (default 600, ≥ 1).
        latent_size: size of z (default 200, ≥ 1).
        dropout: input dropout probability of the encoder phase (default 0.5, in [0, 1)).
        gamma: KL weight per interaction of the user, β_u = gamma · |x_u| (default 0.02, ≥ 0;
            the reference's ML-20M value 0.005 scores lower on an ML-100K validation
            carve-out, see benchmarks/vae_ml100k.py --grid).
        encoder_epochs: passes updating the encoder per epoch (default 3, ≥ 1).
        decoder_epochs: passes updating the decoder per epoch (default 1, ≥ 1).
    """

    name: ClassVar[str] = "recvae"
    trains_by_epochs: ClassVar[bool] = True
    supports_fold_in: ClassVar[bool] = True
    search_space: ClassVar[SearchSpace] = {
        "hidden_size": Int(100, 1000, log=True),
        "latent_size": Int(32, 400, log=True),
        "dropout": Float(0.0, 0.8),
        "gamma": Float(1e-4, 0.05, log=True),
        "encoder_epochs": Int(1, 5),
        "learning_rate": Float(1e-4, 3e-3, log=True),
        "batch_size": Int(32, 512, log=True),
    }

    def __init__(self, *, hidden_size: int = 600, latent_size: int = 200, dropout: float = 0.5,
                 gamma: float = 0.02, encoder_epochs: int = 3, decoder_epochs: int = 1,
                 epochs: int = 50, batch_size: int = 100, learning_rate: float = 5e-4,
                 weight_decay: float = 0.0, patience: int | None = 10,
                 grad_clip: float | None = None, device: str = "auto") -> None:
        _check_sizes(hidden_size, latent_size, dropout)
        check_param("gamma", gamma, is_number(gamma) and gamma >= 0, "a number ≥ 0")
        check_param("encoder_epochs", encoder_epochs, is_int(encoder_epochs, 1), "an integer ≥ 1")
        check_param("decoder_epochs", decoder_epochs, is_int(decoder_epochs, 1), "an integer ≥ 1")
        check_trainer_params(locals())
        self.hidden_size = hidden_size
        self.latent_size = latent_size
        self.dropout = dropout
        self.gamma = gamma
        self.encoder_epochs = encoder_epochs
        self.decoder_epochs = decoder_epochs
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.patience = patience
        self.grad_clip = grad_clip
        self.device = device

    def build_module(self) -> RecVAEModule:
        """A fresh `RecVAEModule` for the fitted number of items (q_old = the initial q)."""
        return RecVAEModule(self.n_items_, self.hidden_size, self.latent_size)

    def batches(self, data: dict[str, Tensor], generator: torch.Generator
                ) -> Iterator[dict[str, Tensor]]:
        """One alternation: encoder passes, the prior update, decoder passes.

        Each batch carries its phase; `batch_loss` lets gradients reach only that phase's
        parameters, so the Trainer's one Adam (per-parameter state, parameters without a
        gradient skipped) updates exactly what the reference code's two Adams do. The prior is
        updated when the generator resumes after the last encoder batch, i.e. after its step.
        """
        module = self.module_
        assert isinstance(module, RecVAEModule)
        for phase, passes in ((ENCODER, self.encoder_epochs), (DECODER, self.decoder_epochs)):
            if phase == DECODER:
                module.update_prior()
            for _ in range(passes):
                for users, rows in _shuffled_rows(self, data, generator):
                    yield {"user": users, "rating": rows,
                           "phase": torch.full((len(users),), phase, dtype=torch.int64)}

    def batch_loss(self, module: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        """Negative ELBO with the composite prior and β_u = gamma · |x_u|, mean over users."""
        assert isinstance(module, RecVAEModule)
        x = batch["rating"]
        encoder_phase = int(batch["phase"][0]) == ENCODER
        mu, logvar = module.encoder(x, self.dropout if encoder_phase else 0.0)
        if not encoder_phase:
            mu, logvar = mu.detach(), logvar.detach()
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        weight: Tensor = module.decoder.weight
        bias: Tensor = module.decoder.bias
        if encoder_phase:
            weight, bias = weight.detach(), bias.detach()
        nll = -multinomial_log_likelihood(F.linear(z, weight, bias), x)
        kl = (log_normal(z, mu, logvar) - module.prior.log_density(x, z)).sum(dim=-1)
        return (nll + self.gamma * x.sum(dim=-1) * kl).mean()

    def _mean(self, module: nn.Module, rows: Tensor) -> Tensor:
        assert isinstance(module, RecVAEModule)
        return module.encoder(rows)[0]


# --- shared -----------------------------------------------------------------------------------
def _check_sizes(hidden_size: int, latent_size: int, dropout: float) -> None:
    check_param("hidden_size", hidden_size, is_int(hidden_size, 1), "an integer ≥ 1")
    check_param("latent_size", latent_size, is_int(latent_size, 1), "an integer ≥ 1")
    check_param("dropout", dropout, is_number(dropout) and 0 <= dropout < 1,
                "a number in [0, 1)")


def _shuffled_rows(model: TorchRecommender, data: dict[str, Tensor], generator: torch.Generator
                   ) -> Iterator[tuple[Tensor, Tensor]]:
    """One shuffled pass over the users: (codes, binary training rows) per batch."""
    users = data["user"]
    order = users[torch.randperm(len(users), generator=generator)]
    size = int(model.batch_size)
    for start in range(0, len(order), size):
        batch = order[start:start + size]
        yield batch, dense_rows(model.seen_, batch.numpy())[0]


def _fold_in(model: _UserVAE, item_codes: np.ndarray) -> np.ndarray:
    codes = np.asarray(item_codes, dtype=np.int64)
    codes = codes[(codes >= 0) & (codes < model.n_items)]
    with model._eval() as module:
        row = torch.zeros((1, model.n_items), dtype=torch.float32, device=model.device_)
        row[0, torch.from_numpy(codes).to(model.device_)] = 1.0
        return model._logits(module, row, None)[0].float().cpu().numpy()
