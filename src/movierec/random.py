"""Random number generators: every stochastic function takes `rng` and derives from it (SPEC 7)."""

from __future__ import annotations

import numpy as np

RNGLike = int | np.random.Generator | None


def as_generator(rng: RNGLike = None) -> np.random.Generator:
    """Return a numpy Generator for `rng`.

    Args:
        rng: a seed (int), an existing Generator (returned as is, so state is shared), or None for
            fresh OS entropy.
    """
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, int | np.integer):
        return np.random.default_rng(rng)
    raise TypeError(f"rng must be an int, a numpy Generator or None, not {type(rng).__name__}")


def derive_seed(rng: RNGLike = None) -> int:
    """Draw a 63-bit seed from `rng`, e.g. to seed a torch generator or a child process."""
    return int(as_generator(rng).integers(0, 2**63 - 1))
