"""The ranking kernel (movierec.ranking): block budget, top-k, candidates and exclusions.

Expected values are computed by hand in the comments.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import movierec.ranking as ranking
from movierec.data.dataset import Dataset
from movierec.errors import MovieRecError
from movierec.ranking import (
    block_size_for,
    candidate_mask,
    rank_block,
    resolve_block_size,
    topk_rows,
)

NAN, INF = np.nan, np.inf


def test_ranking_imports_nothing_of_models() -> None:
    """Imports point down: models use ranking, never the reverse."""
    tree = ast.parse(Path(ranking.__file__).read_text())
    imported = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    imported += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert not [m for m in imported if m.startswith(("movierec.models", "movierec.evaluate",
                                                     "movierec.serve", "movierec.ann"))]
    code = ("import sys, movierec.ranking\n"
            "assert not [m for m in sys.modules if m.startswith('movierec.models')]\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_old_imports_from_models_base_still_work() -> None:
    from movierec.models import base

    for name in ("BYTES_PER_SCORE", "DEFAULT_BLOCK_SIZE", "DEFAULT_MEMORY_MB", "block_size_for",
                 "resolve_block_size", "topk_rows", "mask_rows", "top_k_frame", "user_blocks",
                 "progress_blocks"):
        assert getattr(base, name) is getattr(ranking, name)


def test_block_budget_by_hand() -> None:
    # 1,000 items x 20 bytes = 20,000 bytes a user; 1 MB holds 50 users.
    assert block_size_for(1000, 1.0) == 50
    assert block_size_for(1000, 1.0, bytes_per_score=4) == 250
    # Default: 1024 users, unless 250 MB / (20,000 items x 20 bytes) = 625 is fewer.
    assert resolve_block_size(100) == 1024
    assert resolve_block_size(20_000) == 625
    assert resolve_block_size(20_000, block_size=7) == 7
    with pytest.raises(ValueError, match="not both"):
        resolve_block_size(10, block_size=1, max_memory_mb=1.0)
    with pytest.raises(ValueError, match="block_size must be"):
        resolve_block_size(10, block_size=0)
    with pytest.raises(ValueError, match="max_memory_mb must be"):
        resolve_block_size(10, max_memory_mb=-1.0)
    with pytest.raises(MovieRecError, match="needs 2.00 MB a user"):
        block_size_for(100_000, 1.0)


def test_topk_ties_go_to_the_lower_column_and_minus_inf_is_never_returned() -> None:
    scores = np.array([[1.0, 3.0, 3.0, 2.0, 3.0],
                       [-INF, 5.0, -INF, -INF, -INF]], dtype=np.float32)
    cols, vals = topk_rows(scores, 3)
    np.testing.assert_array_equal(cols, [[1, 2, 4], [1, -1, -1]])
    np.testing.assert_array_equal(vals, [[3, 3, 3], [5, -INF, -INF]])


def test_candidate_mask_from_codes_or_bools() -> None:
    assert candidate_mask(None, 4) is None
    np.testing.assert_array_equal(candidate_mask(np.array([2, 0]), 4), [True, False, True, False])
    mask = np.array([False, True, True, False])
    np.testing.assert_array_equal(candidate_mask(mask, 4), mask)
    np.testing.assert_array_equal(candidate_mask(np.array([], dtype=np.int64), 3), [False] * 3)
    with pytest.raises(ValueError, match=r"shape \(4,\), got \(3,\)"):
        candidate_mask(np.array([True, False, True]), 4)
    with pytest.raises(ValueError, match="item code 4 is outside"):
        candidate_mask(np.array([1, 4]), 4)


def test_rank_block_by_hand() -> None:
    scores = np.array([[0.5, NAN, 2.0, 2.0, 1.0, 0.0],
                       [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]], dtype=np.float32)
    before = scores.copy()
    # Row 0 excludes item 2, row 1 items 0 and 1; candidates 1-5 (item 0 out of both rows).
    seen = sp.csr_matrix(np.array([[0, 0, 1, 0, 0, 0], [1, 1, 0, 0, 0, 0]], dtype=np.float32))
    mask = np.array([False, True, True, True, True, True])
    cols, vals = rank_block(scores, 3, exclude=seen, candidates=mask)
    # Row 0: allowed 1 (NaN, never), 3 (2.0), 4 (1.0), 5 (0.0). Row 1: 2..5 tie, lowest first.
    np.testing.assert_array_equal(cols, [[3, 4, 5], [2, 3, 4]])
    np.testing.assert_array_equal(vals, [[2.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    np.testing.assert_array_equal(scores, before)  # the caller's scores are never modified
    # Codes for exclusion and candidates: the same list for every row.
    cols, _ = rank_block(scores, 2, exclude=np.array([3]), candidates=np.array([0, 2, 3, 4]))
    np.testing.assert_array_equal(cols, [[2, 4], [0, 2]])
    # Fewer allowed items than k: -1 padding.
    cols, vals = rank_block(scores[:1], 3, candidates=np.array([1, 5]))
    np.testing.assert_array_equal(cols, [[5, -1, -1]])
    assert vals[0, 0] == 0.0 and np.all(np.isneginf(vals[0, 1:]))


def _ties_dataset() -> Dataset:
    rows = [(1, 10), (1, 20), (2, 30), (3, 10), (3, 40), (3, 50), (4, 50)]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id"])
    frame["rating"] = np.float32(3.0)
    frame["timestamp"] = np.arange(len(frame))
    return Dataset(frame, name="ranking-ties")


def test_recommend_candidates_as_ids_codes_or_mask_agree() -> None:
    """`pop` scores 10: 2, 20: 1, 30: 1, 40: 1, 50: 2 ratings; user 2 rated item 30."""
    from movierec.models import get

    model = get("pop").fit(_ties_dataset(), progress=False)
    got = model.recommend([2], k=3)
    assert got["item_id"].tolist() == [10, 50, 20]  # 2, 2, then the first of the 1s
    assert model.recommend([2], k=3, candidates=[20, 40, 50, 99])["item_id"].tolist() == [
        50, 20, 40]  # 99 is not a training item: ignored
    code = model.user_vocab_.codes([2])
    by_codes = model.top_k_codes(code, 3, candidates=np.array([1, 3, 4]))
    mask = np.array([False, True, False, True, True])
    by_mask = model.top_k_codes(code, 3, candidates=mask)
    np.testing.assert_array_equal(by_codes[0], by_mask[0])
    np.testing.assert_array_equal(by_codes[0], [[4, 1, 3]])


def test_only_dot_product_models_give_vectors() -> None:
    from movierec.models import get

    assert get("pop").fit(_ties_dataset(), progress=False).dot_vectors() is None
