"""Console sign-in: an API token becomes an HttpOnly, SameSite=Strict session cookie.

The cookie carries the API token itself, so any CSMS node that shares the database accepts it
(cluster mode needs no shared session store or signing key) and revoking the token
(``csms admin token revoke``) signs the browser out on its next request. JavaScript never sees
it (HttpOnly); other sites never send it (SameSite=Strict); it is ``Secure`` whenever the
console is reached over HTTPS.

CSRF: every state-changing request (POST) must carry the session's CSRF token, in the
``X-CSRF-Token`` header (htmx sends it on every request, see ``base.html``) or in a ``csrf``
form field. The token is ``HMAC-SHA256(api token, "csms-console-csrf")``: a page of the console
can read it, another origin cannot compute it without the API token. A request whose ``Origin``
header names another origin is refused too. The sign-in form itself is protected by a
double-submit token (a random cookie echoed in the form), so a hostile page cannot sign a
browser in under the attacker's token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import Response

from csms.api.apitokens import RANK, hash_token
from csms.api.auth import Principal

COOKIE = "csms_console"
LOGIN_COOKIE = "csms_console_login"
COOKIE_PATH = "/console"
MAX_AGE_S = 12 * 3600
_CSRF_MSG = b"csms-console-csrf"


@dataclass(frozen=True, slots=True)
class ConsoleUser:
    """The signed-in operator: the API token's name and scope, and the page's CSRF token."""

    name: str
    scope: str
    csrf: str

    @property
    def can_command(self) -> bool:
        return RANK.get(self.scope, 0) >= RANK["operator"]

    def principal(self) -> Principal:
        return Principal(self.name, self.scope)


def csrf_token(api_token: str) -> str:
    return hmac.new(api_token.encode("utf-8", "surrogatepass"), _CSRF_MSG, hashlib.sha256).hexdigest()


async def current_user(request: Request) -> ConsoleUser | None:
    """The user of the session cookie, or None (no cookie, unknown or revoked token)."""
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    store = request.app.state.ctx.central.store
    if store is None:
        return None
    row = await store.find_api_token_by_hash(hash_token(token))
    if row is None:
        return None
    return ConsoleUser(row.name, row.scope, csrf_token(token))


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def set_session(response: Response, request: Request, api_token: str) -> None:
    response.set_cookie(
        COOKIE,
        api_token,
        max_age=MAX_AGE_S,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    response.delete_cookie(LOGIN_COOKIE, path=COOKIE_PATH)


def clear_session(response: Response) -> None:
    response.delete_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")


def login_nonce(request: Request) -> str:
    """The double-submit token of the sign-in form (reused while its cookie lives)."""
    return request.cookies.get(LOGIN_COOKIE) or secrets.token_urlsafe(24)


def set_login_cookie(response: Response, request: Request, nonce: str) -> None:
    response.set_cookie(
        LOGIN_COOKIE, nonce, max_age=3600, path=COOKIE_PATH, httponly=True, samesite="strict", secure=_secure(request)
    )


def same_origin(request: Request) -> bool:
    """False when the browser says the request comes from another origin (Origin, else Referer)."""
    origin = request.headers.get("origin") or request.headers.get("referer")
    if not origin or origin == "null":
        return origin != "null"
    parts = urlsplit(origin)
    host = request.headers.get("host", "")
    return parts.netloc == host


def csrf_ok(request: Request, user: ConsoleUser, form_token: str | None) -> bool:
    sent = request.headers.get("x-csrf-token") or form_token or ""
    return same_origin(request) and hmac.compare_digest(sent.encode(), user.csrf.encode())


def login_ok(request: Request, form_nonce: str | None) -> bool:
    cookie = request.cookies.get(LOGIN_COOKIE) or ""
    sent = form_nonce or ""
    return bool(cookie) and same_origin(request) and hmac.compare_digest(cookie.encode(), sent.encode())
