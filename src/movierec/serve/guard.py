"""Limits that keep one client from holding up the others: body size and read time, work time.

* `BodyLimits` (ASGI middleware) reads every request body before the app sees it: a body over
  the size limit gets HTTP 413, a body that does not arrive within the read time limit gets
  HTTP 408 (a slow or stalled upload cannot hold a request open).
* `run_model_work` runs one request's model work in a worker thread with a deadline: past it the
  client gets HTTP 503 at once. Python cannot stop a thread, so the work is abandoned, not
  killed: it finishes in the background and its result is dropped. Worker threads are a bounded
  pool (anyio's, 40 by default), so requests stuck behind abandoned work wait for a thread within
  the same deadline and get 503 too, instead of piling up.

Request headers are the server's job: `movierec serve` gives uvicorn a protocol with a header
deadline (`movierec.serve.protocol`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from movierec.errors import MovieRecError

__all__ = ["BodyLimits", "ModelTimeoutError", "run_model_work"]

logger = logging.getLogger(__name__)
T = TypeVar("T")


class ModelTimeoutError(MovieRecError):
    """A request's model work passed the server's time limit: HTTP 503."""


async def run_model_work(func: Callable[[], T], timeout: float | None) -> T:
    """Run `func` in a worker thread and return its result, or fail after `timeout` seconds.

    Args:
        func: the model work of one request (reads only immutable state).
        timeout: seconds to wait, thread included; None waits for ever.

    Raises:
        ModelTimeoutError: the work (or the wait for a free thread) took longer than `timeout`.
    """
    if timeout is None:
        return await anyio.to_thread.run_sync(func)
    with anyio.move_on_after(timeout):
        return await anyio.to_thread.run_sync(func, abandon_on_cancel=True)
    logger.warning("model work passed the %g s time limit; answered 503", timeout)
    raise ModelTimeoutError(
        f"the model did not answer within the server's time limit of {timeout:g} s "
        "(the server is overloaded or the request is too costly); try again later")


class BodyLimits:
    """ASGI middleware: the whole request body, read within `timeout` and at most `max_bytes`.

    A declared Content-Length over the limit is refused before reading; otherwise (chunked
    bodies too) the body is read here, counted, and handed on whole. Refusals close the
    connection, since the rest of the body is left unread.

    Args:
        app: the wrapped ASGI app.
        max_bytes: the largest accepted body (HTTP 413 above).
        timeout: seconds the client has to send the body (HTTP 408 after); None: no limit.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, timeout: float | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout = timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass an HTTP request on, or answer 413/408 itself (other scopes pass unchanged)."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = f"request body too large: at most {self.max_bytes} bytes"
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await _refuse(send, 413, too_large)
            return
        outcome, body = "late", b""
        with anyio.move_on_after(self.timeout):
            outcome, body = await self._read(receive)
        if outcome == "late":
            await _refuse(send, 408, f"request body not received within {self.timeout:g} s")
            return
        if outcome == "large":
            await _refuse(send, 413, too_large)
            return
        if outcome == "gone":  # the client went away: nobody to answer
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _read(self, receive: Receive) -> tuple[str, bytes]:
        """("ok", body), ("large", b"") past the size limit, or ("gone", b"")."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return "gone", b""
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                return "large", b""
            chunks.append(chunk)
            if not message.get("more_body", False):
                return "ok", b"".join(chunks)


async def _refuse(send: Send, status: int, detail: str) -> None:
    response = JSONResponse({"detail": detail}, status_code=status,
                            headers={"connection": "close"})
    await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}
