"""Store access for site load balancing (``site_limits``): limits changed at run time."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from .models import SiteLimit
from .types import utcnow

if TYPE_CHECKING:
    from .repository import Store


async def put_site_limits(store: Store, site_id: str, limits: Mapping[str, Any]) -> None:
    """Upsert the run-time limits of one site (the changed keys only)."""
    ins = store._insert(SiteLimit).values([{"site_id": site_id, "limits": dict(limits), "updated_at": utcnow()}])
    ins = ins.on_conflict_do_update(
        index_elements=[SiteLimit.site_id], set_={"limits": ins.excluded.limits, "updated_at": ins.excluded.updated_at}
    )
    async with store._write() as s:
        await s.execute(ins)


async def site_limits(store: Store) -> dict[str, dict[str, Any]]:
    async with store._read() as s:
        rows = (await s.execute(select(SiteLimit.site_id, SiteLimit.limits))).all()
    return {r.site_id: dict(r.limits) for r in rows}
