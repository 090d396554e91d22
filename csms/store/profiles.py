"""Charging profiles (K) as the CSMS last set or read them per station."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select

from .base import StoreBase, _at, _check_station_id
from .batch import GroupCommit
from .models import ChargingProfile
from .payloads import profile_fields
from .rows import ChargingProfileRow


class ProfileStore(StoreBase):
    """Charging profiles."""

    _profile_group: GroupCommit[dict[str, Any], None]

    # ------------------------------------------------------------------ charging profiles
    async def put_profile(
        self,
        station_id: str,
        evse_id: int,
        profile: Mapping[str, Any],
        *,
        source: str = "csms",
        installed_at: datetime | None = None,
    ) -> ChargingProfileRow:
        """Store an OCPP ``ChargingProfileType`` for an EVSE (0 = whole station). Keyed by
        ``(station, profile id)``: a profile with the same id replaces the old one (K01.FR.05)."""
        _check_station_id(station_id)
        row = self._profile_values(station_id, evse_id, profile, source, _at(installed_at, "installed_at"))
        ins = self._insert(ChargingProfile).values(**row)
        ins = ins.on_conflict_do_update(
            index_elements=[ChargingProfile.station_id, ChargingProfile.profile_id],
            set_={k: ins.excluded[k] for k in row if k not in ("station_id", "profile_id")},
        )
        async with self._write() as s:
            await s.execute(ins)
            obj = (
                await s.scalars(
                    select(ChargingProfile)
                    .where(
                        ChargingProfile.station_id == station_id,
                        ChargingProfile.profile_id == row["profile_id"],
                    )
                    .execution_options(populate_existing=True)
                )
            ).one()
            return ChargingProfileRow.model_validate(obj)

    async def record_profile(
        self, station_id: str, evse_id: int, profile: Mapping[str, Any], *, source: str = "csms"
    ) -> None:
        """As :meth:`put_profile` without reading the row back; concurrent calls share one
        transaction (group commit), each returning once its own profile is committed."""
        _check_station_id(station_id)
        await self._profile_group.write(self._profile_values(station_id, evse_id, profile, source, _at(None)))

    async def _upsert_profiles(self, rows: list[dict[str, Any]]) -> list[None]:
        ins = self._insert(ChargingProfile)
        ins = ins.on_conflict_do_update(
            index_elements=[ChargingProfile.station_id, ChargingProfile.profile_id],
            set_={k: ins.excluded[k] for k in rows[0] if k not in ("station_id", "profile_id")},
        )
        async with self._write() as s:
            await s.execute(ins, rows)
        return [None] * len(rows)

    @staticmethod
    def _profile_values(
        station_id: str, evse_id: int, profile: Mapping[str, Any], source: str, at: datetime
    ) -> dict[str, Any]:
        return {
            "station_id": station_id,
            "evse_id": int(evse_id),
            "source": source,
            "profile": dict(profile),
            "installed_at": at,
            **profile_fields(profile),
        }

    async def delete_profiles(
        self,
        station_id: str,
        *,
        profile_id: int | None = None,
        evse_id: int | None = None,
        purpose: str | None = None,
        stack_level: int | None = None,
        source: str | None = None,
    ) -> int:
        """Delete the station's profiles matching all given criteria (as ClearChargingProfile);
        no criteria deletes all of them. Returns the number deleted."""
        await self._profile_group.flush()  # a profile recorded just before is deleted, not resurrected
        stmt = delete(ChargingProfile).where(ChargingProfile.station_id == station_id)
        if profile_id is not None:
            stmt = stmt.where(ChargingProfile.profile_id == profile_id)
        if evse_id is not None:
            stmt = stmt.where(ChargingProfile.evse_id == evse_id)
        if purpose is not None:
            stmt = stmt.where(ChargingProfile.purpose == purpose)
        if stack_level is not None:
            stmt = stmt.where(ChargingProfile.stack_level == stack_level)
        if source is not None:
            stmt = stmt.where(ChargingProfile.source == source)
        async with self._write() as s:
            result = await s.execute(stmt)
        return int(result.rowcount)  # type: ignore[attr-defined]

    async def profiles(
        self, station_id: str, *, evse_id: int | None = None, purpose: str | None = None
    ) -> list[ChargingProfileRow]:
        await self._profile_group.flush()
        stmt = (
            select(ChargingProfile)
            .where(ChargingProfile.station_id == station_id)
            .order_by(ChargingProfile.evse_id, ChargingProfile.purpose, ChargingProfile.stack_level.desc())
        )
        if evse_id is not None:
            stmt = stmt.where(ChargingProfile.evse_id == evse_id)
        if purpose is not None:
            stmt = stmt.where(ChargingProfile.purpose == purpose)
        return [ChargingProfileRow.model_validate(o) for o in await self._all(stmt)]

    async def replace_profiles(
        self,
        station_id: str,
        items: Iterable[tuple[int, Mapping[str, Any]]],
        *,
        source: str = "station",
        at: datetime | None = None,
    ) -> list[ChargingProfileRow]:
        """Atomically replace all of a station's profiles with ``(evse_id, profile)`` pairs, e.g.
        what a GetChargingProfiles / ReportChargingProfiles round reported."""
        await self._profile_group.flush()
        _check_station_id(station_id)
        ts = _at(at)
        rows = {}
        for evse_id, profile in items:
            row = self._profile_values(station_id, evse_id, profile, source, ts)
            rows[row["profile_id"]] = row
        async with self._write() as s:
            await s.execute(delete(ChargingProfile).where(ChargingProfile.station_id == station_id))
            if rows:
                conn = await s.connection()
                await conn.execute(ChargingProfile.__table__.insert(), list(rows.values()))
        return await self.profiles(station_id)
