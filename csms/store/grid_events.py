"""Grid events, their reports, and the dispatch commands of cluster mode."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select

from .base import StoreBase
from .models import DispatchCommand, EventReport, GridEvent, MeterSample
from .rows import EventReportRow, GridEventRow, MeterSampleRow
from .types import ensure_utc, utcnow


class GridStore(StoreBase):
    """Grid events, event reports and dispatch commands."""

    # ------------------------------------------------------------------ grid events
    async def put_grid_event(
        self, event_id: str, revision: int, status: str, payload: Mapping[str, Any]
    ) -> GridEventRow:
        """Create or update a grid event. An update with a *lower* revision than the stored one is
        ignored (stale message); the stored row is returned either way."""
        now = utcnow()
        ins = self._insert(GridEvent).values(
            id=event_id,
            revision=revision,
            status=status,
            payload=dict(payload),
            created_at=now,
            updated_at=now,
        )
        ins = ins.on_conflict_do_update(
            index_elements=[GridEvent.id],
            set_={
                "revision": ins.excluded.revision,
                "status": ins.excluded.status,
                "payload": ins.excluded.payload,
                "updated_at": ins.excluded.updated_at,
            },
            where=GridEvent.revision <= ins.excluded.revision,
        )
        async with self._write() as s:
            await s.execute(ins)
            obj = (
                await s.scalars(
                    select(GridEvent).where(GridEvent.id == event_id).execution_options(populate_existing=True)
                )
            ).one()
            return GridEventRow.model_validate(obj)

    async def get_grid_event(self, event_id: str) -> GridEventRow | None:
        obj = await self._one(select(GridEvent).where(GridEvent.id == event_id))
        return None if obj is None else GridEventRow.model_validate(obj)

    async def list_grid_events(
        self, status: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[GridEventRow]:
        """Newest first (by creation)."""
        stmt = select(GridEvent).order_by(GridEvent.created_at.desc(), GridEvent.id)
        if status is not None:
            stmt = stmt.where(GridEvent.status == status)
        return [GridEventRow.model_validate(o) for o in await self._all(stmt.limit(limit).offset(offset))]

    async def put_event_report(self, event_id: str, report: Mapping[str, Any]) -> EventReportRow:
        now = utcnow()
        ins = self._insert(EventReport).values(event_id=event_id, report=dict(report), updated_at=now)
        ins = ins.on_conflict_do_update(
            index_elements=[EventReport.event_id],
            set_={"report": ins.excluded.report, "updated_at": ins.excluded.updated_at},
        )
        async with self._write() as s:
            await s.execute(ins)
        return EventReportRow(event_id=event_id, report=dict(report), updated_at=now)

    async def get_event_report(self, event_id: str) -> EventReportRow | None:
        obj = await self._one(select(EventReport).where(EventReport.event_id == event_id))
        return None if obj is None else EventReportRow.model_validate(obj)

    # ------------------------------------------------------------------ dispatch commands (cluster)
    async def put_dispatch_commands(self, commands: Mapping[str, Mapping[str, Any]]) -> None:
        """Upsert the schedules last sent per car (``car_id -> command``)."""
        if not commands:
            return
        now = utcnow()
        rows = [{"car_id": cid, "command": dict(cmd), "updated_at": now} for cid, cmd in commands.items()]
        ins = self._insert(DispatchCommand).values(rows)
        ins = ins.on_conflict_do_update(
            index_elements=[DispatchCommand.car_id],
            set_={"command": ins.excluded.command, "updated_at": ins.excluded.updated_at},
        )
        async with self._write() as s:
            await s.execute(ins)

    async def delete_dispatch_commands(self, car_ids: Sequence[str] | None = None) -> None:
        """Forget the given cars' schedules (all of them when ``car_ids`` is None)."""
        stmt = delete(DispatchCommand)
        if car_ids is not None:
            if not car_ids:
                return
            stmt = stmt.where(DispatchCommand.car_id.in_(list(car_ids)))
        async with self._write() as s:
            await s.execute(stmt)

    async def meter_samples_since(
        self, since: datetime, measurands: Sequence[str], limit: int = 1_000_000
    ) -> list[MeterSampleRow]:
        """Every station's samples of ``measurands`` from ``since``, oldest first (a new dispatch
        leader rebuilds its meter ledger from them)."""
        stmt = (
            select(MeterSample)
            .where(MeterSample.timestamp >= ensure_utc(since, "since"), MeterSample.measurand.in_(list(measurands)))
            .order_by(MeterSample.timestamp, MeterSample.id)
            .limit(limit)
        )
        return [MeterSampleRow.model_validate(o) for o in await self._all(stmt)]

    async def dispatch_commands(self) -> dict[str, dict[str, Any]]:
        async with self._read() as s:
            rows = (await s.execute(select(DispatchCommand.car_id, DispatchCommand.command))).all()
        return {r.car_id: dict(r.command) for r in rows}
