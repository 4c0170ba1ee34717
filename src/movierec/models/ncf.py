"""Neural Collaborative Filtering: GMF, MLP and NeuMF (He et al., WWW 2017) on the shared Trainer.

He, Liao, Zhang, Nie, Hu & Chua, "Neural Collaborative Filtering", WWW 2017. With user and item
embeddings p_u, q_i:

- GMF (eq. 9):    ŷ_ui = a_out(hᵀ (p_u ⊙ q_i));
- MLP (eq. 10):   z_1 = [p_u; q_i], z_l = ReLU(W_l z_{l−1} + b_l), ŷ_ui = a_out(hᵀ z_L);
- NeuMF (eq. 11): φ^GMF = p^G_u ⊙ q^G_i, φ^MLP = z_L(p^M_u, q^M_i) with separate embeddings,
  ŷ_ui = a_out(hᵀ [φ^GMF; φ^MLP]).

One `NCFModule` holds a GMF part, an MLP part or both, so the three models share their scoring
code: z_ui = c + hᵀφ_ui + b, and a_out maps z to the prediction.

Objectives (`loss`):

- "mse" fits the ratings: c = μ (the mean training rating), a_out the identity, predictions
  clipped to the rating scale. With `scale_ratings=True` the squared error is taken on ratings
  scaled to [0, 1] against σ(z), c = logit((μ − lo) / (hi − lo)) so an untrained model predicts
  μ, and `predict` returns lo + (hi − lo) σ(z), on the original scale.
- "bce" is the paper's implicit objective (eq. 7): every rating is a positive, `n_negatives`
  unseen items per positive are sampled as negatives, ŷ = σ(z); "bpr" ranks each positive above
  its sampled negatives. `score` returns the logit z (a saturated σ would tie the best items) and
  `predict` the monotone map lo + (hi − lo) σ(z) of that score onto the rating scale: a score,
  not a rating estimate. Early stopping uses RMSE for "mse" and NDCG@10 otherwise.

Unknown users or items (code −1) get zero embeddings and zero features.

Item side input (`item_features`): a multi-hot genre vector ("genres") and, where the data has
tags, a bag of the `n_tags` most used training tags ("genres+tags"), projected by a Linear layer
W (no bias) and added to the item embedding: q_i = E[i] + W f_i (`item_feature_matrix`). The
matrix is learned state `feature_matrix_` (saved with the model, None without side input) and
`feature_names_` names its columns. `uses_features` stays False: the side input is optional.

People (`people=True`): every part's item embedding also gets the mean embedding of the movie's
directors and first `max_actors` billed actors (`PeopleBag` over `people_spec`'s vocabulary,
built from the whole item table; a movie without known people adds zeros): q_i = E[i] + W f_i +
mean_{p ∈ P(i)} e_p. In training, DropoutNet's item-id dropout (Volkovs et al., NeurIPS 2017)
zeroes E[i] (in every part at once) for a share `id_dropout` of the examples, so the people part
learns to carry a movie alone; `score_new_items` scores movies without ratings with E[i] = 0.
id_dropout 0.5 was chosen on a validation carve-out of `make_people_dataset` (15% cold movies,
BPR): cold AUC 0.70/0.72/0.74/0.74 (GMF) at 0/0.25/0.5/0.75, 0.66/0.68/0.69/0.71 (NeuMF); 0.5
keeps most of the gain while half the examples still train the id embeddings.

Defaults (learning_rate 1e-3, weight_decay 1e-5, dropout 0, batch_size 1024) were chosen on a
10% validation carve-out of ML-100K u1.base (benchmarks/ncf_ml100k.py), never on u1.test. There
the rating fits reach their best validation RMSE after 5-12 epochs and then overfit, so
`epochs=20` relies on early stopping with `fit(..., valid)` (patience 3); without validation
data, pass about 6 epochs for NeuMF on ratings.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from movierec.data.dataset import Dataset
from movierec.models._people_torch import (
    ID_DROPOUT,
    NewItems,
    PeopleBag,
    check_people_params,
    drop_ids,
    fit_people,
    people_arrays,
)
from movierec.models.base import check_param, is_int, is_number
from movierec.models.baseline import clip_to_scale
from movierec.models.space import Choice, Float, Int, SearchSpace
from movierec.random import RNGLike, as_generator, derive_seed
from movierec.ranking import user_blocks
from movierec.training import (
    LOSSES,
    NegativeSampler,
    Stage,
    TorchRecommender,
    bce_loss,
    bpr_loss,
    check_trainer_params,
    iterate_batches,
    mse_loss,
    scaled_logit,
)

__all__ = ["GMF", "MLP", "NCFModule", "NeuMF", "NewItems", "PeopleBag", "item_feature_matrix",
           "people_arrays"]

logger = logging.getLogger(__name__)

ITEM_FEATURES = ("none", "genres", "genres+tags")
# Elements of the largest [users, items, width] hidden tensor built at once by MLP block scoring.
_BLOCK_ELEMENTS = 1 << 24


# --- item side input -----------------------------------------------------------------------------
def item_feature_matrix(train: Dataset, item_ids: np.ndarray, kind: str, n_tags: int = 100
                        ) -> tuple[np.ndarray | None, list[str]]:
    """Item side input: multi-hot genres, plus a bag of the most frequent training tags.

    Tags count only where the tagging user rated the item in `train` (so tags from the test
    period never leak), after lower-casing and stripping; the `n_tags` most used tags become
    columns holding log(1 + times the item got the tag). Items without metadata get zero rows.

    Args:
        train: training data (its `items` and `tags` tables, its ratings for the tag filter).
        item_ids: original ids of the matrix rows (the model's item vocabulary).
        kind: "none", "genres" or "genres+tags" (tags only where `train.tags` exists).
        n_tags: number of tag columns (default 100).

    Returns:
        (float32 matrix [len(item_ids), n_features] or None when there is no column, names).
    """
    if kind == "none":
        return None, []
    genres = train.genres
    blocks = [train.genre_matrix(item_ids, genres).toarray()]
    names = [f"genre:{g}" for g in genres]
    if kind == "genres+tags" and train.tags is not None and len(train.tags):
        pairs = train.ratings[["user_id", "item_id"]].drop_duplicates()
        tags = train.tags.merge(pairs, on=["user_id", "item_id"])
        tag = tags["tag"].astype(str).str.strip().str.lower()
        top = tag.value_counts().index[:n_tags].tolist()
        col = {t: j for j, t in enumerate(top)}
        rows = {iid: r for r, iid in enumerate(np.asarray(item_ids).tolist())}
        bag = np.zeros((len(item_ids), len(top)), dtype=np.float32)
        for iid, t in zip(tags["item_id"].tolist(), tag.tolist(), strict=True):
            if t in col and iid in rows:
                bag[rows[iid], col[t]] += 1.0
        blocks.append(np.log1p(bag))
        names += [f"tag:{t}" for t in top]
    matrix = np.hstack(blocks).astype(np.float32)
    if matrix.shape[1] == 0:
        logger.warning("item_features=%r: the training data has no item metadata; ignored", kind)
        return None, []
    return matrix, names


# --- the network ---------------------------------------------------------------------------------
def _lookup(table: nn.Embedding, codes: Tensor) -> Tensor:
    """Embedding rows with zeros for code −1 (unknown user or item)."""
    return table(codes.clamp(min=0)) * (codes >= 0).unsqueeze(-1)


class ItemEmbedding(nn.Module):
    """q_i = E[i] + W f_i + mean_{p ∈ P(i)} e_p: id embedding, projected features, people.

    Args:
        n_items: number of item codes.
        size: embedding width.
        features: float tensor [n_items, n_features] (a buffer, not a weight), or None.
        people: (n_persons, indptr, codes) of the training items' people lists for a
            `PeopleBag`, or None.
    """

    features: Tensor

    def __init__(self, n_items: int, size: int, features: Tensor | None,
                 people: tuple[int, np.ndarray, np.ndarray] | None = None) -> None:
        super().__init__()
        self.embedding = nn.Embedding(n_items, size)
        self.project = (None if features is None
                        else nn.Linear(features.shape[1], size, bias=False))
        if features is not None:
            # Not persistent: the model saves the matrix once, as `feature_matrix_`.
            self.register_buffer("features", features, persistent=False)
        self.people = None if people is None else PeopleBag(people[0], size, *people[1:])

    def forward(self, codes: Tensor | None, keep: Tensor | None = None) -> Tensor:
        """[.., size] for item codes (zeros for −1); every item [n_items, size] for None.

        `keep` (bool, the shape of `codes`): False zeroes that element's id embedding E[i]
        (item-id dropout); features and people stay.
        """
        if codes is None:
            q = self.embedding.weight
            if self.project is not None:
                q = q + self.project(self.features)
            return q if self.people is None else q + self.people(None)
        q = self.embedding(codes.clamp(min=0))
        if keep is not None:
            q = q * keep.unsqueeze(-1)
        if self.project is not None:
            q = q + self.project(self.features[codes.clamp(min=0)])
        if self.people is not None:
            q = q + self.people(codes)
        return q * (codes >= 0).unsqueeze(-1)

    def new(self, items: NewItems) -> Tensor:
        """Vectors q [n, size] of movies without ratings: E[i] = 0, W f_i + their people."""
        q = torch.zeros(items.n, self.embedding.embedding_dim,
                        device=self.embedding.weight.device)
        if self.project is not None and items.features is not None:
            q = q + self.project(items.features)
        if self.people is not None and items.indptr is not None and items.keys is not None:
            q = q + self.people.new(items.indptr, items.keys)
        return q


class GMFPart(nn.Module):
    """φ^GMF = p_u ⊙ q_i (He et al. 2017, eq. 8), with dropout on the product."""

    def __init__(self, n_users: int, n_items: int, size: int, dropout: float,
                 features: Tensor | None,
                 people: tuple[int, np.ndarray, np.ndarray] | None = None) -> None:
        super().__init__()
        self.size = size
        self.user = nn.Embedding(n_users, size)
        self.item = ItemEmbedding(n_items, size, features, people)
        self.dropout = nn.Dropout(dropout)

    def forward(self, u: Tensor, i: Tensor, keep: Tensor | None = None) -> Tensor:
        """φ [.., size] for broadcastable code tensors u, i (`keep`: see `ItemEmbedding`)."""
        return self.dropout(_lookup(self.user, u) * self.item(i, keep))

    def block(self, u: Tensor, q: Tensor, h: Tensor) -> Tensor:
        """hᵀ(p_u ⊙ q_i) for every pair [users, items] as one product (p_u ⊙ h) · q_i.

        `q` [items, size] are the item vectors (`item(codes)` or `item.new(...)`).
        """
        return (_lookup(self.user, u) * h) @ q.T


class MLPPart(nn.Module):
    """φ^MLP = z_L with z_1 = [p_u; q_i], z_l = ReLU(W_l z_{l−1} + b_l) (He et al. 2017, eq. 10).

    The first layer reads the concatenation, of width 2 × size; `layers` are the output widths.
    """

    def __init__(self, n_users: int, n_items: int, size: int, layers: Sequence[int],
                 dropout: float, features: Tensor | None,
                 people: tuple[int, np.ndarray, np.ndarray] | None = None) -> None:
        super().__init__()
        self.size = size
        self.user = nn.Embedding(n_users, size)
        self.item = ItemEmbedding(n_items, size, features, people)
        widths = [2 * size, *layers]
        self.tower = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths, widths[1:],
                                                                   strict=False))
        self.dropout = nn.Dropout(dropout)

    @property
    def out_size(self) -> int:
        return self.tower[-1].out_features  # type: ignore[return-value]

    def _rest(self, z: Tensor) -> Tensor:
        z = self.dropout(torch.relu(z))
        for layer in list(self.tower)[1:]:
            z = self.dropout(torch.relu(layer(z)))
        return z

    def forward(self, u: Tensor, i: Tensor, keep: Tensor | None = None) -> Tensor:
        """φ [.., out_size] for broadcastable code tensors u, i (`keep`: see `ItemEmbedding`)."""
        p, q = _lookup(self.user, u), self.item(i, keep)
        p, q = torch.broadcast_tensors(p, q)
        return self._rest(self.tower[0](torch.cat([p, q], dim=-1)))

    def block(self, u: Tensor, q: Tensor) -> Tensor:
        """φ [users, items, out_size] for every pair of users u and item vectors q [items, size].

        The first layer is split, W_1 [p; q] = W_1ᵘ p + W_1ⁱ q, so each user and item is
        projected once and the pairs are a broadcast sum; users go in chunks that bound memory.
        """
        first: nn.Linear = self.tower[0]  # type: ignore[assignment]
        w_user, w_item = first.weight[:, :self.size], first.weight[:, self.size:]
        a = _lookup(self.user, u) @ w_user.T + first.bias
        b = q @ w_item.T
        step = max(1, _BLOCK_ELEMENTS // max(1, b.shape[0] * b.shape[1]))
        return torch.cat([self._rest(a[s:s + step, None, :] + b[None, :, :])
                          for s in range(0, a.shape[0], step)])


class NCFModule(nn.Module):
    """z_ui = c + hᵀ [φ^GMF; φ^MLP] + b: GMF, MLP or NeuMF depending on the parts present.

    `output(z)` applies a_out: identity, or lo + (hi − lo) σ(z) when `scale=(lo, hi)`.

    Args:
        n_users: number of user codes.
        n_items: number of item codes.
        embedding_size: width of every embedding.
        layers: MLP output widths, or None for no MLP part.
        gmf: include the GMF part.
        dropout: dropout on φ^GMF and after every MLP layer during training.
        features: item side input [n_items, n_features], or None.
        offset: the constant c (the mean rating, its logit, or 0; see `GMF`).
        scale: (lo, hi) for a scaled sigmoid output, or None.
        people: (n_persons, indptr, codes) of the training items' people: each part adds its
            own `PeopleBag` to its item embedding; None: no people.
        id_dropout: probability, in training, that an item's id embeddings (every part's, for
            that example) are zeroed (DropoutNet); features and people stay.
    """

    # Buffers (registered in __init__), declared for type checkers: nn.Module's __getattr__
    # would give them as Tensor | Module.
    offset: Tensor

    def __init__(self, n_users: int, n_items: int, embedding_size: int,
                 layers: Sequence[int] | None, *, gmf: bool, dropout: float = 0.0,
                 features: Tensor | None = None, offset: float = 0.0,
                 scale: tuple[float, float] | None = None,
                 people: tuple[int, np.ndarray, np.ndarray] | None = None,
                 id_dropout: float = 0.0) -> None:
        super().__init__()
        self.gmf = (GMFPart(n_users, n_items, embedding_size, dropout, features, people)
                    if gmf else None)
        self.mlp = (None if layers is None else
                    MLPPart(n_users, n_items, embedding_size, layers, dropout, features, people))
        self.id_dropout = id_dropout
        width = (embedding_size if gmf else 0) + (0 if self.mlp is None else self.mlp.out_size)
        self.h = nn.Linear(width, 1)
        self.scale = scale
        self.register_buffer("offset", torch.tensor(float(offset)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Embeddings ~ N(0, 0.01²) as in the paper; Xavier-uniform layers; zero biases."""
        for m in self.modules():
            if isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, std=0.01)
            elif isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def _split_h(self) -> tuple[Tensor, Tensor]:
        h = self.h.weight[0]
        k = 0 if self.gmf is None else self.gmf.size
        return h[:k], h[k:]

    def forward(self, u: Tensor, i: Tensor) -> Tensor:
        """The output z for code pairs (broadcast: u [b], i [b] or u [b, 1], i [b, n])."""
        parts = []
        # One mask for both parts: an example's item is either known by id or only by content.
        keep = drop_ids(i, self.id_dropout, self.training)
        if self.gmf is not None:
            parts.append(self.gmf(u, i, keep))
        if self.mlp is not None:
            parts.append(self.mlp(u, i, keep))
        phi = torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0]
        return self.offset + self.h(phi).squeeze(-1)

    def block(self, u: Tensor, i: Tensor | None, new: NewItems | None = None) -> Tensor:
        """The output z [users, items] for every pair (all items when `i` is None).

        With `new`, the items are movies without training ratings instead (`i` is ignored):
        their id embeddings are zero, their features and people are used.
        """
        h_gmf, h_mlp = self._split_h()
        z = self.offset + self.h.bias
        if self.gmf is not None:
            q = self.gmf.item(i) if new is None else self.gmf.item.new(new)
            z = z + self.gmf.block(u, q, h_gmf)
        if self.mlp is not None:
            q = self.mlp.item(i) if new is None else self.mlp.item.new(new)
            z = z + self.mlp.block(u, q) @ h_mlp
        return z

    def output(self, z: Tensor) -> Tensor:
        """a_out(z): identity, or lo + (hi − lo) σ(z) with `scale`."""
        if self.scale is None:
            return z
        lo, hi = self.scale
        return lo + (hi - lo) * torch.sigmoid(z)

    @torch.no_grad()
    def load_pretrained(self, gmf: NCFModule, mlp: NCFModule, alpha: float = 0.5) -> None:
        """NeuMF initialisation from trained GMF and MLP (He et al. 2017, sec. 3.4.1).

        Copies both parts' embeddings (and feature projections, MLP tower) and sets
        h ← [α h^GMF; (1 − α) h^MLP], b ← α b^GMF + (1 − α) b^MLP, so that the initial
        z equals α z^GMF + (1 − α) z^MLP (the offsets agree: same data, same objective).
        """
        if self.gmf is None or self.mlp is None or gmf.gmf is None or mlp.mlp is None:
            raise ValueError("load_pretrained needs a NeuMF module, a GMF and an MLP module")
        self.gmf.load_state_dict(gmf.gmf.state_dict())
        self.mlp.load_state_dict(mlp.mlp.state_dict())
        self.h.weight.copy_(torch.cat([alpha * gmf.h.weight, (1 - alpha) * mlp.h.weight], 1))
        self.h.bias.copy_(alpha * gmf.h.bias + (1 - alpha) * mlp.h.bias)


# --- the models ----------------------------------------------------------------------------------
class _NCF(TorchRecommender):
    """Shared hyper-parameter checks, objectives and hooks of GMF, MLP and NeuMF."""

    predicts_ratings: ClassVar[bool] = True
    supports_fold_in: ClassVar[bool] = False
    _has_gmf: ClassVar[bool] = True
    _has_mlp: ClassVar[bool] = False

    embedding_size: int
    layers: Sequence[int]
    dropout: float
    loss: str
    n_negatives: int
    scale_ratings: bool
    item_features: str
    n_tags: int
    sparse_updates: bool
    people: bool
    max_actors: int
    id_dropout: float

    def _set_params(self, params: dict[str, Any]) -> None:
        _check_params(params)
        for key, value in params.items():
            setattr(self, key, value)

    # --- TorchRecommender hooks ----------------------------------------------------------------
    def _prepare(self, train: Dataset) -> None:
        super()._prepare(train)
        self.feature_matrix_, self.feature_names_ = item_feature_matrix(
            train, self.item_vocab_.index, self.item_features, self.n_tags)
        if self.people:
            self.people_spec_, self.people_indptr_, self.people_codes_ = fit_people(
                train.items, self.item_vocab_.index, self.max_actors)
        if self.loss != "mse":
            self._sampler = NegativeSampler(self.seen_)

    def _output(self) -> tuple[float, tuple[float, float] | None]:
        """(offset c, scale) of the objective.

        μ and identity for plain MSE, logit((μ − lo) / (hi − lo)) and the scaled sigmoid for scaled
        MSE, 0 and the scaled sigmoid otherwise.
        """
        lo, hi = self.rating_scale_
        if hi <= lo:
            return (self.global_mean_ if self.loss == "mse" else 0.0), None
        if self.loss == "mse" and not self.scale_ratings:
            return self.global_mean_, None
        if self.loss != "mse":
            return 0.0, (lo, hi)
        return float(scaled_logit(self.global_mean_, (lo, hi))), (lo, hi)

    def build_module(self) -> NCFModule:
        offset, scale = self._output()
        features = (None if self.feature_matrix_ is None
                    else torch.from_numpy(np.asarray(self.feature_matrix_, dtype=np.float32)))
        people = ((len(self.people_spec_["persons"]), self.people_indptr_, self.people_codes_)
                  if self.people else None)
        return NCFModule(self.n_users_, self.n_items_, self.embedding_size,
                         tuple(self.layers) if self._has_mlp else None, gmf=self._has_gmf,
                         dropout=self.dropout, features=features, offset=offset, scale=scale,
                         people=people, id_dropout=self.id_dropout if self.people else 0.0)

    def batches(self, data: dict[str, Tensor], generator: torch.Generator
                ) -> Iterator[dict[str, Tensor]]:
        for batch in iterate_batches(data, int(getattr(self, "batch_size", 1024)), generator):
            if self.loss != "mse":
                batch["negative"] = self._sampler(batch["user"], self.n_negatives, generator)
            yield batch

    def batch_loss(self, module: nn.Module, batch: dict[str, Tensor]) -> Tensor:
        assert isinstance(module, NCFModule)
        u, i = batch["user"], batch["item"]
        if self.loss == "mse":
            target = batch["rating"]
            if module.scale is not None:
                lo, hi = module.scale
                # Scaled ratings: the squared error is taken on [0, 1], before a_out's rescaling.
                return mse_loss(torch.sigmoid(module(u, i)), (target - lo) / (hi - lo))
            return mse_loss(module(u, i), target)
        pos = module(u, i)
        neg = module(u[:, None], batch["negative"])
        return bpr_loss(pos, neg) if self.loss == "bpr" else bce_loss(pos, neg)

    def score_block(self, module: nn.Module, user_codes: Tensor, item_codes: Tensor | None
                    ) -> Tensor:
        assert isinstance(module, NCFModule)
        z = module.block(user_codes, item_codes)
        # Ranking objectives score by the logit: a saturated sigmoid would tie the best items.
        return module.output(z) if self.objective == "rating" else z

    def predict_pairs(self, module: nn.Module, user_codes: Tensor, item_codes: Tensor) -> Tensor:
        assert isinstance(module, NCFModule)
        return module.output(module(user_codes, item_codes))

    def _predict(self, user_codes: np.ndarray, item_codes: np.ndarray) -> np.ndarray:
        pred = super()._predict(user_codes, item_codes)
        return clip_to_scale(pred, self.rating_scale_).astype(np.float32)

    # --- cold start ----------------------------------------------------------------------------
    def can_score_new_items(self) -> bool:
        """True with `people=True`: a movie without ratings is placed by its people."""
        return self.people

    def _new_feature_rows(self, items: pd.DataFrame) -> np.ndarray | None:
        """The side-input rows of new movies: their genres; tag columns stay 0 (no tags yet)."""
        if self.feature_matrix_ is None:
            return None
        names = list(self.feature_names_)
        out = np.zeros((len(items), len(names)), dtype=np.float32)
        col = {n[len("genre:"):]: j for j, n in enumerate(names) if n.startswith("genre:")}
        cells = items["genres"].tolist() if "genres" in items.columns else []
        for row, genres in enumerate(cells):
            for g in genres if isinstance(genres, tuple | list) else ():
                if str(g) in col:
                    out[row, col[str(g)]] = 1.0
        return out

    def _score_new_items(self, user_codes: np.ndarray, items: pd.DataFrame) -> np.ndarray:
        """Scores of new movies: z with zero id embeddings, their genres (if used) and people.

        The same item representation item-id dropout trains (`people`); ranking objectives
        give the logit, "mse" the rating-scale prediction, as `score`.
        """
        feats = self._new_feature_rows(items)
        indptr, keys = people_arrays(items, None, self.people_spec_)
        device = self.device_
        new = NewItems(len(items),
                       None if feats is None else torch.from_numpy(feats).to(device),
                       torch.from_numpy(indptr).to(device), torch.from_numpy(keys).to(device))
        out = np.empty((len(user_codes), len(items)), dtype=np.float32)
        with self._eval() as module:
            assert isinstance(module, NCFModule)
            for blk in user_blocks(len(user_codes), self.score_block_size):
                users = torch.from_numpy(np.asarray(user_codes[blk], np.int64)).to(device)
                z = module.block(users, None, new)
                z = module.output(z) if self.objective == "rating" else z
                out[blk] = z.float().cpu().numpy()
        return out

    def item_vectors(self) -> np.ndarray:
        """Item representations q_i (GMF part first; MLP part's for MLP) [n_items, d]."""
        self._check_fitted()
        module = self.module_
        assert isinstance(module, NCFModule)
        part = module.gmf if module.gmf is not None else module.mlp
        assert part is not None
        with torch.no_grad():
            return part.item(None).detach().cpu().numpy()


class GMF(_NCF):
    """Generalized matrix factorization: ŷ_ui = a_out(hᵀ (p_u ⊙ q_i) + b).

    He et al., "Neural Collaborative Filtering", WWW 2017, eq. 9; trained on the shared `Trainer`.

    Scoring a block of users against every item is one matrix product (p_u ⊙ h) Qᵀ. Objectives,
    unknown ids, item side input and the choice of defaults are described in the module docstring.

    Trainer parameters (`movierec.training.TrainerParams`; defaults in the signature): a batch
    is ratings (positives, each with its `n_negatives` for bce/bpr).

    Args:
        embedding_size: width of p_u and q_i (default 64, ≥ 1).
        dropout: dropout probability on p_u ⊙ q_i during training (default 0.0, in [0, 1)).
        loss: "mse" (ratings), "bce" or "bpr" (ranking with sampled negatives). Default "mse".
        n_negatives: sampled unseen items per positive for bce/bpr (default 4, as in the paper).
        scale_ratings: with "mse", fit ratings scaled to [0, 1] through a sigmoid output and
            predict on the original scale (default False).
        item_features: "none", "genres" or "genres+tags" item side input (default "none").
        n_tags: tag columns with "genres+tags": the most used training tags (default 100, ≥ 1).
        people: add the mean embedding of each movie's directors and top actors to its item
            embedding, train with item-id dropout, and score new movies (`score_new_items`);
            needs directors/actors in the item table (default False; see the module docs).
        max_actors: top-billed actors per movie used with `people` (default 3, ≥ 0).
        id_dropout: probability that a training example's item id embedding is zeroed, with
            `people` only (default 0.5, in [0, 1); see the module docs).
    """

    name: ClassVar[str] = "gmf"
    search_space: ClassVar[SearchSpace] = {
        "embedding_size": Int(8, 128, log=True),
        "learning_rate": Float(1e-4, 3e-2, log=True),
        "weight_decay": Float(1e-7, 1e-2, log=True),
        "dropout": Float(0.0, 0.5),
    }

    def __init__(self, *, embedding_size: int = 64, dropout: float = 0.0, epochs: int = 20,
                 batch_size: int = 1024, learning_rate: float = 1e-3,
                 weight_decay: float = 1e-5, loss: str = "mse", n_negatives: int = 4,
                 scale_ratings: bool = False, patience: int | None = 3,
                 grad_clip: float | None = None, sparse_updates: bool = False,
                 device: str = "auto",
                 item_features: str = "none", n_tags: int = 100, people: bool = False,
                 max_actors: int = 3, id_dropout: float = ID_DROPOUT) -> None:
        self._set_params(_arguments(locals()))


class MLP(_NCF):
    """Multi-layer perceptron over concatenated embeddings.

    z_1 = [p_u; q_i], z_l = ReLU(W_l z_(l−1) + b_l), ŷ_ui = a_out(hᵀ z_L + b) (He et al., "Neural
    Collaborative Filtering", WWW 2017, eq. 10), trained on the shared `Trainer`.

    `layers` are the output widths of the ReLU layers; the first layer reads [p_u; q_i], of width
    2 × embedding_size (128 with the defaults: the width the authors' code calls layers[0], so the
    default tower here is 128 → 128 → 64 → 32, one square layer deeper). Block scoring splits the
    first layer, W_1 [p; q] = W_1ᵘ p + W_1ⁱ q, and broadcasts the sum over users × items.
    Objectives, unknown ids and item side input are described in the module docstring.

    Trainer parameters (`movierec.training.TrainerParams`; defaults in the signature): a batch
    is ratings (positives, each with its `n_negatives` for bce/bpr).

    Args:
        embedding_size: width of p_u and q_i (default 64, ≥ 1).
        layers: ReLU layer widths, a tuple or list stored unchanged (default (128, 64, 32)).
        dropout: dropout probability after every ReLU layer during training (default 0.0; the
            paper uses none).
        loss: "mse" (ratings), "bce" or "bpr" (ranking with sampled negatives). Default "mse".
        n_negatives: sampled unseen items per positive for bce/bpr (default 4, as in the paper).
        scale_ratings: with "mse", fit ratings scaled to [0, 1] through a sigmoid output and
            predict on the original scale (default False).
        item_features: "none", "genres" or "genres+tags" item side input (default "none").
        n_tags: tag columns with "genres+tags": the most used training tags (default 100, ≥ 1).
        people: add the mean embedding of each movie's directors and top actors to its item
            embedding, train with item-id dropout, and score new movies (`score_new_items`);
            needs directors/actors in the item table (default False; see the module docs).
        max_actors: top-billed actors per movie used with `people` (default 3, ≥ 0).
        id_dropout: probability that a training example's item id embedding is zeroed, with
            `people` only (default 0.5, in [0, 1); see the module docs).
    """

    name: ClassVar[str] = "mlp"
    search_space: ClassVar[SearchSpace] = {
        "embedding_size": Int(8, 128, log=True),
        "layers": Choice([(64, 32, 16), (128, 64, 32), (256, 128, 64), (64, 32)]),
        "learning_rate": Float(1e-4, 3e-2, log=True),
        "weight_decay": Float(1e-7, 1e-2, log=True),
        "dropout": Float(0.0, 0.5),
    }
    _has_gmf: ClassVar[bool] = False
    _has_mlp: ClassVar[bool] = True

    def __init__(self, *, embedding_size: int = 64,
                 layers: tuple[int, ...] | list[int] = (128, 64, 32), dropout: float = 0.0,
                 epochs: int = 20, batch_size: int = 1024, learning_rate: float = 1e-3,
                 weight_decay: float = 1e-5, loss: str = "mse", n_negatives: int = 4,
                 scale_ratings: bool = False, patience: int | None = 3,
                 grad_clip: float | None = None, sparse_updates: bool = False,
                 device: str = "auto",
                 item_features: str = "none", n_tags: int = 100, people: bool = False,
                 max_actors: int = 3, id_dropout: float = ID_DROPOUT) -> None:
        self._set_params(_arguments(locals()))


class NeuMF(_NCF):
    """Neural matrix factorization: ŷ_ui = a_out(hᵀ [p^G_u ⊙ q^G_i; z_L(p^M_u, q^M_i)] + b).

    He et al., "Neural Collaborative Filtering", WWW 2017, eq. 11; trained on the shared `Trainer`.

    The GMF and MLP branches have separate embeddings (and feature projections), both of width
    `embedding_size`; h reads [φ^GMF; φ^MLP] of width embedding_size + layers[-1]. Objectives,
    unknown ids and item side input are described in the module docstring.

    Pre-training (`pretrain=True`, sec. 3.4.1): a `GMF` and an `MLP` with the same
    hyper-parameters are first fitted by the same Trainer on the same data (and `valid`), with
    seeds derived from `rng`; NeuMF then starts from their embeddings and tower with
    h = [α h^GMF; (1 − α) h^MLP], α = 0.5 (`NCFModule.load_pretrained`), and is trained with Adam
    at `finetune_learning_rate`. The paper switches to plain SGD for this stage; a small Adam
    step serves the same purpose (stay near the pre-trained solution) without a second
    optimizer in the Trainer. The branches' histories are kept in `pretrain_history_`. With
    `resume=True` the branches are refitted before the NeuMF checkpoint is loaded. `epochs`,
    `patience` and the other trainer parameters apply to each of the three fits;
    `learning_rate` is the branches' step size.

    Trainer parameters (`movierec.training.TrainerParams`; defaults in the signature): a batch
    is ratings (positives, each with its `n_negatives` for bce/bpr).

    Args:
        embedding_size: width of every embedding (default 64, ≥ 1).
        layers: MLP ReLU layer widths, a tuple or list stored unchanged (default (128, 64, 32));
            the first layer reads 2 × embedding_size.
        dropout: dropout probability on φ^GMF and after every ReLU layer during training
            (default 0.0).
        loss: "mse" (ratings), "bce" or "bpr" (ranking with sampled negatives). Default "mse".
        n_negatives: sampled unseen items per positive for bce/bpr (default 4, as in the paper).
        scale_ratings: with "mse", fit ratings scaled to [0, 1] through a sigmoid output and
            predict on the original scale (default False).
        item_features: "none", "genres" or "genres+tags" item side input (default "none").
        n_tags: tag columns with "genres+tags": the most used training tags (default 100, ≥ 1).
        people: add the mean embedding of each movie's directors and top actors to both item
            embeddings, train with item-id dropout, and score new movies (`score_new_items`);
            needs directors/actors in the item table (default False; see the module docs).
        max_actors: top-billed actors per movie used with `people` (default 3, ≥ 0).
        id_dropout: probability that a training example's item id embeddings are zeroed, with
            `people` only (default 0.5, in [0, 1); see the module docs).
        pretrain: fit GMF and MLP first and start from them (default False).
        finetune_learning_rate: Adam step size of the NeuMF stage after pre-training (default
            1e-4, > 0; unused without `pretrain`).
    """

    name: ClassVar[str] = "neumf"
    search_space: ClassVar[SearchSpace] = {
        "embedding_size": Int(8, 128, log=True),
        "layers": Choice([(64, 32, 16), (128, 64, 32), (256, 128, 64), (64, 32)]),
        "learning_rate": Float(1e-4, 3e-2, log=True),
        "weight_decay": Float(1e-7, 1e-2, log=True),
        "dropout": Float(0.0, 0.5),
    }
    _has_mlp: ClassVar[bool] = True

    pretrain: bool
    finetune_learning_rate: float

    def __init__(self, *, embedding_size: int = 64,
                 layers: tuple[int, ...] | list[int] = (128, 64, 32), dropout: float = 0.0,
                 epochs: int = 20, batch_size: int = 1024, learning_rate: float = 1e-3,
                 weight_decay: float = 1e-5, loss: str = "mse", n_negatives: int = 4,
                 scale_ratings: bool = False, patience: int | None = 3,
                 grad_clip: float | None = None, sparse_updates: bool = False,
                 device: str = "auto",
                 item_features: str = "none", n_tags: int = 100, people: bool = False,
                 max_actors: int = 3, id_dropout: float = ID_DROPOUT, pretrain: bool = False,
                 finetune_learning_rate: float = 1e-4) -> None:
        self._set_params(_arguments(locals()))

    def pretraining(self, train: Dataset, valid: Dataset | None, *, rng: RNGLike,
                    progress: bool) -> int:
        """With `pretrain`, fit the GMF and MLP branches (the Trainer's pre-training hook).

        Three seeds are drawn from `rng`: the GMF's, the MLP's and NeuMF's own (returned).
        The branches see the same data and `valid`; with `resume=True` they are refitted
        before the NeuMF checkpoint is loaded.
        """
        self._branches: tuple[GMF, MLP] | None = None
        if not self.pretrain:
            return super().pretraining(train, valid, rng=rng, progress=progress)
        gen = as_generator(rng)
        seeds = [derive_seed(gen) for _ in range(3)]
        shared = {k: v for k, v in self.params().items()
                  if k not in ("pretrain", "finetune_learning_rate")}
        gmf = GMF(**{k: v for k, v in shared.items() if k != "layers"})
        mlp = MLP(**shared)
        gmf.fit(train, valid, rng=seeds[0], progress=progress)
        mlp.fit(train, valid, rng=seeds[1], progress=progress)
        # Kept for inspection only: not learned state of NeuMF, so never saved.
        self._branches = (gmf, mlp)
        self.pretrain_history_ = {"gmf": gmf.history_, "mlp": mlp.history_}
        return seeds[2]

    def initialize_module(self, module: nn.Module) -> None:
        """After pre-training, start from the branches (`NCFModule.load_pretrained`)."""
        if self._branches is None:
            return
        gmf, mlp = self._branches
        assert isinstance(module, NCFModule)
        assert isinstance(gmf.module_, NCFModule) and isinstance(mlp.module_, NCFModule)
        module.load_pretrained(gmf.module_.cpu(), mlp.module_.cpu(), alpha=0.5)
        gmf.module_.to(gmf.device_)
        mlp.module_.to(mlp.device_)

    def training_stages(self) -> list[Stage]:
        """One stage of `epochs`; after pre-training at `finetune_learning_rate`."""
        rate = self.finetune_learning_rate if self.pretrain else None
        return [Stage(epochs=self.epochs, learning_rate=rate)]


def _arguments(frame: dict[str, Any]) -> dict[str, Any]:
    """A constructor's keyword arguments from its `locals()` (everything but `self`)."""
    return {k: v for k, v in frame.items() if k != "self"}


# --- validation ----------------------------------------------------------------------------------
def _check_params(p: dict[str, Any]) -> None:
    """ValueError naming the first invalid hyper-parameter in `p` (only those present)."""
    check_trainer_params(p)
    if {"people", "max_actors", "id_dropout"} <= p.keys():
        check_people_params(p["people"], p["max_actors"], p["id_dropout"])
    checks: dict[str, tuple[Any, str]] = {
        "embedding_size": (lambda x: is_int(x, 1), "an integer ≥ 1"),
        "layers": (lambda x: isinstance(x, tuple | list) and len(x) > 0
                   and all(is_int(w, 1) for w in x), "a non-empty tuple or list of integers ≥ 1"),
        "dropout": (lambda x: is_number(x) and 0 <= x < 1, "a number in [0, 1)"),
        "loss": (lambda x: x in LOSSES, f"one of {list(LOSSES)}"),
        "n_negatives": (lambda x: is_int(x, 1), "an integer ≥ 1"),
        "scale_ratings": (lambda x: isinstance(x, bool), "a bool"),
        "item_features": (lambda x: x in ITEM_FEATURES, f"one of {list(ITEM_FEATURES)}"),
        "n_tags": (lambda x: is_int(x, 1), "an integer ≥ 1"),
        "pretrain": (lambda x: isinstance(x, bool), "a bool"),
        "finetune_learning_rate": (lambda x: is_number(x) and x > 0, "a number > 0"),
    }
    for name, value in p.items():
        if name in checks:
            ok, expected = checks[name]
            check_param(name, value, bool(ok(value)), expected)

