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

from collections.abc import Iterator, Sequence
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from movierec.data.dataset import Dataset
from movierec.models.base import check_param, is_int, is_number
from movierec.models.baseline import clip_to_scale
from movierec.models.space import Float, Int, SearchSpace
from movierec.train import (
    LOSSES,
    NegativeSampler,
    TorchRecommender,
    bce_loss,
    bpr_loss,
    is_device,
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

#: Age-group codes of ML-1M's users.dat (1: under 18, 18: 18-24, ..., 56: 56+).
ML1M_AGE_GROUPS = (1, 18, 25, 35, 45, 50, 56)
AGE_ENCODINGS = ("auto", "number", "groups")


# --- feature encoding ----------------------------------------------------------------------------
def _lookup(table: pd.DataFrame | None, key: str, ids: np.ndarray, column: str) -> pd.Series | None:
    """`column` of `table` for each of `ids` (NaN where an id is absent), or None without it."""
    if table is None or column not in table.columns or key not in table.columns:
        return None
    indexed = table.drop_duplicates(key).set_index(key)[column]
    return indexed.reindex(pd.Index(np.asarray(ids))).reset_index(drop=True)


def _vocab(values: pd.Series) -> list[Any]:
    """Sorted distinct non-missing values (plain Python scalars, so the list is JSON-able)."""
    known = values.dropna()
    return sorted({v.item() if isinstance(v, np.generic) else v for v in known.tolist()})


def _one_hot(values: pd.Series, vocab: Sequence[Any]) -> np.ndarray:
    """float32 [n, len(vocab)]; values outside `vocab` (or missing) give a zero row."""
    out = np.zeros((len(values), len(vocab)), dtype=np.float32)
    cols = pd.Index(list(vocab)).get_indexer(pd.Index(values.to_numpy()))
    rows = np.flatnonzero(cols >= 0)
    out[rows, cols[rows]] = 1.0
    return out


def _as_str(values: pd.Series) -> pd.Series:
    """Values as str objects, missing ones as None (vocabularies are kept as strings)."""
    return pd.Series(values.astype("string").to_numpy(dtype=object, na_value=None))


def _moments(values: pd.Series) -> dict[str, float] | None:
    """Mean and standard deviation (1 where it is 0) of the finite values; None without any."""
    x = pd.to_numeric(values, errors="coerce").to_numpy(np.float64)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return None
    std = float(x.std())
    return {"mean": float(x.mean()), "std": std if std > 0 else 1.0}


def _standardized(values: pd.Series, moments: dict[str, float]) -> np.ndarray:
    """float32 [n, 1] of (x − mean) / std; missing values become 0 (the mean)."""
    x = pd.to_numeric(values, errors="coerce").to_numpy(np.float64)
    z = (x - moments["mean"]) / moments["std"]
    return np.where(np.isfinite(z), z, 0.0).astype(np.float32)[:, None]


def user_feature_spec(users: pd.DataFrame | None, user_ids: np.ndarray, *,
                      age_encoding: str = "auto") -> dict[str, Any]:
    """The user-feature encoding learned from the users `user_ids` (the training users).

    Args:
        users: table with user_id and any of age, gender, occupation (None: no features).
        user_ids: original ids of the training users; only their rows shape the encoding.
        age_encoding: "number" (standardized years), "groups" (one-hot of the distinct ages, as
            for ML-1M's age-group codes) or "auto" (groups when every known age is one of
            `ML1M_AGE_GROUPS`, else number). Default "auto".

    Returns:
        JSON-able dict: "age" ({"kind": "number", "mean", "std"} or {"kind": "groups",
        "values"}), "gender" and "occupation" (sorted vocabularies); a feature with no known
        value among the training users is left out.
    """
    spec: dict[str, Any] = {}
    age = _lookup(users, "user_id", user_ids, "age")
    if age is not None:
        known = pd.to_numeric(age, errors="coerce").dropna()
        groups = age_encoding == "groups" or (
            age_encoding == "auto" and len(known) > 0 and bool(known.isin(ML1M_AGE_GROUPS).all()))
        if groups and len(known):
            spec["age"] = {"kind": "groups", "values": [float(v) for v in sorted(set(known))]}
        elif (moments := _moments(age)) is not None:
            spec["age"] = {"kind": "number", **moments}
    for column in ("gender", "occupation"):
        values = _lookup(users, "user_id", user_ids, column)
        if values is not None and (vocab := _vocab(_as_str(values))):
            spec[column] = vocab
    return spec


def encode_users(users: pd.DataFrame | None, user_ids: np.ndarray, spec: dict[str, Any]
                 ) -> np.ndarray:
    """float32 [len(user_ids), d_u] features of `user_ids` under `spec` (see `feature_names`).

    Unknown values — an occupation or gender outside the training vocabulary, a missing age, a
    user absent from `users` — encode as zeros, which for a standardized age is the mean.
    """
    parts = [np.zeros((len(user_ids), 0), dtype=np.float32)]
    if "age" in spec:
        age = _lookup(users, "user_id", user_ids, "age")
        age = pd.Series(np.full(len(user_ids), np.nan)) if age is None else age
        if spec["age"]["kind"] == "groups":
            parts.append(_one_hot(pd.to_numeric(age, errors="coerce").astype(np.float64),
                                  spec["age"]["values"]))
        else:
            parts.append(_standardized(age, spec["age"]))
    for column in ("gender", "occupation"):
        if column in spec:
            values = _lookup(users, "user_id", user_ids, column)
            values = pd.Series([None] * len(user_ids)) if values is None else values
            parts.append(_one_hot(_as_str(values), spec[column]))
    return np.ascontiguousarray(np.hstack(parts), dtype=np.float32)


def item_feature_spec(items: pd.DataFrame | None, item_ids: np.ndarray) -> dict[str, Any]:
    """The item-feature encoding learned from the items `item_ids` (the training items).

    Args:
        items: table with item_id and any of genres (tuples), year, month (1-12).
        item_ids: original ids of the training items.

    Returns:
        JSON-able dict: "genres" (sorted vocabulary), "year" ({"mean", "std"}), "month" (True
        when a month column has known values); features without known values are left out.
    """
    spec: dict[str, Any] = {}
    genres = _lookup(items, "item_id", item_ids, "genres")
    if genres is not None:
        vocab = sorted({str(g) for gs in genres if isinstance(gs, tuple | list) for g in gs})
        if vocab:
            spec["genres"] = vocab
    year = _lookup(items, "item_id", item_ids, "year")
    if year is not None and (moments := _moments(year)) is not None:
        spec["year"] = moments
    month = _lookup(items, "item_id", item_ids, "month")
    if month is not None and _moments(month) is not None:
        spec["month"] = True
    return spec


def encode_items(items: pd.DataFrame | None, item_ids: np.ndarray, spec: dict[str, Any]
                 ) -> np.ndarray:
    """float32 [len(item_ids), d_i] features of `item_ids` under `spec` (see `feature_names`).

    Genres are multi-hot (genres outside the vocabulary are ignored), the year is standardized
    (unknown: 0, the mean), the month one-hot over 1-12 (unknown: zeros).
    """
    n = len(item_ids)
    parts = [np.zeros((n, 0), dtype=np.float32)]
    if "genres" in spec:
        genres = _lookup(items, "item_id", item_ids, "genres")
        lists = pd.Series([tuple(g) if isinstance(g, tuple | list) else ()
                           for g in (genres if genres is not None else [()] * n)])
        flat = lists.explode()
        cols = pd.Index(spec["genres"]).get_indexer(pd.Index(flat.to_numpy()))
        rows = flat.index.to_numpy()[cols >= 0]
        multi = np.zeros((n, len(spec["genres"])), dtype=np.float32)
        multi[rows, cols[cols >= 0]] = 1.0
        parts.append(multi)
    if "year" in spec:
        year = _lookup(items, "item_id", item_ids, "year")
        parts.append(_standardized(year if year is not None else pd.Series(np.full(n, np.nan)),
                                   spec["year"]))
    if spec.get("month"):
        month = _lookup(items, "item_id", item_ids, "month")
        month = pd.Series(np.full(n, np.nan)) if month is None else month
        parts.append(_one_hot(pd.to_numeric(month, errors="coerce").astype(np.float64),
                              [float(m) for m in range(1, 13)]))
    return np.ascontiguousarray(np.hstack(parts), dtype=np.float32)


def feature_names(spec: dict[str, Any], kind: Literal["user", "item"]) -> list[str]:
    """Column names of `encode_users`/`encode_items` output, e.g. "occupation=writer", "year"."""
    names: list[str] = []
    if kind == "user":
        if "age" in spec:
            age = spec["age"]
            names += ([f"age={v:g}" for v in age["values"]] if age["kind"] == "groups"
                      else ["age"])
        for column in ("gender", "occupation"):
            names += [f"{column}={v}" for v in spec.get(column, [])]
    else:
        names += [f"genre={g}" for g in spec.get("genres", [])]
        names += ["year"] if "year" in spec else []
        names += [f"month={m}" for m in range(1, 13)] if spec.get("month") else []
    return names


# --- the network ---------------------------------------------------------------------------------
class FeatureNetModule(nn.Module):
    """r̂_ui = offset + w₂ · Dropout(ReLU(BN(W₁ [p_u; f_u; q_i; g_i] + b₁))) + b₂.

    Code −1 (a user or item unknown in training) gets a zero embedding and the mean feature row
    (the average training user or item), kept as the last row of the feature buffers.

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
    """

    user_features: Tensor
    item_features: Tensor
    offset: Tensor

    def __init__(self, n_users: int, n_items: int, embedding_size: int,
                 user_features: np.ndarray, item_features: np.ndarray, hidden_size: int,
                 batch_norm: bool, dropout: float, global_mean: float,
                 scale: tuple[float, float] | None = None) -> None:
        super().__init__()
        self.user_embedding = nn.Embedding(n_users, embedding_size)
        self.item_embedding = nn.Embedding(n_items, embedding_size)
        for name, feats in (("user_features", user_features), ("item_features", item_features)):
            table = torch.from_numpy(np.asarray(feats, dtype=np.float32))
            # Derived from the learned feature tables, so not part of the state dict.
            self.register_buffer(name, torch.cat([table, table.mean(0, keepdim=True)]),
                                 persistent=False)
        self.user_width = embedding_size + int(user_features.shape[1])
        width = self.user_width + embedding_size + int(item_features.shape[1])
        self.hidden = nn.Linear(width, hidden_size)
        self.norm: nn.Module = nn.BatchNorm1d(hidden_size) if batch_norm else nn.Identity()
        self.dropout = nn.Dropout(dropout)
        self.out = nn.Linear(hidden_size, 1)
        self.scale = scale
        offset = global_mean if scale is None else scaled_logit(global_mean, scale)
        self.register_buffer("offset", torch.tensor(float(offset)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Embeddings ~ N(0, 0.1²); linear layers as PyTorch's default; output bias 0."""
        nn.init.normal_(self.user_embedding.weight, std=0.1)
        nn.init.normal_(self.item_embedding.weight, std=0.1)
        self.hidden.reset_parameters()
        self.out.reset_parameters()
        nn.init.zeros_(self.out.bias)
        if isinstance(self.norm, nn.BatchNorm1d):
            self.norm.reset_parameters()

    @staticmethod
    def _side(table: nn.Embedding, features: Tensor, codes: Tensor) -> Tensor:
        known = codes >= 0
        emb = table(codes.clamp(min=0)) * known.unsqueeze(-1)
        rows = torch.where(known, codes, torch.full_like(codes, features.shape[0] - 1))
        return torch.cat([emb, features[rows]], dim=-1)

    def user_part(self, u: Tensor) -> Tensor:
        """[p_u ; f_u] for user codes [n] → [n, k + d_u] (zero p and mean f for code −1)."""
        return self._side(self.user_embedding, self.user_features, u)

    def item_part(self, i: Tensor) -> Tensor:
        """[q_i ; g_i] for item codes [n] → [n, k + d_i] (zero q and mean g for code −1)."""
        return self._side(self.item_embedding, self.item_features, i)

    def output(self, z: Tensor) -> Tensor:
        """Map z = offset + network output to the prediction (identity or scaled sigmoid)."""
        if self.scale is None:
            return z
        lo, hi = self.scale
        return lo + (hi - lo) * torch.sigmoid(z)

    def logits(self, u: Tensor, i: Tensor) -> Tensor:
        """z_ui for code pairs u [n], i [n] (before `output`); BatchNorm per the module's mode."""
        x = torch.cat([self.user_part(u), self.item_part(i)], dim=-1)
        h = self.dropout(torch.relu(self.norm(self.hidden(x))))
        return self.offset + self.out(h).squeeze(-1)

    def forward(self, u: Tensor, i: Tensor) -> Tensor:
        """Predictions [n] for code pairs u [n], i [n]."""
        return self.output(self.logits(u, i))

    def block(self, u: Tensor, i: Tensor | None, chunk_elements: int = 1 << 24) -> Tensor:
        """Predictions [users, items] of every pair, in eval mode (all items when `i` is None).

        W₁ x_ui = W_u [p_u; f_u] + W_i [q_i; g_i] splits over users and items, and eval-mode
        BatchNorm is a per-unit affine map s ⊙ h + t, so both sides are projected once and the
        pairs are formed by broadcasting, `chunk_elements` hidden values at a time.
        """
        n_items = self.item_embedding.num_embeddings
        items = torch.arange(n_items, device=u.device) if i is None else i
        w = self.hidden.weight
        a = self.user_part(u) @ w[:, :self.user_width].T
        b = self.item_part(items) @ w[:, self.user_width:].T + self.hidden.bias
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
        return self.output(out)


# --- the model -----------------------------------------------------------------------------------
class FeatureNet(TorchRecommender):
    """Feature-aware embedding network for ratings (the ML-100K seed project's model).

    r̂_ui = μ + MLP([p_u ; f_u ; q_i ; g_i]) with one hidden layer Linear → BatchNorm1d → ReLU →
    Dropout → Linear, trained on the shared `Trainer` with mean squared error (see
    `FeatureNetModule`). User features f_u: age (standardized years, or one-hot of ML-1M's
    age-group codes), gender and occupation one-hot; item features g_i: genre multi-hot,
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
    (BatchNorm needs two values per unit). Defaults were chosen on a 10% validation carve-out
    of ML-100K u1.base, never on u1.test: of embedding_size {32, 64} x hidden_size {64, 128} x
    dropout {0.2, 0.5}, 64/128/0.5 had the lowest validation RMSE (0.900; the range was
    0.900-0.910, dropout 0.5 better throughout); see `benchmarks/featurenet_ml100k.py --tune`.

    Args:
        embedding_size: dimension of p_u and q_i (default 64, ≥ 1).
        hidden_size: units of the hidden layer (default 128, ≥ 1).
        batch_norm: BatchNorm1d after the first linear layer (default True).
        dropout: dropout probability after the ReLU (default 0.5, in [0, 1)).
        epochs: maximum passes over the training ratings (default 30, ≥ 1).
        batch_size: ratings per Adam step (default 512, ≥ 1).
        learning_rate: Adam step size (default 1e-3, > 0).
        weight_decay: Adam weight decay on every parameter (default 0.0, ≥ 0).
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
        patience: epochs without validation improvement before stopping, when `fit` gets `valid`
            (default 3; None: never stop early).
        grad_clip: maximum global gradient norm (default None: no clipping).
        device: "auto" (cuda when available), "cpu", "cuda", "cuda:1"... (default "auto").
    """

    name: ClassVar[str] = "featurenet"
    search_space: ClassVar[SearchSpace] = {
        "embedding_size": Int(8, 128, log=True),
        "hidden_size": Int(32, 512, log=True),
        "dropout": Float(0.0, 0.6),
        "learning_rate": Float(1e-4, 3e-2, log=True),
        "weight_decay": Float(1e-7, 1e-2, log=True),
        "reg": Float(1e-4, 0.3, log=True),
    }
    predicts_ratings: ClassVar[bool] = True
    uses_features: ClassVar[bool] = True
    #: Hidden values materialized at once when scoring blocks (2²⁴ floats = 64 MiB).
    score_chunk_elements: ClassVar[int] = 1 << 24

    user_feats_: np.ndarray
    item_feats_: np.ndarray

    def __init__(self, *, embedding_size: int = 64, hidden_size: int = 128, batch_norm: bool = True,
                 dropout: float = 0.5, epochs: int = 30, batch_size: int = 512,
                 learning_rate: float = 1e-3, weight_decay: float = 0.0, reg: float = 0.01,
                 scale_ratings: bool = False, user_features: bool = True,
                 item_features: bool = True, age_encoding: str = "auto", loss: str = "mse",
                 n_negatives: int = 1, patience: int | None = 3, grad_clip: float | None = None,
                 device: str = "auto") -> None:
        for name, value in (("embedding_size", embedding_size), ("hidden_size", hidden_size),
                            ("epochs", epochs), ("batch_size", batch_size),
                            ("n_negatives", n_negatives)):
            check_param(name, value, is_int(value, 1), "an integer ≥ 1")
        for name, value in (("batch_norm", batch_norm), ("scale_ratings", scale_ratings),
                            ("user_features", user_features), ("item_features", item_features)):
            check_param(name, value, isinstance(value, bool), "a bool")
        check_param("dropout", dropout, is_number(dropout) and 0 <= dropout < 1,
                    "a number in [0, 1)")
        check_param("learning_rate", learning_rate, is_number(learning_rate) and learning_rate > 0,
                    "a number > 0")
        check_param("weight_decay", weight_decay, is_number(weight_decay) and weight_decay >= 0,
                    "a number ≥ 0")
        check_param("reg", reg, is_number(reg) and reg >= 0, "a number ≥ 0")
        check_param("age_encoding", age_encoding, age_encoding in AGE_ENCODINGS,
                    f"one of {list(AGE_ENCODINGS)}")
        check_param("loss", loss, loss in LOSSES, f"one of {list(LOSSES)}")
        check_param("patience", patience, patience is None or is_int(patience, 1),
                    "an integer ≥ 1 or None")
        check_param("grad_clip", grad_clip,
                    grad_clip is None or (is_number(grad_clip) and grad_clip > 0),
                    "a number > 0 or None")
        check_param("device", device, isinstance(device, str) and is_device(device),
                    '"auto", "cpu", "cuda" or "cuda:<n>"')
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
        self.device = device

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
        if self.loss != "mse":
            self._sampler = NegativeSampler(self.seen_)

    def build_module(self) -> FeatureNetModule:
        lo, hi = self.rating_scale_
        scale = (lo, hi) if self.scale_ratings and hi > lo else None
        return FeatureNetModule(self.n_users_, self.n_items_, self.embedding_size,
                                self.user_feats_, self.item_feats_, self.hidden_size,
                                self.batch_norm, self.dropout, self.global_mean_, scale)

    def batches(self, data: dict[str, Tensor], generator: torch.Generator
                ) -> Iterator[dict[str, Tensor]]:
        for batch in iterate_batches(data, self.batch_size, generator):
            if self.loss != "mse":
                batch["negative"] = self._sampler(batch["user"], self.n_negatives, generator)
            elif self.batch_norm and len(batch["user"]) < 2:
                continue  # BatchNorm cannot normalize a single pair in training mode
            yield batch

    def batch_loss(self, module: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        assert isinstance(module, FeatureNetModule)
        u, i = batch["user"], batch["item"]
        p = module.user_embedding(u)
        q = module.item_embedding(i)
        penalty = (p.pow(2).sum(-1) + q.pow(2).sum(-1)).mean()
        if self.loss == "mse":
            return mse_loss(module(u, i), batch["rating"]) + self.reg * penalty
        neg = batch["negative"]
        n = neg.shape[1]
        # One pass over positives and negatives, so BatchNorm's statistics cover both.
        z = module.logits(torch.cat([u, u.repeat_interleave(n)]), torch.cat([i, neg.reshape(-1)]))
        pos, negative = z[:len(u)], z[len(u):].view(len(u), n)
        fit = bpr_loss(pos, negative) if self.loss == "bpr" else bce_loss(pos, negative)
        penalty = penalty + module.item_embedding(neg).pow(2).sum(-1).mean()
        return fit + self.reg * penalty

    def score_block(self, module: nn.Module, user_codes: Tensor, item_codes: Tensor | None
                    ) -> Tensor:
        assert isinstance(module, FeatureNetModule)
        return module.block(user_codes, item_codes, self.score_chunk_elements)

    def predict_pairs(self, module: nn.Module, user_codes: Tensor, item_codes: Tensor) -> Tensor:
        return module(user_codes, item_codes)

    def _predict(self, user_codes: np.ndarray, item_codes: np.ndarray) -> np.ndarray:
        pred = super()._predict(user_codes, item_codes)
        return clip_to_scale(pred, self.rating_scale_).astype(np.float32)

    # --- introspection -------------------------------------------------------------------------
    def feature_names(self) -> tuple[list[str], list[str]]:
        """Names of the columns of `user_feats_` and `item_feats_` (e.g. "occupation=writer")."""
        self._check_fitted()
        return feature_names(self.user_spec_, "user"), feature_names(self.item_spec_, "item")
