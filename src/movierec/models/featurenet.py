"""FeatureNet: user/item embeddings plus demographic and movie features through a small MLP.

The feature-aware network of the ML-100K seed project, trained with the shared `Trainer`:

    x_ui = [p_u ; f_u ; q_i ; g_i]
    r̂_ui = μ + w₂ · Dropout(ReLU(BN(W₁ x_ui + b₁))) + b₂

with p_u, q_i learned embeddings, f_u the user's encoded features (age, gender, occupation) and
g_i the item's (genres, release year, release month when the item table has one). With
`scale_ratings=True` the output is lo + (hi − lo) · σ(logit((μ − lo)/(hi − lo)) + ...), so it
never leaves the rating range.

Features are encoded once, in `_prepare`, from the training dataset only (`user_feature_spec`,
`item_feature_spec`): vocabularies of genders, occupations, age groups and genres, and the mean
and standard deviation of age and year over the training users and items. The spec is kept as
JSON and the encoded tables as float32 arrays, so a saved model predicts exactly as before.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import ClassVar, NamedTuple, cast

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from torch import Tensor, nn

from movierec.data.dataset import Dataset
from movierec.models._features import (
    AGE_ENCODINGS,
    ML1M_AGE_GROUPS,
    encode_items,
    encode_users,
    feature_names,
    item_feature_spec,
    user_feature_spec,
)
from movierec.models._people_torch import (
    ID_DROPOUT,
    PeopleBag,
    check_people_params,
    drop_ids,
    fit_people,
    people_arrays,
)
from movierec.models.base import check_param, is_int, is_number
from movierec.models.baseline import clip_to_scale
from movierec.models.space import Choice, Float, Int, SearchSpace
from movierec.models.svdpp import csr_bags
from movierec.ranking import user_blocks
from movierec.training import (
    LOSSES,
    NegativeSampler,
    TorchRecommender,
    bce_loss,
    bpr_loss,
    check_trainer_params,
    iterate_batches,
    mse_loss,
    scaled_logit,
)

__all__ = [
    "ML1M_AGE_GROUPS",
    "FeatureNet",
    "FeatureNetModule",
    "encode_items",
    "encode_users",
    "feature_names",
    "item_feature_spec",
    "user_feature_spec",
]

# --- the network ---------------------------------------------------------------------------------
IMPLICIT_MODES = ("none", "wide", "mlp", "both")


class Side(NamedTuple):
    """One side (users or items) of a batch, as the network consumes it.

    Attributes:
        mlp: [n, width] input of the MLP's first layer ([p_u; f_u (; s_u)], [q_i; g_i (; t_i)]).
        factors: [n, k_w] factors of the wide branch, or None without one.
        bias: [n] bias of the wide branch, or None without one.
    """

    mlp: Tensor
    factors: Tensor | None
    bias: Tensor | None


class HistoryBag(nn.Module):
    """s_r = |N(r)|^-½ Σ_{c ∈ N(r)} y_c: a row's normalized sum over the columns it rated.

    SVD++'s implicit feedback (Koren, KDD 2008) for the rows of a users x items matrix (the
    items each user rated), or, on its transpose, the users who rated each item. The CSR
    structure lives in non-persistent buffers (rebuilt from the model's `seen_` on load); the
    state dict holds only y. Code −1 has an empty bag, whose sum is zero.

    Args:
        history: rows x columns CSR matrix whose nonzeros are the rated pairs.
        size: dimension of y.
    """

    indptr: Tensor
    keys: Tensor

    def __init__(self, history: sp.csr_matrix, size: int) -> None:
        super().__init__()
        m = sp.csr_matrix(history).sorted_indices()  # a copy: `history` may be read-only
        self.factors = nn.EmbeddingBag(m.shape[1], size, mode="sum")
        self.register_buffer("indptr", torch.from_numpy(m.indptr.astype(np.int64)),
                             persistent=False)
        self.register_buffer("keys", torch.from_numpy(m.indices.astype(np.int64)),
                             persistent=False)

    def bags(self, rows: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(keys, offsets, |N(r)|^-½ per entry, bag sizes) of `rows` [b] for the EmbeddingBag."""
        return csr_bags(self.indptr, self.keys, rows)

    def forward(self, rows: Tensor) -> Tensor:
        """s_r [b, size] for row codes [b]; each distinct row is summed once."""
        distinct, inverse = torch.unique(rows, return_inverse=True)
        keys, offsets, weight, _ = self.bags(distinct)
        return self.factors(keys, offsets, per_sample_weights=weight)[inverse]

    def penalty(self, rows: Tensor) -> Tensor:
        """Mean over `rows` [b] of |N(r)|^-1 Σ_{c ∈ N(r)} ‖y_c‖², the mean squared norm of their y.

        Written as Σ_c w_c ‖y_c‖² with constant weights w_c: one product over the table instead
        of a second bag and its backward (as in SVD++).
        """
        y = self.factors.weight
        with torch.no_grad():
            distinct, inverse = torch.unique(rows, return_inverse=True)
            keys, _, weight, count = self.bags(distinct)
            per_row = torch.bincount(inverse, minlength=len(distinct)).to(y.dtype)
            per_entry = weight**2 * torch.repeat_interleave(per_row, count, output_size=len(keys))
            c = torch.zeros(len(y), dtype=y.dtype, device=y.device).index_add_(0, keys, per_entry)
        return (c * y.pow(2).sum(-1)).sum() / max(len(rows), 1)


class FeatureNetModule(nn.Module):
    """r̂_ui = offset + w₂ · Dropout(ReLU(BN(W₁ [p_u; f_u; q_i; g_i] + b₁))) + b₂ [+ wide_ui].

    Code −1 (a user or item unknown in training) gets a zero embedding and the mean feature row
    (the average training user or item), kept as the last row of the feature buffers.

    Optional parts (all off by default):

    - wide branch (`wide_size` k_w ≥ 1): a biased MF added to the MLP's output,
      wide_ui = b_u + b_i + p̃_u · q̃_i with its own factors and biases;
    - feature factors (`feature_factors`): the wide factors and biases also get linear maps of
      the features, p̃_u += A_u f_u, q̃_i += A_i g_i, b_u += a_u · f_u, b_i += a_i · g_i, so a
      user or item the data knows little about still gets the factors of its demographics or
      genres and year;
    - implicit feedback (`history`, `implicit`): SVD++'s s_u = |N(u)|^-½ Σ_{j ∈ N(u)} y_j over
      the items N(u) the user rated in training (a `HistoryBag`), added to p̃_u ("wide"),
      appended to the MLP's user input ("mlp"), or both with one table y ("both");
    - the items' side of it (`item_implicit`): t_i = |R(i)|^-½ Σ_{v ∈ R(i)} z_v over the users
      R(i) who rated item i, added to q̃_i and/or appended to the MLP's item input.

    Args:
        n_users: number of user codes.
        n_items: number of item codes.
        embedding_size: dimension k of p_u and q_i.
        user_features: float32 [n_users, d_u] encoded user features (d_u may be 0).
        item_features: float32 [n_items, d_i] encoded item features (d_i may be 0).
        hidden_size: width of the hidden layer.
        batch_norm: BatchNorm1d between the first linear layer and the ReLU.
        dropout: dropout probability after the ReLU during training.
        global_mean: μ, the mean training rating.
        scale: (lo, hi) for a sigmoid output in the rating range, or None (linear output).
        wide_size: factor dimension k_w of the wide branch (0: no wide branch).
        feature_factors: add the feature maps to the wide factors and biases (needs k_w ≥ 1).
        history: users x items CSR matrix of the training ratings (needed unless both implicit
            modes are "none").
        implicit: where s_u goes: "none", "wide", "mlp" or "both" (the wide ones need k_w ≥ 1).
        item_implicit: where t_i goes, as `implicit`.
        people: (n_persons, indptr, codes) of the training items' people lists: a `PeopleBag`
            of width embedding_size (+ k_w + 1 with a wide branch) whose parts are added to
            q_i, q̃_i and b_i; None: no people.
        id_dropout: probability, in training, that an item's id parts (q_i, q̃_i, b_i, t_i) are
            zeroed for an example (DropoutNet); its features and people stay.
    """

    user_features: Tensor
    item_features: Tensor
    offset: Tensor

    def __init__(self, n_users: int, n_items: int, embedding_size: int,
                 user_features: np.ndarray, item_features: np.ndarray, hidden_size: int,
                 batch_norm: bool, dropout: float, global_mean: float,
                 scale: tuple[float, float] | None = None, *, wide_size: int = 0,
                 feature_factors: bool = False, history: sp.csr_matrix | None = None,
                 implicit: str = "none", item_implicit: str = "none",
                 people: tuple[int, np.ndarray, np.ndarray] | None = None,
                 id_dropout: float = 0.0) -> None:
        super().__init__()
        for mode in (implicit, item_implicit):
            if mode not in IMPLICIT_MODES:
                raise ValueError(f"implicit modes are {list(IMPLICIT_MODES)}, got {mode!r}")
        if wide_size == 0 and (feature_factors or {implicit, item_implicit} & {"wide", "both"}):
            raise ValueError("feature_factors and implicit modes 'wide'/'both' need "
                             "wide_size ≥ 1")
        if history is None and (implicit != "none" or item_implicit != "none"):
            raise ValueError("implicit feedback needs the training history")
        self.user_embedding = nn.Embedding(n_users, embedding_size)
        self.item_embedding = nn.Embedding(n_items, embedding_size)
        for name, feats in (("user_features", user_features), ("item_features", item_features)):
            table = torch.from_numpy(np.asarray(feats, dtype=np.float32))
            # Derived from the learned feature tables, so not part of the state dict.
            self.register_buffer(name, torch.cat([table, table.mean(0, keepdim=True)]),
                                 persistent=False)
        d_u, d_i = int(user_features.shape[1]), int(item_features.shape[1])
        self.wide_size = wide_size
        if wide_size:
            self.wide_user = nn.Embedding(n_users, wide_size)
            self.wide_item = nn.Embedding(n_items, wide_size)
            self.user_bias = nn.Embedding(n_users, 1)
            self.item_bias = nn.Embedding(n_items, 1)
        self.user_feature_map = nn.Linear(d_u, wide_size + 1, bias=False) if feature_factors \
            else None
        self.item_feature_map = nn.Linear(d_i, wide_size + 1, bias=False) if feature_factors \
            else None
        self.modes = {"user": implicit, "item": item_implicit}
        widths = {"user": embedding_size + d_u, "item": embedding_size + d_i}
        self.bags = nn.ModuleDict()
        for side, mode in self.modes.items():
            if mode == "none":
                continue
            assert history is not None
            if history.shape != (n_users, n_items):
                raise ValueError(f"history must be {n_users} x {n_items}, got {history.shape}")
            size = wide_size if mode in ("wide", "both") else embedding_size
            self.bags[side] = HistoryBag(history if side == "user" else history.T.tocsr(), size)
            widths[side] += size if mode in ("mlp", "both") else 0
        self.user_width = widths["user"]
        self.embedding_size = embedding_size
        self.id_dropout = id_dropout
        self.people = (None if people is None else
                       PeopleBag(people[0], embedding_size + (wide_size + 1 if wide_size else 0),
                                 *people[1:]))
        self.hidden = nn.Linear(widths["user"] + widths["item"], hidden_size)
        self.norm: nn.Module = nn.BatchNorm1d(hidden_size) if batch_norm else nn.Identity()
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_size, 1)
        self.scale = scale
        offset = global_mean if scale is None else scaled_logit(global_mean, scale)
        self.register_buffer("offset", torch.tensor(float(offset)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """MLP embeddings ~ N(0, 0.1²); wide, feature and implicit factors ~ N(0, 0.01²); biases 0.

        The small factors make training start near the MLP alone; linear layers are initialized as
        PyTorch's default.
        """
        nn.init.normal_(self.user_embedding.weight, std=0.1)
        nn.init.normal_(self.item_embedding.weight, std=0.1)
        tables = [getattr(self, "wide_user", None), getattr(self, "wide_item", None),
                  self.user_feature_map, self.item_feature_map]
        if self.people is not None:
            nn.init.normal_(self.people.embedding.weight, std=0.1)
        for table in tables + [bag.factors for bag in self.bags.values()]:
            if table is not None:
                nn.init.normal_(table.weight, std=0.01)
        if self.wide_size:
            nn.init.zeros_(self.user_bias.weight)
            nn.init.zeros_(self.item_bias.weight)
        self.hidden.reset_parameters()
        self.out.reset_parameters()
        nn.init.zeros_(self.out.bias)
        if isinstance(self.norm, nn.BatchNorm1d):
            self.norm.reset_parameters()

    @staticmethod
    def _lookup(table: nn.Embedding, codes: Tensor) -> Tensor:
        """Rows of `table` for `codes`, zeros for code −1."""
        return table(codes.clamp(min=0)) * (codes >= 0).unsqueeze(-1)

    def _side(self, side: str, codes: Tensor, keep: Tensor | None = None) -> Side:
        """One side of codes [n]; `keep` False zeroes an item's id parts (item-id dropout)."""
        user = side == "user"
        features = self.user_features if user else self.item_features
        # Code −1 reads the mean feature row (the last one).
        feats = features[torch.where(codes >= 0, codes, torch.full_like(codes,
                                                                         len(features) - 1))]
        ids = (codes >= 0) if keep is None else (codes >= 0) & keep
        return self._assemble(side, ids, feats, self.bags[side](codes) * ids.unsqueeze(-1)
                              if side in self.bags else None,
                              None if user or self.people is None else self.people(codes),
                              codes.clamp(min=0))

    def _assemble(self, side: str, ids: Tensor, feats: Tensor, implicit: Tensor | None,
                  people: Tensor | None, codes: Tensor) -> Side:
        """The side from id rows (zeroed where `ids` is False), features, bag sums and people."""
        user = side == "user"
        mask = ids.unsqueeze(-1).to(feats.dtype)
        emb = (self.user_embedding if user else self.item_embedding)(codes) * mask
        factors = bias = None
        if self.wide_size:
            factors = (self.wide_user if user else self.wide_item)(codes) * mask
            bias = ((self.user_bias if user else self.item_bias)(codes) * mask).squeeze(-1)
            fmap = self.user_feature_map if user else self.item_feature_map
            if fmap is not None:
                mapped = fmap(feats)
                factors, bias = factors + mapped[:, :-1], bias + mapped[:, -1]
        if people is not None:
            k = self.embedding_size
            emb = emb + people[:, :k]
            if factors is not None and bias is not None:
                factors, bias = factors + people[:, k:-1], bias + people[:, -1]
        mlp = [emb, feats]
        if implicit is not None:
            if self.modes[side] in ("wide", "both"):
                assert factors is not None
                factors = factors + implicit
            if self.modes[side] in ("mlp", "both"):
                mlp.append(implicit)
        return Side(torch.cat(mlp, dim=-1), factors, bias)

    def users(self, u: Tensor) -> Side:
        """The user side of codes u [n]."""
        return self._side("user", u)

    def items(self, i: Tensor) -> Side:
        """The item side of codes i [n] (with item-id dropout in training, see `id_dropout`)."""
        return self._side("item", i, drop_ids(i, self.id_dropout, self.training))

    def new_items(self, feats: Tensor, indptr: Tensor | None, keys: Tensor | None) -> Side:
        """The item side of movies without training ratings: id parts 0, features and people.

        Args:
            feats: float32 [n, d_i] their encoded features (`encode_items`).
            indptr: int64 [n + 1] row pointers of their people lists, or None.
            keys: int64 person codes of those lists, or None.
        """
        n = len(feats)
        codes = torch.zeros(n, dtype=torch.long, device=feats.device)
        ids = torch.zeros(n, dtype=torch.bool, device=feats.device)
        implicit = None
        if "item" in self.bags:
            size = cast(HistoryBag, self.bags["item"]).factors.embedding_dim
            implicit = feats.new_zeros(n, size)
        people = (None if self.people is None or indptr is None or keys is None
                  else self.people.new(indptr, keys))
        return self._assemble("item", ids, feats, implicit, people, codes)

    def user_part(self, u: Tensor) -> Tensor:
        """MLP input of the user side [n, user_width] (zero p and mean f for code −1)."""
        return self.users(u).mlp

    def item_part(self, i: Tensor) -> Tensor:
        """MLP input of the item side (zero q and mean g for code −1)."""
        return self.items(i).mlp

    def output(self, z: Tensor) -> Tensor:
        """Map z = offset + network output to the prediction (identity or scaled sigmoid)."""
        if self.scale is None:
            return z
        lo, hi = self.scale
        return lo + (hi - lo) * torch.sigmoid(z)

    def combine(self, user: Side, item: Side) -> Tensor:
        """z_ui of row-aligned user and item sides [n] (before `output`)."""
        x = torch.cat([user.mlp, item.mlp], dim=-1)
        h = self.dropout(torch.relu(self.norm(self.hidden(x))))
        z = self.offset + self.out(h).squeeze(-1)
        if user.factors is not None and item.factors is not None:
            assert user.bias is not None and item.bias is not None
            z = z + user.bias + item.bias + (user.factors * item.factors).sum(-1)
        return z

    def logits(self, u: Tensor, i: Tensor) -> Tensor:
        """z_ui for code pairs u [n], i [n] (before `output`); BatchNorm per the module's mode."""
        return self.combine(self.users(u), self.items(i))

    def forward(self, u: Tensor, i: Tensor) -> Tensor:
        """Predictions [n] for code pairs u [n], i [n]."""
        return self.output(self.logits(u, i))

    def block(self, u: Tensor, i: Tensor | None, chunk_elements: int = 1 << 24,
              item: Side | None = None) -> Tensor:
        """Predictions [users, items] of every pair, in eval mode (all items when `i` is None).

        W₁ x_ui = W_u [p_u; f_u] + W_i [q_i; g_i] splits over users and items, and eval-mode
        BatchNorm is a per-unit affine map s ⊙ h + t, so both sides are projected once and the
        pairs are formed by broadcasting, `chunk_elements` hidden values at a time; the wide
        branch is one matrix product. `item` (e.g. `new_items`) replaces the items of `i`.
        """
        n_items = self.item_embedding.num_embeddings
        user = self.users(u)
        if item is None:
            item = self.items(torch.arange(n_items, device=u.device) if i is None else i)
        w = self.hidden.weight
        a = user.mlp @ w[:, :self.user_width].T
        b = item.mlp @ w[:, self.user_width:].T + self.hidden.bias
        if isinstance(self.norm, nn.BatchNorm1d):
            bn = self.norm
            assert bn.running_var is not None and bn.running_mean is not None
            s = torch.rsqrt(bn.running_var + bn.eps)
            t = -bn.running_mean * s
            if bn.weight is not None and bn.bias is not None:
                s, t = s * bn.weight, t * bn.weight + bn.bias
            a, b = a * s, b * s + t
        w2, b2 = self.out.weight.squeeze(0), self.out.bias + self.offset
        hidden = w.shape[0]
        n_u, n_i = a.shape[0], b.shape[0]
        item_step = max(1, min(n_i, chunk_elements // hidden))
        user_step = max(1, chunk_elements // (item_step * hidden))
        out = torch.empty((n_u, n_i), dtype=a.dtype, device=a.device)
        for r in range(0, n_u, user_step):
            for c in range(0, n_i, item_step):
                h = torch.relu(a[r:r + user_step, None, :] + b[None, c:c + item_step, :])
                out[r:r + user_step, c:c + item_step] = h @ w2 + b2
        if user.factors is not None and item.factors is not None:
            assert user.bias is not None and item.bias is not None
            out = out + user.bias[:, None] + item.bias[None, :] + user.factors @ item.factors.T
        return self.output(out)


# --- the model -----------------------------------------------------------------------------------
class FeatureNet(TorchRecommender):
    """Feature-aware embedding network for ratings (the ML-100K seed project's model).

    r̂_ui = μ + MLP([p_u ; f_u ; q_i ; g_i ; t_i]) + b_u + b_i + p̃_u · q̃_i with one hidden layer
    Linear → BatchNorm1d → ReLU → Dropout → Linear, trained on the shared `Trainer` with mean
    squared error (see `FeatureNetModule`). The second part is a "wide" biased MF branch
    (wide & deep; `wide_size`), whose user factor carries SVD++'s implicit feedback,
    p̃_u = p'_u + |N(u)|^-½ Σ_{j ∈ N(u)} y_j over the items N(u) the user rated in training
    (`implicit`), and whose item factor the symmetric sum over the users R(i) who rated the item,
    q̃_i = q'_i + t_i with t_i = |R(i)|^-½ Σ_{v ∈ R(i)} z_v, which is also fed to the MLP
    (`item_implicit="both"`). Each part can be switched off (`wide_size=0`, `implicit="none"`,
    `item_implicit="none"`), which gives the first release's plain MLP.

    User features f_u: age (standardized years, or one-hot of ML-1M's age-group codes), gender
    and occupation one-hot; item features g_i: genre multi-hot,
    standardized release year, and release month one-hot when the item table has a month
    column. Everything is encoded from the training dataset only; releases without a users table
    use item features only, data without an item table embeddings only. Values unseen in
    training (a new occupation, an unknown year, a user missing from the table) encode as zeros,
    i.e. the mean for standardized numbers.

    Unknown users/items at prediction (code −1) get a zero embedding and the mean feature row
    of the training users/items, so `predict` returns the network's guess for an average user
    or item rather than failing.

    With `loss="bpr"` or `"bce"` it learns a ranking against `n_negatives` sampled unseen items
    per rating (early stopping then uses NDCG@10); `predict` is then only a score clipped to the
    rating scale. Training batches of a single rating are skipped when `batch_norm=True`
    (BatchNorm needs two values per unit).

    Defaults were chosen on a 10% validation carve-out of ML-100K u1.base, never on u1.test
    (validation RMSE, seed 42; seed-to-seed spread about ±0.003): the plain MLP (64/128,
    dropout 0.5) 0.901; + wide branch (k 32) 0.896; + user implicit feedback 0.894; + dropout
    0.7, weight decay 1e-4 (learning rate 2e-3) 0.891; + item implicit feedback into the wide
    branch 0.885, into both parts 0.882; reg_implicit 0.3 (1.0, 0.1) 0.880 (0.882, 0.881);
    learning rate 1e-3 0.878 (steadier across seeds than 2e-3). At these settings the `--tune`
    grid of `benchmarks/featurenet_ml100k.py` gives implicit × item_implicit × dropout: wide/both
    0.878 (dropout 0.5 and 0.7 tie), none/both 0.884, wide/none 0.892, none/none 0.892. No gain
    from: feature factors (0.907), y per rating level with the target left out of its own sum
    (0.887), the user sum also in the MLP (0.885), wide_size 16 or 64, hidden 256, embedding 32,
    wide_reg 0.1, dropout 0.8 (all within ±0.003 or worse).

    Trainer parameters (`movierec.training.TrainerParams`; defaults in the signature): a batch
    is ratings.

    Args:
        embedding_size: dimension of p_u and q_i (default 64, ≥ 1).
        hidden_size: units of the hidden layer (default 128, ≥ 1).
        batch_norm: BatchNorm1d after the first linear layer (default True).
        dropout: dropout probability after the ReLU (default 0.7, in [0, 1)).
        reg: per-batch L2 penalty on the embeddings the batch touches,
            λ · mean(‖p_u‖² + ‖q_i‖²) (default 0.01, ≥ 0).
        scale_ratings: squash the output to the rating range with a scaled sigmoid
            (default False).
        user_features: feed age, gender and occupation when the data has a users table
            (default True; False: embeddings only on the user side).
        item_features: feed genres, year (and month) when the data has an item table
            (default True).
        age_encoding: "auto", "number" or "groups" (see `user_feature_spec`; default "auto").
        loss: "mse" (ratings), "bpr" or "bce" (ranking with sampled negatives). Default "mse".
        n_negatives: sampled unseen items per rating for bpr/bce (default 1, ≥ 1).
        wide_size: factor dimension of the wide biased-MF branch (default 32; 0: no branch).
        wide_reg: per-batch L2 penalty on the wide factors and biases the batch touches,
            λ_w · mean(‖p'_u‖² + ‖q'_i‖² + b_u² + b_i²) (default 0.05, ≥ 0; as MF's `reg`).
        feature_factors: also map the features into the wide factors and biases,
            p̃_u += A_u f_u, q̃_i += A_i g_i (default False: no gain on ML-100K; needs
            wide_size ≥ 1).
        implicit: where the user's implicit sum goes: "wide" (added to p̃_u, as SVD++), "mlp"
            (appended to the MLP's user input), "both" (one table for both) or "none"
            (default "wide"; "wide"/"both" need wide_size ≥ 1).
        item_implicit: where the item's sum over its raters goes, as `implicit`
            (default "both").
        reg_implicit: per-batch L2 penalty on the implicit factors of the batch's users and
            items, λ_y · mean(|N(u)|^-1 Σ_{j ∈ N(u)} ‖y_j‖²) and the same for the items
            (default 0.3, ≥ 0).
        people: add the mean embedding of each movie's directors and top-billed actors to the
            item side (q_i, and q̃_i and b_i with a wide branch) and train with item-id dropout;
            needs directors/actors in the item table (default False; see "Cold start").
        max_actors: top-billed actors per movie used with `people` (default 3, ≥ 0).
        id_dropout: probability that a training example's item id parts (q_i, q̃_i, b_i,
            t_i) are zeroed, with `people` only (default 0.5, in [0, 1); see "Cold start").

    Cold start (`score_new_items`): a movie without training ratings gets the item side an
    unknown movie would, with zero id parts, but its own encoded genres and year (the spec
    learned at fit) and, with `people`, its people's mean embedding. So it works with
    `item_features` (genres and year alone: weak) or `people` (`can_score_new_items`).
    DropoutNet's item-id dropout (Volkovs et al., NeurIPS 2017) trains exactly that
    representation: with probability `id_dropout` an example's item is seen through its
    content only, so the people embeddings must carry it on their own.
    """

    name: ClassVar[str] = "featurenet"
    search_space: ClassVar[SearchSpace] = {
        "embedding_size": Int(8, 128, log=True),
        "hidden_size": Int(32, 512, log=True),
        "dropout": Float(0.0, 0.8),
        "learning_rate": Float(1e-4, 3e-2, log=True),
        "weight_decay": Float(1e-7, 1e-2, log=True),
        "reg": Float(1e-4, 0.3, log=True),
        "wide_size": Int(8, 128, log=True),
        "wide_reg": Float(1e-3, 0.5, log=True),
        "implicit": Choice(list(IMPLICIT_MODES)),
        "item_implicit": Choice(list(IMPLICIT_MODES)),
        "reg_implicit": Float(1e-2, 5.0, log=True),
    }
    predicts_ratings: ClassVar[bool] = True
    uses_features: ClassVar[bool] = True
    #: Hidden values materialized at once when scoring blocks (2²⁴ floats = 64 MiB).
    score_chunk_elements: ClassVar[int] = 1 << 24

    user_feats_: np.ndarray
    item_feats_: np.ndarray

    def __init__(self, *, embedding_size: int = 64, hidden_size: int = 128, batch_norm: bool = True,
                 dropout: float = 0.7, epochs: int = 30, batch_size: int = 512,
                 learning_rate: float = 1e-3, weight_decay: float = 1e-4, reg: float = 0.01,
                 scale_ratings: bool = False, user_features: bool = True,
                 item_features: bool = True, age_encoding: str = "auto", loss: str = "mse",
                 n_negatives: int = 1, patience: int | None = 3, grad_clip: float | None = None,
                 wide_size: int = 32, wide_reg: float = 0.05, feature_factors: bool = False,
                 implicit: str = "wide", item_implicit: str = "both",
                 reg_implicit: float = 0.3, device: str = "auto", people: bool = False,
                 max_actors: int = 3, id_dropout: float = ID_DROPOUT) -> None:
        for name, value in (("embedding_size", embedding_size), ("hidden_size", hidden_size),
                            ("n_negatives", n_negatives)):
            check_param(name, value, is_int(value, 1), "an integer ≥ 1")
        for name, value in (("batch_norm", batch_norm), ("scale_ratings", scale_ratings),
                            ("user_features", user_features), ("item_features", item_features),
                            ("feature_factors", feature_factors)):
            check_param(name, value, isinstance(value, bool), "a bool")
        check_param("wide_size", wide_size, is_int(wide_size, 0), "an integer ≥ 0")
        for name, number in (("wide_reg", wide_reg), ("reg_implicit", reg_implicit)):
            check_param(name, number, is_number(number) and number >= 0, "a number ≥ 0")
        for name, mode in (("implicit", implicit), ("item_implicit", item_implicit)):
            check_param(name, mode, mode in IMPLICIT_MODES, f"one of {list(IMPLICIT_MODES)}")
            check_param(name, mode, mode in ("none", "mlp") or wide_size > 0,
                        '"none" or "mlp" when wide_size is 0')
        check_param("feature_factors", feature_factors, not feature_factors or wide_size > 0,
                    "False when wide_size is 0 (the feature factors live in the wide branch)")
        check_param("dropout", dropout, is_number(dropout) and 0 <= dropout < 1,
                    "a number in [0, 1)")
        check_trainer_params(locals())
        check_param("reg", reg, is_number(reg) and reg >= 0, "a number ≥ 0")
        check_param("age_encoding", age_encoding, age_encoding in AGE_ENCODINGS,
                    f"one of {list(AGE_ENCODINGS)}")
        check_param("loss", loss, loss in LOSSES, f"one of {list(LOSSES)}")
        check_people_params(people, max_actors, id_dropout)
        self.embedding_size = embedding_size
        self.hidden_size = hidden_size
        self.batch_norm = batch_norm
        self.dropout = dropout
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.reg = reg
        self.scale_ratings = scale_ratings
        self.user_features = user_features
        self.item_features = item_features
        self.age_encoding = age_encoding
        self.loss = loss
        self.n_negatives = n_negatives
        self.patience = patience
        self.grad_clip = grad_clip
        self.wide_size = wide_size
        self.wide_reg = wide_reg
        self.feature_factors = feature_factors
        self.implicit = implicit
        self.item_implicit = item_implicit
        self.reg_implicit = reg_implicit
        self.device = device
        self.people = people
        self.max_actors = max_actors
        self.id_dropout = id_dropout

    # --- TorchRecommender hooks ----------------------------------------------------------------
    def _prepare(self, train: Dataset) -> None:
        super()._prepare(train)
        user_ids, item_ids = train.user_vocab.index, train.item_vocab.index
        users = train.users if self.user_features else None
        items = train.items if self.item_features else None
        self.user_spec_ = user_feature_spec(users, user_ids, age_encoding=self.age_encoding)
        self.item_spec_ = item_feature_spec(items, item_ids)
        self.user_feats_ = encode_users(users, user_ids, self.user_spec_)
        self.item_feats_ = encode_items(items, item_ids, self.item_spec_)
        if self.people:
            self.people_spec_, self.people_indptr_, self.people_codes_ = fit_people(
                train.items, item_ids, self.max_actors)
        if self.loss != "mse":
            self._sampler = NegativeSampler(self.seen_)

    def build_module(self) -> FeatureNetModule:
        """A fresh `FeatureNetModule` for the fitted sizes, features, scale and history."""
        lo, hi = self.rating_scale_
        scale = (lo, hi) if self.scale_ratings and hi > lo else None
        # seen_ is restored before build_module on load, so N(u) needs no tensors of its own.
        people = ((len(self.people_spec_["persons"]), self.people_indptr_, self.people_codes_)
                  if self.people else None)
        return FeatureNetModule(self.n_users_, self.n_items_, self.embedding_size,
                                self.user_feats_, self.item_feats_, self.hidden_size,
                                self.batch_norm, self.dropout, self.global_mean_, scale,
                                wide_size=self.wide_size, feature_factors=self.feature_factors,
                                history=self.seen_, implicit=self.implicit,
                                item_implicit=self.item_implicit, people=people,
                                id_dropout=self.id_dropout if self.people else 0.0)

    def batches(self, data: dict[str, Tensor], generator: torch.Generator
                ) -> Iterator[dict[str, Tensor]]:
        """Rating batches with negatives for bce/bpr (BatchNorm with mse skips a one-row batch)."""
        for batch in iterate_batches(data, self.batch_size, generator):
            if self.loss != "mse":
                batch["negative"] = self._sampler(batch["user"], self.n_negatives, generator)
            elif self.batch_norm and len(batch["user"]) < 2:
                continue  # BatchNorm cannot normalize a single pair in training mode
            yield batch

    def batch_loss(self, module: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        """The batch's loss (mse, bce or bpr) plus the L2 and implicit-bag penalties."""
        assert isinstance(module, FeatureNetModule)
        u, i = batch["user"], batch["item"]
        penalty = self._penalty(module, u, i)
        if self.reg_implicit > 0:
            for side, codes in (("user", u), ("item", i)):
                if side in module.bags:
                    bag = cast(HistoryBag, module.bags[side])  # an nn.ModuleDict of HistoryBags
                    penalty = penalty + self.reg_implicit * bag.penalty(codes)
        if self.loss == "mse":
            return mse_loss(module(u, i), batch["rating"]) + penalty
        neg = batch["negative"]
        n = neg.shape[1]
        # One pass over positives and negatives, so BatchNorm's statistics cover both.
        z = module.logits(torch.cat([u, u.repeat_interleave(n)]), torch.cat([i, neg.reshape(-1)]))
        pos, negative = z[:len(u)], z[len(u):].view(len(u), n)
        fit = bpr_loss(pos, negative) if self.loss == "bpr" else bce_loss(pos, negative)
        return fit + penalty + self._penalty(module, None, neg.reshape(-1))

    def _penalty(self, module: FeatureNetModule, u: Tensor | None, i: Tensor) -> Tensor:
        """The L2 penalty over the batch's (user, item) rows: learned rows only.

        reg · mean(‖p_u‖² + ‖q_i‖²) + wide_reg · mean(‖p'_u‖² + ‖q'_i‖² + b_u² + b_i²); the feature
        maps and bags are not penalized.
        """
        sq = module.item_embedding(i).pow(2).sum(-1) * self.reg
        if module.wide_size:
            sq = sq + self.wide_reg * (module.wide_item(i).pow(2).sum(-1)
                                       + module.item_bias(i).squeeze(-1) ** 2)
        if u is not None:
            sq = sq + self.reg * module.user_embedding(u).pow(2).sum(-1)
            if module.wide_size:
                sq = sq + self.wide_reg * (module.wide_user(u).pow(2).sum(-1)
                                           + module.user_bias(u).squeeze(-1) ** 2)
        return sq.mean()

    def score_block(self, module: nn.Module, user_codes: Tensor, item_codes: Tensor | None
                    ) -> Tensor:
        """Scores [users, items] from the module's `block`, in chunks of `score_chunk_elements`."""
        assert isinstance(module, FeatureNetModule)
        return module.block(user_codes, item_codes, self.score_chunk_elements)

    def predict_pairs(self, module: nn.Module, user_codes: Tensor, item_codes: Tensor) -> Tensor:
        """The module's predictions for code pairs."""
        return module(user_codes, item_codes)

    def _predict(self, user_codes: np.ndarray, item_codes: np.ndarray) -> np.ndarray:
        pred = super()._predict(user_codes, item_codes)
        return clip_to_scale(pred, self.rating_scale_).astype(np.float32)

    # --- cold start ----------------------------------------------------------------------------
    def can_score_new_items(self) -> bool:
        """True with `people`, or with `item_features` when the training data had an item table.

        Without people a new movie is told apart from others by its genres and year only.
        """
        return self.people or (self.item_features and bool(getattr(self, "item_spec_", True)))

    def _score_new_items(self, user_codes: np.ndarray, items: pd.DataFrame) -> np.ndarray:
        """Predictions for new movies from their features and people (see "Cold start")."""
        ids = (items["item_id"].to_numpy() if "item_id" in items.columns
               else np.arange(len(items)))
        table = items if "item_id" in items.columns else items.assign(item_id=ids)
        device = self.device_
        feats = torch.from_numpy(encode_items(table if self.item_features else None, ids,
                                              self.item_spec_)).to(device)
        indptr = keys = None
        if self.people:
            ptr, codes = people_arrays(items, None, self.people_spec_)
            indptr, keys = torch.from_numpy(ptr).to(device), torch.from_numpy(codes).to(device)
        out = np.empty((len(user_codes), len(items)), dtype=np.float32)
        with self._eval() as module:
            assert isinstance(module, FeatureNetModule)
            side = module.new_items(feats, indptr, keys)
            for blk in user_blocks(len(user_codes), self.score_block_size):
                users = torch.from_numpy(np.asarray(user_codes[blk], np.int64)).to(device)
                out[blk] = module.block(users, None, self.score_chunk_elements,
                                        item=side).float().cpu().numpy()
        return out

    # --- introspection -------------------------------------------------------------------------
    def feature_names(self) -> tuple[list[str], list[str]]:
        """Names of the columns of `user_feats_` and `item_feats_` (e.g. "occupation=writer")."""
        self._check_fitted()
        return feature_names(self.user_spec_, "user"), feature_names(self.item_spec_, "item")
