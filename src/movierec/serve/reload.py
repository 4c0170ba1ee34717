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

Versioned models (`movierec serve --models-root DIR --poll 30`): `Reloader.follow(DIR)` makes
every reload read the folder that `DIR/current` names at that moment (`movierec.versions`), and
a `VersionPoller` thread reloads when that pointer names another version than the one served;
GET /model shows the served version. A version that fails to load is not retried until the
pointer changes again (the old model keeps serving).
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from movierec.errors import ArtifactError, MovieRecError
from movierec.serve.engine import Engine

__all__ = ["ReloadError", "ReloadForbiddenError", "Reloader", "VersionPoller",
           "is_loopback_address"]

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
        self.root: Path | None = None
        self._lock = threading.Lock()

    def follow(self, root: str | Path) -> None:
        """Read, at each reload, the version that the models root's `current` pointer names."""
        self.root = Path(root)

    def _target(self) -> Path:
        if self.root is None:
            return self.folder
        from movierec.versions import current_path

        return current_path(self.root)

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
                folder = self._target()
                new = self._load(old.generation + 1, folder)
            except Exception as exc:  # any failure keeps the old model: report, never crash
                reason = str(exc) or type(exc).__name__
                self.last_error = reason
                logger.warning("reload from %s failed: %s", self.folder, reason)
                raise ReloadError(
                    f"reload from {self.folder} failed, still serving {old.model.name} "
                    f"(generation {old.generation}): {reason}") from exc
            self.state.engine = new  # the swap: one reference assignment
            self.folder = folder
            self.last_error = None
            seconds = time.perf_counter() - start
            logger.info("reloaded %s from %s in %.2f s (generation %d)", new.model.name,
                        self.folder, seconds, new.generation)
            return {"status": "reloaded", "model": new.model.name, "generation": new.generation,
                    "previous_model": old.model.name, "previous_generation": old.generation,
                    "seconds": round(seconds, 3)}
        finally:
            self._lock.release()

    def _load(self, generation: int, folder: Path | None = None) -> Engine:
        from movierec.artifact import load_catalog, load_model, read_meta

        folder = self.folder if folder is None else folder
        meta = read_meta(folder)
        model = load_model(folder)
        catalog = load_catalog(folder)
        if read_meta(folder) != meta:
            raise ArtifactError(f"{folder} changed while it was being read; reload again "
                                "once it is completely written")
        if self.root is not None and "version" not in meta:
            meta = {**meta, "version": folder.name}
        engine = Engine(model, catalog, meta, generation=generation, **self.engine_kwargs)
        if engine.rating_scale != self.rating_scale:
            raise ReloadError(
                f"the new model's rating scale {_scale(engine.rating_scale)} differs from the "
                f"served one {_scale(self.rating_scale)}; request bounds are fixed when the "
                "server starts: restart it to serve this model")
        return engine


def _scale(scale: tuple[float, float] | None) -> str:
    return "unknown" if scale is None else f"{scale[0]:g}-{scale[1]:g}"


class VersionPoller:
    """Reload when a models root's `current` pointer names a version other than the served one.

    Args:
        reloader: the app's `Reloader`; `follow(root)` is called on it.
        root: the models root.
        interval: seconds between two looks at the pointer (> 0).
        keep: after a successful reload, prune the root to the newest `keep` versions (None:
            never delete anything).
        on_reload: called with the reload's answer (plus "version") after each switch.
    """

    def __init__(self, reloader: Reloader, root: str | Path, interval: float, *,
                 keep: int | None = None,
                 on_reload: Callable[[dict[str, Any]], None] | None = None) -> None:
        if not interval > 0:
            raise ValueError(f"poll interval must be > 0 seconds, found {interval}")
        self.reloader = reloader
        self.root = Path(root)
        self.interval = float(interval)
        self.keep = keep
        self.on_reload = on_reload
        self.failed: str | None = None
        reloader.follow(self.root)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def served_version(self) -> str | None:
        """The version the served engine was loaded from (model.json's "version")."""
        version = self.reloader.state.engine.meta.get("version")
        return None if version is None else str(version)

    def check(self) -> dict[str, Any] | None:
        """Look at the pointer once; reload if it moved. Returns the reload's answer or None."""
        from movierec.versions import current, prune

        try:
            wanted = current(self.root)
        except MovieRecError as exc:
            logger.warning("models root %s: %s", self.root, exc)
            return None
        if wanted is None or wanted == self.served_version() or wanted == self.failed:
            return None
        try:
            done = self.reloader.reload()
        except ReloadError as exc:
            if "already running" not in str(exc):
                self.failed = wanted
            logger.warning("version %s not loaded: %s", wanted, exc)
            return None
        self.failed = None
        done = {**done, "version": self.served_version()}
        logger.info("now serving version %s from %s", done["version"], self.reloader.folder)
        if self.on_reload is not None:
            self.on_reload(done)
        if self.keep:
            try:
                removed = prune(self.root, self.keep)
            except OSError as exc:
                logger.warning("pruning %s failed: %s", self.root, exc)
            else:
                if removed:
                    logger.info("pruned versions %s", ", ".join(removed))
        return done

    def start(self) -> None:
        """Poll in a daemon thread until `stop`."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="movierec-version-poll",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.check()
            except Exception:  # the poller must never die: log and look again later
                logger.exception("version poll of %s failed", self.root)

    def stop(self) -> None:
        """Stop polling (waits for a check in progress)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
