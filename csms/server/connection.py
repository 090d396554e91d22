"""OCPP-J WebSocket handshake (OCPP-J Part 4, section 3) on ``websockets``.

- Station id: last path segment, percent-decoded, 1-48 characters, no ``:``.
- Subprotocol: the first of the station's offered protocols (its order of preference)
  that we support. With none acceptable the handshake completes without
  ``Sec-WebSocket-Protocol`` and the server closes right after (not an HTTP 400).
- Security profiles 1 and 2: HTTP Basic, username = station id; wrong or missing
  credentials -> 401. Unknown station -> 404 unless auto-registration is on.
"""

from __future__ import annotations

import http
from collections.abc import Sequence
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from .credentials import parse_basic_auth

if TYPE_CHECKING:
    from csms.central import CentralSystem

SUPPORTED_SUBPROTOCOLS = ("ocpp2.1", "ocpp2.0.1")
VERSION_OF = {"ocpp2.1": "2.1", "ocpp2.0.1": "2.0.1"}
MAX_ID_LEN = 48


def station_id_from_path(path: str) -> str | None:
    """Return the percent-decoded last path segment, or None when it is not a valid id."""
    segment = urlsplit(path).path.rstrip("/").rsplit("/", 1)[-1]
    identity = unquote(segment)
    if not identity or len(identity) > MAX_ID_LEN or ":" in identity or "/" in identity:
        return None
    return identity


def select_subprotocol(connection: ServerConnection, offered: Sequence[str]) -> str | None:
    """Pick by the station's order of preference; None completes the handshake without one."""
    for proto in offered:
        if proto in VERSION_OF:
            return proto
    return None


def make_process_request(central: CentralSystem):
    async def process_request(connection: ServerConnection, request: Request) -> Response | None:
        identity = station_id_from_path(request.path)
        if identity is None:
            return connection.respond(http.HTTPStatus.BAD_REQUEST, "station id must be 1-48 characters without ':'\n")
        creds = parse_basic_auth(request.headers.get("Authorization"))
        verdict = await central.admit(identity, creds)
        if verdict == "ok":
            connection.station_id = identity  # type: ignore[attr-defined]
            return None
        if verdict == "unknown":
            return connection.respond(http.HTTPStatus.NOT_FOUND, f"unknown station {identity}\n")
        response = connection.respond(http.HTTPStatus.UNAUTHORIZED, "invalid credentials\n")
        response.headers["WWW-Authenticate"] = 'Basic realm="csms", charset="UTF-8"'
        return response

    return process_request
