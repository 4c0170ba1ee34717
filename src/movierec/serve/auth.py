"""Who may do what: API keys from the store, checked per request.

A key comes as `X-API-Key: <token>` or `Authorization: Bearer <token>` and has a scope (read ⊂
write ⊂ admin; see `movierec.store`). The rules:

* reads (recommendations, ratings lists, /metrics) are open, unless the server runs with
  `--require-key`; open reads ignore any key sent (they keep working when the store is down);
* writes (ratings, new users) need a write key, reload an admin key;
* while the store holds no (unrevoked) key, anything that needs a key is allowed to loopback
  clients only (the server's own machine) and refused to every other client (HTTP 403, saying
  how to create a key);
* no key where one is needed: 401; a malformed, unknown or revoked key: 401; a valid key with
  too weak a scope: 403; the store unreachable while a key must be checked: 503.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from movierec.errors import MovieRecError
from movierec.serve.reload import is_loopback_address

__all__ = ["AuthError", "request_token"]

BEARER = "bearer "


class AuthError(MovieRecError):
    """A request lacks the right to do what it asks: HTTP `status` (401 or 403)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def request_token(request: Request) -> str | None:
    """The API key a request carries (X-API-Key, else Authorization: Bearer), or None."""
    key = request.headers.get("x-api-key")
    if key and key.strip():
        return key.strip()
    auth = request.headers.get("authorization") or ""
    if auth[:len(BEARER)].lower() == BEARER and auth[len(BEARER):].strip():
        return auth[len(BEARER):].strip()
    return None


def client_is_loopback(request: Request) -> bool:
    """True when the request comes from this machine."""
    return is_loopback_address(request.client.host if request.client else None)


async def authorize(service: Any, request: Request, scope: str) -> Any:
    """Check that `request` may do what needs `scope`; returns the key used (None if none).

    Args:
        service: the app's `FeedbackService` (its store, `require_key` and `store_call`).
        request: the request.
        scope: "read", "write" or "admin".

    Raises:
        AuthError: 401 (no key) or 403 (no keys configured, not loopback).
        KeyRefusedError: the key is malformed, unknown, revoked (401) or too weak (403).
        StoreUnavailableError: the key could not be checked (503).
    """
    if scope == "read" and not service.require_key:
        return None
    token = request_token(request)
    if token is None:
        if not await service.store_call("has_keys", service.store.has_keys):
            if client_is_loopback(request):
                return None
            raise AuthError(403, "no API key is configured on this server, so only clients on "
                            "its own machine may do this; create a key with `movierec keys "
                            f"create --scope {scope} --store URL` and send it as X-API-Key")
        raise AuthError(401, f"this needs an API key with scope {scope} (or higher): send it "
                        "as X-API-Key or Authorization: Bearer")
    return await service.store_call("verify_key", service.store.verify_key, token, scope)
