"""Model reload: re-read the model folder, build a new `Engine`, swap the app's reference.

The swap is one attribute assignment (`app.state.engine = new`), and every request reads that
attribute once, when it starts: a request in flight keeps the engine it started with and is
answered by the old model, the next one by the new model; none fails. Engines are never changed
after they are built, so the old one needs no lock and is freed when its last request ends.

A broken, tampered, half-written or incompatible folder leaves the old engine serving and
raises `ReloadError` with the reason (the artifact's sha256 checks catch truncated or modified
weights and item tables). One reload runs at a time.

Who may reload: `POST /model/reload` answers only clients on this machine (loopback addresses,
HTTP 403 otherwise); `movierec serve` also reloads on SIGHUP. A reload only re-reads the folder
the server was started with, so the worst a caller can do is spend CPU; behind a reverse proxy
on the same machine, have the proxy set X-Forwarded-For (uvicorn trusts it from 127.0.0.1, so the
remote address is checked) or not forward /model/reload at all.
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from pathlib import Path
from typing import Any

from movierec.errors import ArtifactError, MovieRecError
from movierec.serve.engine import Engine

__all__ = ["ReloadError", "ReloadForbiddenError", "Reloader", "is_loopback_address"]

logger = logging.getLogger(__name__)


class ReloadError(MovieRecError):
    """A reload could not be done (broken folder, one already running...): HTTP 409."""


class ReloadForbiddenError(MovieRecError):
    """A reload was asked for by a client that is not on this machine: HTTP 403."""


def is_loopback_address(host: str | None) -> bool:
    """True for a loopback IP address (127.0.0.0/8, ::1, ::ffff:127.0.0.1); False otherwise."""
    if not host:
        return False
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return bool(address.is_loopback or (mapped is not None and mapped.is_loopback))


class Reloader:
    """Builds a new engine from `folder` and publishes it as `state.engine`.

    Args:
        state: the object holding the served engine as its `engine` attribute (the app's state).
        folder: the model folder to re-read.
        rating_scale: the rating bounds the request schema was built with; a model with another
            scale is refused (the schema is fixed when the server starts).
        **engine_kwargs: keyword arguments of `Engine` kept across reloads (max_k, max_ratings).
    """

    def __init__(self, state: Any, folder: str | Path, *,
                 rating_scale: tuple[float, float] | None, **engine_kwargs: Any) -> None:
        self.state = state
        self.folder = Path(folder)
        self.rating_scale = rating_scale
        self.engine_kwargs = engine_kwargs
        self.last_error: str | None = None
        self._lock = threading.Lock()

    def reload(self) -> dict[str, Any]:
        """Load the folder again and serve it; blocks for the load (run it off the event loop).

        Returns:
            status, model, generation, previous_model, previous_generation, seconds.

        Raises:
            ReloadError: a reload is already running, or the folder cannot be served; the
                previous model is still served.
        """
        if not self._lock.acquire(blocking=False):
            raise ReloadError("a reload is already running; try again when it has finished")
        try:
            old = self.state.engine
            start = time.perf_counter()
            try:
                new = self._load(old.generation + 1)
            except Exception as exc:  # any failure keeps the old model: report, never crash
                reason = str(exc) or type(exc).__name__
                self.last_error = reason
                logger.warning("reload from %s failed: %s", self.folder, reason)
                raise ReloadError(
                    f"reload from {self.folder} failed, still serving {old.model.name} "
                    f"(generation {old.generation}): {reason}") from exc
            self.state.engine = new  # the swap: one reference assignment
            self.last_error = None
            seconds = time.perf_counter() - start
            logger.info("reloaded %s from %s in %.2f s (generation %d)", new.model.name,
                        self.folder, seconds, new.generation)
            return {"status": "reloaded", "model": new.model.name, "generation": new.generation,
                    "previous_model": old.model.name, "previous_generation": old.generation,
                    "seconds": round(seconds, 3)}
        finally:
            self._lock.release()

    def _load(self, generation: int) -> Engine:
        from movierec.artifact import load_catalog, load_model, read_meta

        meta = read_meta(self.folder)
        model = load_model(self.folder)
        catalog = load_catalog(self.folder)
        if read_meta(self.folder) != meta:
            raise ArtifactError(f"{self.folder} changed while it was being read; reload again "
                                "once it is completely written")
        engine = Engine(model, catalog, meta, generation=generation, **self.engine_kwargs)
        if engine.rating_scale != self.rating_scale:
            raise ReloadError(
                f"the new model's rating scale {_scale(engine.rating_scale)} differs from the "
                f"served one {_scale(self.rating_scale)}; request bounds are fixed when the "
                "server starts: restart it to serve this model")
        return engine


def _scale(scale: tuple[float, float] | None) -> str:
    return "unknown" if scale is None else f"{scale[0]:g}-{scale[1]:g}"
