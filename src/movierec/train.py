"""The one training loop of every neural model: TorchRecommender + Trainer, losses, negatives.

A neural model subclasses `TorchRecommender` and gives only its maths:

- `_prepare(train)`: learned attributes the module is built from (`n_users_`, `global_mean_`...);
- `build_module()`: a fresh `torch.nn.Module` from those attributes alone (so `load` rebuilds it);
- `batches(data, generator)`: tensor batches (default: shuffled slices of `training_data(train)`);
- `batch_loss(module, batch)`: a scalar tensor (not `loss`: that name is the hyper-parameter
  choosing the objective, "mse", "bpr" or "bce");
- `score_block(module, user_codes, item_codes)` and, for rating models, `predict_pairs(...)`.

`Trainer` owns everything else once: Adam, zero_grad/backward/step, clipping, the progress bar,
early stopping on a validation metric (RMSE for rating objectives, NDCG@10 for ranking ones) with
the best weights restored, per-epoch checkpoints (safetensors + JSON, atomic) and exact resume.

Randomness: one CPU `torch.Generator` derived from `rng` drives initialisation, shuffling,
negative sampling and dropout. Modules use the global torch RNG (e.g. `nn.Dropout`), so it is
seeded from that generator only inside `torch.random.fork_rng`, which restores the caller's state.

Data-parallel: under torchrun the Trainer splits every global batch across processes and sums
their gradients by hand (`movierec.distributed`); see `Trainer`.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

import numpy as np
import scipy.sparse as sp
import torch
from torch import Tensor

from movierec import distributed
from movierec import metrics as M
from movierec.data.dataset import Dataset
from movierec.errors import MovieRecError
from movierec.io import atomic_write_bytes, atomic_write_text, json_default
from movierec.models.base import Recommender, user_blocks
from movierec.optim import LazyAdam, mark_sparse
from movierec.random import RNGLike, derive_seed

__all__ = [
    "NegativeSampler",
    "TorchRecommender",
    "Trainer",
    "bce_loss",
    "bpr_loss",
    "is_device",
    "scaled_logit",
    "iterate_batches",
    "mse_loss",
    "resolve_device",
    "sample_negatives",
]

logger = logging.getLogger(__name__)

MODULE_PREFIX = "module."
Objective = Literal["rating", "ranking"]


# --- losses ------------------------------------------------------------------------------------
def mse_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Mean squared error mean((pred − target)²)."""
    return torch.mean((pred - target) ** 2)


def bpr_loss(positive: Tensor, negative: Tensor) -> Tensor:
    """Bayesian personalized ranking (Rendle et al. 2009): mean of −log σ(s_pos − s_neg).

    Args:
        positive: scores of the observed items, shape [b] or [b, 1].
        negative: scores of sampled items, shape [b] or [b, n] (broadcast against `positive`).
    """
    if positive.dim() == 1 and negative.dim() == 2:
        positive = positive[:, None]
    return -torch.nn.functional.logsigmoid(positive - negative).mean()


def bce_loss(positive: Tensor, negative: Tensor) -> Tensor:
    """Binary cross-entropy on logits: observed items labelled 1, sampled negatives 0.

    The mean is taken over all positive and negative terms together (as in NCF, He et al. 2017):
    (Σ softplus(−s_pos) + Σ softplus(s_neg)) / (|pos| + |neg|).
    """
    softplus = torch.nn.functional.softplus
    total = softplus(-positive).sum() + softplus(negative).sum()
    return total / (positive.numel() + negative.numel())


LOSSES = ("mse", "bpr", "bce")


# --- negative sampling -------------------------------------------------------------------------
class NegativeSampler:
    """Uniform sampling of items a user has not interacted with in training — exactly.

    Instead of rejection sampling (which leaves collisions after a fixed number of rounds, or loops
    without bound for heavy users), each draw is a uniform rank r ∈ [0, n_items − |I_u|) among the
    user's unseen items, mapped to the r-th unseen item j = r + #{s ∈ I_u : s − pos(s) ≤ r} by one
    vectorized `searchsorted` over the CSR structure. Every unseen item has probability
    1 / (n_items − |I_u|) (up to float64 rounding of r), and a seen item is never returned. A user
    who has rated every item has no negative: such users get a uniform item instead.

    Args:
        seen: binary users x items CSR matrix of training interactions (sorted indices).
    """

    def __init__(self, seen: sp.csr_matrix) -> None:
        m = sp.csr_matrix(seen)
        m.sort_indices()
        self.n_items = int(m.shape[1])
        indptr = m.indptr.astype(np.int64)
        counts = np.diff(indptr)
        rows = np.repeat(np.arange(m.shape[0], dtype=np.int64), counts)
        # s − pos(s) is non-decreasing within a row and < n_items, so the keys are sorted.
        adjusted = m.indices.astype(np.int64) - (np.arange(len(rows)) - indptr[rows])
        self._keys = torch.from_numpy(rows * self.n_items + adjusted)
        self._indptr = torch.from_numpy(indptr)
        self._n_unseen = torch.from_numpy(self.n_items - counts)

    def __call__(self, users: np.ndarray | Tensor, n: int, generator: torch.Generator) -> Tensor:
        """Item codes int64 [len(users), n], unseen in training by the matching user.

        Args:
            users: user codes (CPU).
            n: negatives per user.
            generator: CPU torch generator for the draws.
        """
        u = torch.as_tensor(np.asarray(users) if not isinstance(users, Tensor) else users,
                            dtype=torch.int64).cpu()
        n_unseen = self._n_unseen[u][:, None]
        free = torch.where(n_unseen > 0, n_unseen, torch.full_like(n_unseen, self.n_items))
        draw = torch.rand((len(u), n), generator=generator, dtype=torch.float64)
        r = torch.minimum((draw * free).long(), free - 1)
        ranks = torch.searchsorted(self._keys, u[:, None] * self.n_items + r, right=True)
        below = ranks - self._indptr[u][:, None]
        return torch.where(n_unseen > 0, r + below, r)


def sample_negatives(seen: sp.csr_matrix, users: np.ndarray | Tensor, n: int,
                     generator: torch.Generator) -> Tensor:
    """Draw `n` items per user, uniformly among the items the user did not interact with.

    Exact (no rejection rounds); see `NegativeSampler`, which models keep to avoid re-indexing
    `seen` on every batch.

    Args:
        seen: binary users x items CSR matrix of training interactions.
        users: user codes.
        n: negatives per user.
        generator: CPU torch generator.

    Returns:
        Item codes int64 [len(users), n].
    """
    return NegativeSampler(seen)(users, n, generator)


# --- batching and devices ----------------------------------------------------------------------
def iterate_batches(data: dict[str, Tensor], batch_size: int, generator: torch.Generator
                    ) -> Iterator[dict[str, Tensor]]:
    """Shuffled mini-batches: one `randperm` per epoch, then slices of every tensor in `data`."""
    n = len(next(iter(data.values())))
    order = torch.randperm(n, generator=generator)
    for start in range(0, n, batch_size):
        idx = order[start:start + batch_size]
        yield {k: v[idx] for k, v in data.items()}


def scaled_logit(rating: float | np.ndarray, scale: tuple[float, float]) -> float | np.ndarray:
    """logit((r − lo) / (hi − lo)), clipped away from 0 and 1: the pre-sigmoid value of a rating
    for models whose output is lo + (hi − lo)·σ(z) (so that an untrained model predicts μ)."""
    lo, hi = scale
    frac = np.clip((np.asarray(rating, dtype=np.float64) - lo) / (hi - lo), 1e-3, 1 - 1e-3)
    out = np.log(frac / (1 - frac))
    return float(out) if out.ndim == 0 else out


def is_device(device: str) -> bool:
    """Whether `device` is "auto" or a device string torch understands ("cpu", "cuda:1")."""
    if device == "auto":
        return True
    try:
        torch.device(device)
    except (RuntimeError, ValueError):
        return False
    return True


def resolve_device(device: str) -> torch.device:
    """"auto" → cuda when available, else cpu; anything else is passed to `torch.device`."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@contextlib.contextmanager
def seeded_torch(generator: torch.Generator, device: torch.device) -> Iterator[None]:
    """Seed the global torch RNG from `generator` inside a fork that restores it afterwards."""
    devices = [device.index or 0] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        seed = int(torch.randint(0, 2**62, (1,), generator=generator))
        torch.manual_seed(seed)
        yield


# --- the model base class ----------------------------------------------------------------------
class TorchRecommender(Recommender):
    """Base of every neural model: fit through `Trainer`, score through the module in blocks.

    Hyper-parameters are declared by each subclass's keyword-only `__init__`; the trainer reads
    `epochs`, `batch_size`, `learning_rate`, `weight_decay`, `patience`, `grad_clip`, `device`
    and `loss` when present (defaults: weight_decay 0, patience/grad_clip None, device "auto",
    loss "mse").

    Learned state: `module_` (saved as its state_dict under "module.*" tensors), `device_`,
    `history_` (one dict per epoch: epoch, train_loss, valid_metric, seconds), `best_epoch_`.
    """

    score_block_size: ClassVar[int] = 1024

    module_: torch.nn.Module
    device_: torch.device
    history_: list[dict[str, Any]]

    # --- to implement --------------------------------------------------------------------------
    def _prepare(self, train: Dataset) -> None:
        """Set learned attributes the module is built from (called after `_setup`)."""
        self.n_users_ = train.n_users
        self.n_items_ = train.n_items
        self.global_mean_ = float(train.ratings["rating"].to_numpy(np.float64).mean())

    def build_module(self) -> torch.nn.Module:
        """A fresh module built only from learned attributes set in `_prepare`."""
        raise NotImplementedError

    def training_data(self, train: Dataset) -> dict[str, Tensor]:
        """Whole-epoch tensors (CPU) that `batches` slices: user, item codes and ratings."""
        u, i = train.codes
        return {"user": torch.from_numpy(np.asarray(u, dtype=np.int64)),
                "item": torch.from_numpy(np.asarray(i, dtype=np.int64)),
                "rating": torch.from_numpy(np.array(train.ratings["rating"], dtype=np.float32))}

    def batches(self, data: dict[str, Tensor], generator: torch.Generator
                ) -> Iterator[dict[str, Tensor]]:
        """Mini-batches of one epoch (CPU tensors; the trainer moves them to the device)."""
        return iterate_batches(data, int(getattr(self, "batch_size", 1024)), generator)

    def batch_loss(self, module: torch.nn.Module, batch: dict[str, Tensor]) -> Tensor:
        """Scalar training loss of one batch (module in train mode)."""
        raise NotImplementedError

    def score_block(self, module: torch.nn.Module, user_codes: Tensor,
                    item_codes: Tensor | None) -> Tensor:
        """Scores [users, items] (all items when `item_codes` is None); higher is better."""
        raise NotImplementedError

    def predict_pairs(self, module: torch.nn.Module, user_codes: Tensor, item_codes: Tensor
                      ) -> Tensor:
        """Ratings [n] for code pairs; codes are −1 for unknown users/items."""
        raise NotImplementedError(f"{type(self).__name__} does not predict ratings")

    @property
    def objective(self) -> Objective:
        """"rating" (early stopping on RMSE) for loss="mse", else "ranking" (NDCG@10)."""
        return "rating" if getattr(self, "loss", "mse") == "mse" else "ranking"

    # --- fitting -------------------------------------------------------------------------------
    def fit(self, train: Dataset, valid: Dataset | None = None, *, rng: RNGLike = None,
            progress: bool = True, checkpoint_dir: str | Path | None = None,
            resume: bool = False, on_epoch: Callable[[dict[str, Any]], None] | None = None
            ) -> Self:
        """Train the module with `Trainer`; returns self.

        Launched by torchrun (`WORLD_SIZE` > 1) or inside a caller's process group, every process
        joins the group and trains data-parallel (see `Trainer` and `movierec.distributed`): same
        seed on every rank, `batch_size` is the global batch, rank 0 writes the checkpoints.

        Args:
            train: training data.
            valid: optional validation data for early stopping (best weights are restored).
            rng: seed or Generator; the same seed gives the same weights on CPU.
            progress: show a progress bar (only on terminals).
            checkpoint_dir: write last.safetensors + last.json there after every epoch.
            resume: continue from the checkpoint in `checkpoint_dir` when there is one.
            on_epoch: called with each epoch's history record (see `Trainer`); an exception it
                raises stops training and propagates (how `movierec tune` prunes a trial).
        """
        self._setup(train)
        self._prepare(train)
        # Under torchrun every process joins the group here; each uses its own GPU (LOCAL_RANK).
        distributed.init()
        self.device_ = distributed.local_device(
            resolve_device(str(getattr(self, "device", "auto"))))
        generator = torch.Generator().manual_seed(derive_seed(rng))
        with seeded_torch(generator, self.device_):
            self.module_ = self.build_module().to(self.device_)
        trainer = Trainer(
            sparse_updates=bool(getattr(self, "sparse_updates", False)),
            epochs=int(getattr(self, "epochs", 10)),
            learning_rate=float(getattr(self, "learning_rate", 1e-3)),
            weight_decay=float(getattr(self, "weight_decay", 0.0)),
            patience=getattr(self, "patience", None),
            grad_clip=getattr(self, "grad_clip", None),
            progress=progress,
            checkpoint_dir=checkpoint_dir,
            resume=resume,
            on_epoch=on_epoch,
        )
        trainer.fit(self, train, valid, generator)
        return self

    # --- scoring -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _eval(self) -> Iterator[torch.nn.Module]:
        self._check_fitted()
        module = self.module_
        was_training = module.training
        module.eval()
        try:
            with torch.no_grad():
                yield module
        finally:
            module.train(was_training)

    def _score(self, user_codes: np.ndarray, item_codes: np.ndarray | None = None) -> np.ndarray:
        n_cols = self.n_items if item_codes is None else len(item_codes)
        out = np.empty((len(user_codes), n_cols), dtype=np.float32)
        with self._eval() as module:
            items = None if item_codes is None else _tensor(item_codes, self.device_)
            for blk in user_blocks(len(user_codes), self.score_block_size):
                users = _tensor(user_codes[blk], self.device_)
                out[blk] = self.score_block(module, users, items).float().cpu().numpy()
        return out

    def _predict(self, user_codes: np.ndarray, item_codes: np.ndarray) -> np.ndarray:
        out = np.empty(len(user_codes), dtype=np.float32)
        with self._eval() as module:
            for blk in user_blocks(len(user_codes), 1 << 16):
                u = _tensor(user_codes[blk], self.device_)
                i = _tensor(item_codes[blk], self.device_)
                out[blk] = self.predict_pairs(module, u, i).float().cpu().numpy()
        return out

    # --- persistence ---------------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        state = super()._state()
        module = state.pop("module_")
        state["device_"] = str(state["device_"])
        for key, value in module.state_dict().items():
            state[MODULE_PREFIX + key] = value.detach().cpu().numpy()
        return state

    def _restore(self, state: dict[str, Any]) -> None:
        weights = {k[len(MODULE_PREFIX):]: torch.from_numpy(np.array(v))
                   for k, v in state.items() if k.startswith(MODULE_PREFIX)}
        super()._restore({k: v for k, v in state.items() if not k.startswith(MODULE_PREFIX)})
        # The machine that loads decides the device: a model trained on CUDA loads on a CPU box.
        self.device_ = resolve_device(str(getattr(self, "device", "auto")))
        module = self.build_module()
        module.load_state_dict(weights)
        self.module_ = module.to(self.device_)


def _tensor(codes: np.ndarray, device: torch.device) -> Tensor:
    return torch.from_numpy(np.asarray(codes, dtype=np.int64)).to(device)


# --- validation --------------------------------------------------------------------------------
def validation_metric(model: TorchRecommender, valid: Dataset) -> tuple[str, float]:
    """("rmse", value) for rating objectives, ("ndcg@10", value) for ranking ones.

    NDCG@10 ranks every training item outside the user's training history (full ranking) for the
    validation users known to the model; every validation item is relevant (relevance 0).

    Data-parallel (`movierec.distributed`): each process scores the users whose code is its rank
    modulo the world size, and the sums behind the mean are all-reduced, so every process gets
    the same value (and takes the same early-stopping decision).
    """
    users = model.user_vocab_.codes(valid.ratings["user_id"].to_numpy(), missing="negative")
    items = model.item_vocab_.codes(valid.ratings["item_id"].to_numpy(), missing="negative")
    world = distributed.world_size()
    if model.objective == "rating":
        if world == 1:
            yhat = model._predict(users, items)
            return "rmse", M.rmse(valid.ratings["rating"].to_numpy(), yhat)
        # Unknown users (code -1) fall to rank world-1: the shards still partition the rows.
        mine = users % world == distributed.rank()
        yhat = model._predict(users[mine], items[mine]).astype(np.float64)
        err = valid.ratings["rating"].to_numpy(np.float64)[mine] - yhat
        total = distributed.all_reduce_sum(
            torch.tensor([float(np.sum(err**2)), float(mine.sum())], dtype=torch.float64))
        n = float(total[1])
        return "rmse", math.sqrt(float(total[0]) / n) if n else float("nan")
    known = users >= 0
    block_users, n_relevant = np.unique(users[known], return_counts=True)
    if world > 1:
        mine = block_users % world == distributed.rank()
        block_users, n_relevant = block_users[mine], n_relevant[mine]
    keys = np.sort(users[known & (items >= 0)].astype(np.int64) * model.n_items
                   + items[known & (items >= 0)])
    values = []
    for blk in user_blocks(len(block_users), 1024):
        cols, _ = model.top_k_codes(block_users[blk], 10)
        query = block_users[blk, None].astype(np.int64) * model.n_items + cols
        pos = np.minimum(np.searchsorted(keys, query), max(len(keys) - 1, 0))
        hits = (cols >= 0) & (keys[pos] == query) if len(keys) else np.zeros_like(cols, bool)
        values.append(M.ndcg(hits, n_relevant[blk]))
    if world > 1:
        flat = np.concatenate(values) if values else np.zeros(0)
        total = distributed.all_reduce_sum(
            torch.tensor([float(flat.sum()), float(len(flat))], dtype=torch.float64))
        n = float(total[1])
        return "ndcg@10", float(total[0]) / n if n else 0.0
    return "ndcg@10", float(np.concatenate(values).mean()) if values else 0.0


# --- the trainer -------------------------------------------------------------------------------
CHECKPOINT = "last.safetensors"
CHECKPOINT_JSON = "last.json"
CHECKPOINT_FORMAT = 1


class Trainer:
    """The epoch loop shared by every `TorchRecommender`.

    Args:
        epochs: maximum number of passes over the training data (≥ 1).
        learning_rate: Adam step size (default 1e-3).
        weight_decay: Adam L2 weight decay (default 0).
        patience: stop after this many epochs without a better validation metric (None: never
            stop early); only used when `fit` gets validation data.
        grad_clip: clip the global gradient norm to this value (None: no clipping).
        progress: show a tqdm bar with the running loss (only on terminals; False: silent).
        checkpoint_dir: folder for `last.safetensors` (weights, best weights, optimizer and RNG
            state; its JSON header is the commit record) and a readable copy `last.json`,
            both replaced atomically after every epoch. None: no checkpoints.
        resume: continue from the checkpoint in `checkpoint_dir`, if any; the final weights then
            equal those of an uninterrupted run with the same seed (on CPU).
        on_epoch: called after every epoch (and its checkpoint) with the epoch's record
            {epoch, train_loss, valid_metric, metric, seconds}; an exception it raises ends
            training and propagates.
        sparse_updates: train the module's embedding tables with row-sparse gradients and
            `movierec.optim.LazyAdam` (only the rows a batch touches are updated, and decayed);
            the cost of a step then follows the batch instead of the tables (default False:
            dense `torch.optim.Adam`). Not with `grad_clip`.

    Data-parallel (several processes, see `movierec.distributed`): every process draws the same
    global batches from the shared seed (same permutation, same negatives), computes the loss on
    its contiguous 1/world slice of each, and the gradients are summed across processes weighted
    by slice size — the gradient of the global batch's mean loss, so `batch_size` is the global
    batch. Gradients are all-reduced by hand rather than by wrapping the module in
    DistributedDataParallel, because models compute losses through module methods other than
    `forward` (`user_terms`, `item_terms`...), which DDP's reducer does not see. Validation is
    sharded by users, every process takes the same early-stopping decision, and only rank 0
    writes checkpoints and shows progress; `on_epoch` runs on every process.
    """

    def __init__(self, *, epochs: int, learning_rate: float = 1e-3, weight_decay: float = 0.0,
                 patience: int | None = None, grad_clip: float | None = None,
                 progress: bool = True, checkpoint_dir: str | Path | None = None,
                 resume: bool = False,
                 on_epoch: Callable[[dict[str, Any]], None] | None = None,
                 sparse_updates: bool = False) -> None:
        if resume and checkpoint_dir is None:
            raise ValueError("resume=True needs a checkpoint_dir")
        if sparse_updates and grad_clip is not None:
            raise ValueError("sparse_updates cannot be combined with grad_clip (the global norm "
                             "of row-sparse gradients is not clipped here)")
        self.sparse_updates = sparse_updates
        self.epochs = epochs
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.patience = patience
        self.grad_clip = grad_clip
        self.progress = progress
        self.checkpoint_dir = None if checkpoint_dir is None else Path(checkpoint_dir)
        self.resume = resume
        self.on_epoch = on_epoch

    def fit(self, model: TorchRecommender, train: Dataset, valid: Dataset | None,
            generator: torch.Generator) -> None:
        """Train `model.module_` in place; sets `model.history_` and `model.best_epoch_`."""
        module, device = model.module_, model.device_
        sparse_layers = mark_sparse(module) if self.sparse_updates else []
        try:
            self._fit(model, module, device, train, valid, generator)
        finally:
            mark_sparse(torch.nn.ModuleList(sparse_layers), False)

    def _fit(self, model: TorchRecommender, module: torch.nn.Module, device: torch.device,
             train: Dataset, valid: Dataset | None, generator: torch.Generator) -> None:
        from tqdm.auto import tqdm

        optimizer: torch.optim.Optimizer = (
            LazyAdam(module.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay)
            if self.sparse_updates else
            torch.optim.Adam(module.parameters(), lr=self.learning_rate,
                             weight_decay=self.weight_decay))
        data = model.training_data(train)
        n_batches = math.ceil(len(next(iter(data.values()))) / int(getattr(model, "batch_size", 1)))
        run = _RunState()
        if self.resume and self.checkpoint_dir is not None:
            if _found_everywhere(self.checkpoint_dir / CHECKPOINT):
                run = _load_checkpoint(self.checkpoint_dir, model, optimizer, generator)
                logger.info("resuming %s after epoch %d", type(model).__name__, run.epoch)
            else:
                logger.info("no checkpoint in %s: training from scratch", self.checkpoint_dir)
        _broadcast_module(module)
        higher = model.objective == "ranking"
        show = self.progress and distributed.is_main()
        bar = tqdm(total=self.epochs, initial=min(run.epoch, self.epochs), unit="epoch",
                   desc=type(model).__name__, disable=None if show else True,
                   leave=False)
        try:
            for epoch in range(run.epoch + 1, self.epochs + 1):
                if run.stopped:
                    break
                t0 = time.perf_counter()
                train_loss = self._epoch(model, module, optimizer, data, generator, device, bar,
                                         n_batches)
                record: dict[str, Any] = {"epoch": epoch, "train_loss": train_loss,
                                          "valid_metric": None}
                if valid is not None:
                    name, value = validation_metric(model, valid)
                    record.update(valid_metric=value, metric=name)
                    better = run.best_metric is None or (
                        value > run.best_metric if higher else value < run.best_metric)
                    if better:
                        run.best_metric, run.best_epoch, run.bad_epochs = value, epoch, 0
                        run.best_weights = {k: v.detach().clone()
                                            for k, v in module.state_dict().items()}
                    else:
                        run.bad_epochs += 1
                    run.stopped = self.patience is not None and run.bad_epochs >= self.patience
                record["seconds"] = time.perf_counter() - t0
                run.history.append(record)
                run.epoch = epoch
                bar.update(1)
                bar.set_postfix(_postfix(record), refresh=False)
                logger.info("epoch %d: %s", epoch, _postfix(record))
                if self.checkpoint_dir is not None and distributed.is_main():
                    _save_checkpoint(self.checkpoint_dir, model, optimizer, generator, run)
                if self.on_epoch is not None:
                    self.on_epoch(dict(record))
        finally:
            bar.close()
        if run.best_weights is not None:
            module.load_state_dict(run.best_weights)
        model.history_ = run.history
        model.best_epoch_ = run.best_epoch if run.best_weights is not None else run.epoch

    def _epoch(self, model: TorchRecommender, module: torch.nn.Module,
               optimizer: torch.optim.Optimizer, data: dict[str, Tensor],
               generator: torch.Generator, device: torch.device, bar: Any, n_batches: int
               ) -> float:
        module.train()
        if distributed.is_distributed():
            return self._parallel_epoch(model, module, optimizer, data, generator, device, bar,
                                        n_batches)
        total, count = 0.0, 0
        with seeded_torch(generator, device):
            for b, batch in enumerate(model.batches(data, generator)):
                batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
                optimizer.zero_grad(set_to_none=True)
                loss = model.batch_loss(module, batch)
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise MovieRecError(f"{type(model).__name__}: training loss is {value} in "
                                        f"batch {b}; lower learning_rate or set grad_clip")
                loss.backward()
                if self.grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(module.parameters(), self.grad_clip)
                optimizer.step()
                size = len(next(iter(batch.values())))
                total, count = total + value * size, count + size
                if b % 25 == 0 and not bar.disable:
                    bar.set_postfix(loss=f"{total / count:.4f}", batch=f"{b + 1}/{n_batches}")
        return total / max(count, 1)

    def _parallel_epoch(self, model: TorchRecommender, module: torch.nn.Module,
                        optimizer: torch.optim.Optimizer, data: dict[str, Tensor],
                        generator: torch.Generator, device: torch.device, bar: Any,
                        n_batches: int) -> float:
        """`_epoch` when data-parallel: this rank's slice of every global batch, summed grads."""
        world, rank = distributed.world_size(), distributed.rank()
        params = [p for p in module.parameters() if p.requires_grad]
        # Weights of the embedding layers `mark_sparse` set (sparse_updates): row-sparse grads.
        sparse_ids = {id(m.weight) for m in module.modules()
                      if isinstance(m, torch.nn.Embedding | torch.nn.EmbeddingBag) and m.sparse}
        row_sparse = [id(p) in sparse_ids for p in params]
        total, count = 0.0, 0
        with seeded_torch(generator, device):
            # Dropout masks differ by rank, as they would across the rows of one big batch.
            torch.manual_seed(torch.initial_seed() + rank)
            for b, batch in enumerate(model.batches(data, generator)):
                batch, n_global = _shard(model, batch, rank, world)
                n_local = len(next(iter(batch.values())))
                batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
                optimizer.zero_grad(set_to_none=True)
                local = 0.0
                if n_local:
                    loss = model.batch_loss(module, batch)
                    local = float(loss.detach())
                    # Backward on the weighted loss: the sum below is then the global mean's grad.
                    (loss * (n_local / n_global)).backward()
                value = _sum_gradients(params, local * n_local / n_global, device,
                                       row_sparse)
                if not math.isfinite(value):
                    raise MovieRecError(f"{type(model).__name__}: training loss is {value} in "
                                        f"batch {b}; lower learning_rate or set grad_clip")
                if self.grad_clip is not None:
                    torch.nn.utils.clip_grad_norm_(module.parameters(), self.grad_clip)
                optimizer.step()
                total, count = total + value * n_global, count + n_global
                if b % 25 == 0 and not bar.disable:
                    bar.set_postfix(loss=f"{total / count:.4f}", batch=f"{b + 1}/{n_batches}")
        return total / max(count, 1)


def _shard(model: TorchRecommender, batch: dict[str, Tensor], rank: int, world: int
           ) -> tuple[dict[str, Tensor], int]:
    """This rank's contiguous slice of a global batch, and the global batch's size."""
    sizes = {k: len(v) for k, v in batch.items()}
    n = next(iter(sizes.values()))
    if any(size != n for size in sizes.values()):
        raise MovieRecError(f"{type(model).__name__} cannot be trained data-parallel: its batches "
                            f"hold tensors of different lengths {sizes}, so they cannot be split "
                            "by rows; run it in one process")
    lo, hi = n * rank // world, n * (rank + 1) // world
    return {k: v[lo:hi] for k, v in batch.items()}, n


def _sum_gradients(params: list[Tensor], loss: float, device: torch.device,
                   row_sparse: list[bool] | None = None) -> float:
    """All-reduce the (pre-weighted) gradients of `params` and the loss; return the global loss.

    A parameter without a gradient on every rank keeps `grad = None`, so Adam skips it exactly as
    in one process. Gradients are summed densely; those of `row_sparse` parameters (embedding
    tables trained with `sparse_updates`) become row-sparse again over the rows that any rank
    touched, so that LazyAdam updates the rows one process would have. The touched-row masks
    travel with the loss and the has-gradient flags: two collectives a step.
    """
    row_sparse = row_sparse or [False] * len(params)
    grads = [p.grad for p in params]
    flat = torch.cat([torch.zeros(p.numel(), dtype=p.dtype, device=p.device) if g is None
                      else (g.to_dense() if g.is_sparse else g).reshape(-1) for p, g in
                      zip(params, grads, strict=True)]) if params else torch.zeros(0)
    masks = []
    for p, g, rs in zip(params, grads, row_sparse, strict=True):
        if rs:
            mask = torch.zeros(p.shape[0], dtype=torch.float64)
            if g is not None:
                mask[g.coalesce().indices()[0].cpu()] = 1.0
            masks.append(mask)
    meta = torch.cat([torch.tensor([loss] + [float(g is not None) for g in grads],
                                   dtype=torch.float64), *masks])
    distributed.all_reduce_sum(flat)
    distributed.all_reduce_sum(meta)
    offset, row_offset = 0, 1 + len(params)
    for p, has, rs in zip(params, meta[1:1 + len(params)].tolist(), row_sparse, strict=True):
        dense = flat[offset:offset + p.numel()].view_as(p)
        offset += p.numel()
        if rs:
            rows = torch.nonzero(meta[row_offset:row_offset + p.shape[0]]).ravel().to(p.device)
            row_offset += p.shape[0]
            p.grad = torch.sparse_coo_tensor(rows[None, :], dense[rows], p.shape)
        else:
            p.grad = dense.clone() if has else None
    return float(meta[0])


def _broadcast_module(module: torch.nn.Module) -> None:
    """Make every rank start from rank 0's weights (they already agree when seeded alike)."""
    if distributed.is_distributed():
        for tensor in module.state_dict().values():
            distributed.broadcast(tensor)


def _found_everywhere(path: Path) -> bool:
    """Whether `path` exists; data-parallel, refuse when only some ranks can see it."""
    found = path.is_file()
    if not distributed.is_distributed():
        return found
    count = int(distributed.all_reduce_sum(torch.tensor([float(found)]))[0])
    if 0 < count < distributed.world_size():
        raise MovieRecError(f"{path}: checkpoint visible to {count} of "
                            f"{distributed.world_size()} processes; resuming data-parallel "
                            "needs the checkpoint folder on a filesystem every node shares")
    return count > 0


def _postfix(record: dict[str, Any]) -> dict[str, str]:
    out = {"loss": f"{record['train_loss']:.4f}"}
    if record.get("valid_metric") is not None:
        out[record["metric"]] = f"{record['valid_metric']:.4f}"
    return out


class _RunState:
    """Everything the loop needs to continue exactly where it stopped."""

    def __init__(self) -> None:
        self.epoch = 0
        self.history: list[dict[str, Any]] = []
        self.best_metric: float | None = None
        self.best_epoch = 0
        self.bad_epochs = 0
        self.stopped = False
        self.best_weights: dict[str, Tensor] | None = None


def _save_checkpoint(folder: Path, model: TorchRecommender, optimizer: torch.optim.Optimizer,
                     generator: torch.Generator, run: _RunState) -> None:
    """Write last.safetensors (the commit record, one atomic file) and last.json (a copy)."""
    from safetensors.torch import save

    tensors: dict[str, Tensor] = {}
    for k, v in model.module_.state_dict().items():
        tensors[f"module.{k}"] = v.detach().cpu().contiguous()
    for k, v in (run.best_weights or {}).items():
        tensors[f"best.{k}"] = v.detach().cpu().contiguous()
    optim_json: dict[str, dict[str, Any]] = {}
    for pid, pstate in optimizer.state_dict()["state"].items():
        entry = optim_json.setdefault(str(pid), {})
        for key, value in pstate.items():
            if isinstance(value, Tensor):
                tensors[f"optim.{pid}.{key}"] = value.detach().cpu().contiguous()
                entry[key] = "tensor"
            else:
                entry[key] = value
    tensors["generator"] = generator.get_state()
    meta = {
        "format": CHECKPOINT_FORMAT,
        "model": model.name,
        "params": model.params(),
        "train_fingerprint": model.train_fingerprint_,
        "epoch": run.epoch,
        "history": run.history,
        "best_metric": run.best_metric,
        "best_epoch": run.best_epoch,
        "bad_epochs": run.bad_epochs,
        "stopped": run.stopped,
        "has_best": run.best_weights is not None,
        "optimizer": optim_json,
    }
    text = json.dumps(meta, indent=2, default=json_default)
    atomic_write_bytes(folder / CHECKPOINT, save(tensors, metadata={"checkpoint": text}))
    atomic_write_text(folder / CHECKPOINT_JSON, text)



def _load_checkpoint(folder: Path, model: TorchRecommender, optimizer: torch.optim.Optimizer,
                     generator: torch.Generator) -> _RunState:
    """Restore module, optimizer and generator from last.safetensors; return the loop state."""
    from safetensors import SafetensorError, safe_open

    path = folder / CHECKPOINT
    try:
        with safe_open(str(path), framework="pt", device="cpu") as fh:
            meta = json.loads((fh.metadata() or {})["checkpoint"])
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}  # noqa: SIM118 - not a dict
    # A damaged file (truncated by a disk fault or a partial copy) raises SafetensorError.
    except (OSError, KeyError, ValueError, json.JSONDecodeError, SafetensorError) as exc:
        raise MovieRecError(f"{path}: not a movierec checkpoint ({exc})") from None
    if meta.get("format") != CHECKPOINT_FORMAT or meta.get("model") != model.name:
        raise MovieRecError(f"{path}: checkpoint of model {meta.get('model')!r} (format "
                            f"{meta.get('format')!r}), expected {model.name!r}")
    if meta.get("train_fingerprint") != model.train_fingerprint_:
        raise MovieRecError(f"{path}: checkpoint was trained on data with fingerprint "
                            f"{meta.get('train_fingerprint')!r}, not {model.train_fingerprint_!r}")

    def part(prefix: str) -> dict[str, Tensor]:
        return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}

    try:
        model.module_.load_state_dict(part("module."))
    except RuntimeError as exc:
        raise MovieRecError(f"{path}: weights do not fit the module ({exc})") from None
    # A file damaged inside its tensors or metadata (the header still parses) fails here, e.g.
    # "Invalid mt19937 state" from the generator: a clear error, not a traceback.
    try:
        state: dict[int, dict[str, Any]] = {}
        for pid, entry in meta["optimizer"].items():
            state[int(pid)] = {key: tensors[f"optim.{pid}.{key}"] if value == "tensor" else value
                               for key, value in entry.items()}
        optimizer.load_state_dict({"state": state,
                                   "param_groups": optimizer.state_dict()["param_groups"]})
        generator.set_state(tensors["generator"])
        run = _RunState()
        run.epoch = int(meta["epoch"])
        run.history = list(meta["history"])
        run.best_metric = meta["best_metric"]
        run.best_epoch = int(meta["best_epoch"])
        run.bad_epochs = int(meta["bad_epochs"])
        run.stopped = bool(meta["stopped"])
        if meta.get("has_best"):
            device = model.device_
            run.best_weights = {k: v.to(device) for k, v in part("best.").items()}
    except (KeyError, ValueError, TypeError, RuntimeError, AttributeError) as exc:
        raise MovieRecError(f"{path}: damaged checkpoint ({type(exc).__name__}: {exc})"
                            ) from None
    return run
