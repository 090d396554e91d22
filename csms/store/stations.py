"""Stations: the registry (with its change feed), boot and connection facts, connector status."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, delete, func, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from .base import (
    _KEEP,
    _STATION_FIELDS,
    _STATION_TIME_FIELDS,
    CHANGE_REMOVE,
    CHANGE_UPSERT,
    PG_REGISTRY_LOCK,
    REGISTRY_FIELDS,
    StoreBase,
    _at,
    _check_station_id,
)
from .models import ChargingProfile, ConnectorStatus, DeviceVariable, Station, StationChange
from .rows import ConnectorStatusRow, StationChangeRow, StationRow
from .types import ensure_utc, opt_utc, utcnow


class StationStore(StoreBase):
    """Stations, the registry change feed and connector status."""

    # ------------------------------------------------------------------ stations
    def _station_row(self, obj: Station) -> StationRow:
        row = StationRow.model_validate(obj)
        pending = self._touches.pending_for(row.id)
        if pending is not None and (row.last_seen_at is None or pending > row.last_seen_at):
            row = row.model_copy(update={"last_seen_at": pending})
        return row

    async def get_station(self, station_id: str) -> StationRow | None:
        obj = await self._one(select(Station).where(Station.id == station_id))
        return None if obj is None else self._station_row(obj)

    async def list_stations(
        self,
        status: str | None = None,
        connected: bool | None = None,
        model: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[StationRow]:
        """Stations ordered by id; ``status`` filters on ``boot_status``."""
        stmt = select(Station).order_by(Station.id).limit(limit).offset(offset)
        if status is not None:
            stmt = stmt.where(Station.boot_status == status)
        if connected is not None:
            stmt = stmt.where(Station.connected.is_(connected))
        if model is not None:
            stmt = stmt.where(Station.model == model)
        return [self._station_row(o) for o in await self._all(stmt)]

    async def _upsert_station(self, s: AsyncSession, station_id: str, fields: Mapping[str, Any]) -> StationRow:
        _check_station_id(station_id)
        unknown = set(fields) - _STATION_FIELDS
        if unknown:
            raise TypeError(f"unknown station fields: {sorted(unknown)}")
        values = dict(fields)
        for key in _STATION_TIME_FIELDS & values.keys():
            values[key] = opt_utc(values[key], key)
        # A station created by this call is registered at the time the call is about.
        registered = values.get("registered_at") or values.get("last_seen_at") or utcnow()
        ins = self._insert(Station).values(**{"registered_at": registered, **values, "id": station_id})
        if values:
            ins = ins.on_conflict_do_update(index_elements=[Station.id], set_={k: ins.excluded[k] for k in values})
        else:
            ins = ins.on_conflict_do_nothing(index_elements=[Station.id])
        await s.execute(ins)
        obj = (
            await s.scalars(select(Station).where(Station.id == station_id).execution_options(populate_existing=True))
        ).one()
        if not REGISTRY_FIELDS.isdisjoint(values):
            await self._record_changes(s, [(station_id, CHANGE_UPSERT)])
        return self._station_row(obj)

    async def _record_changes(self, s: AsyncSession, changes: Sequence[tuple[str, str]]) -> None:
        """Append registry change rows; must be the transaction's last statement (see the module
        docstring: on PostgreSQL the advisory lock is then held only until the commit)."""
        if not changes:
            return
        if self.dialect == "postgresql":
            await s.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_REGISTRY_LOCK})
        now = utcnow()
        conn = await s.connection()
        await conn.execute(
            StationChange.__table__.insert(),
            [{"station_id": sid, "kind": kind, "changed_at": now} for sid, kind in changes],
        )

    async def upsert_station(self, station_id: str, **fields: Any) -> StationRow:
        """Create the station or update exactly the given columns (others keep their values).
        Writing ``password_hash``, ``meta`` or ``blocked`` is recorded in the change feed."""
        async with self._write() as s:
            return await self._upsert_station(s, station_id, fields)

    async def register_station(
        self,
        station_id: str,
        *,
        password_hash: str | None = _KEEP,
        meta: Mapping[str, Any] | None = None,
        blocked: bool | None = None,
        at: datetime | None = None,
    ) -> tuple[StationRow, bool]:
        """Register a station or update its registration, in one transaction with its change-feed
        row. ``meta`` keys are merged into the stored meta (other keys are kept); omitted
        arguments leave the stored values alone (a new station: no password, not blocked).
        Returns the row and whether it was created."""
        _check_station_id(station_id)
        async with self._write() as s:
            stmt = select(Station.meta).where(Station.id == station_id)
            if self.dialect == "postgresql":
                stmt = stmt.with_for_update()
            found = (await s.execute(stmt)).first()
            fields: dict[str, Any] = {}
            if password_hash is not _KEEP:
                fields["password_hash"] = password_hash
            if meta is not None or found is None:
                fields["meta"] = {**((found[0] or {}) if found is not None else {}), **(meta or {})}
            if blocked is not None:
                fields["blocked"] = bool(blocked)
            if found is None:
                fields["registered_at"] = _at(at, "at")
            row = await self._upsert_station(s, station_id, fields)
        return row, found is None

    async def set_station_blocked(self, station_id: str, blocked: bool) -> bool | None:
        """Block or unblock a registered station (recorded in the change feed). Returns True when
        that changed it, False when it already was, None when there is no such station."""
        table = Station.__table__
        async with self._write() as s:
            result = await s.execute(
                update(table).where(table.c.id == station_id, table.c.blocked != blocked).values(blocked=blocked)
            )
            if result.rowcount:  # type: ignore[attr-defined]
                await self._record_changes(s, [(station_id, CHANGE_UPSERT)])
                return True
            found = (await s.execute(select(table.c.id).where(table.c.id == station_id))).first()
        return False if found is not None else None

    async def get_stations(self, station_ids: Iterable[str]) -> list[StationRow]:
        """The stations among ``station_ids`` that exist (any order; unknown ids are left out)."""
        ids = list(dict.fromkeys(station_ids))
        out: list[StationRow] = []
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            out.extend(self._station_row(o) for o in await self._all(select(Station).where(Station.id.in_(chunk))))
        return out

    # ------------------------------------------------------------------ registry change feed
    async def station_changes(self, after: int = 0, limit: int = 1000) -> tuple[list[StationChangeRow], int]:
        """Registry changes with ``rev > after``, oldest first (at most ``limit``), and the newest
        revision in the feed as far as this read saw it (0 when empty; lower than ``after`` when
        the database went back in time, e.g. a restore). One indexed statement."""
        table = StationChange.__table__
        newest = select(func.max(table.c.rev)).scalar_subquery()
        stmt = select(table).where(or_(table.c.rev > after, table.c.rev == newest)).order_by(table.c.rev).limit(limit)
        async with self._read() as s:
            rows = [StationChangeRow.model_validate(r._mapping) for r in (await s.execute(stmt)).all()]
        head = rows[-1].rev if rows else 0
        return [r for r in rows if r.rev > after], head

    async def station_changes_head(self) -> int:
        """The newest registry revision (0 before the first change)."""
        table = StationChange.__table__
        async with self._read() as s:
            return int((await s.execute(select(func.max(table.c.rev)))).scalar() or 0)

    async def prune_station_changes(self, before: datetime) -> int:
        """Delete change rows older than ``before``, always keeping the newest one (readers compare
        their position with it). Returns the number deleted."""
        table = StationChange.__table__
        newest = select(func.max(table.c.rev)).scalar_subquery()
        stmt = delete(table).where(table.c.changed_at < ensure_utc(before, "before"), table.c.rev < newest)
        async with self._write() as s:
            result = await s.execute(stmt)
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def set_connected(self, station_id: str, connected: bool, at: datetime | None = None) -> StationRow:
        """Mark the WebSocket up/down (creates the row if needed). ``connected_since`` is cleared on
        disconnect. Overlapping sockets of one station must be ordered by the caller."""
        ts = _at(at)
        fields = {"connected": connected, "connected_since": ts if connected else None, "last_seen_at": ts}
        async with self._write() as s:
            return await self._upsert_station(s, station_id, fields)

    async def record_boot(
        self,
        station_id: str,
        vendor: str | None,
        model: str | None,
        serial: str | None,
        firmware: str | None,
        ocpp_version: str | None,
        status: str,
        at: datetime | None = None,
    ) -> StationRow:
        """Store a BootNotification and the status it was answered with."""
        ts = _at(at)
        fields = {
            "vendor": vendor,
            "model": model,
            "serial_number": serial,
            "firmware_version": firmware,
            "ocpp_version": ocpp_version,
            "boot_status": status,
            "last_boot_at": ts,
            "last_seen_at": ts,
        }
        async with self._write() as s:
            return await self._upsert_station(s, station_id, fields)

    async def update_stations(self, batch: Sequence[tuple[str, Mapping[str, Any]]]) -> None:
        """Update existing station rows in bulk: one ``executemany`` UPDATE per set of columns,
        all in one transaction (used by the CSMS's write-behind for connect/boot facts)."""
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for station_id, fields in batch:
            unknown = set(fields) - _STATION_FIELDS
            if unknown:
                raise TypeError(f"unknown station fields: {sorted(unknown)}")
            values = {f"b_{k}": (opt_utc(v, k) if k in _STATION_TIME_FIELDS else v) for k, v in fields.items()}
            values["b_id"] = station_id
            groups.setdefault(tuple(sorted(fields)), []).append(values)
        if not groups:
            return
        table = Station.__table__
        changed = [(sid, CHANGE_UPSERT) for sid, fields in batch if not REGISTRY_FIELDS.isdisjoint(fields)]
        async with self._write() as s:
            conn = await s.connection()
            for keys, rows in groups.items():
                stmt = (
                    update(table)
                    .where(table.c.id == bindparam("b_id"))
                    .values(**{k: bindparam(f"b_{k}") for k in keys})
                )
                await conn.execute(stmt, rows)
            await self._record_changes(s, changed)

    def touch(self, station_id: str, at: datetime | None = None) -> None:
        """Record that the station was heard from (Heartbeat). Synchronous and non-blocking:
        coalesced in memory (latest wins) and written by the background flush with one
        ``executemany`` UPDATE; :meth:`get_station` / :meth:`list_stations` already reflect it."""
        _check_station_id(station_id)
        self._touches.add(station_id, _at(at))

    async def _write_touches(self, batch: list[tuple[str, datetime]]) -> None:
        table = Station.__table__
        stmt = (
            update(table)
            .where(table.c.id == bindparam("b_id"))
            .where(or_(table.c.last_seen_at.is_(None), table.c.last_seen_at < bindparam("b_at")))
            .values(last_seen_at=bindparam("b_at"))
        )
        async with self._write() as s:
            conn = await s.connection()
            await conn.execute(stmt, [{"b_id": sid, "b_at": at} for sid, at in batch])

    async def set_credentials(self, station_id: str, password_hash: str | None) -> StationRow:
        async with self._write() as s:
            return await self._upsert_station(s, station_id, {"password_hash": password_hash})

    async def set_capabilities(self, station_id: str, capabilities: Mapping[str, Any] | None) -> StationRow:
        caps = None if capabilities is None else dict(capabilities)
        async with self._write() as s:
            return await self._upsert_station(s, station_id, {"capabilities": caps})

    async def bulk_register_stations(
        self, station_ids: Iterable[str], password_hash: str | None = None, at: datetime | None = None
    ) -> int:
        """Create many stations at once (one ``executemany`` upsert) with the same password hash;
        existing stations only get the new hash. Returns the number of ids processed."""
        ts = _at(at)
        rows = []
        for sid in dict.fromkeys(station_ids):
            _check_station_id(sid)
            rows.append({"id": sid, "password_hash": password_hash, "registered_at": ts, "meta": {}})
        if not rows:
            return 0
        table = Station.__table__
        ins = self._insert(table)
        ins = ins.on_conflict_do_update(index_elements=[table.c.id], set_={"password_hash": ins.excluded.password_hash})
        async with self._write() as s:
            conn = await s.connection()
            await conn.execute(ins, rows)
            await self._record_changes(s, [(r["id"], CHANGE_UPSERT) for r in rows])
        return len(rows)

    async def delete_station(self, station_id: str) -> bool:
        """Delete the station with its connector statuses, device model and profiles (recorded in
        the change feed). History (transactions, meter samples, events, frames) is kept."""
        async with self._write() as s:
            for model in (ConnectorStatus, DeviceVariable, ChargingProfile):
                await s.execute(delete(model).where(model.station_id == station_id))
            result = await s.execute(delete(Station).where(Station.id == station_id))
            deleted = bool(result.rowcount)  # type: ignore[attr-defined]
            if deleted:
                await self._record_changes(s, [(station_id, CHANGE_REMOVE)])
        return deleted

    # ------------------------------------------------------------------ connector status
    async def set_connector_status(
        self, station_id: str, evse_id: int, connector_id: int, status: str, at: datetime | None = None
    ) -> bool:
        """Upsert a connector status. Returns False (and keeps the stored one) if ``at`` is older
        than what is stored, so a late StatusNotification cannot roll the status back."""
        ts = _at(at)
        ins = self._insert(ConnectorStatus).values(
            station_id=station_id, evse_id=evse_id, connector_id=connector_id, status=status, updated_at=ts
        )
        ins = ins.on_conflict_do_update(
            index_elements=[
                ConnectorStatus.station_id,
                ConnectorStatus.evse_id,
                ConnectorStatus.connector_id,
            ],
            set_={"status": ins.excluded.status, "updated_at": ins.excluded.updated_at},
            where=ConnectorStatus.updated_at <= ins.excluded.updated_at,
        ).returning(ConnectorStatus.status)
        async with self._write() as s:
            return (await s.execute(ins)).first() is not None

    async def connector_statuses(self, station_id: str) -> list[ConnectorStatusRow]:
        stmt = (
            select(ConnectorStatus)
            .where(ConnectorStatus.station_id == station_id)
            .order_by(ConnectorStatus.evse_id, ConnectorStatus.connector_id)
        )
        return [ConnectorStatusRow.model_validate(o) for o in await self._all(stmt)]
