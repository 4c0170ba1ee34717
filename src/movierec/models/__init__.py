"""Model registry: names -> "module:Class", imported on demand.

`get(name, **params)` builds a model; `available()` lists the names. No decorators, no module
scanning, no eager imports: importing this package imports no model module.
"""

from __future__ import annotations

import importlib
import keyword
from pathlib import Path
from typing import TYPE_CHECKING, Any

from movierec.errors import MissingExtraError

if TYPE_CHECKING:
    from movierec.models.base import Recommender

# name -> (import path, extra that provides its dependencies or None)
REGISTRY: dict[str, tuple[str, str | None]] = {
    "mean": ("movierec.models.baseline:GlobalMean", None),
    "bias": ("movierec.models.baseline:Bias", None),
    "pop": ("movierec.models.baseline:Popularity", None),
    "userknn": ("movierec.models.knn:UserKNN", None),
    "itemknn": ("movierec.models.knn:ItemKNN", None),
    "ease": ("movierec.models.ease:EASE", None),
    "svd": ("movierec.models.svd:SVD", "numba"),
    "ials": ("movierec.models.als:ImplicitALS", "numba"),
    "mf": ("movierec.models.mf:MF", "torch"),
    "gmf": ("movierec.models.ncf:GMF", "torch"),
    "mlp": ("movierec.models.ncf:MLP", "torch"),
    "neumf": ("movierec.models.ncf:NeuMF", "torch"),
    "featurenet": ("movierec.models.featurenet:FeatureNet", "torch"),
    "lstm": ("movierec.models.sequential:LSTMRec", "torch"),
    "sasrec": ("movierec.models.sequential:SASRec", "torch"),
    "ngcf": ("movierec.models.graph:NGCF", "torch"),
    "lightgcn": ("movierec.models.graph:LightGCN", "torch"),
    "attngraphrec": ("movierec.models.graph:AttnGraphRec", "torch"),
    "svdpp": ("movierec.models.svdpp:SVDpp", "torch"),
    "autorec": ("movierec.models.autorec:AutoRec", "torch"),
    "glocalk": ("movierec.models.glocalk:GLocalK", "torch"),
    # Top-N models of issue #21: item-graph walk, sparse linear, denoising linear autoencoder,
    # variational autoencoders, graph CF with contrastive losses, a two-stage re-ranker.
    "rp3beta": ("movierec.models.rp3beta:RP3beta", None),
    "slim": ("movierec.models.slim:SLIM", "slim"),
    "edlae": ("movierec.models.edlae:EDLAE", None),
    "multvae": ("movierec.models.vae:MultVAE", "torch"),
    "recvae": ("movierec.models.vae:RecVAE", "torch"),
    "ultragcn": ("movierec.models.graph:UltraGCN", "torch"),
    "xsimgcl": ("movierec.models.graph:XSimGCL", "torch"),
    "rerank": ("movierec.models.rerank:Rerank", "rank"),
    # Weighted sum of ranking models' standardized scores (default members need torch).
    "fusion": ("movierec.models.fusion:Fusion", "torch"),
    # The seven-member stack with torch, the light one (logged) without.
    "blend": ("movierec.models.blend:Blend", None),
    "blend-light": ("movierec.models.blend:LightBlend", None),
}

# extra -> the module whose presence means the extra is installed
EXTRA_MODULES: dict[str, str] = {"torch": "torch", "numba": "numba", "slim": "sklearn",
                                  "rank": "lightgbm"}

CLASSIC = ["mean", "bias", "pop", "userknn", "itemknn", "ease"]


def available() -> list[str]:
    """Registered model names, in registry order."""
    return list(REGISTRY)


def installed() -> list[str]:
    """Registered names whose optional dependencies are importable (checked without importing)."""
    import importlib.util

    return [name for name, (_, extra) in REGISTRY.items()
            if extra is None or importlib.util.find_spec(EXTRA_MODULES.get(extra, extra))]


def get_class(name: str) -> type[Recommender]:
    """The class registered as `name` (imported now; MissingExtraError names a missing extra)."""
    try:
        target, extra = REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown model {name!r}; known models: {', '.join(REGISTRY)}") from None
    module_name, _, cls_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = f"pip install 'movierec[{extra}]'" if extra else "reinstall movierec"
        raise MissingExtraError(f"model {name!r} needs {exc.name!r}: {hint}") from exc
    return getattr(module, cls_name)


def param_key(key: str) -> str:
    """Map a command-line parameter key to the keyword argument (`lambda` -> `lambda_`)."""
    key = key.replace("-", "_")
    return f"{key}_" if keyword.iskeyword(key) else key


def load(path: str | Path) -> Recommender:
    """Load a model folder written by `Recommender.save` (safetensors + JSON, never pickle)."""
    from movierec.artifact import load_model

    return load_model(path)


def get(name: str, **params: Any) -> Recommender:
    """Build the model registered as `name` with keyword hyper-parameters.

    A parameter's old name (the class's `renamed_params`, e.g. itemknn's `k` for
    `n_neighbors`) is still accepted with a DeprecationWarning; this is the path of `--param`,
    experiment files and saved model folders alike.

    Raises:
        KeyError: `name` is not registered.
        MissingExtraError: the model's optional dependencies are not installed.
        ValueError: a parameter the model does not take, or one given under both names.
    """
    cls = get_class(name)
    params = cls.canonical_params(params)
    known = cls.param_names()
    unknown = [k for k in params if k not in known]
    if unknown:
        raise ValueError(f"model {name!r} has no parameter(s) {unknown}; it takes {known}")
    return cls(**params)
