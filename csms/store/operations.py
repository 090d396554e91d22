"""Store access for the operator-managed OCPP blocks: the Local Authorization List (D) and
reservations (H). Functions over a :class:`~csms.store.repository.Store`, in its style: one short
transaction per call, frozen rows out, timezone-aware UTC in and out.

The Local Authorization List is one list for the whole CSMS. Each change (a batch of puts or
removals) gets the next version number; every entry keeps the version at which it last changed
and a removed entry stays as a tombstone, so the CSMS can send a station at version *v* exactly the
entries changed since *v* (a differential update) or the whole list (a full update).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, text, update

from .models import LocalListEntry, LocalListStation, Reservation
from .rows import _Row
from .types import ensure_utc, utcnow

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from .repository import Store

PG_LOCAL_LIST_LOCK = 0x10CA1_115  # advisory lock key serialising version bumps on PostgreSQL


class LocalListEntryRow(_Row):
    id_token: str
    type: str
    id_token_info: dict[str, Any] | None = None
    version: int
    deleted: bool = False
    updated_at: datetime


class LocalListStationRow(_Row):
    station_id: str
    version: int
    status: str | None = None
    updated_at: datetime


class ReservationRow(_Row):
    id: int
    station_id: str
    evse_id: int | None = None
    connector_type: str | None = None
    id_token: str
    id_token_type: str
    group_id_token: str | None = None
    expiry_at: datetime
    status: str
    created_at: datetime
    updated_at: datetime


# ---------------------------------------------------------------------------- local list
async def _next_version(store: Store, s: AsyncSession) -> int:
    if store.dialect == "postgresql":
        await s.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_LOCAL_LIST_LOCK})
    current = (await s.execute(select(func.max(LocalListEntry.version)))).scalar()
    return int(current or 0) + 1


async def local_list_version(store: Store) -> int:
    """The list's current version (0: the operator never put anything on it)."""
    async with store._read() as s:
        return int((await s.execute(select(func.max(LocalListEntry.version)))).scalar() or 0)


async def local_list_put(store: Store, entries: Sequence[tuple[str, str, dict[str, Any]]]) -> int:
    """Add or replace entries ``(id_token, type, IdTokenInfoType)``; returns the new version."""
    now = utcnow()
    async with store._write() as s:
        version = await _next_version(store, s)
        for id_token, token_type, info in entries:
            obj = await s.get(LocalListEntry, (id_token, token_type))
            if obj is None:
                s.add(
                    LocalListEntry(
                        id_token=id_token,
                        type=token_type,
                        id_token_info=dict(info),
                        version=version,
                        deleted=False,
                        updated_at=now,
                    )
                )
            else:
                obj.id_token_info, obj.version, obj.deleted, obj.updated_at = dict(info), version, False, now
    return version


async def local_list_remove(store: Store, keys: Iterable[tuple[str, str]]) -> tuple[int, int]:
    """Remove entries ``(id_token, type)``; returns (new version, entries removed). Nothing to
    remove leaves the version unchanged."""
    now = utcnow()
    removed = 0
    async with store._write() as s:
        objs = []
        for key in keys:
            obj = await s.get(LocalListEntry, key)
            if obj is not None and not obj.deleted:
                objs.append(obj)
        if not objs:
            current = (await s.execute(select(func.max(LocalListEntry.version)))).scalar()
            return int(current or 0), 0
        version = await _next_version(store, s)
        for obj in objs:
            obj.id_token_info, obj.version, obj.deleted, obj.updated_at = None, version, True, now
            removed += 1
    return version, removed


async def local_list_entries(store: Store, *, since: int | None = None) -> list[LocalListEntryRow]:
    """The live entries, or with ``since`` every entry changed after that version (tombstones
    included), ordered by token."""
    stmt = select(LocalListEntry).order_by(LocalListEntry.type, LocalListEntry.id_token)
    if since is None:
        stmt = stmt.where(LocalListEntry.deleted.is_(False))
    else:
        stmt = stmt.where(LocalListEntry.version > since)
    return [LocalListEntryRow.model_validate(o) for o in await store._all(stmt)]


async def local_list_station(store: Store, station_id: str) -> LocalListStationRow | None:
    obj = await store._one(select(LocalListStation).where(LocalListStation.station_id == station_id))
    return None if obj is None else LocalListStationRow.model_validate(obj)


async def set_local_list_station(store: Store, station_id: str, version: int, status: str | None) -> None:
    now = utcnow()
    ins = store._insert(LocalListStation).values(station_id=station_id, version=version, status=status, updated_at=now)
    ins = ins.on_conflict_do_update(
        index_elements=[LocalListStation.station_id],
        set_={"version": ins.excluded.version, "status": ins.excluded.status, "updated_at": ins.excluded.updated_at},
    )
    async with store._write() as s:
        await s.execute(ins)


# ---------------------------------------------------------------------------- reservations
async def next_reservation_id(store: Store) -> int:
    async with store._read() as s:
        return int((await s.execute(select(func.max(Reservation.id)))).scalar() or 0) + 1


async def put_reservation(store: Store, **fields: Any) -> ReservationRow:
    now = utcnow()
    fields["expiry_at"] = ensure_utc(fields["expiry_at"], "expiry_at")
    async with store._write() as s:
        obj = await s.get(Reservation, fields["id"])
        if obj is None:
            obj = Reservation(created_at=now, updated_at=now, **fields)
            s.add(obj)
        else:
            for k, v in fields.items():
                setattr(obj, k, v)
            obj.updated_at = now
        await s.flush()
        return ReservationRow.model_validate(obj)


async def get_reservation(store: Store, reservation_id: int) -> ReservationRow | None:
    obj = await store._one(select(Reservation).where(Reservation.id == reservation_id))
    return None if obj is None else ReservationRow.model_validate(obj)


async def list_reservations(
    store: Store, *, station_id: str | None = None, status: str | None = None, limit: int = 100, offset: int = 0
) -> list[ReservationRow]:
    """Newest first."""
    stmt = select(Reservation).order_by(Reservation.id.desc()).limit(limit).offset(offset)
    if station_id is not None:
        stmt = stmt.where(Reservation.station_id == station_id)
    if status is not None:
        stmt = stmt.where(Reservation.status == status)
    return [ReservationRow.model_validate(o) for o in await store._all(stmt)]


async def set_reservation_status(
    store: Store, reservation_id: int, status: str, *, only_if: Sequence[str] | None = None
) -> bool:
    """Change a reservation's status (only from one of ``only_if`` when given)."""
    stmt = update(Reservation).where(Reservation.id == reservation_id)
    if only_if is not None:
        stmt = stmt.where(Reservation.status.in_(list(only_if)))
    async with store._write() as s:
        result = await s.execute(stmt.values(status=status, updated_at=utcnow()))
    return bool(result.rowcount)  # type: ignore[attr-defined]
