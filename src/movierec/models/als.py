"""Implicit ALS: weighted matrix factorization for implicit feedback, solved by conjugate gradient.

Hu, Koren & Volinsky, "Collaborative Filtering for Implicit Feedback Datasets" (ICDM 2008), with
the conjugate-gradient inner solver of Takács, Pilászy & Tikk (RecSys 2011) that `implicit` uses.
Every (user, item) cell has a preference p = 1 if the user interacted with the item, else 0, and a
confidence c = 1 + α·x (x = 1 for binary feedback, or the rating with `feedback="rating"`).
Alternating over users and items, each row's factors minimise

    Σ_i c_ui (p_ui − x_u · y_i)² + λ ‖x_u‖²

whose normal equations are (YᵀY + Σ_{i∈I(u)} (c_ui − 1) y_i y_iᵀ + λI) x_u = Σ_{i∈I(u)} c_ui y_i.
YᵀY is computed once per half-sweep; each row then takes `cg_steps` conjugate-gradient steps
from its current factors, touching only its own interactions, in a numba-compiled loop.

The compiled loop calls no BLAS and uses no numba parallel loop on purpose: numba's parallel
loops and its `@` (BLAS) run on thread pools that are not torch's, and once they had run in a
process, torch slowed down 20× on this 2-core machine (MF: 4.9 s → 101 s for 2 epochs after one
ALS fit). Several threads (`threads`) instead run the loop on blocks of rows with the GIL
released, on a plain Python thread pool whose idle workers sleep (see `_numba_threads`).

Scores are x_u · y_i (a ranking score, not a rating). Fold-in solves the same normal equations
exactly for the new user with the item factors fixed.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar, Self

import numpy as np
import scipy.sparse as sp
from tqdm.auto import tqdm

from movierec.data.dataset import Dataset
from movierec.models._numba_threads import (
    BLOCKS_PER_THREAD,
    balanced_blocks,
    model_threads,
    run_blocks,
    thread_pool,
)
from movierec.models.base import Recommender, check_param, is_int, is_number
from movierec.models.space import Choice, Float, Int, SearchSpace
from movierec.random import RNGLike, as_generator

__all__ = ["ImplicitALS", "cg_half_sweep", "cg_rows"]

try:  # numba is the optional extra this module needs; the registry reports it when missing
    from numba import njit
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError("movierec.models.als needs numba: pip install 'movierec[numba]'",
                      name="numba") from exc

FEEDBACK = ("binary", "rating")


@njit(cache=True, fastmath=True)
def _gram_times(yty: np.ndarray, v: np.ndarray, reg: float | np.float32,
                out: np.ndarray) -> None:  # pragma: no cover - compiled
    """Write (YᵀY + λI) v into `out`, as loops.

    Numba's `@` calls BLAS, whose thread pool is not torch's, and torch slowed down 20× in a process
    where it had run (see the module docstring).
    """
    k = v.shape[0]
    for a in range(k):
        acc = reg * v[a]
        for c in range(k):
            acc += yty[a, c] * v[c]
        out[a] = acc


@njit(cache=True, fastmath=True, nogil=True)
def cg_rows(indptr: np.ndarray, indices: np.ndarray, confidence: np.ndarray,
            x: np.ndarray, y: np.ndarray, yty: np.ndarray, reg: float | np.float32,
            cg_steps: int, row_start: int, row_end: int) -> None:  # pragma: no cover - compiled
    """Update rows [row_start, row_end) of `x` by `cg_steps` CG steps on their normal equations.

    `y` is fixed; `confidence` holds c_ui − 1 per stored interaction (CSR order of
    indptr/indices). Each row reads only `y`, `yty` and its own interactions and writes only its
    own row of `x`, so disjoint row ranges may run at once on several threads (the GIL is
    released), and a row's result does not depend on which thread computed it.
    """
    k = x.shape[1]
    for row in range(row_start, row_end):
        start, end = indptr[row], indptr[row + 1]
        xu = x[row].copy()
        # r = b − A xu with b = Σ c y_i and A xu = YᵀY xu + λ xu + Σ (c − 1)(y_i · xu) y_i
        r = np.empty(k, dtype=x.dtype)
        _gram_times(yty, xu, reg, r)
        for a in range(k):
            r[a] = -r[a]
        for p in range(start, end):
            i = indices[p]
            c1 = confidence[p]
            dot = 0.0
            for a in range(k):
                dot += y[i, a] * xu[a]
            coef = (1.0 + c1) - c1 * dot
            for a in range(k):
                r[a] += coef * y[i, a]
        d = r.copy()
        rsold = 0.0
        for a in range(k):
            rsold += r[a] * r[a]
        for _ in range(cg_steps):
            if rsold < 1e-20:
                break
            ad = np.empty(k, dtype=x.dtype)
            _gram_times(yty, d, reg, ad)
            for p in range(start, end):
                i = indices[p]
                dot = 0.0
                for a in range(k):
                    dot += y[i, a] * d[a]
                dot *= confidence[p]
                for a in range(k):
                    ad[a] += dot * y[i, a]
            dad = 0.0
            for a in range(k):
                dad += d[a] * ad[a]
            alpha = rsold / dad
            rsnew = 0.0
            for a in range(k):
                xu[a] += alpha * d[a]
                r[a] -= alpha * ad[a]
                rsnew += r[a] * r[a]
            beta = rsnew / rsold
            for a in range(k):
                d[a] = r[a] + beta * d[a]
            rsold = rsnew
        x[row] = xu


def cg_half_sweep(indptr: np.ndarray, indices: np.ndarray, confidence: np.ndarray,
                  x: np.ndarray, y: np.ndarray, yty: np.ndarray, reg: float | np.float32,
                  cg_steps: int) -> None:
    """Update every row of `x` by `cg_steps` CG steps on its normal equations (y fixed).

    `confidence` holds c_ui − 1 per stored interaction (CSR order of indptr/indices). A plain
    call of the compiled `cg_rows` on all rows, not a second compiled function: numba compiles
    `cg_rows` inlined into a caller with other fastmath choices, so a compiled wrapper could
    differ from `cg_rows` itself in the last bits (it did, in one fresh CI run).
    """
    cg_rows(indptr, indices, confidence, x, y, yty, reg, cg_steps, 0, x.shape[0])


class ImplicitALS(Recommender):
    """Weighted ALS for implicit feedback (Hu, Koren & Volinsky 2008), conjugate-gradient solver.

    The defaults are `implicit`'s (`AlternatingLeastSquares`): 100 factors, λ = 0.01, α = 1,
    15 iterations (here `epochs`), 3 CG steps, so `benchmarks/peers.py` compares the same
    model.

    Args:
        embedding_size: factors per user and item (default 100, ≥ 1).
        epochs: ALS sweeps, each users then items (default 15, ≥ 1; formerly `iterations`,
            still accepted with a DeprecationWarning).
        reg: L2 penalty λ (default 0.01, ≥ 0).
        alpha: confidence slope α in c = 1 + α·x (default 1.0, ≥ 0).
        cg_steps: conjugate-gradient steps per row and half-sweep (default 3, ≥ 1).
        feedback: "binary" (x = 1 for every interaction, default) or "rating" (x = the rating).
        init_std: scale of the uniform [0, init_std) initial factors (default 0.01, > 0).
        threads: threads for the CG solves (default None: $MOVIEREC_THREADS, else 1; ≥ 1).
            Rows are independent and each is solved by the same code on whichever thread
            takes it, so the factors are bit-identical for every thread count.
    """

    name: ClassVar[str] = "ials"
    search_space: ClassVar[SearchSpace] = {
        "embedding_size": Int(16, 256, log=True),
        "epochs": Int(5, 40),
        "reg": Float(1e-3, 10.0, log=True),
        "alpha": Float(0.1, 100.0, log=True),
        "feedback": Choice(list(FEEDBACK)),
    }
    predicts_ratings: ClassVar[bool] = False
    supports_fold_in: ClassVar[bool] = True
    renamed_params: ClassVar[dict[str, str]] = {"iterations": "epochs"}

    def __init__(self, *, embedding_size: int = 100, epochs: int = 15, reg: float = 0.01,
                 alpha: float = 1.0, cg_steps: int = 3, feedback: str = "binary",
                 init_std: float = 0.01, threads: int | None = None) -> None:
        for name, value in (("embedding_size", embedding_size), ("epochs", epochs),
                            ("cg_steps", cg_steps)):
            check_param(name, value, is_int(value, 1), "an integer ≥ 1")
        for name, number in (("reg", reg), ("alpha", alpha)):
            check_param(name, number, is_number(number) and number >= 0, "a number ≥ 0")
        check_param("feedback", feedback, feedback in FEEDBACK, f"one of {list(FEEDBACK)}")
        check_param("init_std", init_std, is_number(init_std) and init_std > 0, "a number > 0")
        check_param("threads", threads, threads is None or is_int(threads, 1),
                    "an integer ≥ 1 or None")
        self.embedding_size = embedding_size
        self.epochs = epochs
        self.reg = reg
        self.alpha = alpha
        self.cg_steps = cg_steps
        self.feedback = feedback
        self.init_std = init_std
        self.threads = threads

    def _confidence_matrix(self, train: Dataset) -> sp.csr_matrix:
        """CSR users × items of c − 1 = α·x over the training interactions (float32)."""
        m = train.matrix("rating" if self.feedback == "rating" else "binary").astype(np.float32)
        m.data *= np.float32(self.alpha)
        return sp.csr_matrix(m)

    def fit(self, train: Dataset, valid: Dataset | None = None, *, rng: RNGLike = None,
            progress: bool = True) -> Self:
        """Alternate CG half-sweeps over users and items; returns self."""
        self._setup(train)
        gen = as_generator(rng)
        cu = self._confidence_matrix(train)
        ci = sp.csr_matrix(cu.T)
        k = self.embedding_size
        x = (gen.random((self.n_users, k)) * self.init_std).astype(np.float32)
        y = (gen.random((self.n_items, k)) * self.init_std).astype(np.float32)
        reg = np.float32(self.reg)
        threads = model_threads(self.threads)
        n_blocks = threads * BLOCKS_PER_THREAD if threads > 1 else 1
        user_blocks = balanced_blocks(cu.indptr, k, n_blocks)
        item_blocks = balanced_blocks(ci.indptr, k, n_blocks)
        with thread_pool(threads) as pool:
            for _ in tqdm(range(self.epochs), desc=f"fit {self.name}", unit="epoch",
                          disable=not progress, leave=False):
                self._half_sweep(pool, user_blocks, cu, x, y, reg)
                self._half_sweep(pool, item_blocks, ci, y, x, reg)
        self.user_factors_, self.item_factors_ = x, y
        return self

    def _half_sweep(self, pool: ThreadPoolExecutor | None, blocks: np.ndarray,
                    c: sp.csr_matrix, x: np.ndarray, y: np.ndarray, reg: np.float32) -> None:
        """CG steps for every row of `x` (y fixed), block by block on `pool`'s threads."""
        yty = (y.T @ y).astype(np.float32)
        steps = self.cg_steps
        run_blocks(pool, blocks, lambda a, b: cg_rows(c.indptr, c.indices, c.data, x, y, yty,
                                                       reg, steps, a, b))

    def _score(self, user_codes: np.ndarray, item_codes: np.ndarray | None = None) -> np.ndarray:
        self._check_fitted()
        y = self.item_factors_ if item_codes is None else self.item_factors_[item_codes]
        # float64 products, so a user's scores do not depend on the block it is scored in
        # (float32 BLAS rounds a one-row product differently from a many-row one).
        x = self.user_factors_[user_codes].astype(np.float64)
        return (x @ y.T.astype(np.float64)).astype(np.float32)

    def _score_history(self, item_codes: np.ndarray, ratings: np.ndarray) -> np.ndarray:
        """Scores float32 [n_items] of a new user, with the item factors fixed.

        The exact solution of the user's normal equations; unknown item codes (−1) are ignored.
        """
        self._check_fitted()
        codes = np.asarray(item_codes, dtype=np.int64)
        r = np.asarray(ratings, dtype=np.float64)
        keep = codes >= 0
        codes, r = codes[keep], r[keep]
        y = self.item_factors_.astype(np.float64)
        x_raw = r if self.feedback == "rating" else np.ones(len(codes))
        c1 = self.alpha * x_raw
        yi = y[codes]
        a = y.T @ y + (yi * c1[:, None]).T @ yi + self.reg * np.eye(y.shape[1])
        xu = np.linalg.solve(a, yi.T @ (1.0 + c1))
        return (y @ xu).astype(np.float32)

    def item_vectors(self) -> np.ndarray:
        """Item factors y_i [n_items, embedding_size]: similar movies are compared in this space."""
        self._check_fitted()
        return self.item_factors_

    def dot_vectors(self) -> Any:
        """The scores as a dot product x_u · y_i (`movierec.ranking.DotVectors`).

        Lets `movierec.ann.ANNIndex` index this model.
        """
        from movierec.ranking import DotVectors

        self._check_fitted()
        return DotVectors(users=self.user_factors_, items=self.item_factors_)
