"""Cluster view: this node, the live nodes, the dispatch leader and where a station is held."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from ..auth import require_read
from ..context import ApiContext, get_ctx
from ..errors import error_responses

router = APIRouter(
    prefix="/api/v1/cluster",
    responses=error_responses(401, 403),
    tags=["cluster"],
    dependencies=[Depends(require_read)],
)
Ctx = Annotated[ApiContext, Depends(get_ctx)]


class ClusterView(BaseModel):
    enabled: bool
    node: str | None = None
    nodes: list[str] = Field(default_factory=list, description="nodes holding a lease")
    dispatch_leader: bool = Field(False, description="this node runs the dispatch controller")
    dispatch_terms: int = Field(0, description="times this node took the dispatch leadership")
    dispatch_events: list[str] = Field(default_factory=list, description="events the controller follows here")
    dispatch_schedules_loaded: int = Field(
        0, description="schedules already sent, loaded from PostgreSQL when this node took the leadership"
    )
    dispatch_report_samples_restored: int = Field(
        0, description="control-tick samples of running events restored from the previous leader's stored report"
    )
    stations_held: int = 0
    commands_forwarded: int = 0
    commands_served: int = 0
    events_received: int = 0


class StationPlace(BaseModel):
    station_id: str
    node: str | None = Field(None, description="the node holding its connection; null: offline")
    ocpp_version: str | None = None


def _leadership(ctx: ApiContext) -> Any:
    svc = ctx.service
    for part in getattr(svc, "parts", []) if svc is not None else []:
        if hasattr(part, "is_leader"):
            return part
    return None


@router.get("", response_model=ClusterView, summary="This node and the cluster it is part of")
async def cluster_view(ctx: Ctx) -> ClusterView:
    node = ctx.central.extensions.get("cluster")
    if node is None:
        return ClusterView(enabled=False)
    lead = _leadership(ctx)
    controller = getattr(lead, "controller", None)
    try:
        nodes = await node.registry.live_nodes()
    except Exception:  # the broker is slow to answer: the node's last reading
        nodes = sorted(node.live_nodes)
    return ClusterView(
        enabled=True,
        node=node.node_id,
        nodes=nodes,
        dispatch_leader=bool(lead is not None and lead.is_leader),
        dispatch_terms=getattr(lead, "terms", 0),
        dispatch_events=sorted(controller.runs) if controller is not None else [],
        dispatch_schedules_loaded=getattr(lead, "schedules_loaded", 0),
        dispatch_report_samples_restored=getattr(lead, "samples_restored", 0),
        stations_held=len(node.registry.mine),
        commands_forwarded=node.forwarder.forwarded,
        commands_served=node.forwarder.served,
        events_received=node.events.received,
    )


@router.get("/stations/{station_id}", response_model=StationPlace, summary="Which node holds a station")
async def station_place(ctx: Ctx, station_id: str) -> StationPlace:
    central = ctx.central
    sess = central.sessions.get(station_id)
    node = central.extensions.get("cluster")
    if sess is not None:
        return StationPlace(station_id=station_id, node=node.node_id if node else None, ocpp_version=sess.version)
    if node is None:
        return StationPlace(station_id=station_id)
    holder = await node.registry.holder(station_id)
    if holder is None:
        return StationPlace(station_id=station_id)
    return StationPlace(station_id=station_id, node=holder.node, ocpp_version=holder.version)
