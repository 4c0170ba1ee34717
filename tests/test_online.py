"""`movierec evaluate-feedback`: per-version hit rate, NDCG and rated share, computed by hand
on a store whose impressions and ratings were written at known (fake) times, on SQLite and on a
real PostgreSQL server (tests/pgstore.py)."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from movierec.cli import app
from movierec.online import attribute, evaluate_feedback

pytest.importorskip("sqlalchemy", reason="the store needs the `store` extra")
import pgstore  # noqa: E402
from movierec.store import Store  # noqa: E402

# SQLite and a throw-away PostgreSQL server (tests/pgstore.py).
postgres_server, pg_url, store_url = pgstore.postgres_server, pgstore.pg_url, pgstore.store_url


@pytest.fixture
def store(store_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    clock = [0.0]
    monkeypatch.setattr("movierec.store._store.time", SimpleNamespace(time=lambda: clock[0]))
    st = Store(store_url)

    def at(t: float) -> Store:
        clock[0] = t
        return st

    at(50).put_rating(3, 10, 5.0)  # before any list: credited to none
    at(100).log_impressions("L1", 1, [10, 20, 30], "v0001")
    at(110).log_impressions("L2", 2, [40, 50, 60], "v0001")
    at(120).log_impressions("L3", 3, [10, 40, 70], "v0001")
    at(130).put_rating(2, 50, 2.0)  # L2: a shown movie rated, not liked
    at(150).put_rating(1, 20, 5.0)  # L1: liked, shown at position 2
    at(160).put_rating(1, 99, 4.0)  # L1: liked, not shown
    at(200).log_impressions("L4", 1, [80, 90, 30], "v0002")
    at(250).put_rating(1, 30, 4.5)  # L4 (the latest list before it): liked, position 3
    at(300).put_rating(1, 80, 3.0)  # L4: shown, rated, not liked
    st.register_model_version("v0001", "/models/v0001")
    st.register_model_version("v0002", "/models/v0002")
    st.activate_model_version("v0002")
    yield st
    st.close()


def test_ratings_are_credited_to_the_latest_earlier_list(store: Store) -> None:
    credited = attribute(store.impressions_since(0.0), store.all_ratings())
    got = {(int(r.user_id), int(r.item_id)): r.list_id for r in credited.itertuples()}
    assert got == {(2, 50): "L2", (1, 20): "L1", (1, 99): "L1", (1, 30): "L4", (1, 80): "L4"}


def test_per_version_metrics_by_hand(store: Store) -> None:
    table = evaluate_feedback(store.impressions_since(0.0), store.all_ratings(), k=3)
    v1, v2 = table.to_dict("records")
    # v0001: L1 (rated 20, shown) and L2 (rated 50, shown) led to a rating, L3 did not.
    assert (v1["version"], v1["lists"], v1["users"], v1["rated_lists"]) == ("v0001", 3, 3, 2)
    assert v1["rated_share"] == pytest.approx(2 / 3)
    # Only L1 is followed by liked ratings (20 and 99): 20 at position 2 is a hit; the ideal
    # places both liked movies first: NDCG = (1/log2 3) / (1 + 1/log2 3).
    assert v1["liked_lists"] == 1 and v1["hit@3"] == 1.0
    assert v1["ndcg@3"] == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    # v0002: L4, liked 30 at position 3 and nothing else liked: NDCG = 1/log2(4) / 1 = 0.5.
    assert (v2["version"], v2["lists"], v2["rated_share"], v2["hit@3"]) == ("v0002", 1, 1.0,
                                                                            1.0)
    assert v2["ndcg@3"] == pytest.approx(0.5)
    # At k = 1 no liked movie was on top: hit rate and NDCG are 0.
    top1 = evaluate_feedback(store.impressions_since(0.0), store.all_ratings(), k=1)
    assert top1["hit@1"].tolist() == [0.0, 0.0] and top1["ndcg@1"].tolist() == [0.0, 0.0]


def test_a_rating_that_cites_its_list_is_credited_to_it() -> None:
    import pandas as pd

    imp = pd.DataFrame({"list_id": ["A", "A", "B", "B"], "position": [1, 2, 1, 2],
                        "user_id": [1, 1, 1, 1], "item_id": [10, 20, 30, 40],
                        "model_version": ["v1", "v1", "v2", "v2"],
                        "shown_at": [100.0, 100.0, 200.0, 200.0]})
    # Given at 300 from list A (still open in another tab): credited to A, not to the later B.
    # A citation of another user's list is ignored (last touch: B).
    rat = pd.DataFrame({"user_id": [1, 1], "item_id": [20, 30], "rating": [5.0, 4.0],
                        "updated_at": [300.0, 310.0], "list_id": ["A", "X"]})
    got = attribute(imp, rat)
    assert dict(zip(got["item_id"], got["list_id"], strict=True)) == {20: "A", 30: "B"}
    table = evaluate_feedback(imp, rat, k=2).set_index("version")
    # v1: liked 20 at position 2 -> NDCG 1/log2(3); v2: liked 30 at position 1 -> 1.
    assert table.loc["v1", "ndcg@2"] == pytest.approx(1 / math.log2(3))
    assert table.loc["v2", "ndcg@2"] == pytest.approx(1.0)


def test_versions_without_lists_are_listed_with_no_metrics() -> None:
    import pandas as pd

    empty_imp = pd.DataFrame(columns=["list_id", "position", "user_id", "item_id",
                                      "model_version", "shown_at"])
    empty_rat = pd.DataFrame(columns=["user_id", "item_id", "rating", "updated_at"])
    table = evaluate_feedback(empty_imp, empty_rat, versions=["v0003"])
    assert table.to_dict("records") == [{"version": "v0003", "lists": 0, "users": 0,
                                         "rated_lists": 0, "rated_share": None,
                                         "liked_lists": 0, "hit@10": None, "ndcg@10": None}]


def test_evaluate_feedback_cli_json_and_table(store: Store) -> None:
    url = store.url
    result = CliRunner().invoke(app, ["evaluate-feedback", "--store", url, "--k", "3",
                                      "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    rows = {r["version"]: r for r in body["versions"]}
    assert rows["v0001"]["status"] == "registered" and rows["v0002"]["status"] == "active"
    assert rows["v0002"]["ndcg@3"] == pytest.approx(0.5)
    table = CliRunner().invoke(app, ["evaluate-feedback", "--store", url, "--k", "3"])
    assert table.exit_code == 0 and "v0001" in table.output and "0.3869" in table.output
