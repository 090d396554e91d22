"""What every console page shares: the router, the Jinja2 environment (autoescaped), rendering
with the security headers (a strict Content-Security-Policy among them), form parsing and the
session checks of a state-changing request (see :mod:`csms.web.routes` for the pages)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import escape

from csms.api.errors import ApiError

from . import session
from .fleet import FleetHub
from .session import ConsoleUser

log = structlog.get_logger("csms.web")

HERE = Path(__file__).parent
PREFIX = "/console"
MAX_FORM_BYTES = 64 * 1024

env = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def path_segment(value: Any) -> str:
    """A value as one URL path segment (station and event ids may hold any printable character)."""
    return quote(str(value), safe="")


def _kw(value: Any, digits: int = 1) -> str:
    return "-" if value is None else f"{float(value):.{digits}f}"


def _pct(value: Any) -> str:
    return "n/a" if value is None else f"{100 * float(value):.1f} %"


def _ts(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S") + "Z"


env.filters.update(seg=path_segment, kw=_kw, pct=_pct, ts=_ts)

router = APIRouter(prefix=PREFIX, include_in_schema=False)

HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def render(name: str, request: Request, status: int = 200, **context: Any) -> HTMLResponse:
    ctx = request.app.state.ctx
    context.setdefault("now", ctx.central.now())
    html = env.get_template(name).render(prefix=PREFIX, request=request, **context)
    return HTMLResponse(html, status_code=status, headers=HEADERS)


def hub(request: Request) -> FleetHub:
    state = request.app.state
    h = getattr(state, "console_hub", None)
    if h is None:
        h = state.console_hub = FleetHub(state.ctx.central)
    return h  # type: ignore[no-any-return]


async def read_form(request: Request) -> dict[str, str]:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise ApiError(413, "too_large", "form too large")
    if ctype != "application/x-www-form-urlencoded":
        return {}
    return dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))


def login_redirect(request: Request) -> RedirectResponse:
    nxt = request.url.path
    if request.url.query:
        nxt += "?" + request.url.query
    return RedirectResponse(f"{PREFIX}/login?next={quote(nxt, safe='')}", status_code=303)


async def page_user(request: Request) -> ConsoleUser | None:
    return await session.current_user(request)


def forbidden(message: str) -> HTMLResponse:
    return HTMLResponse(f"<p class='error'>{esc(message)}</p>", status_code=403, headers=HEADERS)


def esc(text: str) -> str:
    return str(escape(text))


async def post_user(request: Request, form: dict[str, str], scope: str = "operator") -> ConsoleUser | Response:
    """The user of a state-changing request, or the 401/403 to answer: CSRF first, then scope."""
    user = await session.current_user(request)
    if user is None:
        return HTMLResponse("<p class='error'>signed out: sign in again</p>", status_code=401, headers=HEADERS)
    if not session.csrf_ok(request, user, form.get("csrf")):
        return forbidden("CSRF check failed: reload the page and try again")
    if scope == "operator" and not user.can_command:
        return forbidden(f"token '{user.name}' has scope '{user.scope}'; this needs scope 'operator'")
    return user
