"""The site limits grid-event dispatch plans under (pure, plus one reader of the running balancer)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from csms.config import Settings, SiteSettings


def dispatch_site_limits(
    settings: Settings,
    stations: Iterable[str] | None = None,
    *,
    sites: list[SiteSettings] | None = None,
    building_kw: Mapping[str, float] | None = None,
) -> tuple[float | None, float | None]:
    """``(export kW, import kW)`` for the dispatch snapshot: what the dispatched chargers may
    export and import at the point of measurement.

    ``[dispatch] site_export_limit_kw`` / ``site_import_limit_kw`` win when set. Otherwise the
    ``sites`` (default: the configured ``[[sites]]``) that hold any of ``stations`` (every site
    when ``None``) are summed: the dispatched fleet spans those grid connections. Each site's
    building load (``building_kw`` by site id, when known) is taken off its import limit and
    added to its export limit (the building absorbs that much export). An export limit is only
    known when each of those sites has one. No site: ``None`` (no limit).
    """
    ds = settings.dispatch
    scope = None if stations is None else set(stations)
    pool = settings.sites if sites is None else sites
    chosen = [s for s in pool if scope is None or scope.intersection(s.stations)]
    load = building_kw or {}
    imp = ds.site_import_limit_kw
    exp = ds.site_export_limit_kw
    if chosen and imp is None:
        imp = sum(max(s.import_limit_kw - load.get(s.id, 0.0), 0.0) for s in chosen)
    if chosen and exp is None and all(s.export_limit_kw is not None for s in chosen):
        exp = sum((s.export_limit_kw or 0.0) + load.get(s.id, 0.0) for s in chosen)
    return exp, imp


def site_limits_for_dispatch(central: Any, stations: Iterable[str] | None) -> tuple[float | None, float | None]:
    """:func:`dispatch_site_limits` with the running balancer's limits (changed at run time
    through the API) and building loads when site load balancing runs."""
    balancer = central.extensions.get("sites")
    if balancer is None:
        return dispatch_site_limits(central.settings, stations)
    now = central.now()
    sites = [rt.settings for rt in balancer.sites.values()]
    building = {sid: balancer.building_w(rt, now)[0] / 1000.0 for sid, rt in balancer.sites.items()}
    return dispatch_site_limits(central.settings, stations, sites=sites, building_kw=building)
