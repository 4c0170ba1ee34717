"""MovieLens releases and bring-your-own rating files, as immutable Datasets."""

from __future__ import annotations

from movierec.data.dataset import Dataset
from movierec.data.vocab import Vocabulary

__all__ = ["Dataset", "Vocabulary", "load", "load_file", "releases"]


def load(name_or_path, **kwargs):  # noqa: ANN001, ANN201 - re-exported from movielens
    """Load a release by name or a folder/file path; see movierec.data.movielens.load."""
    from movierec.data.movielens import load as _load

    return _load(name_or_path, **kwargs)


def load_file(path, **kwargs):  # noqa: ANN001, ANN201
    """Load a ratings file the user brings; see movierec.data.files.load_ratings_file."""
    from movierec.data.files import load_ratings_file

    return load_ratings_file(path, **kwargs)


def releases() -> list[str]:
    """Names of the supported MovieLens releases."""
    from movierec.data.releases import RELEASES

    return list(RELEASES)
