"""Synthetic MovieLens-like release folders, for tests, examples and scale runs.

Everything here is generated: no MovieLens content is copied. Two sizes, one module:

* `write_release` (and `make_ratings`): small folders in each official layout (ml100k, ml1m,
  ml10m, csv) that imitate the formats' awkward parts, for tests and examples;
* `write_release_like`: a release of a real one's size (ML-20M, ML-25M, ML-32M) in the csv
  layout, with power-law popularity and ML-25M's rating histogram (`movierec data synth`).

`movierec.data.synth`, the former home of the second, still imports with a DeprecationWarning.
"""

from __future__ import annotations

from movierec.data.synthetic._people import make_people_dataset
from movierec.data.synthetic._release import (
    CSV_GENRES,
    MIN_USER_RATINGS,
    RELEASE_SHAPES,
    ReleaseShape,
    SyntheticRelease,
    check_release_size,
    write_release_like,
)
from movierec.data.synthetic._small import (
    GENRES,
    GENRES_100K,
    LAYOUTS,
    SPECIAL_TITLES,
    SyntheticLayout,
    make_ratings,
    write_release,
)

__all__ = [
    "CSV_GENRES",
    "GENRES",
    "GENRES_100K",
    "LAYOUTS",
    "MIN_USER_RATINGS",
    "RELEASE_SHAPES",
    "SPECIAL_TITLES",
    "ReleaseShape",
    "SyntheticLayout",
    "SyntheticRelease",
    "check_release_size",
    "make_people_dataset",
    "make_ratings",
    "write_release",
    "write_release_like",
]
