"""The site's departure model learned from its stored sessions (I/O: reads the store).

The controller calls :func:`with_departure_model` when it starts: the ended transactions of the
last ``[dispatch] departure_history_days`` days (plug-in = ``started_at``, unplug = ``ended_at``,
the driver's estimate = the ``departureTime`` of its stored charging needs) are fitted into a
:class:`~csms.dispatch.departure.DepartureModel` in the site's time zone
(``[dispatch] site_timezone``), which the snapshot then uses for every car's departure
(:mod:`csms.dispatch.snapshot`). With fewer than ``min_sessions`` sessions on record there is no
model and the snapshot keeps planning with the drivers' announced departures.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog

from csms.dispatch.departure import DepartureModel, SessionRecord

if TYPE_CHECKING:
    from csms.central import CentralSystem
    from csms.dispatch.snapshot import SnapshotOptions

log = structlog.get_logger("csms.dispatch.history")

#: Fewer ended sessions than this on record: no model (its cells would all be the pooled one).
MIN_SESSIONS = 50
PAGE = 1000


def _estimate(needs: dict[str, Any] | None) -> datetime | None:
    text = (needs or {}).get("departure_time") or (needs or {}).get("departureTime")
    if not text:
        return None
    try:
        return datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        return None


async def stored_sessions(store: Any, since: datetime, *, limit: int = 50_000) -> list[SessionRecord]:
    """Ended transactions that started at or after ``since`` (newest first), as session records."""
    out: list[SessionRecord] = []
    offset = 0
    while offset < limit:
        rows = await store.list_transactions(active=False, limit=PAGE, offset=offset)
        if not rows:
            break
        for row in rows:
            if row.started_at is None or row.ended_at is None or row.ended_at <= row.started_at:
                continue
            if row.started_at < since:
                return out
            out.append(
                SessionRecord(
                    arrival=row.started_at,
                    departure=row.ended_at,
                    estimated_departure=_estimate(row.charging_needs),
                    energy_kwh=(row.energy_import_wh or 0.0) / 1000.0,
                )
            )
        offset += len(rows)
    return out


async def departure_model_from_store(
    store: Any, tz: str, *, now: datetime, days: float, min_sessions: int = MIN_SESSIONS
) -> DepartureModel | None:
    """The departure model of the last ``days`` of sessions, or None with fewer than ``min_sessions``."""
    sessions = await stored_sessions(store, now - timedelta(days=days))
    if len(sessions) < min_sessions:
        log.info("no departure model: too few sessions on record", sessions=len(sessions), needed=min_sessions)
        return None
    log.info("departure model learned from the stored sessions", sessions=len(sessions), days=days, tz=tz)
    return DepartureModel.fit(sessions, tz)


async def with_departure_model(options: SnapshotOptions, central: CentralSystem, now: datetime) -> SnapshotOptions:
    """``options`` with the site's departure model, unless it has one or ``[dispatch] departure_model`` is off."""
    from dataclasses import replace

    ds = central.settings.dispatch
    if options.departure_model is not None or not ds.departure_model or central.store is None:
        return options
    model = await departure_model_from_store(central.store, ds.site_timezone, now=now, days=ds.departure_history_days)
    return options if model is None else replace(options, departure_model=model)


__all__ = ["departure_model_from_store", "stored_sessions", "with_departure_model"]
