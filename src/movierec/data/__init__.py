"""MovieLens releases and bring-your-own rating files, as immutable Datasets."""

from __future__ import annotations

from movierec.data import releases as _releases_table  # noqa: F401  (see `releases` below)
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


# The submodule `movierec.data.releases` is imported above, before this function takes its name:
# importing a submodule for the first time rebinds the package attribute of the same name, so
# a lazy import here used to replace this function by the module after its first call.
def releases() -> list[str]:
    """Names of the supported MovieLens releases."""
    return list(_releases_table.RELEASES)
