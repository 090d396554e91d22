"""What stations report: security and station events, device-model variables (B), the frame log."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import bindparam, delete, func, select

from .base import _FRAME_DIRECTIONS, StoreBase, _at, _check_station_id, _ts_in
from .batch import FrameItem
from .models import FRAME_ID_STRIDE, DeviceVariable, FrameSegment, SecurityEvent, StationEvent
from .payloads import frame_segments, parse_report_data
from .rows import FrameRow, SecurityEventRow, StationEventRow, VariableRow

_SEGMENT_COLUMNS = ("station_id", "timestamp", "count", "frames")


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

    def frame_logger(self, station_id: str) -> Callable[[str, str | bytes, datetime], None]:
        """``log(direction, frame, at)`` for one station's connection: :meth:`log_frame` with the
        station id checked once, and ``direction`` ('in' / 'out') and ``at`` (aware UTC, from the
        clock) trusted -- two calls per OCPP call."""
        _check_station_id(station_id)
        return functools.partial(self._frames.add, station_id)

    async def _insert_frames(self, frames: list[FrameItem]) -> None:
        await self._bulk_insert(FrameSegment.__table__, _SEGMENT_COLUMNS, frame_segments(frames))

    def _segments_newest_first(self, station_id: Any) -> Any:
        """Subquery of a station's segments with ``newer``: how many frames newer segments hold."""
        t = FrameSegment.__table__
        newer = func.sum(t.c.count).over(order_by=t.c.id.desc()) - t.c.count
        return select(t.c.id, t.c.frames, newer.label("newer")).where(t.c.station_id == station_id).subquery()

    async def _prune_frames(self, station_ids: list[str]) -> None:
        """Drop each station's segments that hold none of its newest ``frame_log_limit`` frames."""
        t = FrameSegment.__table__
        sid = bindparam("sid")
        seg = self._segments_newest_first(sid)
        oldest_kept = select(func.min(seg.c.id)).where(seg.c.newer < self.frame_log_limit).scalar_subquery()
        stmt = delete(t).where(t.c.station_id == sid, t.c.id < oldest_kept)
        async with self._write() as s:
            conn = await s.connection()
            await conn.execute(stmt, [{"sid": x} for x in station_ids])

    async def frames(self, station_id: str, limit: int = 100) -> list[FrameRow]:
        """Newest first (by arrival order); never more than the log keeps (``frame_log_limit``)."""
        if self.frame_log_limit > 0:
            limit = min(limit, self.frame_log_limit)
        seg = self._segments_newest_first(station_id)
        stmt = select(seg.c.id, seg.c.frames).where(seg.c.newer < limit).order_by(seg.c.id.desc())
        async with self._read() as s:
            segments = (await s.execute(stmt)).all()
        out: list[FrameRow] = []
        for seg_id, text in segments:
            items = orjson.loads(text)
            for i in range(len(items) - 1, -1, -1):
                direction, ts, frame = items[i]
                out.append(FrameRow(id=seg_id * FRAME_ID_STRIDE + i, station_id=station_id, direction=direction,
                                    timestamp=datetime.fromisoformat(ts), frame=frame))  # fmt: skip
                if len(out) == limit:
                    return out
        return out
