"""Feedback routes over a store: users, ratings, impressions, recommendations that read them.

`install_feedback(app, store)` (called by `create_app(..., store=...)`) adds

* `POST /users` (write): a new profile; its id is above every training and stored user id;
* `PUT /users/{user_id}/ratings/{item_id}` `{"rating": 4.5}` (write): idempotent, latest wins;
  `DELETE` the same path; `POST /users/{user_id}/ratings` a batch, all or nothing;
  `GET /users/{user_id}/ratings` (read);
* `GET /users/{user_id}/recommendations` (read), replacing the model-only route: the user's
  training history plus their stored ratings, folded in with the model's own fold-in
  (`Engine.recommend_with_feedback`), every rated movie left out; `?log=true` or the header
  `X-Log-Impressions: 1` records the list as impressions and returns its `list_id`, which a
  later rating can cite.

Reads keep answering from the model when the store is down (the answer says
`"feedback": "unavailable"`); writes then get HTTP 503 with Retry-After. Who may call what is
`movierec.serve.auth`. Store calls run in worker threads and are timed for /metrics.

No `from __future__ import annotations`: FastAPI reads the signatures at run time.
"""

import logging
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Annotated, Any, TypeVar

import anyio
import anyio.to_thread
import pandas as pd
from fastapi import APIRouter, FastAPI, Header, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, create_model

from movierec.errors import UnknownIdError
from movierec.serve import auth
from movierec.serve.engine import Engine, InvalidRequestError
from movierec.serve.guard import run_model_work
from movierec.serve.metrics import Metrics, model_version
from movierec.serve.schemas import ErrorResponse, NotBool, UserRecommendations
from movierec.store import KeyRefusedError, Store, StoreUnavailableError

__all__ = ["FeedbackService", "install_feedback"]

logger = logging.getLogger(__name__)
T = TypeVar("T")
STORE_ID_MAX = 2**31 - 1  # the store keeps ids as the datasets do (int32)
RETRY_AFTER = "5"  # seconds a client should wait after a 503 from the store
HEALTH_TIMEOUT = 2.0  # seconds /health waits for the store before saying "unavailable"
RECOMMENDATIONS_PATH = "/users/{user_id}/recommendations"


# --- bodies ---------------------------------------------------------------------------------
class RatingBody(BaseModel):
    """One rating of one movie (the bounds are the served model's scale)."""

    model_config = ConfigDict(extra="forbid")

    rating: Annotated[float, NotBool] = Field(allow_inf_nan=False)
    timestamp: Annotated[int, NotBool] | None = Field(
        None, ge=0, lt=4_102_444_800, description="Unix seconds when the user rated (default: "
        "now).")
    list_id: str | None = Field(None, min_length=1, max_length=64, description="The list the "
                                "rating was given from (the list_id of a logged list).")


class BatchRating(RatingBody):
    """One rating of a batch."""

    item_id: Annotated[int, NotBool] = Field(ge=0, le=STORE_ID_MAX, description="Movie id.")


class BatchBody(BaseModel):
    """Ratings of one user, written all together or not at all."""

    model_config = ConfigDict(extra="forbid")

    ratings: list[BatchRating]
    list_id: str | None = Field(None, min_length=1, max_length=64,
                                description="Default list_id of ratings that name none.")


class StoredRating(BaseModel):
    """A stored rating (the latest of the user for the movie)."""

    item_id: int
    title: str | None = Field(description="Null for a movie the served model does not know.")
    rating: float
    timestamp: int
    source: str
    list_id: str | None


class UserRatings(BaseModel):
    """A user's stored ratings, oldest write first."""

    user_id: int
    n_ratings: int
    ratings: list[StoredRating]


class RatingWritten(BaseModel):
    """An acknowledged (committed) rating write."""

    user_id: int
    item_id: int
    rating: float
    list_id: str | None = None


class BatchWritten(BaseModel):
    """An acknowledged batch: every rating written."""

    user_id: int
    written: int


class RatingDeleted(BaseModel):
    """A DELETE: whether a stored rating was there (it is gone either way)."""

    user_id: int
    item_id: int
    deleted: bool


class NewUser(BaseModel):
    """A created profile."""

    user_id: int


class FeedbackRecommendations(UserRecommendations):
    """Top-k for a user from the model and the user's stored ratings."""

    method: str = Field(description="'trained' (the model's own row of a training user with no "
                        "stored rating), 'model' (training history and stored ratings folded in "
                        "by the model's rule), 'item-similarity' (the model has no fold-in rule: "
                        "generic item-space scores) or 'popularity' (no rated movie known to the "
                        "model).")
    n_feedback: int = Field(description="Stored ratings used.")
    feedback: str = Field(description="'ok', or 'unavailable' when the store could not be "
                          "read: the list then comes from the model alone.")
    ignored_items: list[int] = Field(description="Stored movies the model does not know.")
    list_id: str | None = Field(None, description="Id of the logged list (with ?log=true).")
    note: str | None = None


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorResponse, "description": description}


_AUTH: dict[int | str, dict[str, Any]] = {
    401: _error("No valid API key (missing, malformed, unknown or revoked)."),
    403: _error("The key's scope is too weak, or no key is configured and the client is "
                "not on the server's machine.")}
_WRITE: dict[int | str, dict[str, Any]] = {
    **_AUTH, 404: _error("Unknown user or movie."), 422: _error("Invalid body."),
    503: _error("The store is unavailable; retry after Retry-After seconds.")}


def _rating_model(base: type[BaseModel], name: str, scale: tuple[float, float] | None
                  ) -> type[BaseModel]:
    lo, hi = scale if scale else (None, None)
    text = ("any finite number (the model has no known scale)" if scale is None
            else f"{lo:g} to {hi:g}")
    return create_model(name, __base__=base, rating=(Annotated[float, NotBool], Field(
        ge=lo, le=hi, allow_inf_nan=False, description=f"Rating on the model's scale: {text}.")))


# --- the service ----------------------------------------------------------------------------
class FeedbackService:
    """The store as the routes use it: timed calls in worker threads, user and movie checks.

    Args:
        state: the app's state (its `engine` is the served model; read per request).
        store: the open store.
        require_key: reads need a read key too.
        metrics: where store latency and feedback counts go, or None.
        request_timeout: seconds one request's model work may take (None: no limit).
        max_batch: most ratings in one batch.
    """

    def __init__(self, state: Any, store: Store, *, require_key: bool = False,
                 metrics: Metrics | None = None, request_timeout: float | None = None,
                 max_batch: int = 500) -> None:
        self.state = state
        self.store = store
        self.require_key = require_key
        self.metrics = metrics
        self.request_timeout = request_timeout
        self.max_batch = max_batch
        # SQLite has one writer at a time, and its busy handler waits by sleeping (up to 100 ms
        # a try): 50 concurrent writers then spend most of their time asleep. Queueing this
        # process's writes on a lock first keeps the database's lock uncontended.
        self._write_lock = threading.Lock() if store.url.startswith("sqlite") else None

    async def store_call(self, operation: str, func: Callable[..., T], *args: Any,
                         **kwargs: Any) -> T:
        """`func(*args, **kwargs)` in a worker thread, timed as `operation`."""
        start = time.perf_counter()
        try:
            return await anyio.to_thread.run_sync(partial(func, *args, **kwargs))
        except StoreUnavailableError:
            if self.metrics is not None:
                self.metrics.store_errors.labels(operation).inc()
            raise
        finally:
            if self.metrics is not None:
                self.metrics.store_latency.labels(operation).observe(time.perf_counter() - start)

    def count(self, kind: str, ratings: int = 0) -> None:
        """Count an acknowledged feedback write."""
        if self.metrics is not None:
            self.metrics.feedback.labels(kind).inc()
            if ratings:
                self.metrics.feedback_ratings.inc(ratings)

    async def authorize(self, request: Request, scope: str) -> Any:
        """See `movierec.serve.auth.authorize`."""
        return await auth.authorize(self, request, scope)

    def register_users(self, engine: Engine) -> None:
        """Record the training users in the store (so new ids come above theirs)."""
        ids = engine.model.user_vocab_.index
        try:
            added = self.store.add_users(int(u) for u in ids if 0 <= int(u) <= STORE_ID_MAX)
        except StoreUnavailableError as exc:
            logger.warning("could not register the training users in the store: %s", exc)
            return
        if added:
            logger.info("registered %d training users in %s", added, self.store.display_url)

    async def store_status(self) -> str:
        """"ok" or "unavailable" (waits at most HEALTH_TIMEOUT seconds)."""
        with anyio.move_on_after(HEALTH_TIMEOUT):
            try:
                await anyio.to_thread.run_sync(self.store.has_keys, abandon_on_cancel=True)
            except StoreUnavailableError:
                return "unavailable"
            return "ok"
        return "unavailable"

    @staticmethod
    def is_training_user(engine: Engine, user_id: int) -> bool:
        """Whether the served model saw `user_id` in training."""
        return int(engine.model.user_vocab_.codes([user_id], missing="negative")[0]) >= 0

    async def check_user(self, engine: Engine, user_id: int) -> None:
        """UnknownIdError (404) unless the user is a training user or known to the store."""
        if self.is_training_user(engine, user_id):
            return
        if not await self.store_call("user_exists", self.store.user_exists, user_id):
            raise UnknownIdError(f"user {user_id} is not in the training data of this "
                                 f"{engine.model.name} model and was not created with "
                                 "POST /users")

    async def write(self, operation: str, func: Callable[..., T], *args: Any,
                    **kwargs: Any) -> T:
        """A store write; a ValueError of the store (a bad value) becomes HTTP 422."""
        if self._write_lock is not None:
            func = partial(_locked, self._write_lock, func)
        try:
            return await self.store_call(operation, func, *args, **kwargs)
        except StoreUnavailableError:
            raise
        except ValueError as exc:
            raise InvalidRequestError(str(exc)) from None


def _locked(lock: threading.Lock, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    with lock:
        return func(*args, **kwargs)


def _unknown_movies(engine: Engine, item_ids: list[int]) -> list[int]:
    """Movies neither the model nor the site's catalog knows.

    Catalog-only movies are stored; the fold-in ignores them until a retrain learns them.
    """
    return [i for i in item_ids if i not in engine.known_item_ids]


# --- installation ---------------------------------------------------------------------------
def install_feedback(app: FastAPI, store: Store, *, require_key: bool = False,
                     request_timeout: float | None = None, max_batch: int = 500) -> None:
    """Add the feedback routes and error handlers to `app` (built by `create_app`).

    Args:
        app: the app; `app.state.engine` is the served model, `app.state.metrics` its metrics.
        store: the open store.
        require_key: reads need a read key too.
        request_timeout: seconds one request's model work may take.
        max_batch: most ratings one batch may hold (the smaller of the store's and the
            server's limits).
    """
    service = FeedbackService(app.state, store, require_key=require_key,
                              metrics=getattr(app.state, "metrics", None),
                              request_timeout=request_timeout,
                              max_batch=min(max_batch, store.max_batch))
    app.state.feedback = service
    service.register_users(app.state.engine)
    _add_error_handlers(app)
    # This route replaces the model-only one: drop it, so only one answers (and is documented).
    app.router.routes[:] = [r for r in app.router.routes if not (
        getattr(r, "path", None) == RECOMMENDATIONS_PATH and "GET" in getattr(r, "methods", ()))]
    app.include_router(_router(service, app.state.engine.rating_scale, app.state.engine.max_k))
    app.openapi_schema = None


def _add_error_handlers(app: FastAPI) -> None:
    async def refused(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, KeyRefusedError)
        status = 403 if exc.reason == "scope" else 401
        headers = {"www-authenticate": "Bearer"} if status == 401 else None
        return JSONResponse({"detail": str(exc)}, status_code=status, headers=headers)

    async def denied(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, auth.AuthError)
        headers = {"www-authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse({"detail": str(exc)}, status_code=exc.status, headers=headers)

    async def unavailable(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": f"{exc}; try again later"}, status_code=503,
                            headers={"retry-after": RETRY_AFTER})

    app.add_exception_handler(KeyRefusedError, refused)
    app.add_exception_handler(auth.AuthError, denied)
    app.add_exception_handler(StoreUnavailableError, unavailable)


def _router(service: FeedbackService, scale: tuple[float, float] | None,
            max_k: int) -> APIRouter:
    router = APIRouter(tags=["feedback"])
    store = service.store
    rating_body = _rating_model(RatingBody, "RatingBody", scale)
    batch_rating = _rating_model(BatchRating, "BatchRating", scale)
    batch_body = create_model("BatchBody", __base__=BatchBody, ratings=(
        list[batch_rating], Field(min_length=1, max_length=service.max_batch,  # type: ignore[valid-type]
                                  description=f"1 to {service.max_batch} ratings.")))
    UserId = Annotated[int, Path(ge=0, le=STORE_ID_MAX, description="User id.")]
    ItemId = Annotated[int, Path(ge=0, le=STORE_ID_MAX, description="Movie id.")]

    def engine() -> Engine:
        return service.state.engine

    @router.post("/users", response_model=NewUser, status_code=201, responses=_WRITE)
    async def create_user(request: Request) -> dict[str, Any]:
        """Create a profile (write key); rate movies with it to get personal lists."""
        await service.authorize(request, "write")
        ids = engine().model.user_vocab_.index
        above = int(ids.max()) if len(ids) else 0
        user_id = await service.write("create_user", store.create_user, above=above)
        service.count("create_user")
        return {"user_id": user_id}

    @router.put("/users/{user_id}/ratings/{item_id}", response_model=RatingWritten,
                responses=_WRITE)
    async def put_rating(request: Request, user_id: UserId, item_id: ItemId,
                         body: rating_body) -> dict[str, Any]:  # type: ignore[valid-type]  # pyright: ignore
        """Store a rating (write key); a second PUT replaces it (latest wins).

        The next recommendations of the user reflect it.
        """
        # FastAPI reads the type from the signature; mypy cannot follow a class made at runtime.
        req: RatingBody = body
        await service.authorize(request, "write")
        current = engine()
        if item_id not in current.known_item_ids:
            current.item_code(item_id)  # 404 for a movie neither the model nor catalog knows
        await service.check_user(current, user_id)
        await service.write("put_rating", store.put_rating, user_id, item_id, req.rating,
                            timestamp=req.timestamp, list_id=req.list_id)
        service.count("put", 1)
        return {"user_id": user_id, "item_id": item_id, "rating": req.rating,
                "list_id": req.list_id}

    @router.delete("/users/{user_id}/ratings/{item_id}", response_model=RatingDeleted,
                   responses=_WRITE)
    async def delete_rating(request: Request, user_id: UserId,
                            item_id: ItemId) -> dict[str, Any]:
        """Delete a stored rating (write key); the training history is not changed."""
        await service.authorize(request, "write")
        deleted = await service.write("delete_rating", store.delete_rating, user_id, item_id)
        service.count("delete")
        return {"user_id": user_id, "item_id": item_id, "deleted": deleted}

    @router.post("/users/{user_id}/ratings", response_model=BatchWritten, responses={
        **_WRITE, 413: _error("Body too large.")})
    async def put_ratings(request: Request, user_id: UserId,
                          body: batch_body) -> dict[str, Any]:  # type: ignore[valid-type]  # pyright: ignore
        """Store a batch of ratings (write key): all of them, or none when any is invalid."""
        req: BatchBody = body  # as in put_rating
        await service.authorize(request, "write")
        current = engine()
        items = [r.item_id for r in req.ratings]
        unknown = _unknown_movies(current, items)
        if unknown:
            rows = [i for i, item in enumerate(items) if item in set(unknown)]
            raise InvalidRequestError(
                f"ratings[{rows[0]}].item_id: movie {unknown[0]} is not in the catalog of the "
                f"served {current.model.name} model ({len(unknown)} unknown movie(s) in the batch: "
                f"{unknown[:10]}); nothing was written")
        await service.check_user(current, user_id)
        records = [{"user_id": user_id, "item_id": r.item_id, "rating": r.rating,
                    "list_id": r.list_id or req.list_id,
                    **({"timestamp": r.timestamp} if r.timestamp is not None else {})}
                   for r in req.ratings]
        written = await service.write("put_ratings", store.put_ratings, records)
        service.count("batch", written)
        return {"user_id": user_id, "written": written}

    @router.get("/users/{user_id}/ratings", response_model=UserRatings, responses=_WRITE)
    async def ratings_of(request: Request, user_id: UserId) -> dict[str, Any]:
        """A user's stored ratings (the latest per movie), oldest write first."""
        await service.authorize(request, "read")
        current = engine()
        frame = await service.store_call("ratings_of", store.ratings_of, user_id)
        if frame.empty:
            await service.check_user(current, user_id)
        return {"user_id": user_id, "n_ratings": len(frame), "ratings": _rating_rows(current,
                                                                                    frame)}

    KParam = Annotated[int, Query(ge=1, le=max_k, description=f"List length, 1 to {max_k}.")]

    @router.get(RECOMMENDATIONS_PATH, response_model=FeedbackRecommendations, responses={
        **_AUTH, 404: _error("Unknown user."), 422: _error("Invalid parameters."),
        503: _error("The model did not answer in time.")}, tags=["recommendations"])
    async def recommend_user(
            request: Request, user_id: UserId, k: KParam = 10,
            exclude_seen: Annotated[bool, Query(description="Leave out the movies the user "
                                                "rated (training history and stored).")] = True,
            genres: Annotated[str | None, Query(max_length=1000, description="Comma-separated "
                                                "genres; only movies of any of them.")] = None,
            log: Annotated[bool, Query(description="Record the list as impressions and "
                                       "return its list_id.")] = False,
            x_log_impressions: Annotated[str | None, Header(
                description="1/true: like ?log=true.")] = None) -> dict[str, Any]:
        """Top-k movies for a user: the training history plus the stored ratings, folded in.

        The model folds them in its own way (read your writes) and every rated movie is left out.
        When the store cannot be read the list comes from the model alone ("feedback":
        "unavailable").
        """
        await service.authorize(request, "read")
        current = engine()
        wanted = [g.strip() for g in (genres or "").split(",") if g.strip()] or None
        training = service.is_training_user(current, user_id)
        feedback, note = "ok", None
        try:
            frame = await service.store_call("ratings_of", store.ratings_of, user_id)
            if frame.empty and not training:
                await service.check_user(current, user_id)
        except StoreUnavailableError as exc:
            frame = None
            feedback = "unavailable"
            note = f"stored ratings could not be read ({exc}); this list is the model's alone"
        if training and (frame is None or frame.empty):
            job = partial(_trained, user_id=user_id, k=k, exclude_seen=exclude_seen,
                          genres=wanted)
        else:
            items = [] if frame is None else frame["item_id"].astype(int).tolist()
            values = [] if frame is None else frame["rating"].astype(float).tolist()
            job = partial(_folded, user_id=user_id, items=items, ratings=values, k=k,
                          exclude_seen=exclude_seen, genres=wanted)
        result = await run_model_work(partial(job, current), service.request_timeout)
        result.update(feedback=feedback, note=note, list_id=None,
                      n_feedback=0 if frame is None else len(frame))
        if result["method"] == "popularity" and note is None:
            result["note"] = ("no rated movie is known to the model: these are the most "
                              "popular movies")
        elif result["method"] == "item-similarity" and note is None:
            result["note"] = (f"{current.model.name} has no fold-in rule: the stored ratings "
                              "are used through item similarity in the model's item space")
        if log or (x_log_impressions or "").strip().lower() in ("1", "true", "yes"):
            await _log(service, current, result)
        return result

    return router


def _trained(engine: Engine, *, user_id: int, k: int, exclude_seen: bool,
             genres: list[str] | None) -> dict[str, Any]:
    out = engine.recommend_user(user_id, k, exclude_seen=exclude_seen, genres=genres)
    return {**out, "method": "trained", "ignored_items": []}


def _folded(engine: Engine, **kwargs: Any) -> dict[str, Any]:
    out = engine.recommend_with_feedback(**kwargs)
    out.pop("n_training", None)
    return out


async def _log(service: FeedbackService, engine: Engine, result: dict[str, Any]) -> None:
    items = [card["item_id"] for card in result["recommendations"]]
    try:
        result["list_id"] = await service.write(
            "log_impressions", service.store.log_impressions, None, result["user_id"], items,
            model_version(engine))
        service.count("impressions")
    except StoreUnavailableError as exc:
        result["note"] = ((result["note"] + "; ") if result["note"] else "") + \
            f"the list was not logged ({exc})"


def _rating_rows(engine: Engine, frame: pd.DataFrame) -> list[dict[str, Any]]:
    if frame.empty:
        return []
    codes = engine.model.item_vocab_.codes(frame["item_id"].to_numpy(), missing="negative")
    titles = [engine.titles[c] if c >= 0 else None for c in codes.tolist()]
    return [{"item_id": int(i), "title": t, "rating": float(r), "timestamp": int(ts),
             "source": str(s), "list_id": None if lid is None or lid != lid else str(lid)}
            for i, t, r, ts, s, lid in zip(
                frame["item_id"].tolist(), titles, frame["rating"].tolist(),
                frame["timestamp"].tolist(), frame["source"].tolist(),
                frame["list_id"].tolist(), strict=True)]
