"""Site load balancing in the console: the sites, one site's limit vs. metered power (chart) and
each charger's allocation (a fragment polled by htmx), and the operator's limit change."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from .pages import login_redirect, page_user, post_user, read_form, render, router
from .session import ConsoleUser

log = structlog.get_logger("csms.web")


def _balancer(request: Request) -> Any:
    return request.app.state.ctx.central.extensions.get("sites")


@router.get("/sites")
async def sites_page(request: Request) -> Response:
    user = await page_user(request)
    if user is None:
        return login_redirect(request)
    b = _balancer(request)
    sites = [] if b is None else b.summaries()
    return render("sites.html", request, user=user, sites=sites, page="sites")


@router.get("/sites/{site_id}")
async def site_page(request: Request, site_id: str) -> Response:
    user = await page_user(request)
    if user is None:
        return login_redirect(request)
    b = _balancer(request)
    if b is None or site_id not in b.sites:
        return render("notfound.html", request, status=404, user=user, what="site", ident=site_id)
    return render("site.html", request, user=user, site=b.view(site_id), page="sites")


@router.get("/sites/{site_id}/table")
async def site_table(request: Request, site_id: str) -> Response:
    user = await page_user(request)
    if user is None:
        return Response(status_code=401)
    b = _balancer(request)
    if b is None or site_id not in b.sites:
        return Response(status_code=404)
    return render("_site_table.html", request, user=user, site=b.view(site_id))


@router.get("/sites/{site_id}/series.json")
async def site_series(request: Request, site_id: str) -> Response:
    """Per control round: limit, metered site power, building load, chargers and the allocation, kW."""
    if await page_user(request) is None:
        return Response(status_code=401)
    b = _balancer(request)
    if b is None or site_id not in b.sites:
        return Response(status_code=404)
    from datetime import datetime

    hist = list(b.sites[site_id].history)
    out: dict[str, Any] = {"t": [datetime.fromisoformat(h["t"]).timestamp() for h in hist]}
    for key in ("limit_kw", "site_kw", "building_kw", "chargers_kw", "planned_kw"):
        out[key] = [h[key] for h in hist]
    out["now"] = request.app.state.ctx.central.now().timestamp()
    return JSONResponse(out)


@router.post("/sites/{site_id}/limits")
async def site_limits(request: Request, site_id: str) -> Response:
    form = await read_form(request)
    user = await post_user(request, form)
    if not isinstance(user, ConsoleUser):
        return user
    b = _balancer(request)
    if b is None or site_id not in b.sites:
        return Response(status_code=404)
    changes: dict[str, Any] = {}
    try:
        if form.get("import_limit_kw"):
            changes["import_limit_kw"] = float(form["import_limit_kw"])
        if form.get("strategy"):
            changes["strategy"] = form["strategy"]
        if not changes:
            raise ValueError("give an import limit or a strategy")
        await b.change_limits(site_id, **changes)
    except ValidationError as exc:
        err = exc.errors()[0]
        msg = f"{'.'.join(map(str, err['loc']))}: {err['msg']}"
        return render("_site_table.html", request, user=user, site=b.view(site_id), error=msg)
    except ValueError as exc:
        return render("_site_table.html", request, user=user, site=b.view(site_id), error=str(exc))
    log.info("console site limits", token=user.name, site=site_id, **changes)
    return render("_site_table.html", request, user=user, site=b.view(site_id), error=None)
