"""Bearer-token authentication with two scopes.

Tokens are issued by ``csms admin token create NAME --scope read|operator|admin``, which prints the
token once. The database keeps only ``sha256(token)``: a token is 32 random bytes from
:mod:`secrets` (256 bits), so nobody can brute-force it from its hash and a slow password hash
(PBKDF2, bcrypt) would add nothing but latency on every request. A plain digest also lets the
API find the token with one indexed lookup; comparing digests rather than tokens means the
lookup leaks no timing information about the secret.

Scopes are ordered: ``read`` (every GET) < ``operator`` (commands and writes) < ``admin``
(everything an operator may do, and the station registry: register, block, remove stations).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from .apitokens import RANK, hash_token
from .errors import ApiError

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearer",
    description="API token from `csms admin token create NAME --scope read|operator|admin`",
)


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    scope: str

    def allows(self, scope: str) -> bool:
        return RANK.get(self.scope, 0) >= RANK[scope]


_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="csms"'}


def require(scope: str) -> Callable[..., Awaitable[Principal]]:
    """Dependency: a valid token with at least ``scope``; 401 / 403 JSON errors otherwise."""

    async def dependency(
        request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)
    ) -> Principal:
        if credentials is None or not credentials.credentials:
            raise ApiError(
                401,
                "unauthorized",
                "missing bearer token: send 'Authorization: Bearer <token>' "
                "(tokens come from `csms admin token create`)",
                headers=_CHALLENGE,
            )
        store = request.app.state.ctx.store
        row = await store.find_api_token_by_hash(hash_token(credentials.credentials))
        if row is None:
            raise ApiError(
                401,
                "unauthorized",
                "invalid or revoked API token; ask an administrator for a new one",
                headers={"WWW-Authenticate": 'Bearer realm="csms", error="invalid_token"'},
            )
        principal = Principal(row.name, row.scope)
        if not principal.allows(scope):
            raise ApiError(
                403,
                "forbidden",
                f"token '{row.name}' has scope '{row.scope}'; this needs scope '{scope}'",
                {"token": row.name, "scope": row.scope, "required_scope": scope},
            )
        request.state.principal = principal
        return principal

    dependency.__name__ = f"require_{scope}"
    return dependency


require_read = require("read")
require_operator = require("operator")


async def require_by_method(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)
) -> Principal:
    """read scope for GET/HEAD, operator scope for every other method (routers mounted as-is)."""
    check = require_read if request.method in ("GET", "HEAD", "OPTIONS") else require_operator
    return await check(request, credentials)
