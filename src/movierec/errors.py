"""Exception hierarchy of movierec: every error the library raises on purpose is a MovieRecError."""

from __future__ import annotations


class MovieRecError(Exception):
    """Base class of every error movierec raises on purpose."""


class DataError(MovieRecError, ValueError):
    """A data file or frame is malformed; the message names the file, line or column."""


class DownloadError(DataError):
    """A release could not be downloaded, verified or extracted."""


class SplitError(MovieRecError, ValueError):
    """A split is impossible as asked, or leaks test information into training."""


class UnknownIdError(MovieRecError, KeyError):
    """A user or item id is not known to the model or dataset."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0]) if self.args else ""


class NotFittedError(MovieRecError, RuntimeError):
    """A model was used before `fit`."""


class ArtifactError(MovieRecError):
    """A saved model or results file is missing, tampered, truncated or of another version."""


class MissingExtraError(MovieRecError, ImportError):
    """An optional dependency is not installed; the message names the extra to install."""
