"""The FastAPI app: JSON endpoints over an `Engine`, the web page, and JSON errors.

Built only by the factory `create_app(model, catalog, meta)` (or `app_from_folder(path)`): no
app exists at import time and nothing is read from the environment. The OpenAPI schema is at
/openapi.json and its pages at /docs (Swagger UI) and /redoc, served from local files so that
they work offline.

This module deliberately has no `from __future__ import annotations`: FastAPI reads the
endpoint signatures at run time, and the request class of POST /recommendations is built per
app (its bounds are the served model's rating scale and the server's limits).
"""

import logging
from collections.abc import Callable
from functools import partial
from pathlib import Path as FsPath
from typing import Annotated, Any

import anyio.to_thread
import pandas as pd
from fastapi import FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, PlainTextResponse
from fastapi.staticfiles import StaticFiles

from movierec import __version__
from movierec.errors import MovieRecError, UnknownIdError
from movierec.explain import MIN_SUPPORT, SHRINKAGE
from movierec.models.base import Recommender
from movierec.serve.engine import Engine, InvalidRequestError
from movierec.serve.guard import BodyLimits, ModelTimeoutError, run_model_work
from movierec.serve.metrics import MetricsMiddleware, metrics_for
from movierec.serve.reload import (
    Reloader,
    ReloadError,
    ReloadForbiddenError,
    is_loopback_address,
)
from movierec.serve.schemas import (
    ID_MAX,
    ID_MIN,
    ErrorResponse,
    Health,
    ModelInfo,
    NewUserRecommendations,
    NewUserRequest,
    ReloadResponse,
    SearchResponse,
    SimilarResponse,
    UserHistory,
    UserList,
    UserRecommendations,
    new_user_request_model,
)

__all__ = ["DEFAULT_MAX_BODY_BYTES", "DEFAULT_READ_TIMEOUT", "DEFAULT_REQUEST_TIMEOUT",
           "app_from_folder", "create_app"]

logger = logging.getLogger(__name__)
STATIC_DIR = FsPath(__file__).parent / "static"
DEFAULT_MAX_BODY_BYTES = 64 * 1024
DEFAULT_REQUEST_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 10.0


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorResponse, "description": description}


_INVALID: dict[int | str, dict[str, Any]] = {422: _error("Invalid parameters or body.")}
_BUSY: dict[int | str, dict[str, Any]] = {503: _error(
    "The model did not answer within the server's time limit (overloaded or too costly a "
    "request); try again later.")}
_WORK_ERRORS: dict[int | str, dict[str, Any]] = {**_INVALID, **_BUSY}
_ERRORS: dict[int | str, dict[str, Any]] = {
    404: _error("Unknown user or movie id."), **_WORK_ERRORS}
_BODY_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    400: _error("The body could not be read (e.g. not UTF-8)."),
    408: _error("The body did not arrive within the server's read time limit."),
    413: _error("Request body too large."),
}
_RELOAD_ERRORS: dict[int | str, dict[str, Any]] = {
    403: _error("Only clients on the server's own machine (loopback) may reload."),
    409: _error("Nothing reloaded, the previous model is still served: the folder is broken, "
                "tampered or incompatible, a reload is already running, or the app has no "
                "model folder."),
}


def create_app(model: Recommender, catalog: pd.DataFrame | None = None,
               meta: dict[str, Any] | None = None, *, max_k: int = 100,
               max_ratings: int = 500, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
               request_timeout: float | None = DEFAULT_REQUEST_TIMEOUT,
               read_timeout: float | None = DEFAULT_READ_TIMEOUT,
               model_dir: str | FsPath | None = None, store: Any = None,
               require_key: bool = False) -> FastAPI:
    """Build the service for one fitted model.

    Args:
        model: a fitted model of any family (new users are folded in, see `movierec.fold_in`).
        catalog: the item table (item_id, title, year, genres) saved with the model, or None.
        meta: the artifact's model.json (`movierec.artifact.read_meta`), shown at GET /model.
        max_k: largest k a request may ask for (default 100).
        max_ratings: most ratings a new-user request may post (default 500).
        max_body_bytes: largest request body in bytes (default 64 KiB); larger gets HTTP 413.
        request_timeout: seconds one request's model work may take, waiting for a worker
            thread included (default 10); past it HTTP 503. None: no limit.
        read_timeout: seconds a client has to send the request body (default 10); past it
            HTTP 408. None: no limit.
        model_dir: the folder `POST /model/reload` re-reads (`app_from_folder` sets it); None:
            reload answers HTTP 409.
        store: an open `movierec.store.Store`, or None. With a store the app stores ratings
            and users, its recommendations read them back, and keys guard writes
            (`movierec.serve.feedback`, `movierec.serve.auth`); the training users are
            registered in it.
        require_key: reads need an API key too (only with a store).

    Returns:
        The FastAPI app. The served engine (every derived array computed) is
        `app.state.engine`; a reload replaces it. The reloader is `app.state.reloader`.
    """
    for name, value in (("request_timeout", request_timeout), ("read_timeout", read_timeout)):
        if value is not None and not value > 0:
            raise ValueError(f"{name} must be > 0 seconds or None, got {value!r}")
    engine = Engine(model, catalog, meta, max_k=max_k, max_ratings=max_ratings)
    scale = engine.rating_scale
    body_model = new_user_request_model(
        rating_min=scale[0] if scale else None, rating_max=scale[1] if scale else None,
        max_k=max_k, max_ratings=max_ratings)
    app = FastAPI(
        docs_url=None,  # served by `_add_docs` from local files, not from a CDN
        redoc_url=None,
        title="movierec",
        version=__version__,
        summary="Movie recommendations from one saved model (GET /model says which)",
        description="Top-k movies for known users, for new users from a few ratings (fold-in, "
        "no retraining), similar movies and title search. Errors are JSON: "
        '`{"detail": "..."}`.',
    )
    app.state.engine = engine
    app.state.reloader = None if model_dir is None else Reloader(
        app.state, model_dir, rating_scale=scale, max_k=max_k, max_ratings=max_ratings)
    app.state.feedback = None
    app.state.metrics = metrics_for(app.state)
    app.add_middleware(BodyLimits, max_bytes=max_body_bytes, timeout=read_timeout)
    if app.state.metrics is not None:  # outermost: refusals by BodyLimits are counted too
        app.add_middleware(MetricsMiddleware, metrics=app.state.metrics,
                           routes=lambda: app.router.routes)
    _add_error_handlers(app)
    _add_routes(app, body_model, request_timeout)
    if store is not None:
        from movierec.serve.feedback import install_feedback

        install_feedback(app, store, require_key=require_key, request_timeout=request_timeout,
                         max_batch=max_ratings)
    elif require_key:
        raise ValueError("require_key needs a store (the keys live in it)")
    _add_metrics_route(app)
    _add_docs(app)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def app_from_folder(path: str | FsPath, **kwargs: Any) -> FastAPI:
    """`create_app` for a model folder written by `movierec train` (model, items, model.json).

    Args:
        path: the model folder.
        **kwargs: max_k, max_ratings, max_body_bytes, request_timeout, read_timeout (see
            `create_app`).
    """
    from movierec.artifact import load_catalog, load_model, read_meta

    return create_app(load_model(path), load_catalog(path), read_meta(path), model_dir=path,
                      **kwargs)


# --- routes ---------------------------------------------------------------------------------
def _split_genres(genres: str | None) -> list[str] | None:
    names = [g.strip() for g in (genres or "").split(",") if g.strip()]
    return names or None


def _add_routes(app: FastAPI, body_model: type[NewUserRequest],
                request_timeout: float | None) -> None:
    max_k = app.state.engine.max_k  # a server setting: the same for every reloaded engine
    KParam = Annotated[int, Query(ge=1, le=max_k, description=f"List length, 1 to {max_k}.")]
    UserId = Annotated[int, Path(ge=ID_MIN, le=ID_MAX, description="Original user id.")]
    ItemId = Annotated[int, Path(ge=ID_MIN, le=ID_MAX, description="Original movie id.")]
    Genres = Annotated[str | None, Query(
        max_length=1000, description="Comma-separated genres; only movies of any of them "
        "(e.g. Comedy,Drama). GET /model lists the genres.")]

    async def work(job: Callable[[Engine], dict[str, Any]]) -> dict[str, Any]:
        # The engine is read once: a reload during this request never changes which model
        # answers it.
        engine: Engine = app.state.engine
        return await run_model_work(partial(job, engine), request_timeout)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", media_type="text/html")

    @app.get("/health", response_model=Health, tags=["service"])
    async def health() -> dict[str, Any]:
        """The server is up and has a model loaded (200 whenever the model answers).

        `store` says whether the feedback store answers ("ok", "unavailable"; null: no store).
        """
        out = app.state.engine.health()
        feedback = app.state.feedback
        out["store"] = None if feedback is None else await feedback.store_status()
        return out

    @app.get("/model", response_model=ModelInfo, tags=["service"])
    async def model_info() -> dict[str, Any]:
        """Model name, hyper-parameters, dataset, metrics, training time and request limits.

        Also which load this is (generation, loaded_at).
        """
        return app.state.engine.info()

    @app.post("/model/reload", response_model=ReloadResponse, responses=_RELOAD_ERRORS,
              tags=["service"])
    async def reload_model(request: Request) -> dict[str, Any]:
        """Re-read the model folder and serve it; only for clients on this machine.

        With a store: an admin key, or loopback while no key is configured.

        Requests in flight finish on the model they started with. A broken, tampered or
        incompatible folder changes nothing: the answer is 409 with the reason, and the
        previous model is still served. `movierec serve` also reloads on SIGHUP.
        """
        client = request.client.host if request.client else None
        if app.state.feedback is not None:
            await app.state.feedback.authorize(request, "admin")
        elif not is_loopback_address(client):
            raise ReloadForbiddenError(
                f"only clients on the server's machine may reload the model (this request "
                f"came from {client or 'an unknown address'}); or send SIGHUP to the server")
        reloader: Reloader | None = app.state.reloader
        if reloader is None:
            raise ReloadError("this app was built from a model object, not a folder: "
                              "there is nothing to reload")
        return await anyio.to_thread.run_sync(reloader.reload)

    @app.get("/users", response_model=UserList, responses=_WORK_ERRORS, tags=["users"])
    async def users(offset: Annotated[int, Query(ge=0, le=ID_MAX)] = 0,
                    limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> dict[str, Any]:
        """A page of the ids of users in the training data."""
        return await work(lambda e: e.users(offset, limit))

    @app.get("/users/{user_id}", response_model=UserHistory, responses=_ERRORS, tags=["users"])
    async def user_history(user_id: UserId,
                           limit: Annotated[int, Query(ge=1, le=10_000)] = 100
                           ) -> dict[str, Any]:
        """The movies a training user rated (most popular first)."""
        return await work(lambda e: e.user_history(user_id, limit))

    @app.get("/users/{user_id}/recommendations", response_model=UserRecommendations,
             responses=_ERRORS, tags=["recommendations"])
    async def recommend_user(user_id: UserId, k: KParam = 10,
                             exclude_seen: Annotated[bool, Query(
                                 description="Leave out movies the user rated in training."
                             )] = True, genres: Genres = None) -> dict[str, Any]:
        """Top-k movies for a user of the training data, with "because you liked".

        Each recommendation cites the movies of the user's training ratings that support it most,
        among those the user liked (rated 4 or more, or above their own mean rating).
        """
        return await work(lambda e: e.recommend_user(
            user_id, k, exclude_seen=exclude_seen, genres=_split_genres(genres)))

    @app.post("/recommendations", response_model=NewUserRecommendations,
              responses=_BODY_ERRORS, tags=["recommendations"])
    async def recommend_new(
            body: body_model) -> dict[str, Any]:  # type: ignore[valid-type]  # pyright: ignore[reportInvalidTypeForm]
        """Top-k movies for a new user from posted ratings, folded into the model (no retraining).

        Popularity when no posted movie is known to the model. "Because you liked" cites only posted
        movies rated 4 or more or above the posted ratings' mean.
        """
        # FastAPI reads the type from the signature; mypy cannot follow a class made at runtime.
        req: NewUserRequest = body
        ratings = req.ratings
        items, values = [r.item for r in ratings], [r.rating for r in ratings]
        return await work(lambda e: e.recommend_new(
            items, values, req.k, exclude_rated=req.exclude_rated, genres=req.genres))

    @app.get("/movies/search", response_model=SearchResponse, responses=_WORK_ERRORS,
             tags=["movies"])
    async def search(q: Annotated[str, Query(min_length=1, max_length=200,
                                             description="Part of a title, e.g. toy.")],
                     limit: Annotated[int, Query(ge=1, le=100)] = 20) -> dict[str, Any]:
        """Movies whose title contains `q`, ignoring case, accents, punctuation and articles.

        "the godfather" finds "Godfather, The". Exact titles first, then titles that start with `q`,
        then the most rated.
        """
        return await work(lambda e: e.search(q, limit))

    @app.get("/movies/{item_id}/similar", response_model=SimilarResponse, responses=_ERRORS,
             tags=["movies"])
    async def similar(item_id: ItemId, k: KParam = 10,
                      min_support: Annotated[int, Query(
                          ge=0, le=ID_MAX, description="Leave out movies with fewer training "
                          f"ratings (default {MIN_SUPPORT}).")] = MIN_SUPPORT,
                      shrinkage: Annotated[float, Query(
                          ge=0, le=1e9, description="λ of the shrinkage n / (n + λ) of each "
                          "similarity by the movie's number of training ratings n (default "
                          f"{SHRINKAGE:g}; 0: none).")] = SHRINKAGE) -> dict[str, Any]:
        """The k movies most similar to a movie, in the model's own terms.

        EASE's weights, ItemKNN's neighbourhoods, else the cosine of item vectors or co-occurrence;
        not dominated by movies that only a few users rated.
        """
        return await work(lambda e: e.similar(item_id, k, min_support=min_support,
                                              shrinkage=shrinkage))


def _add_metrics_route(app: FastAPI) -> None:
    """GET /metrics (Prometheus text format); a read, so `require_key` applies to it."""
    metrics = app.state.metrics
    if metrics is None:
        return

    @app.get("/metrics", include_in_schema=True, tags=["service"],
             response_class=PlainTextResponse)
    async def prometheus_metrics(request: Request) -> PlainTextResponse:
        """Request counts and latency per route, in Prometheus's text format.

        Also store latency, model version and feedback counts.
        """
        if app.state.feedback is not None:
            await app.state.feedback.authorize(request, "read")
        body, content_type = metrics.render()
        return PlainTextResponse(body, media_type=content_type)


# --- API docs -------------------------------------------------------------------------------
DOCS_ASSETS = "/docs-assets"


def _docs_assets_dir() -> FsPath | None:
    """The folder of Swagger UI's and ReDoc's files shipped by `fastapi-offline` (serve extra)."""
    try:
        import fastapi_offline
    except ImportError:
        return None
    folder = FsPath(fastapi_offline.__file__).parent / "static"
    needed = ("swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png")
    return folder if all((folder / name).is_file() for name in needed) else None


def _add_docs(app: FastAPI) -> None:
    """/docs (Swagger UI) and /redoc from files served by this app, so they work offline.

    FastAPI's own pages load their scripts from a CDN and stay blank without internet. The
    assets come from the `fastapi-offline` package (in the `serve` extra); without it the pages
    fall back to FastAPI's CDN links, with a warning.
    """
    assets = _docs_assets_dir()
    openapi_url = app.openapi_url or "/openapi.json"
    if assets is None:
        logger.warning("fastapi-offline is not installed: /docs and /redoc load Swagger UI and "
                       "ReDoc from a CDN (pip install 'movierec[serve]' to serve them locally)")
    else:
        app.mount(DOCS_ASSETS, StaticFiles(directory=assets), name="docs-assets")
    title = f"{app.title} {app.version} API"

    def local(name: str, cdn: str) -> dict[str, str]:
        return {} if assets is None else {cdn: f"{DOCS_ASSETS}/{name}"}

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        urls = {**local("swagger-ui-bundle.js", "swagger_js_url"),
                **local("swagger-ui.css", "swagger_css_url"),
                **local("favicon.png", "swagger_favicon_url")}
        return get_swagger_ui_html(
            openapi_url=root + openapi_url, title=f"{title} — Swagger UI",
            # No online validator badge: it would call validator.swagger.io.
            swagger_ui_parameters={"validatorUrl": None},
            **{key: root + url for key, url in urls.items()})

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        urls = {**local("redoc.standalone.js", "redoc_js_url"),
                **local("favicon.png", "redoc_favicon_url")}
        return get_redoc_html(openapi_url=root + openapi_url, title=f"{title} — ReDoc",
                              with_google_fonts=False,
                              **{key: root + url for key, url in urls.items()})


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


_ERROR_STATUS: tuple[tuple[type[Exception], int, dict[str, str] | None], ...] = (
    (UnknownIdError, 404, None),
    (InvalidRequestError, 422, None),
    (ModelTimeoutError, 503, {"retry-after": "1"}),
    (ReloadForbiddenError, 403, None),
    (ReloadError, 409, None),
    (MovieRecError, 400, None),
)


def _json_error(status: int, headers: dict[str, str] | None) -> Any:
    async def handler(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=status, headers=headers)

    return handler


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors: list[dict[str, Any]] = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")),
             "type": str(e.get("type", ""))} for e in exc.errors()]
        detail = "; ".join(
            "body: not valid JSON" if e["type"] == "json_invalid" else
            f"{_where(e['loc'])}: {e['msg']}" for e in errors) or "invalid request"
        return JSONResponse({"detail": detail, "errors": errors}, status_code=422)

    # Library errors → status (Starlette picks the most specific class along the MRO).
    for exc_type, status, headers in _ERROR_STATUS:
        app.add_exception_handler(exc_type, _json_error(status, headers))

    @app.exception_handler(Exception)
    async def crashed(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal server error (see the server log)"},
                            status_code=500)
