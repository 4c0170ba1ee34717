"""`movierec train | recommend | similar` on a small synthetic release written by the test."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from movierec.artifact import load_catalog, read_meta
from movierec.cli import app
from movierec.cli._models import find_movie
from movierec.data.synthetic import write_release
from movierec.errors import MovieRecError

runner = CliRunner()


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return write_release("csv", tmp_path_factory.mktemp("data") / "ml-synth", n_users=40,
                         n_items=30, n_ratings=600, rng=3)


@pytest.fixture(scope="module")
def trained(release, tmp_path_factory):
    out = tmp_path_factory.mktemp("models") / "itemknn"
    result = runner.invoke(app, ["train", "--dataset", str(release), "--model", "itemknn",
                                 "--param", "n_neighbors=10", "--out", str(out), "--relevance", "0",
                                 "--no-progress"])
    assert result.exit_code == 0, result.output
    return out


def test_train_writes_a_complete_artifact(trained):
    meta = read_meta(trained)
    assert meta["model"] == "itemknn" and meta["params"]["n_neighbors"] == 10
    assert meta["split"]["name"] == "user-random" and meta["seed"] == 42
    assert 0 <= meta["metrics"]["ndcg@10"] <= 1 and meta["metrics"]["rmse"] > 0
    catalog = load_catalog(trained)
    assert catalog is not None and {"title", "genres", "year"} <= set(catalog.columns)


def test_recommend_prints_titles_and_reasons(trained):
    result = runner.invoke(app, ["recommend", str(trained), "--user", "1", "-k", "3", "--json"])
    assert result.exit_code == 0, result.output
    recs = json.loads(result.output)["recommendations"]
    assert [r["rank"] for r in recs] == [1, 2, 3]
    assert all(r["title"] and isinstance(r["because_you_liked"], list) for r in recs)
    assert all(r["predicted_rating"] is not None for r in recs)  # itemknn predicts ratings


def test_recommend_unknown_user_and_bad_k(trained):
    result = runner.invoke(app, ["recommend", str(trained), "--user", "123456"])
    assert result.exit_code == 2 and "user 123456 is not in the training data" in result.output
    result = runner.invoke(app, ["recommend", str(trained), "--user", "1", "-k", "0"])
    assert result.exit_code == 2 and "-k" in result.output


def test_similar_by_id_and_title(trained):
    catalog = load_catalog(trained)
    first = catalog.iloc[0]
    result = runner.invoke(app, ["similar", str(trained), "--movie-id", str(first.item_id),
                                 "-k", "4"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["similar", str(trained), "--movie", first.title, "-k", "4"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["similar", str(trained), "--movie", "no such film"])
    assert result.exit_code == 2 and "no movie title" in result.output


def test_find_movie_lists_ambiguous_titles():
    import numpy as np
    import pandas as pd

    catalog = pd.DataFrame({"item_id": [1, 2, 3], "title": ["Toy Story (1995)",
                            "Toy Story 2 (1999)", "Heat (1995)"], "genres": [(), (), ()]})
    known = np.array([1, 2, 3])
    assert find_movie(catalog, "toy story", known) == 1  # exact title without the year wins
    assert find_movie(catalog, "HEAT", known) == 3
    with pytest.raises(MovieRecError, match="2 movies match 'story"):
        find_movie(catalog, "story", known)


def test_train_neural_model_then_resume(release, tmp_path):
    out = tmp_path / "mf"
    args = ["train", "--dataset", str(release), "--model", "mf", "--out", str(out),
            "--param", "embedding_size=4", "--param", "batch_size=64", "--no-progress"]
    result = runner.invoke(app, [*args, "--param", "epochs=2"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "mf.ckpt").is_dir()
    result = runner.invoke(app, [*args, "--param", "epochs=3", "--resume"])
    assert result.exit_code == 0, result.output
    meta = read_meta(out)
    assert meta["params"]["epochs"] == 3
    assert len(meta["state"]["history_"]["value"]) == 3


def test_resume_refused_for_closed_form_models(release, tmp_path):
    result = runner.invoke(app, ["train", "--dataset", str(release), "--model", "ease",
                                 "--out", str(tmp_path / "e"), "--resume"])
    assert result.exit_code == 2 and "epoch by epoch" in result.output
