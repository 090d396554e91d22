"""The operator web console: fleet, stations and grid events, live, in a browser.

Served by the CSMS's own HTTP API app (same process and port, under ``/console/``; in cluster
mode every node serves it), offline: the templates, the script, the stylesheet and the vendored
htmx and uPlot (``static/vendor``, from npm, with their licences) ship in the package. See
:mod:`csms.web.routes` for the pages and :mod:`csms.web.session` for sign-in and CSRF.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["close_console", "mount_console"]

STATIC = Path(__file__).parent / "static"


def mount_console(app: FastAPI) -> None:
    """Add the console's routes and static files to the API app."""
    from .routes import PREFIX, router

    app.include_router(router)
    app.mount(f"{PREFIX}/static", StaticFiles(directory=STATIC), name="console-static")

    @app.get(PREFIX, include_in_schema=False)
    async def _console_root() -> RedirectResponse:
        return RedirectResponse(f"{PREFIX}/", status_code=307)


async def close_console(app: FastAPI) -> None:
    """End the console's live streams (before the HTTP server stops, so it need not wait for them)."""
    hub: Any = getattr(app.state, "console_hub", None)
    if hub is not None:
        await hub.close()
