"""Model folders: round trip, atomic replacement, and refusal of tampered or future artifacts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from movierec.artifact import load_model, read_meta
from movierec.errors import ArtifactError
from movierec.models import get


@pytest.fixture
def saved(tiny, tmp_path):
    model = get("itemknn", n_neighbors=3).fit(tiny)
    path = model.save(tmp_path / "model")
    return model, path


def test_model_json_records_provenance(saved, tiny):
    model, path = saved
    meta = read_meta(path)
    assert meta["model"] == "itemknn" and meta["params"]["n_neighbors"] == 3
    assert meta["train"]["fingerprint"] == tiny.fingerprint
    assert meta["format"] == 1 and len(meta["sha256"]["state.safetensors"]) == 64
    assert sorted(p.name for p in path.iterdir()) == ["model.json", "state.safetensors"]


def test_round_trip_gives_same_scores(saved):
    model, path = saved
    loaded = load_model(path)
    users = model.user_vocab_.index
    np.testing.assert_array_equal(loaded.score(users), model.score(users))
    assert loaded.predict([1], [50]) == pytest.approx(model.predict([1], [50]))


def test_tampered_weights_are_refused(saved):
    _, path = saved
    weights = path / "state.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="sha256"):
        load_model(path)


def test_truncated_weights_are_refused(saved):
    _, path = saved
    weights = path / "state.safetensors"
    weights.write_bytes(weights.read_bytes()[:50])
    with pytest.raises(ArtifactError):
        load_model(path)


def test_future_format_and_unknown_model_are_refused(saved):
    _, path = saved
    meta = json.loads((path / "model.json").read_text())
    (path / "model.json").write_text(json.dumps({**meta, "format": 99}))
    with pytest.raises(ArtifactError, match="newer"):
        load_model(path)
    (path / "model.json").write_text(json.dumps({**meta, "model": "os.system"}))
    with pytest.raises(ArtifactError, match="unknown model"):
        load_model(path)


def test_not_a_model_folder(tmp_path):
    with pytest.raises(ArtifactError, match="model.json"):
        load_model(tmp_path)


def test_saving_over_an_existing_model_replaces_it_whole(saved, tiny):
    _, path = saved
    get("ease", lambda_=10.0).fit(tiny).save(path)
    assert read_meta(path)["model"] == "ease"
    assert sorted(p.name for p in path.parent.iterdir()) == ["model"]


def test_model_folder_files_all_have_ordinary_permissions(tmp_path, tiny):
    import os
    import stat

    old = os.umask(0o022)
    try:
        folder = get("bias").fit(tiny).save(tmp_path / "model")
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir()}
    assert "state.safetensors" in modes and "model.json" in modes
    assert set(modes.values()) == {0o644}, modes  # safetensors alone wrote 0600


def test_the_whole_catalog_is_saved_with_the_model(tmp_path, tiny):
    # A served site knows every movie of its catalog, also those no training user rated: a
    # rating of one is stored and learnt by the next retrain (before, items.json kept only the
    # model's movies, so the service refused such ratings).
    import pandas as pd

    from movierec.artifact import load_catalog

    ids = [*tiny.item_vocab.index.tolist(), 99]
    catalog = pd.DataFrame({"item_id": ids, "title": [f"Movie {i} (2001)" for i in ids],
                            "year": 2001.0, "genres": [("Drama",)] * len(ids)})
    get("pop").fit(tiny).save(tmp_path / "m", catalog=catalog)
    saved = load_catalog(tmp_path / "m")
    assert saved is not None and sorted(saved["item_id"].tolist()) == sorted(ids)


def test_people_columns_travel_with_the_catalog(tmp_path):
    # An IMDb-joined or HetRec item table keeps who made each movie in items.json.
    from movierec.artifact import load_catalog
    from movierec.data.synthetic import make_people_dataset

    ds = make_people_dataset(n_users=20, n_items=30, ratings_per_user=5, rng=0)
    get("pop").fit(ds).save(tmp_path / "m", catalog=ds.items)
    saved = load_catalog(tmp_path / "m").set_index("item_id")
    original = ds.items.set_index("item_id")
    for col in ("directors", "director_ids", "actors", "actor_ids"):
        assert saved.loc[7, col] == original.loc[7, col]
        assert isinstance(saved.loc[7, col], tuple)
    assert "writers" not in saved.columns  # absent columns are not invented
