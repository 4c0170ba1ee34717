"""The FastAPI app: JSON endpoints over an `Engine`, the web page, and JSON errors.

Built only by the factory `create_app(model, catalog, meta)` (or `app_from_folder(path)`): no
app exists at import time and nothing is read from the environment. The OpenAPI schema is at
/openapi.json and its pages at /docs.

This module deliberately has no `from __future__ import annotations`: FastAPI reads the
endpoint signatures at run time, and the request class of POST /recommendations is built per
app (its bounds are the served model's rating scale and the server's limits).
"""

import logging
from pathlib import Path as FsPath
from typing import Annotated, Any

import pandas as pd
from fastapi import FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from movierec import __version__
from movierec.errors import MovieRecError, UnknownIdError
from movierec.models.base import Recommender
from movierec.serve.engine import Engine, InvalidRequestError
from movierec.serve.schemas import (
    ID_MAX,
    ID_MIN,
    ErrorResponse,
    Health,
    ModelInfo,
    NewUserRecommendations,
    NewUserRequest,
    SearchResponse,
    SimilarResponse,
    UserHistory,
    UserList,
    UserRecommendations,
    new_user_request_model,
)

__all__ = ["DEFAULT_MAX_BODY_BYTES", "app_from_folder", "create_app"]

logger = logging.getLogger(__name__)
STATIC_DIR = FsPath(__file__).parent / "static"
DEFAULT_MAX_BODY_BYTES = 64 * 1024

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorResponse, "description": "Unknown user or movie id."},
    422: {"model": ErrorResponse, "description": "Invalid parameters or body."},
}
_BODY_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS, 413: {"model": ErrorResponse, "description": "Request body too large."}}


def create_app(model: Recommender, catalog: pd.DataFrame | None = None,
               meta: dict[str, Any] | None = None, *, max_k: int = 100,
               max_ratings: int = 500, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> FastAPI:
    """Build the service for one fitted model.

    Args:
        model: a fitted model of any family (new users are folded in, see `movierec.fold_in`).
        catalog: the item table (item_id, title, year, genres) saved with the model, or None.
        meta: the artifact's model.json (`movierec.artifact.read_meta`), shown at GET /model.
        max_k: largest k a request may ask for (default 100).
        max_ratings: most ratings a new-user request may post (default 500).
        max_body_bytes: largest request body in bytes (default 64 KiB); larger gets HTTP 413.

    Returns:
        The FastAPI app; the engine (with every derived array computed) is `app.state.engine`.
    """
    engine = Engine(model, catalog, meta, max_k=max_k, max_ratings=max_ratings)
    scale = engine.rating_scale
    body_model = new_user_request_model(
        rating_min=scale[0] if scale else None, rating_max=scale[1] if scale else None,
        max_k=max_k, max_ratings=max_ratings)
    app = FastAPI(
        title="movierec",
        version=__version__,
        summary=f"Movie recommendations from a {model.name} model",
        description="Top-k movies for known users, for new users from a few ratings (fold-in, "
        "no retraining), similar movies and title search. Errors are JSON: "
        '`{"detail": "..."}`.',
    )
    app.state.engine = engine
    app.add_middleware(BodySizeLimit, max_bytes=max_body_bytes)
    _add_error_handlers(app)
    _add_routes(app, engine, body_model)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def app_from_folder(path: str | FsPath, **kwargs: Any) -> FastAPI:
    """`create_app` for a model folder written by `movierec train` (model, items, model.json).

    Args:
        path: the model folder.
        **kwargs: max_k, max_ratings, max_body_bytes (see `create_app`).
    """
    from movierec.artifact import load_catalog, load_model, read_meta

    return create_app(load_model(path), load_catalog(path), read_meta(path), **kwargs)


# --- routes ---------------------------------------------------------------------------------
def _split_genres(genres: str | None) -> list[str] | None:
    names = [g.strip() for g in (genres or "").split(",") if g.strip()]
    return names or None


def _add_routes(app: FastAPI, engine: Engine, body_model: type[NewUserRequest]) -> None:
    max_k = engine.max_k
    KParam = Annotated[int, Query(ge=1, le=max_k, description=f"List length, 1 to {max_k}.")]
    UserId = Annotated[int, Path(ge=ID_MIN, le=ID_MAX, description="Original user id.")]
    ItemId = Annotated[int, Path(ge=ID_MIN, le=ID_MAX, description="Original movie id.")]
    Genres = Annotated[str | None, Query(
        max_length=1000, description="Comma-separated genres; only movies of any of them "
        "(e.g. Comedy,Drama). GET /model lists the genres.")]

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/health", response_model=Health, tags=["service"])
    def health() -> dict[str, Any]:
        """The server is up and has a model loaded."""
        return engine.health()

    @app.get("/model", response_model=ModelInfo, tags=["service"])
    def model_info() -> dict[str, Any]:
        """Model name, hyper-parameters, dataset, metrics, training time and request limits."""
        return engine.info()

    @app.get("/users", response_model=UserList, tags=["users"])
    def users(offset: Annotated[int, Query(ge=0)] = 0,
              limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
        """A page of the ids of users in the training data."""
        return engine.users(offset, limit)

    @app.get("/users/{user_id}", response_model=UserHistory, responses=_ERRORS, tags=["users"])
    def user_history(user_id: UserId,
                     limit: Annotated[int, Query(ge=1, le=10_000)] = 100) -> dict[str, Any]:
        """The movies a training user rated (most popular first)."""
        return engine.user_history(user_id, limit)

    @app.get("/users/{user_id}/recommendations", response_model=UserRecommendations,
             responses=_ERRORS, tags=["recommendations"])
    def recommend_user(user_id: UserId, k: KParam = 10,
                       exclude_seen: Annotated[bool, Query(
                           description="Leave out movies the user rated in training.")] = True,
                       genres: Genres = None) -> dict[str, Any]:
        """Top-k movies for a user of the training data, with "because you liked"."""
        return engine.recommend_user(user_id, k, exclude_seen=exclude_seen,
                                     genres=_split_genres(genres))

    @app.post("/recommendations", response_model=NewUserRecommendations,
              responses=_BODY_ERRORS, tags=["recommendations"])
    def recommend_new(body: body_model) -> dict[str, Any]:  # pyright: ignore[reportInvalidTypeForm]
        """Top-k movies for a new user from posted ratings, folded into the model (no
        retraining); popularity when no posted movie is known to the model."""
        ratings = body.ratings
        return engine.recommend_new([r.item for r in ratings], [r.rating for r in ratings],
                                    body.k, exclude_rated=body.exclude_rated,
                                    genres=body.genres)

    @app.get("/movies/search", response_model=SearchResponse, responses=_ERRORS,
             tags=["movies"])
    def search(q: Annotated[str, Query(min_length=1, max_length=200,
                                       description="Part of a title, e.g. toy.")],
               limit: Annotated[int, Query(ge=1, le=100)] = 20) -> dict[str, Any]:
        """Movies whose title contains `q` (case- and accent-insensitive)."""
        return engine.search(q, limit)

    @app.get("/movies/{item_id}/similar", response_model=SimilarResponse, responses=_ERRORS,
             tags=["movies"])
    def similar(item_id: ItemId, k: KParam = 10) -> dict[str, Any]:
        """The k movies most similar to a movie in the model's item space."""
        return engine.similar(item_id, k)


# --- errors ---------------------------------------------------------------------------------
def _where(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = list(loc)
    source = parts.pop(0) if parts and parts[0] in ("body", "query", "path") else None
    name = ""
    for p in parts:
        name += f"[{p}]" if isinstance(p, int) else (f".{p}" if name else str(p))
    if source == "body":
        return f"body.{name}" if name else "body"
    return f"{name} ({source})" if source and name else (name or str(source))


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")),
                   "type": str(e.get("type", ""))} for e in exc.errors()]
        detail = "; ".join(
            "body: not valid JSON" if e["type"] == "json_invalid" else
            f"{_where(e['loc'])}: {e['msg']}" for e in errors) or "invalid request"
        return JSONResponse({"detail": detail, "errors": errors}, status_code=422)

    @app.exception_handler(UnknownIdError)
    async def unknown(request: Request, exc: UnknownIdError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=404)

    @app.exception_handler(InvalidRequestError)
    async def impossible(request: Request, exc: InvalidRequestError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.exception_handler(MovieRecError)
    async def refused(request: Request, exc: MovieRecError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal server error (see the server log)"},
                            status_code=500)


class BodySizeLimit:
    """ASGI middleware: HTTP 413 with a JSON message for bodies over `max_bytes`.

    A declared Content-Length is checked before the app runs; a body without one (chunked) is
    read here up to the limit and handed on whole.

    Args:
        app: the wrapped ASGI app.
        max_bytes: the largest accepted body.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def _refuse(self, send: Send) -> None:
        response = JSONResponse(
            {"detail": f"request body too large: at most {self.max_bytes} bytes"},
            status_code=413)
        await response({"type": "http"}, _no_receive, send)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            if not declared.isdigit() or int(declared) > self.max_bytes:
                await self._refuse(send)
                return
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._refuse(send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": b"".join(chunks), "more_body": False}

        await self.app(scope, replay, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}

