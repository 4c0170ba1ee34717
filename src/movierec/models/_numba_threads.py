"""Several threads for the numba kernels, without numba's parallel thread pools.

The kernels (`als.cg_rows`, `_bpr_numba.bpr_sgd`) are compiled with `nogil=True` and take a range
of work (rows, or samples); this module cuts the work into blocks and runs them on a plain
`ThreadPoolExecutor`. Its idle threads wait on a queue, asleep: unlike numba's `parallel=True`
pools (OpenMP's spinning workers above all), they cost torch nothing when a torch model trains in
the same process afterwards (`benchmarks/peers_speed.py` measures it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

import numpy as np

from movierec.models.base import check_param, is_int

__all__ = ["balanced_blocks", "model_threads", "run_blocks", "thread_pool"]

T = TypeVar("T")

#: Blocks per thread: more blocks than threads, so that a thread slowed down by other work on
#: the machine hands its share to the others (blocks are taken from a queue as threads free up).
BLOCKS_PER_THREAD = 8


def model_threads(threads: int | None) -> int:
    """The thread count a model uses: `threads`, else $MOVIEREC_THREADS, else 1.

    Raises:
        ValueError: `threads` (or the environment variable) is not an integer ≥ 1.
    """
    if threads is not None:
        check_param("threads", threads, is_int(threads, 1), "an integer ≥ 1 or None")
        return int(threads)
    # The pipeline's rule (`movierec train --threads`, $MOVIEREC_THREADS, default 1), read when
    # fitting: a pure function, imported late because the pipeline sits above the models.
    from movierec.pipeline import resolve_threads

    return resolve_threads(None)


def balanced_blocks(indptr: np.ndarray, row_cost: int, n_blocks: int) -> np.ndarray:
    """Boundaries [n + 1] of ≤ n_blocks contiguous row ranges of about equal cost.

    A row costs its stored interactions (indptr[r + 1] − indptr[r]) plus `row_cost`.
    """
    n_rows = len(indptr) - 1
    if n_blocks <= 1 or n_rows <= 1:
        return np.array([0, n_rows], dtype=np.int64)
    cost = np.asarray(indptr, dtype=np.int64) + row_cost * np.arange(n_rows + 1, dtype=np.int64)
    targets = np.linspace(0, cost[-1], n_blocks + 1)[1:-1]
    inner = np.searchsorted(cost, targets)
    return np.unique(np.concatenate([[0], inner, [n_rows]])).astype(np.int64)


@contextmanager
def thread_pool(threads: int) -> Iterator[ThreadPoolExecutor | None]:
    """A pool of `threads` workers for the duration of a fit; None for one thread."""
    if threads <= 1:
        yield None
        return
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="movierec-numba") as pool:
        yield pool


def run_blocks(pool: ThreadPoolExecutor | None, bounds: np.ndarray,
               work: Callable[[int, int], T]) -> list[T]:
    """Call work(start, end) for each block of `bounds`; on `pool` when given. Results in order.

    Exceptions raised in a block are raised here.
    """
    pairs = [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:], strict=True) if b > a]
    if pool is None:
        return [work(a, b) for a, b in pairs]
    futures = [pool.submit(work, a, b) for a, b in pairs]
    return [f.result() for f in futures]
