"""Issue 17: `movierec recommend` shows a score for every model and a predicted rating only for
rating models, drops the explanation column with --no-explain, and prints each movie in the
API's shape with --json; `similar --movie` finds "Godfather, The" from "The Godfather"."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from movierec.artifact import load_catalog
from movierec.cli import app
from movierec.data.dataset import Dataset
from movierec.data.synthetic import write_release
from movierec.models import get

runner = CliRunner()


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return write_release("csv", tmp_path_factory.mktemp("data") / "ml-synth", n_users=40,
                         n_items=30, n_ratings=600, rng=3)


def _train(release, out, model):
    result = runner.invoke(app, ["train", "--dataset", str(release), "--model", model, "--out",
                                 str(out), "--relevance", "0", "--no-progress"])
    assert result.exit_code == 0, result.output
    return out


@pytest.fixture(scope="module")
def ease_dir(release, tmp_path_factory):
    return _train(release, tmp_path_factory.mktemp("m") / "ease", "ease")


@pytest.fixture(scope="module")
def itemknn_dir(release, tmp_path_factory):
    return _train(release, tmp_path_factory.mktemp("m") / "itemknn", "itemknn")


def _header(output: str) -> str:
    return next(line for line in output.splitlines() if "movie" in line and "#" in line)


def test_ranking_model_shows_a_score_and_no_rating(ease_dir):
    result = runner.invoke(app, ["recommend", str(ease_dir), "--user", "1", "-k", "3"],
                           env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    header = _header(result.output)
    assert "score" in header and "rating" not in header
    assert "because you liked" in header


def test_rating_model_shows_score_and_predicted_rating(itemknn_dir):
    result = runner.invoke(app, ["recommend", str(itemknn_dir), "--user", "1", "-k", "3"],
                           env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    header = _header(result.output)
    assert "score" in header and "predicted rating" in header


def test_no_explain_drops_the_column(itemknn_dir):
    result = runner.invoke(app, ["recommend", str(itemknn_dir), "--user", "1", "-k", "3",
                                 "--no-explain"], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    assert "because" not in result.output


def test_json_is_the_apis_shape(ease_dir):
    result = runner.invoke(app, ["recommend", str(ease_dir), "--user", "1", "-k", "3",
                                 "--json"])
    assert result.exit_code == 0, result.output
    recs = json.loads(result.output)["recommendations"]
    first = recs[0]
    assert isinstance(first["genres"], list) and all(isinstance(g, str) for g in first["genres"])
    assert first["predicted_rating"] is None  # EASE ranks, it predicts no rating
    assert all(set(s) == {"item_id", "title", "similarity"}
               for r in recs for s in r["because_you_liked"])
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from movierec.serve.app import app_from_folder

    with TestClient(app_from_folder(ease_dir)) as client:
        api = client.get("/users/1/recommendations?k=3").json()["recommendations"]
    assert [set(r) for r in recs] == [set(r) for r in api]
    for mine, theirs in zip(recs, api, strict=True):
        assert {k: mine[k] for k in ("item_id", "title", "year", "genres", "rank")} == {
            k: theirs[k] for k in ("item_id", "title", "year", "genres", "rank")}
        assert [s["item_id"] for s in mine["because_you_liked"]] == [
            s["item_id"] for s in theirs["because_you_liked"]][:2]


def test_similar_finds_the_title_with_its_article_in_front(tmp_path):
    rows = [(u, i, 5.0, 0) for u in range(12) for i in range(4) if (u + i) % 4]
    items = pd.DataFrame({"item_id": range(4), "title": ["Godfather, The (1972)",
                                                         "Misérables, Les (1995)",
                                                         "Boot, Das (1981)", "Heat (1995)"],
                          "year": [1972.0, 1995.0, 1981.0, 1995.0], "genres": [()] * 4})
    ds = Dataset(pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"]),
                 items=items)
    get("ease").fit(ds).save(tmp_path / "m")  # no catalog= : the training items are saved
    for query, title in (("The Godfather", "Godfather, The"), ("les miserables", "Misérables"),
                         ("Das Boot", "Boot, Das")):
        result = runner.invoke(app, ["similar", str(tmp_path / "m"), "--movie", query, "-k",
                                     "2", "--min-support", "0"], env={"COLUMNS": "160"})
        assert result.exit_code == 0, result.output
        assert f"Movies like {title}" in result.output


def test_model_saved_without_catalog_recommends_with_titles(tmp_path):
    rows = [(u, i, 4.0, 0) for u in range(10) for i in range(5) if (u + i) % 3]
    items = pd.DataFrame({"item_id": range(5), "title": [f"Film {c} (2000)" for c in "ABCDE"],
                          "year": [2000.0] * 5, "genres": [("Drama",)] * 5})
    ds = Dataset(pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"]),
                 items=items)
    get("pop").fit(ds).save(tmp_path / "m")
    assert load_catalog(tmp_path / "m") is not None
    result = runner.invoke(app, ["recommend", str(tmp_path / "m"), "--user", "0", "-k", "2",
                                 "--json"])
    assert result.exit_code == 0, result.output
    titles = [r["title"] for r in json.loads(result.output)["recommendations"]]
    assert titles and all(t.startswith("Film ") for t in titles)
