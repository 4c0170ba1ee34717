"""Results: JSON round-trip, atomic save, clear errors, table."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from movierec.errors import ArtifactError
from movierec.results import Results


def _results(with_lists: bool = True) -> Results:
    per_user = pd.DataFrame({"user_id": np.array([1, 3], dtype=np.int64),
                             "ndcg@10": [0.5, 0.25], "diversity@10": [np.nan, 0.75]})
    lists = pd.DataFrame({"user_id": [1, 1, 3], "item_id": [20, 30, 60],
                          "score": [5.0, 4.0, 6.0], "rank": [1, 2, 1]}) if with_lists else None
    return Results(summary={"rmse": 0.9, "ndcg@10": 0.375, "diversity@10": 0.75},
                   per_user=per_user,
                   counts={"users_evaluated": np.int64(2), "users_no_relevant": 1},
                   protocol={"protocol": "full", "relevance": 4.0, "k": (5, 10),
                             "candidates": "all-unseen"},
                   timings={"ranking": np.float64(0.01)}, lists=lists,
                   meta={"model": "EASE", "params": {"lambda_": 500.0}})


@pytest.mark.parametrize("with_lists", [True, False])
def test_json_round_trip(tmp_path: Path, with_lists: bool) -> None:
    res = _results(with_lists)
    path = res.save_json(tmp_path / "sub" / "results.json")
    back = Results.load_json(path)
    assert back.summary == res.summary
    assert back.counts == {"users_evaluated": 2, "users_no_relevant": 1}
    assert back.protocol["k"] == [5, 10]
    assert back.meta == {"model": "EASE", "params": {"lambda_": 500.0}}
    pd.testing.assert_frame_equal(back.per_user, res.per_user)
    if with_lists:
        assert back.lists is not None and res.lists is not None
        pd.testing.assert_frame_equal(back.lists, res.lists, check_dtype=False)
    else:
        assert back.lists is None
    # strict JSON: NaN is written as null
    text = path.read_text()
    assert "NaN" not in text and json.loads(text)["per_user"]["diversity@10"][0] is None
    assert [p.name for p in path.parent.iterdir()] == ["results.json"]  # no temp files left


def test_dict_round_trip_keeps_nan_summary() -> None:
    res = _results()
    res.summary["personalization@10"] = float("nan")
    back = Results.from_dict(json.loads(json.dumps(res.to_dict())))
    assert math.isnan(back.summary["personalization@10"])


def test_bad_files_raise_artifact_error(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError):
        Results.load_json(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ArtifactError):
        Results.load_json(bad)
    bad.write_text(json.dumps({"format": 99}))
    with pytest.raises(ArtifactError, match="format"):
        Results.load_json(bad)
    bad.write_text(json.dumps({"format": 1, "summary": {}}))
    with pytest.raises(ArtifactError, match="malformed"):
        Results.load_json(bad)


def test_table_and_lookup() -> None:
    res = _results()
    table = res.table()
    assert list(table.columns) == ["metric", "k", "value", "better"]
    assert table.set_index("metric").loc["rmse", "better"] == "lower"
    assert res["ndcg@10"] == 0.375
    assert set(res.table(k=5).metric) == {"rmse"}  # metrics without k are always shown
