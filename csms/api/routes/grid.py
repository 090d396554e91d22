"""Grid events and their delivery reports (read scope): JSON, CSV and the PNG plot.

A report is the JSON document the dispatch module stores per event (``Store.put_event_report``).
The CSV is built from it: from the file named by ``csv_path`` when the report has one, else the
interval table of :func:`csms.dispatch.report_files.report_csv` when the report has ``intervals``, else
from its first list of row objects (``timeline``, ``rows``, ``series``, ...), one column per key.
The PNG is the file named by ``plot_path`` (also accepted: ``png_path``, ``plot``), relative
paths being resolved against the data directory.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path as FsPath
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import FileResponse, Response

from ..auth import require_read
from ..context import ApiContext, get_ctx
from ..errors import ApiError, error_responses
from ..models import GridEventOut, Page, ReportOut
from ..params import Limit, Offset, page_of

log = structlog.get_logger("csms.api")

router = APIRouter(
    prefix="/api/v1/grid",
    dependencies=[Depends(require_read)],
    responses=error_responses(401, 403, 422),
    tags=["grid events"],
)
Ctx = Annotated[ApiContext, Depends(get_ctx)]
EventId = Annotated[str, Path(min_length=1, max_length=128, examples=["evt-2026-06-01-peak"])]

_ROW_KEYS = ("intervals", "timeline", "rows", "series", "samples", "periods", "stations")
_PLOT_KEYS = ("plot_path", "png_path", "plot")


def _row_list(report: dict[str, Any]) -> list[dict[str, Any]] | None:
    for key in _ROW_KEYS:
        value = report.get(key)
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            return value
    for value in report.values():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            return value
    return None


def _cell(value: Any) -> Any:
    if isinstance(value, dict | list):
        import orjson

        return orjson.dumps(value, default=str).decode()
    return value


def _report_csv(report: dict[str, Any]) -> str:
    if isinstance(report.get("intervals"), list):
        try:  # the dispatch module's own interval table (fixed columns), when it is installed
            from csms.dispatch.report_files import report_csv

            return str(report_csv(report))
        except ImportError:
            pass
        except Exception:
            log.warning("dispatch report_csv failed; generic CSV used", event_id=report.get("event_id"))
    rows = _row_list(report)
    out = io.StringIO()
    if rows is None:  # no table in the report: key,value lines of its scalars
        writer = csv.writer(out)
        writer.writerow(["key", "value"])
        for key, value in report.items():
            writer.writerow([key, _cell(value)])
        return out.getvalue()
    columns: list[str] = []
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(str(key))
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({str(k): _cell(v) for k, v in row.items()})
    return out.getvalue()


def _file(ctx: ApiContext, report: dict[str, Any], keys: tuple[str, ...]) -> FsPath | None:
    for key in keys:
        value = report.get(key)
        if isinstance(value, str) and value:
            path = FsPath(value)
            if not path.is_absolute():
                path = ctx.central.settings.data_dir / path
            return path
    return None


async def _report(ctx: ApiContext, event_id: str) -> ReportOut:
    row = await ctx.store.get_event_report(event_id)
    if row is None:
        exists = await ctx.store.get_grid_event(event_id) is not None
        msg = f"grid event '{event_id}' has no report yet" if exists else f"unknown grid event '{event_id}'"
        raise ApiError(404, "not_found", msg, {"event_id": event_id})
    return ReportOut(event_id=row.event_id, report=row.report, updated_at=row.updated_at)


@router.get("/events", response_model=Page[GridEventOut], summary="Grid events, newest first")
async def list_events(
    ctx: Ctx,
    status: Annotated[str | None, Query(max_length=32)] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    rows = await ctx.store.list_grid_events(status=status, limit=limit + 1, offset=offset)
    rows, nxt = page_of(rows, limit, offset)
    items = [GridEventOut.model_validate(r, from_attributes=True) for r in rows]
    return {"items": items, "limit": limit, "offset": offset, "next_offset": nxt}


@router.get("/events/{event_id}", response_model=GridEventOut, responses=error_responses(404), summary="A grid event")
async def get_event(ctx: Ctx, event_id: EventId) -> GridEventOut:
    row = await ctx.store.get_grid_event(event_id)
    if row is None:
        raise ApiError(404, "not_found", f"unknown grid event '{event_id}'", {"event_id": event_id})
    return GridEventOut.model_validate(row, from_attributes=True)


@router.get(
    "/events/{event_id}/report",
    response_model=ReportOut,
    responses=error_responses(404),
    summary="The event's delivery report (JSON)",
)
async def get_report(ctx: Ctx, event_id: EventId) -> ReportOut:
    return await _report(ctx, event_id)


@router.get(
    "/events/{event_id}/report.csv",
    response_class=Response,
    responses={
        200: {"content": {"text/csv": {"schema": {"type": "string"}}}, "description": "the report as CSV"},
        **error_responses(404),
    },
    summary="The event's delivery report as CSV",
)
async def get_report_csv(ctx: Ctx, event_id: EventId) -> Response:
    report = (await _report(ctx, event_id)).report
    path = _file(ctx, report, ("csv_path",))
    if path is not None and path.is_file():
        return FileResponse(path, media_type="text/csv", filename=f"{event_id}.csv")
    return Response(
        _report_csv(report),
        media_type="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{_safe(event_id)}.csv"'},
    )


@router.get(
    "/events/{event_id}/report.png",
    response_class=Response,
    responses={
        200: {"content": {"image/png": {"schema": {"type": "string", "format": "binary"}}}, "description": "plot"},
        **error_responses(404),
    },
    summary="The event's plot (when the report has one)",
)
async def get_report_png(ctx: Ctx, event_id: EventId) -> Response:
    report = (await _report(ctx, event_id)).report
    path = _file(ctx, report, _PLOT_KEYS)
    if path is None or not path.is_file():
        raise ApiError(404, "not_found", f"the report of grid event '{event_id}' has no plot", {"event_id": event_id})
    return FileResponse(path, media_type="image/png")


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)[:128] or "report"
