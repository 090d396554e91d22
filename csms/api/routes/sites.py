"""Site load balancing (``[[sites]]``, :mod:`csms.sites`): grid connections, their limits, the
metered site power and each charger's allocation.

- ``GET /api/v1/sites``: every site with its limit, metered power and allocation;
- ``GET /api/v1/sites/{id}``: one site with its stations, EVSEs and recent history;
- ``PUT /api/v1/sites/{id}/limits`` (operator): change the import/export limit or the strategy;
  the site re-balances at once (decreases first) and the change is stored (kept over a restart);
- ``POST /api/v1/sites/{id}/rebalance`` (operator): run one control round now.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..auth import require_operator, require_read
from ..context import ApiContext, get_ctx
from ..errors import ApiError, error_responses

router = APIRouter(prefix="/api/v1/sites", responses=error_responses(401, 403, 404, 422), tags=["sites"])
Ctx = Annotated[ApiContext, Depends(get_ctx)]


class LimitsIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    import_limit_kw: Annotated[float, Field(gt=0, le=1_000_000)] | None = None
    export_limit_kw: Annotated[float, Field(ge=0, le=1_000_000)] | None = None
    strategy: Literal["fair", "priority"] | None = None


def balancer(ctx: ApiContext) -> Any:
    sites = ctx.central.extensions.get("sites")
    if sites is None:
        raise ApiError(404, "no_sites", "site load balancing is not running (no [[sites]] in the configuration)")
    return sites


def _site(ctx: ApiContext, site_id: str) -> Any:
    b = balancer(ctx)
    if site_id not in b.sites:
        raise ApiError(404, "unknown_site", f"unknown site {site_id!r}", {"sites": sorted(b.sites)})
    return b


@router.get("", dependencies=[Depends(require_read)], summary="Sites, limits and metered power")
async def list_sites(ctx: Ctx) -> list[dict[str, Any]]:
    sites = ctx.central.extensions.get("sites")
    return [] if sites is None else sites.summaries()


@router.get("/{site_id}", dependencies=[Depends(require_read)], summary="One site: stations, allocation, history")
async def get_site(ctx: Ctx, site_id: str) -> dict[str, Any]:
    b = _site(ctx, site_id)
    return {**b.view(site_id), "history": list(b.sites[site_id].history)}


@router.put("/{site_id}/limits", dependencies=[Depends(require_operator)], summary="Change a site's limits")
async def put_limits(ctx: Ctx, site_id: str, body: LimitsIn) -> dict[str, Any]:
    b = _site(ctx, site_id)
    if body.import_limit_kw is None and body.export_limit_kw is None and body.strategy is None:
        raise ApiError(422, "validation_error", "nothing to change: give import_limit_kw, export_limit_kw or strategy")
    try:
        await b.change_limits(site_id, **body.model_dump(exclude_none=True))
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ApiError(422, "validation_error", f"{'.'.join(map(str, err['loc']))}: {err['msg']}") from None
    return b.view(site_id)


@router.post("/{site_id}/rebalance", dependencies=[Depends(require_operator)], summary="Re-balance now")
async def rebalance(ctx: Ctx, site_id: str) -> dict[str, Any]:
    b = _site(ctx, site_id)
    return await b.rebalance(site_id)
