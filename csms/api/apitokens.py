"""API tokens without web dependencies (the admin CLI issues them; :mod:`csms.api.auth` checks them).

A token is ``csms_`` + 32 random bytes (URL-safe base64). Only its SHA-256 is stored: with 256
bits of entropy a fast digest is as safe as a slow password hash and can be looked up directly.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from csms.store.repository import Store
    from csms.store.rows import ApiTokenRow

TOKEN_PREFIX = "csms_"
SCOPES = ("read", "operator", "admin")
RANK = {"read": 1, "operator": 2, "admin": 3}


def generate_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


async def issue_token(store: Store, name: str, scope: str) -> tuple[str, ApiTokenRow]:
    """Create a token; returns ``(plain token, stored row)``. The plain token is not kept."""
    if scope not in RANK:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)} (got {scope!r})")
    if not name or len(name) > 128:
        raise ValueError("token name must be 1-128 characters")
    token = generate_token()
    row = await store.add_api_token(name, hash_token(token), scope)
    return token, row
