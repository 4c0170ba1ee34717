"""benchmarks/seed_fold_spread.py: the seed/fold variance split on a hand-computed grid."""

import importlib.util
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "seed_fold_spread.py"
_spec = importlib.util.spec_from_file_location("seed_fold_spread", _PATH)
assert _spec is not None and _spec.loader is not None
spread = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(spread)


def test_decompose_hand_computed():
    # folds x seeds: fold means 2 and 6 -> fold var (ddof=1) 8; within-fold variances 2 and 2
    # -> seed var 2; share 2 / (2 + 8) = 0.2; corrected fold var 8 - 2/2 = 7 -> share 2/9.
    out = spread.decompose([[1.0, 3.0], [5.0, 7.0]])
    assert out["mean"] == pytest.approx(4.0)
    assert out["seed_var"] == pytest.approx(2.0)
    assert out["fold_var"] == pytest.approx(8.0)
    assert out["seed_share"] == pytest.approx(0.2)
    assert out["fold_var_corrected"] == pytest.approx(7.0)
    assert out["seed_share_corrected"] == pytest.approx(2 / 9)
    assert out["var_all"] == pytest.approx(20 / 3)


def test_decompose_seed_only_spread_clips_fold_component():
    # equal fold means: fold var 0, all spread is seed; corrected fold var clipped at 0.
    out = spread.decompose([[1.0, 3.0], [3.0, 1.0]])
    assert out["fold_var"] == pytest.approx(0.0)
    assert out["fold_var_corrected"] == 0.0
    assert out["seed_share"] == pytest.approx(1.0)


def test_decompose_rejects_one_seed():
    with pytest.raises(ValueError, match="seeds >= 2"):
        spread.decompose([[1.0], [2.0]])
