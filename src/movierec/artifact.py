"""Model folders: model.json + state.safetensors, written atomically, never pickled.

Learned state (every attribute ending in `_`) is stored by type: numpy arrays and the parts of
scipy CSR matrices go to safetensors; vocabularies as their id arrays; scalars, strings and small
lists to JSON. model.json records the format version, the registry name, the hyper-parameters,
the package version, the training data's fingerprint and the sha256 of the weights file.

Loading refuses, with an ArtifactError naming the file, a folder whose model.json is not valid
JSON or not shaped as written here, whose format is newer than this package, whose weights do
not match their recorded sha256, or whose parameters or state the model does not accept.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import scipy.sparse as sp

from movierec.data.vocab import Vocabulary
from movierec.errors import ArtifactError
from movierec.io import atomic_directory, json_default

if TYPE_CHECKING:
    from movierec.models.base import Recommender

FORMAT_VERSION = 1
WEIGHTS = "state.safetensors"
CATALOG = "items.json"



def _split_state(state: dict[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    arrays: dict[str, np.ndarray] = {}
    spec: dict[str, Any] = {}
    for name, value in state.items():
        if isinstance(value, Vocabulary):
            arrays[name] = np.ascontiguousarray(value.index)
            spec[name] = {"type": "vocab", "kind": value.kind}
        elif sp.issparse(value):
            m = sp.csr_matrix(value)
            for part in ("data", "indices", "indptr"):
                arrays[f"{name}.{part}"] = np.ascontiguousarray(getattr(m, part))
            spec[name] = {"type": "csr", "shape": list(m.shape)}
        elif isinstance(value, np.ndarray):
            if value.dtype.kind not in "biuf":
                raise ArtifactError(f"state {name!r}: dtype {value.dtype} cannot be saved")
            arrays[name] = np.ascontiguousarray(value)
            spec[name] = {"type": "array"}
        else:
            try:
                json.dumps(value, default=json_default)
            except TypeError as exc:
                raise ArtifactError(f"state {name!r} of type {type(value).__name__} cannot be "
                                    "saved") from exc
            spec[name] = {"type": "json", "value": value}
    return arrays, spec


def _join_state(arrays: dict[str, np.ndarray], spec: dict[str, Any], where: Path) -> dict:
    state: dict[str, Any] = {}
    try:
        for name, s in spec.items():
            if not isinstance(s, dict):
                raise ArtifactError(f"{where}/model.json: state {name!r} is not an object")
            kind = s.get("type")
            if kind == "vocab":
                state[name] = Vocabulary(arrays[name], kind=s.get("kind", "id"))
            elif kind == "csr":
                state[name] = sp.csr_matrix((arrays[f"{name}.data"], arrays[f"{name}.indices"],
                                             arrays[f"{name}.indptr"]), shape=tuple(s["shape"]))
            elif kind == "array":
                state[name] = arrays[name]
            elif kind == "json":
                value = s["value"]
                state[name] = tuple(value) if name == "rating_scale_" and value else value
            else:
                raise ArtifactError(f"{where}: unknown state type {kind!r} for {name!r}")
    except KeyError as exc:
        raise ArtifactError(f"{where}: weights file lacks tensor {exc.args[0]!r}") from None
    except (TypeError, ValueError, OverflowError) as exc:  # e.g. a CSR shape that does not fit
        # its arrays, or a shape too large for any index type
        raise ArtifactError(f"{where}: state {name!r} is inconsistent ({exc})") from None
    return state


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_model(model: Recommender, path: str | Path, *, catalog: pd.DataFrame | None = None,
               extra: dict[str, Any] | None = None) -> Path:
    """Write `model` to the folder `path` (replacing an old one only once complete).

    Args:
        model: a fitted model.
        path: the model folder.
        catalog: item table (item_id, title, year, genres) written as items.json, restricted to
            the model's items, so the artifact answers with titles.
        extra: more fields for model.json (dataset, split, metrics, history...).
    """
    from safetensors.numpy import save_file

    from movierec import __version__

    path = Path(path)
    arrays, spec = _split_state(model._state())
    with atomic_directory(path) as tmp:
        save_file(arrays, str(tmp / WEIGHTS))
        checksums = {WEIGHTS: _sha256(tmp / WEIGHTS)}
        if catalog is not None:
            _write_catalog(catalog, model, tmp / CATALOG)
            checksums[CATALOG] = _sha256(tmp / CATALOG)
        meta = {
            "format": FORMAT_VERSION,
            "model": model.name,
            "params": model.params(),
            # JSON has no tuples: name the parameters that were tuples so load restores them.
            "tuple_params": sorted(k for k, v in model.params().items() if isinstance(v, tuple)),
            "movierec_version": __version__,
            "train": {"name": getattr(model, "train_name_", ""),
                      "fingerprint": getattr(model, "train_fingerprint_", "")},
            "sha256": checksums,
            "state": spec,
            **(extra or {}),
        }
        (tmp / "model.json").write_text(json.dumps(meta, indent=2, default=json_default))
    return path


def read_meta(path: str | Path) -> dict[str, Any]:
    """Read and check model.json of a model folder."""
    path = Path(path)
    meta_path = path / "model.json"
    if not meta_path.is_file():
        # A save killed between its two renames (see `atomic_directory`) leaves the previous
        # model under a backup name and nothing at `path`: say where it is.
        backups = [] if path.exists() else sorted(path.parent.glob(f".{path.name}.old-*"))
        if backups:
            raise ArtifactError(f"{path}: missing; an interrupted save left the previous model "
                                f"in {backups[-1]} (rename it to {path.name})")
        raise ArtifactError(f"{path}: not a model folder (no model.json)")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{meta_path}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise ArtifactError(f"{meta_path}: expected a JSON object, found {type(meta).__name__}")
    version = meta.get("format")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ArtifactError(f"{meta_path}: format {version!r} is not a model format version")
    if version > FORMAT_VERSION:
        raise ArtifactError(f"{meta_path}: format {version!r} is newer than this movierec "
                            f"understands ({FORMAT_VERSION}); upgrade movierec")
    expected = {"model": str, "params": dict, "tuple_params": list, "sha256": dict,
                "state": dict}
    json_names = {str: "string", dict: "object", list: "array"}
    for key, kind in expected.items():
        if key in meta and not isinstance(meta[key], kind):
            raise ArtifactError(f"{meta_path}: {key!r} must be a JSON {json_names[kind]}, found "
                                f"{type(meta[key]).__name__}")
    return meta


def load_model(path: str | Path) -> Recommender:
    """Load a model folder: checks format, weights checksum, and the registry name."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    from movierec.models import REGISTRY, get

    path = Path(path)
    meta = read_meta(path)
    name = meta.get("model")
    if name not in REGISTRY:
        raise ArtifactError(f"{path}/model.json: unknown model {name!r}")
    if not meta.get("state"):
        raise ArtifactError(f"{path}/model.json: no learned state recorded")
    weights = path / WEIGHTS
    expected = meta.get("sha256", {}).get(WEIGHTS)
    if not weights.is_file():
        raise ArtifactError(f"{path}: weights file {WEIGHTS} is missing")
    if expected != _sha256(weights):
        raise ArtifactError(f"{weights}: sha256 does not match model.json (truncated or modified)")
    try:
        arrays = load_file(str(weights))
    except (SafetensorError, OSError) as exc:
        raise ArtifactError(f"{weights}: cannot be read ({exc})") from None
    params = dict(meta.get("params", {}))
    for key in meta.get("tuple_params", []):
        if isinstance(key, str) and isinstance(params.get(key), list):
            params[key] = tuple(params[key])
    try:
        model = get(name, **params)
    except (ValueError, TypeError) as exc:
        raise ArtifactError(f"{path}/model.json: parameters rejected by {name}: {exc}") from None
    state = _join_state(arrays, meta["state"], path)
    try:
        model._restore(state)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError, RuntimeError) as exc:
        raise ArtifactError(f"{path}: the saved state does not fit a {name} model "
                            f"({type(exc).__name__}: {exc})") from None
    _check_restored(model, path)
    return model


def _check_restored(model: Recommender, path: Path) -> None:
    """The invariants every fitted model keeps: two vocabularies and a seen matrix to match."""
    users, items = getattr(model, "user_vocab_", None), getattr(model, "item_vocab_", None)
    seen = getattr(model, "seen_", None)
    if not (isinstance(users, Vocabulary) and isinstance(items, Vocabulary)):
        raise ArtifactError(f"{path}: the saved state lacks the user and item vocabularies")
    if seen is None or not sp.issparse(seen) or seen.shape != (len(users), len(items)):
        raise ArtifactError(f"{path}: the saved seen matrix does not match the vocabularies "
                            f"({len(users)} users x {len(items)} items)")


#: Item-table columns of people (tuples of str) that items.json keeps when the table has them.
PEOPLE_COLUMNS = ("directors", "director_ids", "writers", "writer_ids", "actors", "actor_ids")


def _write_catalog(catalog: pd.DataFrame, model: Recommender, path: Path) -> None:
    # The whole item table, not only the movies the model saw rated: a served model's site
    # knows every movie, and a rating of one it never saw is stored and learnt by a retrain.
    # The people columns of an IMDb-joined or HetRec item table travel too (lists of str), so
    # a loaded model still knows who made each movie (people-aware models, explanations).
    people = [c for c in PEOPLE_COLUMNS if c in catalog.columns]
    records = []
    for row in catalog.drop_duplicates("item_id").itertuples(index=False):
        year = getattr(row, "year", None)
        record = {"item_id": int(row.item_id), "title": str(getattr(row, "title", "")),
                  "year": None if year is None or year != year else int(year),
                  "genres": list(getattr(row, "genres", ()) or ())}
        for col in people:
            value = getattr(row, col)
            record[col] = [str(v) for v in value] if isinstance(value, list | tuple) else []
        records.append(record)
    path.write_text(json.dumps(records, ensure_ascii=False))


def load_catalog(path: str | Path) -> pd.DataFrame | None:
    """The item table saved with a model (item_id, title, year, genres, people), or None.

    The people columns (`PEOPLE_COLUMNS`) are there when the model was saved with them.
    """
    path = Path(path)
    file = path / CATALOG
    if not file.is_file():
        return None
    expected = read_meta(path).get("sha256", {}).get(CATALOG)
    if expected is not None and expected != _sha256(file):
        raise ArtifactError(f"{file}: sha256 does not match model.json")
    try:
        records = json.loads(file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ArtifactError(f"{file}: not valid JSON ({exc})") from None
    try:
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise TypeError("expected a list of objects")
        people = [c for c in PEOPLE_COLUMNS if records and c in records[0]]
        frame = pd.DataFrame.from_records(records, columns=["item_id", "title", "year", "genres",
                                                             *people])
        for col in ("genres", *people):
            frame[col] = pd.Series([tuple(v or ()) for v in frame[col]], dtype=object,
                                   index=frame.index)
        frame["year"] = frame["year"].astype("float64")
        frame["item_id"] = frame["item_id"].astype("int64")
    except (TypeError, ValueError) as exc:
        raise ArtifactError(f"{file}: not an item table ({exc})") from None
    return frame
