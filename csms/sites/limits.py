"""The site limits grid-event dispatch plans under (pure)."""

from __future__ import annotations

from collections.abc import Iterable

from csms.config import Settings


def dispatch_site_limits(
    settings: Settings, stations: Iterable[str] | None = None
) -> tuple[float | None, float | None]:
    """``(export kW, import kW)`` for the dispatch snapshot.

    ``[dispatch] site_export_limit_kw`` / ``site_import_limit_kw`` win when set. Otherwise the
    configured ``[[sites]]`` that hold any of ``stations`` (every site when ``None``) are summed:
    the dispatched fleet spans those grid connections. An export limit is only known when each
    of those sites has one. No site: ``None`` (no limit).
    """
    ds = settings.dispatch
    scope = None if stations is None else set(stations)
    sites = [s for s in settings.sites if scope is None or scope.intersection(s.stations)]
    imp = ds.site_import_limit_kw
    exp = ds.site_export_limit_kw
    if sites and imp is None:
        imp = sum(s.import_limit_kw for s in sites)
    if sites and exp is None and all(s.export_limit_kw is not None for s in sites):
        exp = sum(s.export_limit_kw or 0.0 for s in sites)
    return exp, imp
