"""Sign-in and sign-out (:mod:`csms.web.session` holds the cookie and CSRF rules)."""

from __future__ import annotations

import structlog
from fastapi import Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from csms.api.apitokens import hash_token

from . import session
from .pages import (
    PREFIX,
    forbidden,
    read_form,
    render,
    router,
)

log = structlog.get_logger("csms.web")


# ---------------------------------------------------------------------------- sign-in
def _login_response(request: Request, nxt: str, error: str | None = None, status: int = 200) -> HTMLResponse:
    nonce = session.login_nonce(request)
    resp = render("login.html", request, status=status, next=_safe_next(nxt), error=error, nonce=nonce)
    session.set_login_cookie(resp, request, nonce)
    return resp


def _safe_next(nxt: str) -> str:
    return nxt if nxt.startswith(PREFIX + "/") and not nxt.startswith("//") and "\\" not in nxt else PREFIX + "/"


def _client(request: Request) -> str | None:
    return request.client.host if request.client is not None else None


@router.get("/login")
async def login_page(request: Request, next: str = "") -> HTMLResponse:
    return _login_response(request, next)


@router.post("/login")
async def login(request: Request) -> Response:
    form = await read_form(request)
    if not session.login_ok(request, form.get("nonce")):
        return _login_response(request, form.get("next", ""), "the sign-in form expired; try again", 403)
    token = form.get("token", "").strip()
    store = request.app.state.ctx.central.store
    row = await store.find_api_token_by_hash(hash_token(token)) if token and store is not None else None
    if row is None:
        log.warning("console sign-in refused: unknown or revoked token", client=_client(request))
        return _login_response(request, form.get("next", ""), "unknown or revoked API token", 401)
    resp = RedirectResponse(_safe_next(form.get("next", "")), status_code=303)
    session.set_session(resp, request, token)
    log.info("console sign-in", token=row.name, scope=row.scope)
    return resp


@router.post("/logout")
async def logout(request: Request) -> Response:
    form = await read_form(request)
    user = await session.current_user(request)
    if user is not None and not session.csrf_ok(request, user, form.get("csrf")):
        return forbidden("CSRF check failed")
    resp = RedirectResponse(f"{PREFIX}/login", status_code=303)
    session.clear_session(resp)
    return resp
