"""BPR by per-sample SGD in a compiled loop (numba): `MF(loss="bpr", backend="numba")`.

Rendle et al., "BPR: Bayesian Personalized Ranking from Implicit Feedback" (UAI 2009), trained
the way `implicit`'s `BayesianPersonalizedRanking` is: each epoch draws as many (user, liked
item) pairs as there are training interactions, uniformly over the interactions, and a negative
item j as the item of another uniformly drawn interaction (so negatives follow item popularity);
a j the user has rated is skipped. Each step ascends ln σ(x̂_ui − x̂_uj) − λ(‖p_u‖² + ‖q_i‖² +
‖q_j‖² + b_i² + b_j²) with x̂_ui = p_u · q_i + b_i, by

    z = 1 − σ(x̂_ui − x̂_uj)
    p_u ← p_u + η (z (q_i − q_j) − λ p_u)
    q_i ← q_i + η (z p_u − λ q_i),   q_j ← q_j + η (−z p_u − λ q_j)
    b_i ← b_i + η (z − λ b_i),       b_j ← b_j + η (−z − λ b_j)

Several threads run Hogwild! (Niu et al. 2011), as `implicit` does: each thread takes blocks of
samples and updates the shared factors without locks. Every block draws its samples from its
own seed (splitmix64, portable across machines), and the blocks are the same for every thread
count, so one thread repeats exactly; with several, the interleaving of updates (and so the
factors, slightly) changes from run to run.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import scipy.sparse as sp
import torch
from tqdm.auto import tqdm

from movierec.data.dataset import Dataset
from movierec.models._numba_threads import model_threads, run_blocks, thread_pool
from movierec.random import RNGLike, as_generator

if TYPE_CHECKING:
    from movierec.models.mf import MF, MFModule

try:  # numba is the optional extra this module needs
    from numba import njit
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("MF(backend='numba') needs numba: pip install 'movierec[numba]'",
                      name="numba") from exc

__all__ = ["BLOCKS_PER_EPOCH", "bpr_sgd", "fit_bpr"]

logger = logging.getLogger(__name__)

#: Sample blocks per epoch, whatever the thread count (so one thread repeats any run's samples).
BLOCKS_PER_EPOCH = 32


@njit(cache=True, inline="always")
def _splitmix64(state: np.uint64) -> tuple[np.uint64, np.uint64]:  # pragma: no cover - compiled
    """(next state, 64 random bits)."""
    state = state + np.uint64(0x9E3779B97F4A7C15)
    z = state
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return state, z ^ (z >> np.uint64(31))


@njit(cache=True, fastmath=True, nogil=True)
def bpr_sgd(users: np.ndarray, indptr: np.ndarray, indices: np.ndarray, p: np.ndarray,
            q: np.ndarray, b: np.ndarray, n_samples: int, learning_rate: float | np.float32,
            reg: float | np.float32, seed: np.uint64) -> tuple[int, int]:  # pragma: no cover
    """`n_samples` BPR SGD steps on p [users, k], q [items, k] and b [items], in place.

    `users[n]` is the user of interaction n, whose item is `indices[n]` (CSR users × items with
    sorted indices). Returns (pairs ordered correctly before their step, skipped negatives).
    """
    nnz = np.uint64(indices.shape[0])
    k = p.shape[1]
    lr = np.float32(learning_rate)
    lam = np.float32(reg)
    decay = np.float32(1.0) - lr * lam
    state = np.uint64(seed)
    correct = 0
    skipped = 0
    for _ in range(n_samples):
        # an index below nnz from the high 32 bits by a multiply and a shift (Lemire 2019), not
        # a 64-bit division (7% of the step); exact enough for nnz < 2³²
        state, r = _splitmix64(state)
        n = np.int64(((r >> np.uint64(32)) * nnz) >> np.uint64(32))
        state, r = _splitmix64(state)
        u = users[n]
        i = indices[n]
        j = indices[np.int64(((r >> np.uint64(32)) * nnz) >> np.uint64(32))]
        # a negative the user has rated is no negative: binary search the user's sorted items
        lo, hi = indptr[u], indptr[u + 1]
        while lo < hi:
            mid = (lo + hi) // 2
            if indices[mid] < j:
                lo = mid + 1
            else:
                hi = mid
        if lo < indptr[u + 1] and indices[lo] == j:
            skipped += 1
            continue
        pu, qi, qj = p[u], q[i], q[j]
        x = b[i] - b[j]
        for f in range(k):
            x += pu[f] * (qi[f] - qj[f])
        z = np.float32(1.0) / (np.float32(1.0) + np.exp(x))
        if z < 0.5:
            correct += 1
        # the update above rearranged: p ← (1 − ηλ) p + ηz (q_i − q_j), and so on
        step = lr * z
        for f in range(k):
            pf, qif, qjf = pu[f], qi[f], qj[f]
            pu[f] = decay * pf + step * (qif - qjf)
            qi[f] = decay * qif + step * pf
            qj[f] = decay * qjf - step * pf
        b[i] += lr * (z - lam * b[i])
        b[j] += lr * (-z - lam * b[j])
    return correct, skipped


def fit_bpr(model: MF, train: Dataset, valid: Dataset | None, *, rng: RNGLike,
            progress: bool, on_epoch: Callable[[dict[str, Any]], None] | None) -> None:
    """Fit `model` (an MF with loss="bpr") by `bpr_sgd`; sets what `Trainer` would set.

    The SGD writes straight into the module's weight tensors (numpy views of them), so the
    fitted model saves, loads, scores and folds in as the torch-trained one does: user factors
    p_u, item factors q_i, item biases b_i, user biases 0 (they cancel in BPR). With `valid`,
    NDCG@10 is computed after every epoch, training stops after `patience` epochs without a
    better value, and the best epoch's weights are kept (as `Trainer` does).
    """
    gen = as_generator(rng)
    model._setup(train)
    model._prepare(train)
    model.device_ = torch.device("cpu")
    module = cast("MFModule", model.build_module())
    k = model.embedding_size
    p = module.user_factors.weight.detach().numpy()
    q = module.item_factors.weight.detach().numpy()
    b = module.item_bias.weight.detach().numpy()[:, 0]
    # implicit's start: factors uniform in ±0.5 / (k + 1), biases 0
    p[:] = (gen.random(p.shape) - 0.5) / (k + 1)
    q[:] = (gen.random(q.shape) - 0.5) / (k + 1)
    b[:] = 0.0
    model.module_ = module
    seen = sp.csr_matrix(model.seen_, dtype=np.float32)
    seen.sort_indices()
    indptr, indices = seen.indptr.astype(np.int64), seen.indices.astype(np.int64)
    users = np.repeat(np.arange(seen.shape[0], dtype=np.int64), np.diff(indptr))
    nnz = len(indices)
    bounds = np.linspace(0, nnz, BLOCKS_PER_EPOCH + 1).astype(np.int64)
    lr, reg = np.float32(model.learning_rate), np.float32(model.reg)
    history: list[dict[str, Any]] = []
    best: tuple[float, int, list[np.ndarray]] | None = None
    bad_epochs, patience = 0, model.patience
    with thread_pool(model_threads(model.threads)) as pool:
        for epoch in tqdm(range(1, model.epochs + 1), desc=f"fit {model.name}", unit="epoch",
                          disable=not progress, leave=False):
            t0 = time.perf_counter()
            seeds = dict(zip(bounds[:-1].tolist(),
                             gen.integers(0, 2**63, size=BLOCKS_PER_EPOCH, dtype=np.uint64),
                             strict=True))
            def block(start: int, end: int, seeds: dict[int, np.uint64] = seeds
                      ) -> tuple[int, int]:
                return bpr_sgd(users, indptr, indices, p, q, b, end - start, lr, reg,
                               seeds[start])

            counts = run_blocks(pool, bounds, block)
            correct = sum(int(c[0]) for c in counts)
            skipped = sum(int(c[1]) for c in counts)
            record: dict[str, Any] = {"epoch": epoch,
                                      "train_loss": 1.0 - correct / max(nnz - skipped, 1)}
            if valid is not None:
                name, value = model.validation_metric(valid, train)
                record.update(valid_metric=value, metric=name)
                if best is None or value > best[0]:
                    best, bad_epochs = (value, epoch, [p.copy(), q.copy(), b.copy()]), 0
                else:
                    bad_epochs += 1
            record["seconds"] = time.perf_counter() - t0
            history.append(record)
            logger.info("epoch %d: %s", epoch, record)
            if on_epoch is not None:
                on_epoch(dict(record))
            if valid is not None and patience is not None and bad_epochs >= patience:
                break
    if best is not None:
        p[:], q[:], b[:] = best[2]
    model.history_ = history
    model.best_epoch_ = best[1] if best is not None else len(history)
    model.resumed_from_epoch_ = None
