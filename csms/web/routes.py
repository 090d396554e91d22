"""The console's routes, assembled: every page module registers on the shared router.

Pages are server-rendered Jinja2 templates (autoescaped: station ids, vendor strings and every
other value from a station or an issuer is shown as text). htmx posts the forms and polls the
fragments; the fleet table updates from server-sent events (:mod:`csms.web.fleet`); charts are
uPlot, fed by small JSON routes. Everything is reached with the session cookie
(:mod:`csms.web.session`): read scope sees every page, operator scope also gets the command
buttons, the event form and cancel, and the server checks the scope and the CSRF token again on
every POST (a forged request is a 403 whatever the page showed).

=====================  ============================================================
:mod:`.signin`         ``/console/login``, ``/console/logout``
:mod:`.stations`       ``/console/`` (fleet), ``/console/fleet/stream`` (SSE),
                       ``/console/stations/{id}`` and its fragments and commands
:mod:`.events`         ``/console/events``, ``/console/events/{id}`` (live or report),
                       create, cancel, CSV/JSON/PNG downloads
:mod:`.sites`          ``/console/sites``, ``/console/sites/{id}`` (limit vs. metered power,
                       allocation per charger), the limit change
=====================  ============================================================
"""

from __future__ import annotations

from . import events, signin, sites, stations
from .pages import PREFIX, router

__all__ = ["PREFIX", "events", "router", "signin", "sites", "stations"]
