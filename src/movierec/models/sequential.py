"""Sequential recommenders on the shared Trainer: an LSTM next-item model and SASRec.

Both read each user's training interactions in time order (ties by item code) and score the next
item from the user's latest `max_len` interactions:

- `LSTMRec`: a recurrent next-item model in the spirit of GRU4Rec (Hidasi et al., ICLR 2016) and
  its LSTM variants (Devooght & Bersini, UMAP 2017): h_t = LSTM(e_{s_1}, …, e_{s_t}) and
  s(i | s_1..t) = q_t · e'_i + b_i with q_t = W [h_t; p_u] + c (a bilinear head, vectorized over
  all candidate items).
- `SASRec`: self-attentive sequential recommendation (Kang & McAuley, ICDM 2018): a causal
  transformer over item + learned position embeddings, F_t = SA(ê_{s_1}, …, ê_{s_t}), and
  r(i | s_1..t) = F_t · M_i with the input item embedding M shared as output embedding (eq. 6).

Training is teacher-forced over all positions at once: a user's time-ordered sequence
s_1, …, s_n is cut, from its end, into windows of `max_len` targets; the input of target s_t is
s_{t−1} (a padding "start" token for t = 1), so the model learns every prefix → next item pair.
Ranking losses ("bce", "bpr") contrast each target with `n_negatives` items sampled uniformly
among those the user never interacted with in training (`NegativeSampler`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import ClassVar, Protocol, cast

import numpy as np
import torch
from torch import Tensor, nn

from movierec.data.dataset import Dataset
from movierec.models._sequences import build_histories, build_windows, time_order
from movierec.models.base import check_param, is_int, is_number
from movierec.models.baseline import clip_to_scale
from movierec.models.space import Choice, Float, Int, SearchSpace
from movierec.training import (
    NegativeSampler,
    TorchRecommender,
    bce_loss,
    bpr_loss,
    check_trainer_params,
    iterate_batches,
    mse_loss,
)

__all__ = ["LSTMModule", "LSTMRec", "SASRec", "SASRecModule", "build_histories",
           "build_windows", "time_order"]


# --- modules -----------------------------------------------------------------------------------
class LSTMModule(nn.Module):
    """q_t = W [LSTM(e_{s_1..t}); p_u] + c, score(i) = μ + q_t · e'_i + b_i.

    Args:
        n_users: number of user codes (for the optional user embedding).
        n_items: number of item codes; code `n_items` is the padding / start token.
        embedding_size: item (and user) embedding size d.
        hidden_size: LSTM state size.
        dropout: dropout on the input embeddings and the LSTM outputs.
        user_embedding: concatenate a user embedding p_u (zero for unknown users) to h_t.
        offset: μ added to every score (the mean rating for loss="mse", else 0).
    """

    # Buffers (registered in __init__), declared for type checkers: nn.Module's __getattr__
    # would give them as Tensor | Module.
    offset: Tensor

    def __init__(self, n_users: int, n_items: int, embedding_size: int, hidden_size: int,
                 dropout: float, user_embedding: bool, offset: float) -> None:
        super().__init__()
        self.n_items = n_items
        self.item_embedding = nn.Embedding(n_items + 1, embedding_size, padding_idx=n_items)
        self.lstm = nn.LSTM(embedding_size, hidden_size, batch_first=True)
        self.dropout = nn.Dropout(dropout)
        self.user_embedding = nn.Embedding(n_users, embedding_size) if user_embedding else None
        extra = embedding_size if user_embedding else 0
        self.project = nn.Linear(hidden_size + extra, embedding_size)
        self.output_embedding = nn.Embedding(n_items, embedding_size)
        self.output_bias = nn.Embedding(n_items, 1)
        self.register_buffer("offset", torch.tensor(float(offset)))
        nn.init.normal_(self.item_embedding.weight, std=0.05)
        nn.init.normal_(self.output_embedding.weight, std=0.05)
        nn.init.zeros_(self.output_bias.weight)
        with torch.no_grad():
            self.item_embedding.weight[n_items].zero_()
        if self.user_embedding is not None:
            nn.init.normal_(self.user_embedding.weight, std=0.05)

    def forward(self, seq: Tensor, users: Tensor) -> Tensor:
        """Query vectors q [b, L, d] for every prefix of `seq` [b, L]."""
        h, _ = self.lstm(self.dropout(self.item_embedding(seq)))
        h = self.dropout(h)
        if self.user_embedding is not None:
            p = self.user_embedding(users.clamp(min=0)) * (users >= 0).unsqueeze(-1)
            h = torch.cat([h, p[:, None, :].expand(-1, h.shape[1], -1)], dim=-1)
        return self.project(h)

    def item_terms(self, items: Tensor) -> tuple[Tensor, Tensor]:
        """(e'_i [.., d], b_i [..]); zeros for codes < 0 or ≥ n_items (unknown / padding)."""
        ok = (items >= 0) & (items < self.n_items)
        safe = torch.where(ok, items, torch.zeros_like(items))
        return (self.output_embedding(safe) * ok.unsqueeze(-1),
                self.output_bias(safe).squeeze(-1) * ok)

    def all_items(self) -> tuple[Tensor, Tensor]:
        """Output embeddings e'_i [n_items, d] and biases b_i [n_items] of every item."""
        return self.output_embedding.weight, self.output_bias.weight.squeeze(-1)


class SASRecModule(nn.Module):
    """SASRec (Kang & McAuley 2018): F = LN(SAB^(L)(…SAB^(1)(√d · M_s + P))), r_{i,t} = F_t · M_i.

    Pre-norm transformer blocks (`nn.TransformerEncoderLayer`, norm_first) with a causal mask,
    so position t attends to positions ≤ t only; padded positions are zeroed after the
    embedding and after every block (as in the reference implementation).

    Args:
        n_items: number of item codes; code `n_items` is the padding / start token.
        embedding_size: d.
        max_len: number of learned positions.
        n_layers, n_heads: transformer blocks and attention heads.
        dropout: dropout of embeddings, attention and feed-forward layers.
    """

    def __init__(self, n_items: int, embedding_size: int, max_len: int, n_layers: int,
                 n_heads: int, dropout: float) -> None:
        super().__init__()
        self.n_items = n_items
        self.scale = math.sqrt(embedding_size)
        self.item_embedding = nn.Embedding(n_items + 1, embedding_size, padding_idx=n_items)
        self.position_embedding = nn.Embedding(max_len, embedding_size)
        self.dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList([
            nn.TransformerEncoderLayer(embedding_size, n_heads, dim_feedforward=embedding_size,
                                       dropout=dropout, activation="relu", batch_first=True,
                                       norm_first=True)
            for _ in range(n_layers)])
        self.norm = nn.LayerNorm(embedding_size)
        nn.init.normal_(self.item_embedding.weight, std=0.05)
        nn.init.normal_(self.position_embedding.weight, std=0.05)
        with torch.no_grad():
            self.item_embedding.weight[n_items].zero_()

    def forward(self, seq: Tensor, users: Tensor | None = None) -> Tensor:
        """Outputs F [b, L, d] for every prefix of `seq` [b, L] (`users` is ignored)."""
        length = seq.shape[1]
        keep = (seq != self.n_items).unsqueeze(-1).to(self.item_embedding.weight.dtype)
        positions = torch.arange(length, device=seq.device)
        x = self.item_embedding(seq) * self.scale + self.position_embedding(positions)
        x = self.dropout(x) * keep
        mask = nn.Transformer.generate_square_subsequent_mask(length, device=seq.device,
                                                              dtype=x.dtype)
        for block in self.blocks:
            x = block(x, src_mask=mask, is_causal=True) * keep
        return self.norm(x)

    def item_terms(self, items: Tensor) -> tuple[Tensor, Tensor]:
        """(M_i [.., d], 0 [..]); zero vectors for codes < 0 or ≥ n_items."""
        ok = (items >= 0) & (items < self.n_items)
        safe = torch.where(ok, items, torch.zeros_like(items))
        e = self.item_embedding(safe) * ok.unsqueeze(-1)
        return e, torch.zeros(e.shape[:-1], dtype=e.dtype, device=e.device)

    def all_items(self) -> tuple[Tensor, Tensor]:
        """Item embeddings M_i [n_items, d] (the padding row left out) and zero biases."""
        w = self.item_embedding.weight[: self.n_items]
        return w, torch.zeros(self.n_items, dtype=w.dtype, device=w.device)


# --- the shared recommender logic --------------------------------------------------------------
class _Encoder(Protocol):
    """What `_Sequential` uses of its module (`LSTMModule` or `SASRecModule`), for type checkers."""

    offset: Tensor  # LSTMModule's only: read with loss="mse", which SASRec does not take

    def __call__(self, seq: Tensor, users: Tensor) -> Tensor: ...

    def item_terms(self, items: Tensor) -> tuple[Tensor, Tensor]: ...

    def all_items(self) -> tuple[Tensor, Tensor]: ...


class _Sequential(TorchRecommender):
    """Histories, windows, sampled negatives and scoring shared by LSTMRec and SASRec.

    Learned state: `sequences_` (int64 [n_users, max_len], each user's latest training items
    in time order, left-padded with the pad index n_items) and `sequence_ratings_` (their
    ratings). `history_` is the Trainer's per-epoch log, as for every TorchRecommender.
    """

    uses_sequence: ClassVar[bool] = True
    supports_fold_in: ClassVar[bool] = True
    score_block_size: ClassVar[int] = 512

    max_len: int
    loss: str
    n_negatives: int
    batch_size: int

    def _prepare(self, train: Dataset) -> None:
        super()._prepare(train)
        u, i = train.codes
        ts = train.ratings["timestamp"].to_numpy(np.int64)
        r = train.ratings["rating"].to_numpy(np.float32)
        self.sequences_, self.sequence_ratings_ = build_histories(
            u, i, ts, self.n_users_, self.n_items_, self.max_len, r)
        self._contexts_cache: Tensor | None = None
        if self.loss != "mse":
            self._sampler = NegativeSampler(self.seen_)

    def training_data(self, train: Dataset) -> dict[str, Tensor]:
        u, i = train.codes
        w = build_windows(u, i, train.ratings["timestamp"].to_numpy(np.int64),
                          train.ratings["rating"].to_numpy(np.float32),
                          self.n_users_, self.n_items_, self.max_len)
        return {k: torch.from_numpy(v) for k, v in w.items()}

    def batches(self, data: dict[str, Tensor], generator: torch.Generator
                ) -> Iterator[dict[str, Tensor]]:
        for batch in iterate_batches(data, self.batch_size, generator):
            if self.loss != "mse":
                b, length = batch["target"].shape
                neg = self._sampler(batch["user"], length * self.n_negatives, generator)
                batch["negative"] = neg.reshape(b, length, self.n_negatives)
            yield batch

    def batch_loss(self, module: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        encoder = cast(_Encoder, module)
        q = encoder(batch["input"], batch["user"])  # [b, L, d]
        target = batch["target"]
        valid = target != self.n_items_
        e, b = encoder.item_terms(target)
        pos = (q * e).sum(-1) + b
        if self.loss == "mse":
            pred = encoder.offset + pos
            return mse_loss(pred[valid], batch["rating"][valid])
        e_n, b_n = encoder.item_terms(batch["negative"])
        neg = (q.unsqueeze(2) * e_n).sum(-1) + b_n  # [b, L, n]
        pos, neg = pos[valid], neg[valid]
        return bce_loss(pos, neg) if self.loss == "bce" else bpr_loss(pos, neg)

    # --- scoring -------------------------------------------------------------------------------
    def _context_rows(self, user_codes: Tensor) -> Tensor:
        """History rows [b, max_len] on the device; an all-padding row for unknown users (−1)."""
        cache = getattr(self, "_contexts_cache", None)
        if cache is None or cache.device != self.device_:
            cache = torch.from_numpy(np.asarray(self.sequences_, dtype=np.int64)).to(self.device_)
            self._contexts_cache = cache
        rows = cache[user_codes.clamp(min=0)]
        pad = torch.full_like(rows, self.n_items_)
        return torch.where((user_codes >= 0).unsqueeze(-1), rows, pad)

    def _queries(self, module: nn.Module, user_codes: Tensor) -> Tensor:
        """The encoder's output at the last position of each user's history: [b, d]."""
        return cast(_Encoder, module)(self._context_rows(user_codes), user_codes)[:, -1]

    def score_block(self, module: nn.Module, user_codes: Tensor, item_codes: Tensor | None
                    ) -> Tensor:
        q = self._queries(module, user_codes)
        encoder = cast(_Encoder, module)
        if item_codes is None:
            e, b = encoder.all_items()
        else:
            e, b = encoder.item_terms(item_codes)
        offset = encoder.offset if self.loss == "mse" else 0.0
        return offset + q @ e.T + b[None, :]

    def predict_pairs(self, module: nn.Module, user_codes: Tensor, item_codes: Tensor) -> Tensor:
        uniq, inverse = torch.unique(user_codes, return_inverse=True)
        q = self._queries(module, uniq)[inverse]
        encoder = cast(_Encoder, module)
        e, b = encoder.item_terms(item_codes)
        offset = encoder.offset if self.loss == "mse" else 0.0
        return offset + (q * e).sum(-1) + b

    def _predict(self, user_codes: np.ndarray, item_codes: np.ndarray) -> np.ndarray:
        pred = super()._predict(user_codes, item_codes)
        return clip_to_scale(pred, self.rating_scale_).astype(np.float32)

    # --- fold-in -------------------------------------------------------------------------------
    def _score_history(self, item_codes: np.ndarray, ratings: np.ndarray) -> np.ndarray:
        """Scores float32 [n_items] of a new user from the items they rated, in the order given.

        The given order is the user's time order: its last `max_len` known items (codes of −1
        are ignored) form the context row exactly as a training user's history does, and the
        encoder's output at the last position scores every item. With `user_embedding=True` the
        new user's own embedding is zero, as for any unknown user. A training user's own history
        folded in gets exactly that user's fitted scores (without a user embedding).
        """
        self._check_fitted()
        codes = np.asarray(item_codes, dtype=np.int64)
        codes = codes[codes >= 0][-self.max_len:]
        row = np.full((1, self.max_len), self.n_items_, dtype=np.int64)
        if len(codes):
            row[0, -len(codes):] = codes
        with self._eval() as evaluated:
            module = cast(_Encoder, evaluated)
            q = module(torch.from_numpy(row).to(self.device_),
                       torch.full((1,), -1, dtype=torch.long, device=self.device_))[:, -1]
            e, b = module.all_items()
            offset = module.offset if self.loss == "mse" else 0.0
            scores = offset + q @ e.T + b[None, :]
        return scores[0].float().cpu().numpy()


def _check_common(max_len: int, dropout: float, epochs: int, batch_size: int,
                  learning_rate: float, weight_decay: float, n_negatives: int,
                  patience: int | None, grad_clip: float | None, device: str) -> None:
    check_param("max_len", max_len, is_int(max_len, 1), "an integer ≥ 1")
    check_param("dropout", dropout, is_number(dropout) and 0 <= dropout < 1, "a number in [0, 1)")
    check_param("n_negatives", n_negatives, is_int(n_negatives, 1), "an integer ≥ 1")
    check_trainer_params({"epochs": epochs, "batch_size": batch_size,
                          "learning_rate": learning_rate, "weight_decay": weight_decay,
                          "patience": patience, "grad_clip": grad_clip, "device": device})


class LSTMRec(_Sequential):
    """LSTM next-item recommender on the shared `Trainer`.

    GRU4Rec-style (Hidasi et al. ICLR 2016); LSTM as in Devooght & Bersini, UMAP 2017.

    h_t = LSTM(e_{s_1}, …, e_{s_t}) over the user's time-ordered items; the query
    q_t = W [h_t; p_u] + c (p_u only with `user_embedding=True`, zero for unknown users) scores a
    candidate with the bilinear head s(i | s_1..t) = q_t · e'_i + b_i, so a user is encoded once
    and all items are scored by one matrix product. At evaluation the context is the user's last
    `max_len` training items; an unknown user gets the empty (all-padding) context.

    With `loss="bce"` (default) or `"bpr"` it learns next-item ranking against `n_negatives`
    sampled unseen items per position (early stopping on NDCG@10); `predict` then returns the
    score clipped to the rating scale (as MF does under ranking losses), not a rating estimate.
    With `loss="mse"` it fits r̂ = μ + q_t · e'_i + b_i, the rating of the next item given the
    prefix (early stopping on RMSE).

    Trainer parameters (`movierec.training.TrainerParams`; defaults in the signature): a batch
    is sequence windows.

    Args:
        embedding_size: item (and user) embedding size (default 64, ≥ 1).
        hidden_size: LSTM state size (default 128, ≥ 1).
        user_embedding: add a user embedding to the head (default False).
        dropout: on input embeddings and LSTM outputs (default 0.2, in [0, 1)).
        max_len: latest interactions kept as context and training window length (default 50).
        loss: "bce" (default), "bpr" or "mse".
        n_negatives: sampled unseen items per position for bce/bpr (default 1, ≥ 1).
    """

    name: ClassVar[str] = "lstm"
    search_space: ClassVar[SearchSpace] = {
        "embedding_size": Int(16, 128, log=True),
        "hidden_size": Int(32, 256, log=True),
        "dropout": Float(0.0, 0.5),
        "max_len": Int(10, 200, log=True),
        "learning_rate": Float(1e-4, 3e-2, log=True),
        "weight_decay": Float(1e-7, 1e-2, log=True),
    }
    predicts_ratings: ClassVar[bool] = True

    def __init__(self, *, embedding_size: int = 64, hidden_size: int = 128,
                 user_embedding: bool = False, dropout: float = 0.2, max_len: int = 50,
                 loss: str = "bce", n_negatives: int = 1, epochs: int = 30,
                 batch_size: int = 128, learning_rate: float = 1e-3, weight_decay: float = 0.0,
                 patience: int | None = 3, grad_clip: float | None = 5.0,
                 device: str = "auto") -> None:
        check_param("embedding_size", embedding_size, is_int(embedding_size, 1), "an integer ≥ 1")
        check_param("hidden_size", hidden_size, is_int(hidden_size, 1), "an integer ≥ 1")
        check_param("user_embedding", user_embedding, isinstance(user_embedding, bool), "a bool")
        check_param("loss", loss, loss in ("bce", "bpr", "mse"), "one of ['bce', 'bpr', 'mse']")
        _check_common(max_len, dropout, epochs, batch_size, learning_rate, weight_decay,
                      n_negatives, patience, grad_clip, device)
        self.embedding_size = embedding_size
        self.hidden_size = hidden_size
        self.user_embedding = user_embedding
        self.dropout = dropout
        self.max_len = max_len
        self.loss = loss
        self.n_negatives = n_negatives
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.patience = patience
        self.grad_clip = grad_clip
        self.device = device

    def build_module(self) -> LSTMModule:
        """A fresh `LSTMModule` (offset μ with `loss="mse"`, else 0)."""
        offset = self.global_mean_ if self.loss == "mse" else 0.0
        return LSTMModule(self.n_users_, self.n_items_, self.embedding_size, self.hidden_size,
                          self.dropout, self.user_embedding, offset)

    def item_vectors(self) -> np.ndarray:
        """Output item embeddings e'_i [n_items, embedding_size]."""
        self._check_fitted()
        return cast(LSTMModule, self.module_).output_embedding.weight.detach().cpu().numpy()


class SASRec(_Sequential):
    """SASRec: self-attentive sequential recommendation (Kang & McAuley, ICDM 2018).

    Input Ê_t = √d · M_{s_t} + P_t (item embedding M, learned positions P; padding zeroed), then
    `n_layers` causal self-attention blocks S = SA(Ê) = softmax(Q Kᵀ / √d) V with position t
    attending to positions ≤ t only, each followed by a point-wise feed-forward network
    (residual connections, layer normalization, dropout). The relevance of item i after the
    prefix s_1..t is r_{i,t} = F_t · M_i with the shared item embedding (eq. 6). Training uses the
    binary cross-entropy of eq. 7 with one sampled unseen negative per position (`n_negatives`),
    teacher-forced over all positions; `loss="bpr"` swaps in BPR. Scoring encodes the user's last
    `max_len` training items once and multiplies F_last by every item embedding; an unknown user
    gets the empty (all-padding) context. SASRec ranks: it does not predict ratings.

    Trainer parameters (`movierec.training.TrainerParams`; defaults in the signature): a batch
    is sequence windows.

    Args:
        embedding_size: d (default 64, ≥ 1, divisible by n_heads).
        n_layers: self-attention blocks (default 2, ≥ 1).
        n_heads: attention heads (default 1, ≥ 1).
        dropout: embedding / attention / feed-forward dropout (default 0.2, in [0, 1)).
        max_len: latest interactions kept as context and training window length (default 50).
        loss: "bce" (default, the paper's) or "bpr".
        n_negatives: sampled unseen items per position (default 1, ≥ 1).
    """

    name: ClassVar[str] = "sasrec"
    search_space: ClassVar[SearchSpace] = {
        "embedding_size": Choice([32, 64, 128]),
        "n_layers": Int(1, 3),
        "dropout": Float(0.0, 0.5),
        "max_len": Int(10, 200, log=True),
        "learning_rate": Float(1e-4, 3e-2, log=True),
        "weight_decay": Float(1e-7, 1e-2, log=True),
    }

    def __init__(self, *, embedding_size: int = 64, n_layers: int = 2, n_heads: int = 1,
                 dropout: float = 0.2, max_len: int = 50, loss: str = "bce",
                 n_negatives: int = 1, epochs: int = 30, batch_size: int = 128,
                 learning_rate: float = 1e-3, weight_decay: float = 0.0,
                 patience: int | None = 3, grad_clip: float | None = None,
                 device: str = "auto") -> None:
        check_param("embedding_size", embedding_size, is_int(embedding_size, 1), "an integer ≥ 1")
        check_param("n_layers", n_layers, is_int(n_layers, 1), "an integer ≥ 1")
        check_param("n_heads", n_heads, is_int(n_heads, 1) and is_int(embedding_size, 1)
                    and embedding_size % n_heads == 0,
                    "an integer ≥ 1 dividing embedding_size")
        check_param("loss", loss, loss in ("bce", "bpr"), "one of ['bce', 'bpr']")
        _check_common(max_len, dropout, epochs, batch_size, learning_rate, weight_decay,
                      n_negatives, patience, grad_clip, device)
        self.embedding_size = embedding_size
        self.n_layers = n_layers
        self.n_heads = n_heads
        self.dropout = dropout
        self.max_len = max_len
        self.loss = loss
        self.n_negatives = n_negatives
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.patience = patience
        self.grad_clip = grad_clip
        self.device = device

    def build_module(self) -> SASRecModule:
        """A fresh `SASRecModule` for the fitted item count and hyper-parameters."""
        return SASRecModule(self.n_items_, self.embedding_size, self.max_len, self.n_layers,
                            self.n_heads, self.dropout)

    def item_vectors(self) -> np.ndarray:
        """Item embeddings M_i [n_items, embedding_size] (shared by input and output)."""
        self._check_fitted()
        module = cast(SASRecModule, self.module_)
        return module.item_embedding.weight[: self.n_items_].detach().cpu().numpy()
