"""The FastAPI application of the operator HTTP API.

``create_app(service_or_central)`` builds it around a running :class:`csms.central.CentralSystem`
(or a :class:`csms.service.Service`); :class:`csms.api.server.ApiServer` serves it with uvicorn in
the CSMS's own event loop, so routes call ``central.call(...)`` directly, with no IPC.

Authentication: ``Authorization: Bearer <token>`` (see :mod:`csms.api.auth`); ``read`` scope for
every GET, ``operator`` for commands and writes. ``/health``, ``/metrics``, ``/openapi.json`` and
``/docs`` need no token: the metrics carry no station ids or secrets (only counts by OCPP action,
error code and grid event), and a Prometheus scraper then needs no credentials. Bind the API to a
private interface (``api.host``, default 127.0.0.1) or filter ``/metrics`` at the proxy if even
that is too much.

The operator web console (:mod:`csms.web`) is mounted on the same app under ``/console/``; it
signs in with the same API tokens (as an HttpOnly session cookie) and is not in the OpenAPI
document.
"""

from __future__ import annotations

import time
from typing import Any

import structlog
from fastapi import Depends, FastAPI, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .auth import Principal, require_by_method, require_read
from .context import ApiContext
from .errors import error_responses, install_error_handlers
from .models import Health, WhoAmI

log = structlog.get_logger("csms.api")

API_REQUESTS = Counter(
    "csms_api_requests_total", "HTTP API requests, by method, route and status", ["method", "route", "status"]
)
API_LATENCY = Histogram(
    "csms_api_request_seconds",
    "HTTP API request duration, by route",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)

DESCRIPTION = """\
Operator API of the CSMS (OCPP 2.0.1 / 2.1, bidirectional chargers).

* **Auth**: `Authorization: Bearer <token>`; tokens come from
  `csms admin token create NAME --scope read|operator|admin`. `read` allows every GET, `operator`
  also commands and writes, `admin` also the station registry (POST/PATCH/DELETE `/api/v1/stations`).
  401 = missing/invalid token, 403 = scope too low.
* **Errors**: always `{"error": {"code": "...", "message": "...", "details": {...}}}`.
* **Lists** are pages: `limit` / `offset`; follow `next_offset` until it is null.
* **Commands** (`POST /api/v1/stations/{id}/commands/<Action>`) return the station's OCPP answer
  unchanged, or 404 unknown_station, 409 station_offline / not_allowed, 422 invalid_payload,
  502 station_callerror, 504 station_timeout.
"""

TAGS = [
    {"name": "stations", "description": "stations, their live state and history"},
    {"name": "commands", "description": "OCPP commands sent to a station (operator scope)"},
    {"name": "id tokens", "description": "the authorization list"},
    {"name": "local list", "description": "the Local Authorization List and its versions per station"},
    {"name": "reservations", "description": "ReserveNow / CancelReservation and the reservations' life cycle"},
    {"name": "display messages", "description": "messages on the stations' screens"},
    {"name": "monitoring", "description": "variable monitors, monitoring reports and alerts"},
    {"name": "tariffs", "description": "central cost calculation and OCPP 2.1 tariffs"},
    {"name": "DER control", "description": "OCPP 2.1 DER control of V2X chargers and their grid alarms"},
    {"name": "plug and charge", "description": "ISO 15118 contract certificates: providers, OCSP, roots"},
    {"name": "grid events", "description": "grid events and delivery reports"},
    {"name": "sites", "description": "site load balancing: grid connection limits, metered power, allocation"},
    {"name": "cluster", "description": "cluster mode: nodes, dispatch leader, where a station is held"},
    {"name": "meta", "description": "health, metrics, token info"},
]


class _Observe:
    """Pure ASGI middleware: request metrics, debug access log, lazy grid EventBook lookup."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}
        fastapi_app = scope.get("app")
        if fastapi_app is not None:
            state = fastapi_app.state
            if getattr(state, "event_book", None) is None and hasattr(state, "ctx"):
                state.event_book = state.ctx.event_book()

        async def _send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, _send)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            elapsed = time.perf_counter() - started
            API_REQUESTS.labels(scope.get("method", "?"), template, str(status["code"])).inc()
            API_LATENCY.labels(template).observe(elapsed)
            log.debug(
                "api request",
                method=scope.get("method"),
                path=scope.get("path"),
                status=status["code"],
                ms=round(elapsed * 1000, 1),
            )


def _mount_grid(app: FastAPI) -> bool:
    """Mount the grid-event webhook router (csms.grid.webhook.router) when that module exists."""
    try:
        from csms.grid.webhook import router as grid_router
    except ModuleNotFoundError as exc:
        if exc.name not in ("csms.grid", "csms.grid.webhook"):
            log.error("grid webhook router failed to import; /grid routes are not served", error=str(exc))
        return False
    except ImportError as exc:
        log.error("grid webhook router failed to import; /grid routes are not served", error=str(exc))
        return False
    app.include_router(grid_router, dependencies=[Depends(require_by_method)], responses=error_responses(401, 403))
    return True


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("csms")
    except Exception:
        return "0.0.0"


def create_app(service_or_central: Any) -> FastAPI:
    """The API app for a :class:`csms.service.Service` or a bare :class:`csms.central.CentralSystem`."""
    from . import commands
    from .routes import (
        cluster,
        der,
        display,
        extra_commands,
        grid,
        monitoring,
        operations,
        pnc,
        registry,
        sites,
        stations,
        tariff,
        tokens,
    )

    version = _version()
    app = FastAPI(
        title="CSMS operator API",
        version=version,
        description=DESCRIPTION,
        openapi_tags=TAGS,
        docs_url="/docs",
        redoc_url=None,
    )
    ctx = ApiContext(service_or_central)
    app.state.ctx = ctx
    app.state.event_book = ctx.event_book()
    install_error_handlers(app)
    app.add_middleware(_Observe)

    stations.router.tags = ["stations"]
    app.include_router(stations.router)
    app.include_router(registry.router)
    app.include_router(commands.router)
    app.include_router(extra_commands.router)
    app.include_router(tokens.router)
    app.include_router(grid.router)
    app.include_router(operations.router)
    app.include_router(display.router)
    app.include_router(monitoring.router)
    app.include_router(tariff.router)
    app.include_router(der.router)
    app.include_router(pnc.router)
    app.include_router(cluster.router)
    app.include_router(sites.router)
    app.state.grid_webhook = _mount_grid(app)
    from csms.api.routes.flexibility import router as flexibility_router
    from csms.grid.openadr3.callback import router as openadr3_callback

    app.include_router(openadr3_callback)  # authenticated by the subscription's bearer token
    app.include_router(flexibility_router)

    if ctx.central.settings.api.console:
        from csms.web import mount_console

        mount_console(app)

    @app.get("/health", response_model=Health, tags=["meta"], summary="Liveness (no token needed)")
    async def health() -> Health:
        central = ctx.central
        return Health(
            version=version,
            connected_stations=len(central.sessions),
            known_stations=len(central.states),
        )

    @app.get(
        "/metrics",
        tags=["meta"],
        summary="Prometheus metrics (no token needed)",
        response_class=Response,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "metrics"}},
    )
    async def metrics() -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    @app.get(
        "/api/v1/whoami",
        response_model=WhoAmI,
        tags=["meta"],
        responses=error_responses(401, 403),
        summary="The calling token's name and scope",
    )
    async def whoami(request: Request, principal: Principal = Depends(require_read)) -> WhoAmI:
        return WhoAmI(name=principal.name, scope=principal.scope)

    return app
