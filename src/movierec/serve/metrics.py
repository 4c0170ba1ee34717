"""Prometheus metrics of one app: requests and latency per route, store latency, model, feedback.

Every app gets its own `CollectorRegistry` (never prometheus-client's global one), so several
apps in one process (tests, say) count separately. `GET /metrics` renders it in Prometheus's
text format. Routes are labelled by their template (`/users/{user_id}/ratings`), never by the
raw path, so the number of series stays bounded whatever clients ask for.

Needs prometheus-client (in the `serve` extra); without it `metrics_for` returns None and the
app serves no /metrics.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["Metrics", "MetricsMiddleware", "metrics_for"]

logger = logging.getLogger(__name__)
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The collectors of one app, in their own registry.

    Args:
        state: the app's state; its `engine` (the served model) and `feedback` (the store's
            service, or None) are read at each scrape.
    """

    def __init__(self, state: Any) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter("movierec_http_requests", "HTTP requests answered.",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("movierec_http_request_duration_seconds",
                                 "Time from request to the end of the answer.",
                                 ["method", "route"], buckets=LATENCY_BUCKETS,
                                 registry=self.registry)
        self.store_latency = Histogram("movierec_store_operation_duration_seconds",
                                       "Time of one store call (a query or a transaction).",
                                       ["operation"], buckets=LATENCY_BUCKETS,
                                       registry=self.registry)
        self.store_errors = Counter("movierec_store_unavailable",
                                    "Store calls that failed because the database was "
                                    "unreachable or locked.", ["operation"],
                                    registry=self.registry)
        self.feedback = Counter("movierec_feedback_writes",
                                "Acknowledged feedback writes, by kind.", ["kind"],
                                registry=self.registry)
        self.feedback_ratings = Counter("movierec_feedback_ratings_written",
                                        "Ratings written by PUT and batch POST.",
                                        registry=self.registry)
        self.registry.register(_ModelCollector(state))

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one answered request."""
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def render(self) -> tuple[bytes, str]:
        """(body, content type) of the Prometheus text exposition."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class _ModelCollector:
    """Gauges read at scrape time: the served model (it changes on reload)."""

    def __init__(self, state: Any) -> None:
        self.state = state

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily

        engine = self.state.engine
        info = InfoMetricFamily("movierec_model", "The served model.")
        info.add_metric([], {"name": str(engine.model.name),
                             "version": model_version(engine),
                             "generation": str(engine.generation)})
        yield info
        generation = GaugeMetricFamily("movierec_model_generation",
                                       "1 for the model loaded at start, +1 per reload.")
        generation.add_metric([], engine.generation)
        yield generation


def model_version(engine: Any) -> str:
    """The served model's version, at most 64 characters.

    model.json's `version` when it has one (versioned model folders), else `<model
    name>@<generation>`.
    """
    version = engine.meta.get("version")
    text = str(version) if version else f"{engine.model.name}@{engine.generation}"
    return text[:64]


def metrics_for(state: Any) -> Metrics | None:
    """The app's `Metrics`, or None (with a warning) when prometheus-client is missing."""
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        logger.warning("prometheus-client is not installed: no /metrics "
                       "(pip install 'movierec[serve]')")
        return None
    return Metrics(state)


class MetricsMiddleware:
    """ASGI middleware: counts and times every HTTP request by method, route template, status.

    It sits outside every other middleware, so refusals (413, 408) are counted too. Paths that
    match no route are labelled "unmatched"; the static mounts by their mount path.

    Args:
        app: the wrapped ASGI app.
        metrics: where to count.
        routes: returns the app's routes (read per request: routes may be added after).
    """

    def __init__(self, app: ASGIApp, metrics: Metrics, routes: Callable[[], list[Any]]) -> None:
        self.app = app
        self.metrics = metrics
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on and record its route, status and latency (HTTP only)."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, counted)
        finally:
            self.metrics.observe_request(scope.get("method", ""), self.template(scope), status,
                                         time.perf_counter() - start)

    def template(self, scope: Scope) -> str:
        """The route template of a request ("unmatched" when none matches)."""
        route = scope.get("route")
        if route is not None and hasattr(route, "path"):
            return str(route.path)
        for candidate in self.routes():
            match, _ = candidate.matches(scope)
            if match == Match.FULL:
                return str(getattr(candidate, "path", "unmatched") or "unmatched")
        return "unmatched"
