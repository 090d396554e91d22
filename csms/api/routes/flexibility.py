"""HTTP API of the flexibility forecast, event settlement and the OpenADR 3 VEN (read scope).

=================================================  ==========================================
``GET /api/v1/grid/forecast``                      next ``hours`` (24) hours' export capability
                                                   per hour with its band (JSON)
``GET /api/v1/grid/forecast.csv``                  the same as CSV
``GET /api/v1/grid/events/{id}/settlement``        settlement against a baseline (JSON, DSGS
                                                   Option 3 claim shape); ``baseline`` =
                                                   ``10of10`` | ``pre_event`` | ``zero``
``GET /api/v1/grid/events/{id}/settlement.csv``    its hourly rows as CSV
``GET /api/v1/grid/openadr3``                      the VEN's state (404 when not enabled)
=================================================  ==========================================
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, Response

from csms.api.auth import require_read
from csms.api.context import ApiContext, get_ctx
from csms.api.errors import ApiError, error_responses
from csms.grid.settlement import METHODS, BaselineOptions, SettlementError, settlement_csv

router = APIRouter(
    prefix="/api/v1/grid",
    dependencies=[Depends(require_read)],
    responses=error_responses(401, 403, 422),
    tags=["grid events"],
)
Ctx = Annotated[ApiContext, Depends(get_ctx)]
Hours = Annotated[int, Query(ge=1, le=168, description="hours ahead")]
Tz = Annotated[str, Query(description="IANA time zone for day grouping, e.g. America/Los_Angeles")]


def _zone(tz: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise ApiError(422, "invalid_query", f"tz: unknown time zone {tz!r}", {"field": "tz"}) from None
    return tz


async def _forecast(ctx: ApiContext, hours: int, tz: str) -> Any:
    from csms.grid.forecast_store import store_forecast

    ctx.store  # noqa: B018 - 503 while the store is not open
    return await store_forecast(ctx.central, ctx.central.now(), hours=hours, tz=_zone(tz))


@router.get("/forecast", summary="Flexibility forecast: exportable kW per hour with a band")
async def get_forecast(ctx: Ctx, hours: Hours = 24, tz: Tz = "UTC") -> JSONResponse:
    return JSONResponse((await _forecast(ctx, hours, tz)).to_dict())


@router.get(
    "/forecast.csv",
    summary="Flexibility forecast as CSV",
    response_class=Response,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
async def get_forecast_csv(ctx: Ctx, hours: Hours = 24, tz: Tz = "UTC") -> Response:
    return Response((await _forecast(ctx, hours, tz)).csv(), media_type="text/csv")


async def _settlement(ctx: ApiContext, request: Request, event_id: str, method: str, tz: str) -> dict[str, Any]:
    from csms.grid.meterdata import settle_event

    book = getattr(request.app.state, "event_book", None) or ctx.event_book()
    event = book.get(event_id) if book is not None else None
    if event is None:
        raise ApiError(404, "not_found", f"no grid event with id {event_id!r}", {"field": "id"})
    if method not in METHODS:
        raise ApiError(422, "invalid_query", f"baseline: must be one of {', '.join(METHODS)}", {"field": "baseline"})
    try:
        return await settle_event(ctx.store, event, options=BaselineOptions(method=method), tz=_zone(tz))  # type: ignore[arg-type]
    except SettlementError as exc:
        raise ApiError(422, "invalid_query", str(exc), {"field": exc.field}) from None


@router.get(
    "/events/{event_id}/settlement", summary="Settlement of an event against a baseline", responses=error_responses(404)
)
async def get_settlement(
    ctx: Ctx, request: Request, event_id: str, baseline: str = "10of10", tz: Tz = "UTC"
) -> JSONResponse:
    return JSONResponse(await _settlement(ctx, request, event_id, baseline, tz))


@router.get(
    "/events/{event_id}/settlement.csv",
    summary="Settlement rows as CSV",
    response_class=Response,
    responses={**error_responses(404), 200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
async def get_settlement_csv(
    ctx: Ctx, request: Request, event_id: str, baseline: str = "10of10", tz: Tz = "UTC"
) -> Response:
    return Response(settlement_csv(await _settlement(ctx, request, event_id, baseline, tz)), media_type="text/csv")


@router.get(
    "/openadr3",
    summary="The OpenADR 3 VEN: registration, programs, reports, refusals",
    responses=error_responses(404),
)
async def get_ven(ctx: Ctx) -> JSONResponse:
    ven = ctx.central.extensions.get("openadr3")
    if ven is None:
        raise ApiError(404, "not_found", "the OpenADR 3 VEN is not enabled (openadr3.enabled)")
    return JSONResponse(_jsonable(ven.status()))


def _jsonable(x: Any) -> Any:
    import orjson

    return orjson.loads(orjson.dumps(x, default=str))
