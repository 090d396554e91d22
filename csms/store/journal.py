"""What stations report: security and station events, device-model variables (B), the frame log."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, select

from .base import _FRAME_COLUMNS, _FRAME_DIRECTIONS, StoreBase, _at, _check_station_id, _ts_in
from .models import DeviceVariable, FrameLog, SecurityEvent, StationEvent
from .payloads import parse_report_data
from .rows import FrameRow, SecurityEventRow, StationEventRow, VariableRow


class JournalStore(StoreBase):
    """Security and station events, device-model variables, the frame log."""

    # ------------------------------------------------------------------ security / station events
    async def add_security_event(
        self, station_id: str, event_type: str, timestamp: str | datetime, tech_info: str | None = None
    ) -> SecurityEventRow:
        obj = SecurityEvent(station_id=station_id, type=event_type, timestamp=_ts_in(timestamp), tech_info=tech_info)
        async with self._write() as s:
            s.add(obj)
            await s.flush()
            return SecurityEventRow.model_validate(obj)

    async def list_security_events(
        self, station_id: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[SecurityEventRow]:
        """Newest first; all stations when ``station_id`` is None."""
        stmt = select(SecurityEvent).order_by(SecurityEvent.timestamp.desc(), SecurityEvent.id.desc())
        if station_id is not None:
            stmt = stmt.where(SecurityEvent.station_id == station_id)
        return [SecurityEventRow.model_validate(o) for o in await self._all(stmt.limit(limit).offset(offset))]

    async def add_station_event(
        self, station_id: str, kind: str, timestamp: str | datetime, payload: Mapping[str, Any]
    ) -> StationEventRow:
        """Append a NotifyEvent / NotifyReport / FirmwareStatus / LogStatus / DataTransfer ... record."""
        obj = StationEvent(station_id=station_id, kind=kind, timestamp=_ts_in(timestamp), payload=dict(payload))
        async with self._write() as s:
            s.add(obj)
            await s.flush()
            return StationEventRow.model_validate(obj)

    async def list_station_events(
        self, station_id: str | None = None, kind: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[StationEventRow]:
        """Newest first."""
        stmt = select(StationEvent).order_by(StationEvent.timestamp.desc(), StationEvent.id.desc())
        if station_id is not None:
            stmt = stmt.where(StationEvent.station_id == station_id)
        if kind is not None:
            stmt = stmt.where(StationEvent.kind == kind)
        return [StationEventRow.model_validate(o) for o in await self._all(stmt.limit(limit).offset(offset))]

    # ------------------------------------------------------------------ device model
    async def upsert_variables(
        self, station_id: str, rows: Iterable[Mapping[str, Any]], at: datetime | None = None
    ) -> int:
        """Upsert device-model attributes from NotifyReport ``reportData`` entries (or flat rows, see
        :func:`csms.store.payloads.parse_report_data`). ``characteristics`` are only replaced when
        the new entry carries some. Returns the number of attribute rows written."""
        _check_station_id(station_id)
        return await self.write_variable_rows(parse_report_data(station_id, rows, _at(at)))

    async def write_variable_rows(self, parsed: Sequence[Mapping[str, Any]]) -> int:
        """Upsert ``device_model`` rows already flattened by :func:`parse_report_data`."""
        if not parsed:
            return 0
        table = DeviceVariable.__table__
        ins = self._insert(table)
        ins = ins.on_conflict_do_update(
            index_elements=list(table.primary_key.columns),
            set_={
                "value": ins.excluded.value,
                "characteristics": func.coalesce(ins.excluded.characteristics, table.c.characteristics),
                "updated_at": ins.excluded.updated_at,
            },
        )
        async with self._write() as s:
            conn = await s.connection()
            await conn.execute(ins, parsed)
        return len(parsed)

    async def get_variables(
        self, station_id: str, component: str | None = None, variable: str | None = None
    ) -> list[VariableRow]:
        stmt = (
            select(DeviceVariable)
            .where(DeviceVariable.station_id == station_id)
            .order_by(
                DeviceVariable.component,
                DeviceVariable.component_instance,
                DeviceVariable.evse_id,
                DeviceVariable.connector_id,
                DeviceVariable.variable,
                DeviceVariable.variable_instance,
                DeviceVariable.attribute_type,
            )
        )
        if component is not None:
            stmt = stmt.where(DeviceVariable.component == component)
        if variable is not None:
            stmt = stmt.where(DeviceVariable.variable == variable)
        return [VariableRow.model_validate(o) for o in await self._all(stmt)]

    # ------------------------------------------------------------------ frame log
    def log_frame(self, station_id: str, direction: str, frame_text: str | bytes, at: datetime | None = None) -> None:
        """Queue one raw OCPP-J frame (``direction`` 'in' or 'out'). Synchronous, non-blocking;
        the table keeps the newest ``frame_log_limit`` frames per station (0 disables logging)."""
        _check_station_id(station_id)
        if direction not in _FRAME_DIRECTIONS:
            raise ValueError(f"direction must be 'in' or 'out', not {direction!r}")
        self._frames.add(station_id, direction, frame_text, at)

    async def _insert_frames(self, rows: list[dict[str, Any]]) -> None:
        await self._bulk_insert(FrameLog.__table__, _FRAME_COLUMNS, rows)

    async def _prune_frames(self, station_ids: list[str]) -> None:
        table = FrameLog.__table__
        sid = bindparam("sid")
        keep_from = (
            select(table.c.id)
            .where(table.c.station_id == sid)
            .order_by(table.c.id.desc())
            .offset(self.frame_log_limit - 1)
            .limit(1)
            .scalar_subquery()
        )
        stmt = delete(table).where(table.c.station_id == sid, table.c.id < keep_from)
        async with self._write() as s:
            conn = await s.connection()
            await conn.execute(stmt, [{"sid": x} for x in station_ids])

    async def frames(self, station_id: str, limit: int = 100) -> list[FrameRow]:
        """Newest first (by arrival order)."""
        stmt = select(FrameLog).where(FrameLog.station_id == station_id).order_by(FrameLog.id.desc()).limit(limit)
        return [FrameRow.model_validate(o) for o in await self._all(stmt)]
