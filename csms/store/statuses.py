"""Connector statuses written in batches, like meter samples.

StatusNotifications are coalesced per connector by the CSMS's write-behind
(:class:`csms.domain.writebehind.WriteBehind`); each flush is written here in one transaction
with one executemany upsert, instead of one transaction per connector. The rule is that of
:meth:`csms.store.repository.Store.set_connector_status`: a status older than the stored one is
skipped, so a late StatusNotification cannot roll the status back.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from .models import ConnectorStatus
from .types import ensure_utc

if TYPE_CHECKING:
    from .repository import Store

StatusUpdate = tuple[str, int, int, str, datetime]
"""(station_id, evse_id, connector_id, status, at)"""


async def write_connector_statuses(store: Store, updates: Sequence[StatusUpdate]) -> None:
    if not updates:
        return
    table = ConnectorStatus.__table__
    ins = store._insert(table)
    ins = ins.on_conflict_do_update(
        index_elements=[table.c.station_id, table.c.evse_id, table.c.connector_id],
        set_={"status": ins.excluded.status, "updated_at": ins.excluded.updated_at},
        where=table.c.updated_at <= ins.excluded.updated_at,
    )
    params = [
        {
            "station_id": sid,
            "evse_id": evse_id,
            "connector_id": connector_id,
            "status": status,
            "updated_at": ensure_utc(at, "at"),
        }
        for sid, evse_id, connector_id, status, at in updates
    ]
    async with store._write() as s:
        conn = await s.connection()
        await conn.execute(ins, params)
