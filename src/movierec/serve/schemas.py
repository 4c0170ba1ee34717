"""Request and response bodies of the HTTP service (pydantic), with their bounds.

Bounds that depend on the served model (the rating scale) or on the server's settings (largest
k, most ratings per request) are set when the app is created: `new_user_request_model` builds
the request class for one app, so the OpenAPI schema at /docs shows the real limits.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, create_model, field_validator

__all__ = [
    "ID_MAX",
    "ID_MIN",
    "ErrorResponse",
    "Health",
    "ModelInfo",
    "Movie",
    "NewUserRecommendations",
    "NewUserRequest",
    "RatingIn",
    "Recommendation",
    "ReloadResponse",
    "SearchHit",
    "SearchResponse",
    "SimilarMovie",
    "SimilarResponse",
    "Support",
    "UserHistory",
    "UserList",
    "UserRecommendations",
    "new_user_request_model",
]

# Original ids are stored as int64; anything outside is unknown by construction, and refusing
# it up front keeps numpy from overflowing. The top is the largest float64 below 2**63: the
# OpenAPI schema writes these bounds as floats, and 2**63 - 1 would be printed as 2**63.
ID_MIN = -(2**63)
ID_MAX = 2**63 - 1024


def _not_bool(value: Any) -> Any:
    # pydantic's lax mode reads JSON true/false as 1/0; the schema says number, so refuse them.
    if isinstance(value, bool):
        raise ValueError("expected a number, got a boolean")
    return value


NotBool = BeforeValidator(_not_bool)


class ErrorResponse(BaseModel):
    """Every error: a human-readable message (validation errors add the pydantic list)."""

    detail: str
    errors: list[dict[str, Any]] | None = None


class Health(BaseModel):
    """Liveness: the server is up and has a model loaded."""

    status: str = "ok"
    model: str
    n_users: int
    n_items: int
    store: str | None = Field(None, description="The feedback store: 'ok', 'unavailable' "
                              "(reads then answer from the model alone), null without one.")


class ModelInfo(BaseModel):
    """What is being served: the artifact's model.json, summarized."""

    name: str
    model_class: str
    params: dict[str, Any]
    dataset: str | None
    split: dict[str, Any] | None
    metrics: dict[str, float | None]
    trained_at: str | None
    movierec_version: str | None
    n_users: int
    n_items: int
    # A list, not a tuple: a tuple becomes `prefixItems`, which some OpenAPI tools (schemathesis
    # 4's response validator among them) misread.
    rating_scale: list[float] | None = Field(min_length=2, max_length=2,
                                             description="[lowest, highest] training rating.")
    predicts_ratings: bool
    fold_in: str = Field(description="How a new user is scored: 'model' (the model's own "
                         "fold-in rule) or 'item-similarity' (generic item-space fallback).")
    genres: list[str]
    max_k: int
    max_ratings: int
    generation: int = Field(description="1 for the model loaded at start, one more per "
                            "successful reload (POST /model/reload or SIGHUP).")
    loaded_at: str = Field(description="When the served model was loaded (UTC, ISO 8601).")
    version: str | None = Field(default=None, description="The models-root version served "
                                "(\"v0003\"), None for a plain model folder.")


class ReloadResponse(BaseModel):
    """A successful reload: what is served now and what was before."""

    status: str = "reloaded"
    model: str
    generation: int
    previous_model: str
    previous_generation: int
    seconds: float = Field(description="Time to load the folder and build the new engine.")


class Movie(BaseModel):
    """One movie of the catalog."""

    item_id: int
    title: str
    year: int | None = Field(description="The film's year (from its title; null if unknown).")
    genres: list[str]


class Support(BaseModel):
    """A movie the user liked that supports a recommendation ("because you liked").

    Only movies the user liked are cited: rated 4 or more, or above the user's own mean rating.
    `similarity` is how much it supports the recommended movie in the model's terms.
    """

    item_id: int
    title: str
    similarity: float


class Recommendation(Movie):
    """One recommended movie, with its rank and the model's ranking score (not a rating).

    Also the predicted rating where the model predicts ratings, and the liked movies that support
    it.
    """

    rank: int
    score: float
    predicted_rating: float | None = None
    because_you_liked: list[Support]


class UserRecommendations(BaseModel):
    """Top-k for a user of the training data."""

    user_id: int
    model: str
    k: int
    exclude_seen: bool
    genres: list[str] | None
    recommendations: list[Recommendation]


class NewUserRecommendations(BaseModel):
    """Top-k for a new user, from the posted ratings (fold-in; nothing is retrained)."""

    model: str
    k: int
    method: str = Field(description="'model' (the model's fold-in rule), 'item-similarity' "
                        "(generic item-space fallback) or 'popularity' (no usable rating).")
    used_ratings: int = Field(description="Posted ratings of movies the model knows.")
    ignored_items: list[int] = Field(description="Posted item ids the model does not know.")
    genres: list[str] | None
    recommendations: list[Recommendation]


class RatingIn(BaseModel):
    """One posted rating (the rating bounds are those of the served model)."""

    model_config = ConfigDict(extra="forbid")

    item: Annotated[int, NotBool] = Field(ge=ID_MIN, le=ID_MAX, description="Original item id.")
    rating: Annotated[float, NotBool] = Field(allow_inf_nan=False,
                                              description="Rating on the model's scale.")


class NewUserRequest(BaseModel):
    """A new user's ratings and what to return (the bounds are set per app)."""

    model_config = ConfigDict(extra="forbid")

    ratings: list[RatingIn] = Field(description="The user's ratings; items unknown to the model "
                                    "are ignored (and listed in the answer).")
    k: Annotated[int, NotBool] = Field(10, ge=1, description="Number of recommendations.")
    exclude_rated: bool = Field(True, strict=True,
                                description="Leave out the movies just rated (true or false).")
    genres: list[str] | None = Field(None, description="Only movies of any of these genres.")

    @field_validator("ratings")
    @classmethod
    def _distinct_items(cls, ratings: list[RatingIn]) -> list[RatingIn]:
        seen: set[int] = set()
        for r in ratings:
            if r.item in seen:
                raise ValueError(f"item {r.item} is rated more than once")
            seen.add(r.item)
        return ratings


def new_user_request_model(*, rating_min: float | None, rating_max: float | None, max_k: int,
                           max_ratings: int) -> type[NewUserRequest]:
    """The request class of POST /recommendations for one served model.

    Args:
        rating_min: lowest allowed rating (None: no lower bound; the model has no known scale).
        rating_max: highest allowed rating (None: no upper bound).
        max_k: largest k a client may ask for.
        max_ratings: most ratings in one request.
    """
    bounded_rating = create_model(
        "RatingIn",
        __base__=RatingIn,
        rating=(Annotated[float, NotBool], Field(
            ge=rating_min, le=rating_max, allow_inf_nan=False,
            description=_rating_help(rating_min, rating_max))),
    )
    return create_model(
        "NewUserRequest",
        __base__=NewUserRequest,
        ratings=(list[bounded_rating], Field(max_length=max_ratings,  # type: ignore[valid-type]
                                             description=f"At most {max_ratings} ratings; items "
                                             "unknown to the model are ignored (and listed in "
                                             "the answer).")),
        k=(Annotated[int, NotBool], Field(10, ge=1, le=max_k,
                                          description=f"Number of recommendations (1-{max_k}).")),
    )


def _rating_help(lo: float | None, hi: float | None) -> str:
    if lo is None or hi is None:
        return "Rating (any finite number: the model has no known rating scale)."
    return f"Rating on the model's scale, {lo:g} to {hi:g}."


class SimilarMovie(Movie):
    """A movie similar to the asked one, in the model's terms.

    `similarity` is shrunk by the movie's number of training ratings n, times n / (n + shrinkage).
    """

    rank: int
    similarity: float


class SimilarResponse(BaseModel):
    """The asked movie and its k most similar movies."""

    movie: Movie
    k: int
    similar: list[SimilarMovie]


class SearchHit(Movie):
    """A title match, with the movie's number of training ratings."""

    n_ratings: int


class SearchResponse(BaseModel):
    """Title search results: prefix matches first, then by popularity."""

    query: str
    results: list[SearchHit]


class UserHistory(BaseModel):
    """The movies a training user rated (the artifact keeps which, not the rating values)."""

    user_id: int
    n_ratings: int
    history: list[Movie]


class UserList(BaseModel):
    """A page of the training users' ids."""

    n_users: int
    offset: int
    user_ids: list[int]
