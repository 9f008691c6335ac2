"""What every aiohttp service shares: health, readiness, Prometheus metrics, and serving."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest

from dronetrack.loopmetrics import Counter, CounterCell, Histogram, HistogramCell

log = logging.getLogger(__name__)

Check = Callable[[], Awaitable[object]]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

REGISTRY = web.AppKey("metrics_registry", CollectorRegistry)
READY_CHECKS = web.AppKey("ready_checks", dict[str, Check])
_METHODS = frozenset(("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"))


class HttpMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        # Lock-free (see loopmetrics): every request updates these.
        self.requests = Counter(
            "http_requests_total",
            "HTTP requests answered.",
            ["route", "method", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds",
            "Time to answer an HTTP request.",
            ["route"],
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        # A plain count read at scrape time.
        self.in_flight_now = 0
        Gauge(
            "http_requests_in_flight", "HTTP requests being handled.", registry=registry
        ).set_function(lambda: self.in_flight_now)
        # Each (resource, method, status) seen: finite, as methods are capped and resources fixed.
        self._series: dict[tuple[object, str, int], tuple[CounterCell, HistogramCell]] = {}

    def answered(self, request: web.Request, status: int, seconds: float) -> None:
        """Count an answered request under its route's pattern (``unmatched`` if none)."""
        resource, method = request.match_info.route.resource, request.method
        series = self._series.get((resource, method, status))
        if series is None:
            name = resource.canonical if resource is not None else "unmatched"
            if method not in _METHODS:  # WebDAV's and others: keep the series few
                method = "other"
            series = self._series[(resource, method, status)] = (
                self.requests.labels(name, method, str(status)),
                self.latency.labels(name),
            )
        series[0].inc()
        series[1].observe(seconds)


def instrument(app: web.Application) -> None:
    """Give ``app`` its registry, the request metrics middleware and the ops endpoints."""
    registry = CollectorRegistry()
    app[REGISTRY] = registry
    app[READY_CHECKS] = {}
    metrics = HttpMetrics(registry)

    @web.middleware
    async def measure(request: web.Request, handler: Handler) -> web.StreamResponse:
        start = time.perf_counter()
        status = 500
        metrics.in_flight_now += 1
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            metrics.in_flight_now -= 1
            metrics.answered(request, status, time.perf_counter() - start)

    app.middlewares.append(measure)
    app.middlewares.append(http_errors_as_problems)
    app.on_response_prepare.append(_no_sniffing)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_endpoint)


@web.middleware
async def http_errors_as_problems(request: web.Request, handler: Handler) -> web.StreamResponse:
    """aiohttp's own refusals (no such path, method not allowed, body too large, ...) as
    problem+json like every other error, instead of its plain-text bodies."""
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400 or exc.content_type == "application/problem+json":
            raise
        response = problem(exc.status, exc.reason)
        for name, value in exc.headers.items():
            if name not in ("Content-Type", "Content-Length"):
                response.headers[name] = value
        return response
    # A static route answers a missing file with an empty 404 only when it sends the response:
    # look first (FileResponse keeps the path it was given in _path).
    if isinstance(response, web.FileResponse) and not await asyncio.to_thread(
        response._path.is_file
    ):
        return problem(404, "Not Found")
    return response


async def _no_sniffing(request: web.Request, response: web.StreamResponse) -> None:
    """Browsers take every response as the type it says it is (a JSON body is never run as
    HTML or script, whatever it holds)."""
    response.headers["X-Content-Type-Options"] = "nosniff"


async def healthz(request: web.Request) -> web.Response:
    """Alive: the event loop answers. Says nothing about dependencies, by design."""
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Ready: every dependency answers; names the ones that do not."""
    checks = request.app[READY_CHECKS]
    results = await asyncio.gather(
        *(asyncio.wait_for(check(), 2.0) for check in checks.values()), return_exceptions=True
    )
    failing = {
        name: f"{type(res).__name__}: {res}".rstrip(": ")
        for name, res in zip(checks, results, strict=True)
        if isinstance(res, BaseException)
    }
    ok = [name for name in checks if name not in failing]
    return web.json_response({"ok": ok, "failing": failing}, status=503 if failing else 200)


async def metrics_endpoint(request: web.Request) -> web.Response:
    body = generate_latest(request.app[REGISTRY])
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def serve(app: web.Application, host: str, port: int, drain_s: float = 10.0) -> None:
    """Run until SIGTERM/SIGINT; then stop accepting and let in-flight requests finish."""
    import uvloop

    log.info("listening", extra={"url": f"http://{host}:{port}"})
    web.run_app(
        app,
        host=host,
        port=port,
        print=None,
        shutdown_timeout=drain_s,
        access_log=None,
        loop=uvloop.new_event_loop(),
        handle_signals=True,
    )


def problem(status: int, title: str, detail: str = "", **extra: object) -> web.Response:
    """An RFC 9457 ``application/problem+json`` response."""
    body: dict[str, object] = {"type": "about:blank", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    response = web.json_response(body, status=status)
    response.content_type = "application/problem+json"
    return response


class Problem(Exception):
    """Raised by a handler to answer with ``application/problem+json``; rendered by
    ``render_problems``, so every service shapes its errors in this one place."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str = "",
        headers: dict[str, str] | None = None,
        **extra: object,
    ) -> None:
        super().__init__(f"{status} {title}: {detail}")
        self.status = status
        self.title = title
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra

    def response(self) -> web.Response:
        response = problem(self.status, self.title, self.detail, **self.extra)
        response.headers.update(self.headers)
        if self.headers.get("Connection") == "close":
            response.force_close()  # the server then closes the connection, as it says
        return response


@web.middleware
async def render_problems(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except Problem as exc:
        return exc.response()
