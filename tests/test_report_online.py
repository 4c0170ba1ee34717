"""The "Online evaluation" section of `movierec report`, computed by hand on SQLite and PostgreSQL.

Two model versions are popularity models with opposite orders (v0001: 10 > 20 > 30 > 40,
v0002: 40 > 30 > 20 > 10), so that the full ranking the service would have shown a new user is
known; the store holds lists and ratings written at known (fake) times:

    t=100 L1 -> user 101 by v0001: [20, 30]   t=110 101 rates 20 = 5 (L1, shown at 1)
                                              t=120 101 rates 40 = 4 (L1, not shown)
    t=130 L2 -> user 102 by v0001: [10, 20]   t=140 102 rates 10 = 2 (L2, shown, not liked)
    t=200 L3 -> user 101 by v0002: [10, 30]   t=210 101 rates 10 = 5 (L3, shown at 1)
    t=220 L4 -> user 102 by v0002: [40, 30]   (no rating after it)
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from typer.testing import CliRunner

from movierec import versions
from movierec.cli import app
from movierec.data.dataset import Dataset
from movierec.models import get

pytest.importorskip("sqlalchemy", reason="the store needs the `store` extra")
import pgstore  # noqa: E402
from movierec.report_online import online_frame  # noqa: E402
from movierec.store import Store  # noqa: E402

# SQLite and a throw-away PostgreSQL server (tests/pgstore.py).
postgres_server, pg_url, store_url = pgstore.postgres_server, pgstore.pg_url, pgstore.store_url

L3 = 1 / math.log2(3)  # the discount of rank 2
K = 2


def popularity(order: list[int]) -> Dataset:
    """Four training users; the i-th movie of `order` is rated by 4 - i of them."""
    rows = [(u, item, 3.0, u) for n, item in enumerate(order) for u in range(1, 5 - n)]
    return Dataset(pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"]),
                   name="pop")


@pytest.fixture
def store(store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Store]:
    root = tmp_path / "models"
    for order in ([10, 20, 30, 40], [40, 30, 20, 10], [10, 20, 30, 40]):
        versions.write_version(root, get("pop").fit(popularity(order), progress=False),
                               catalog=False)
    clock = [0.0]
    monkeypatch.setattr("movierec.store._store.time", SimpleNamespace(time=lambda: clock[0]))
    st = Store(store_url)

    def at(t: float) -> Store:
        clock[0] = t
        return st

    at(100).log_impressions("L1", 101, [20, 30], "v0001")
    at(110).put_rating(101, 20, 5.0)
    at(120).put_rating(101, 40, 4.0)
    at(130).log_impressions("L2", 102, [10, 20], "v0001")
    at(140).put_rating(102, 10, 2.0)
    at(200).log_impressions("L3", 101, [10, 30], "v0002")
    at(210).put_rating(101, 10, 5.0)
    at(220).log_impressions("L4", 102, [40, 30], "v0002")
    for version in ("v0001", "v0002", "v0003"):  # v0003: registered, never served
        st.register_model_version(version, str(root / version))
    st.activate_model_version("v0001")
    st.activate_model_version("v0002")
    yield st
    st.close()


EXPECTED = {
    # L1 and L2 led to a rating; only L1 to liked ones (20 at position 1, 40 not shown): NDCG
    # 1 / (1 + 1/log2 3). Replayed (no rating before t=100) v0001 ranks [10, 20]: 20 at 2.
    "v0001": {"status": "retired", "lists": 2, "users": 2, "rated_lists": 2, "rated_share": 1.0,
              "liked_lists": 1, "hit@2": 1.0, "ndcg@2": 1 / (1 + L3), "full_lists": 1,
              "full_hit@2": 1.0, "full_ndcg@2": L3 / (1 + L3)},
    # L3 led to a liked rating of 10 at position 1, L4 to nothing. Replayed with 20 and 40
    # rated before t=200, v0002 ranks [30, 10]: 10 at 2.
    "v0002": {"status": "active", "lists": 2, "users": 2, "rated_lists": 1, "rated_share": 0.5,
              "liked_lists": 1, "hit@2": 1.0, "ndcg@2": 1.0, "full_lists": 1,
              "full_hit@2": 1.0, "full_ndcg@2": L3},
    "v0003": {"status": "registered", "lists": 0, "users": 0, "rated_lists": 0,
              "rated_share": None, "liked_lists": 0, "hit@2": None, "ndcg@2": None,
              "full_lists": 0, "full_hit@2": None, "full_ndcg@2": None},
}


def _rows(page: str) -> dict[str, list[str]]:
    """The online table's cells, by version (the first cell)."""
    section = page[page.index("<section id='online'>"):]
    section = section[:section.index("</section>")]
    rows = [re.findall(r"<td[^>]*>(.*?)</td>", tr) for tr in section.split("<tr>")[1:]]
    return {r[0]: r[1:] for r in rows if r}


def _cells(row: dict[str, object]) -> list[str]:
    return ["–" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)
            for v in row.values()]


def test_online_frame_by_hand(store: Store) -> None:
    frame, notes = online_frame(store, k=K)
    assert notes == []
    got = {r.pop("version"): r for r in frame.to_dict("records")}
    assert list(got) == list(EXPECTED)
    for version, want in EXPECTED.items():
        assert got[version] == {c: pytest.approx(v) if isinstance(v, float) else v
                                for c, v in want.items()}, version


def test_report_cli_writes_the_online_page(store: Store, tmp_path: Path) -> None:
    out = tmp_path / "online"
    result = CliRunner().invoke(app, ["report", str(out), "--store", store.url, "--k", "2"])
    assert result.exit_code == 0, result.output
    page = (out / "report.html").read_text()
    assert _rows(page) == {v: _cells(row) for v, row in EXPECTED.items()}
    assert "id=\"fig-online-evaluation\"" in page and "data:image/png;base64," in page
    assert (out / "figures" / "online-evaluation.png").is_file()


def test_a_missing_model_folder_leaves_the_full_ranking_out(store: Store) -> None:
    import shutil

    path = next(v.path for v in store.model_versions() if v.version == "v0002")
    shutil.rmtree(path)
    frame, notes = online_frame(store, k=K)
    row = frame.set_index("version").loc["v0002"]
    assert row["full_ndcg@2"] is None and row["ndcg@2"] == pytest.approx(1.0)
    assert len(notes) == 1 and notes[0].startswith("v0002: model folder")


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # the page, not the store
def test_benchmark_report_gains_the_section_with_a_store(store: Store, tmp_path: Path) -> None:
    from movierec.benchmark import run
    from movierec.report import build_report
    from movierec.split import make_split

    ds = popularity([10, 20, 30, 40])
    split = make_split(ds, "user-random", test_size=0.25, rng=0)
    folder = tmp_path / "bench"
    run(["pop"], split, seeds=(1,), ks=(2,), relevance=0, progress=False).save(folder)
    build_report(folder, dataset=ds, graph_users=4, graph_items=4, dpi=40, store=store.url)
    page = (folder / "report.html").read_text()
    assert "<a href='#online'>Online evaluation</a>" in page
    assert _rows(page)["v0002"] == _cells(EXPECTED["v0002"])
