"""Renamed hyper-parameters: the old names still work everywhere, with a DeprecationWarning.

itemknn/userknn `k` -> `n_neighbors`, ials `iterations` -> `epochs`, ease `max_memory_gb` ->
`max_memory_mb` (x 1000). Paths: keyword arguments, `models.get` (what `--param` and experiment
files end in), saved model folders (model.json written before the rename) and blend members.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from movierec import models
from movierec.data.dataset import Dataset
from movierec.models import get
from movierec.models.ease import EASE
from movierec.models.knn import ItemKNN, UserKNN

# (registry name, old params, the same params under their new names)
RENAMES = [
    ("itemknn", {"k": 3}, {"n_neighbors": 3}),
    ("userknn", {"k": 2}, {"n_neighbors": 2}),
    ("ials", {"iterations": 2, "embedding_size": 4}, {"epochs": 2, "embedding_size": 4}),
    ("ease", {"max_memory_gb": 2.5, "lambda_": 5.0}, {"max_memory_mb": 2500.0, "lambda_": 5.0}),
]


def _deprecations(record: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in record if issubclass(w.category, DeprecationWarning)]


@pytest.mark.parametrize(("name", "old", "new"), RENAMES)
def test_get_takes_the_old_name_and_warns_with_the_new(name: str, old: dict, new: dict) -> None:
    with pytest.warns(DeprecationWarning) as record:
        model = get(name, **old)
    (old_key,) = set(old) - set(new)
    (new_key,) = set(new) - set(old)
    assert model.params() == {**get(name).params(), **new}
    assert any(f"'{old_key}' is deprecated; use '{new_key}'" in m for m in _deprecations(record))


@pytest.mark.parametrize(("name", "old", "new"), RENAMES)
def test_constructor_takes_the_old_name(name: str, old: dict, new: dict) -> None:
    cls = models.get_class(name)
    with pytest.warns(DeprecationWarning, match="is deprecated; use"):
        model = cls(**old)
    assert model.params() == cls(**new).params()


def test_new_names_give_no_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert ItemKNN(n_neighbors=7).n_neighbors == 7
        assert get("ease", max_memory_mb=10.0).max_memory_mb == 10.0


@pytest.mark.parametrize(("call", "match"), [
    (lambda: ItemKNN(k=3, n_neighbors=4), r"ItemKNN: give 'n_neighbors' only \('k' is its old"),
    (lambda: get("userknn", k=3, n_neighbors=4), r"give 'n_neighbors' only"),
    (lambda: get("ials", iterations=3, epochs=4), r"give 'epochs' only \('iterations'"),
    (lambda: EASE(max_memory_gb=1.0, max_memory_mb=1000.0), r"give 'max_memory_mb' only"),
])
def test_both_names_is_an_error(call: Any, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        call()


def test_ease_converts_gigabytes_and_checks_the_converted_value() -> None:
    with pytest.warns(DeprecationWarning, match=r"max_memory_gb=4 is max_memory_mb=4000"):
        assert EASE(max_memory_gb=4).max_memory_mb == 4000
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="max_memory_mb"):
        EASE(max_memory_gb=-1.0)
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="max_memory_mb"):
        EASE(max_memory_gb="lots")


def test_command_line_params_take_the_old_name() -> None:
    from movierec.cli._app import parse_params

    params = parse_params(["itemknn.k=30", "ials.iterations=4", "ease.max_memory_gb=1"],
                          ["itemknn", "ials", "ease"])
    with pytest.warns(DeprecationWarning):
        built = {name: get(name, **p) for name, p in params.items()}
    assert built["itemknn"].n_neighbors == 30
    assert built["ials"].epochs == 4
    assert built["ease"].max_memory_mb == 1000


# --- saved model folders written before the rename --------------------------------------------
def _as_old_artifact(folder: Path, rename: dict[str, tuple[str, Any]]) -> None:
    """Rewrite model.json's params as an older movierec wrote them: new name -> (old, value)."""
    meta_path = folder / "model.json"
    meta = json.loads(meta_path.read_text())
    for new, (old, value) in rename.items():
        del meta["params"][new]
        meta["params"][old] = value
    meta_path.write_text(json.dumps(meta))


@pytest.mark.parametrize(("name", "params", "rename", "expected"), [
    ("itemknn", {"n_neighbors": 3}, {"n_neighbors": ("k", 3)}, {"n_neighbors": 3}),
    ("userknn", {"n_neighbors": 2}, {"n_neighbors": ("k", 2)}, {"n_neighbors": 2}),
    ("ials", {"epochs": 2, "embedding_size": 4}, {"epochs": ("iterations", 2)}, {"epochs": 2}),
    ("ease", {"lambda_": 5.0}, {"max_memory_mb": ("max_memory_gb", 4.0)},
     {"max_memory_mb": 4000.0}),
])
def test_old_model_folder_loads(name: str, params: dict, rename: dict, expected: dict,
                                tiny: Dataset, tmp_path: Path) -> None:
    model = get(name, **params).fit(tiny, rng=0, progress=False)
    model.save(tmp_path / "m")
    _as_old_artifact(tmp_path / "m", rename)
    with pytest.warns(DeprecationWarning, match="is deprecated; use"):
        loaded = models.load(tmp_path / "m")
    assert type(loaded) is type(model)
    assert loaded.params() == model.params() and expected.items() <= loaded.params().items()
    users = tiny.user_vocab.index
    pd.testing.assert_frame_equal(loaded.recommend(users, k=3), model.recommend(users, k=3))


def test_ease_saves_lambda_as_a_parameter_not_as_state(tiny: Dataset, tmp_path: Path) -> None:
    model = EASE(lambda_=5.0).fit(tiny)
    model.save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "model.json").read_text())
    assert "lambda_" not in meta["state"] and meta["params"]["lambda_"] == 5.0
    assert "item_weights_" in meta["state"]


def test_old_ease_folder_with_lambda_in_its_state_loads(tiny: Dataset, tmp_path: Path) -> None:
    model = EASE(lambda_=5.0).fit(tiny)
    model.save(tmp_path / "m")
    meta_path = tmp_path / "m" / "model.json"
    meta = json.loads(meta_path.read_text())
    # As written before: lambda_ as JSON state too, and the memory cap in GB.
    meta["state"]["lambda_"] = {"type": "json", "value": 5.0}
    del meta["params"]["max_memory_mb"]
    meta["params"]["max_memory_gb"] = 4.0
    meta_path.write_text(json.dumps(meta))
    with pytest.warns(DeprecationWarning, match="max_memory_gb"):
        loaded = models.load(tmp_path / "m")
    assert loaded.params() == {"lambda_": 5.0, "max_memory_mb": 4000.0}
    np.testing.assert_array_equal(loaded.item_weights_, model.item_weights_)


def test_old_blend_folder_with_old_member_params_loads(tiny: Dataset, tmp_path: Path) -> None:
    knn = {"n_neighbors": 3, "similarity": "pearson_baseline", "shrinkage": 10.0,
           "feedback": "explicit"}
    model = get("blend", members=(("bias", {}), ("itemknn", knn))).fit(tiny, rng=0,
                                                                        progress=False)
    model.save(tmp_path / "m")
    meta_path = tmp_path / "m" / "model.json"
    meta = json.loads(meta_path.read_text())
    old_knn = {("k" if key == "n_neighbors" else key): v for key, v in knn.items()}
    meta["params"]["members"] = [["bias", {}], ["itemknn", old_knn]]
    meta_path.write_text(json.dumps(meta))
    with pytest.warns(DeprecationWarning, match="'k' is deprecated; use 'n_neighbors'"):
        loaded = models.load(tmp_path / "m")
    assert loaded.params() == model.params()
    assert loaded.members == (("bias", {}), ("itemknn", knn))
    u, i = tiny.ratings["user_id"].to_numpy(), tiny.ratings["item_id"].to_numpy()
    np.testing.assert_array_equal(loaded.predict(u, i), model.predict(u, i))


# --- experiment files ---------------------------------------------------------------------------
def test_experiment_file_takes_the_old_names(tmp_path: Path) -> None:
    from movierec.data.synthetic import write_release
    from movierec.experiment import load_experiment, run_experiment

    folder = write_release("csv", tmp_path / "data", n_users=30, n_items=40, n_ratings=400,
                           rng=3)
    path = tmp_path / "exp.toml"
    path.write_text(f"""
[dataset]
path = "{folder.name}"
[split]
kind = "user-random"
test_size = 0.25
seed = 5
[evaluation]
k = [5]
relevance = 0
[models.itemknn]
k = 4
[models.ease]
max_memory_gb = 1
""")
    with pytest.warns(DeprecationWarning) as record:  # checked as the file is read
        exp = load_experiment(path)
    assert {"ItemKNN: parameter 'k' is deprecated; use 'n_neighbors'",
            "EASE: parameter 'max_memory_gb' is deprecated; use 'max_memory_mb' (converted: "
            "max_memory_gb=1 is max_memory_mb=1000)"} <= set(_deprecations(record))
    with pytest.warns(DeprecationWarning):
        run_experiment(exp, tmp_path / "run")
    runs = json.loads((tmp_path / "run" / "results.json").read_text())["runs"]
    by_model = {r["model"]: r["params"] for r in runs}
    assert by_model["itemknn"]["n_neighbors"] == 4 and "k" not in by_model["itemknn"]
    assert by_model["ease"]["max_memory_mb"] == 1000 and "max_memory_gb" not in by_model["ease"]


def test_userknn_class_attribute_lists_the_rename() -> None:
    assert UserKNN.renamed_params == {"k": "n_neighbors"}
    assert "k" not in UserKNN.param_names() and "n_neighbors" in UserKNN.param_names()


def test_reading_the_old_attribute_warns_and_gives_the_new_one() -> None:
    model = ItemKNN(n_neighbors=6)
    with pytest.warns(DeprecationWarning, match="attribute 'k' is deprecated; use 'n_neighbors'"):
        assert model.k == 6
    with pytest.raises(AttributeError, match="has no attribute 'neighbours'"):
        model.neighbours  # noqa: B018
    assert not hasattr(ItemKNN(), "item_vocab_")  # unfitted state is still simply missing
