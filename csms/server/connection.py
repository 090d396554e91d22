"""OCPP-J WebSocket handshake (OCPP-J Part 4, section 3) on ``websockets``.

- Station id: last path segment, percent-decoded, 1-48 characters, no ``:``.
- Subprotocol: the first of the station's offered protocols (its order of preference)
  that we support. With none acceptable the handshake completes without
  ``Sec-WebSocket-Protocol`` and the server closes right after (not an HTTP 400).
- Security profiles 1 and 2: HTTP Basic, username = station id; wrong or missing
  credentials -> 401. Unknown station -> 404 unless auto-registration is on.
- Security profile 3: no HTTP Basic; the TLS layer has already verified the station's client
  certificate against ``security.tls_client_ca_file`` (no or untrusted certificate -> the TLS
  handshake fails). Its subject commonName must equal the station id, else 401. Unknown
  station -> 404 unless auto-registration is on.
- The registry is looked up in the database when the id is not in the CSMS's cache, so a
  station registered by another process is served at once. A station blocked by the operator
  gets 403 (after its credentials checked out); a database that cannot answer, 503.
"""

from __future__ import annotations

import http
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable
from urllib.parse import unquote, urlsplit

from websockets.asyncio.server import ServerConnection
from websockets.http11 import Request, Response

from csms.config import Settings

from .credentials import parse_basic_auth
from .tls import subject_common_name

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


def station_id_problem(identity: str) -> str | None:
    """Why ``identity`` cannot be registered as a station id (None when it can): what a station
    can present in its URL, without control characters."""
    if not 1 <= len(identity) <= MAX_ID_LEN:
        return f"must be 1-{MAX_ID_LEN} characters (got {len(identity)})"
    if ":" in identity or "/" in identity:
        return "must not contain ':' or '/'"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in identity):
        return "must not contain control characters"
    return None


def select_subprotocol(connection: ServerConnection, offered: Sequence[str]) -> str | None:
    """Pick by the station's order of preference; None completes the handshake without one."""
    for proto in offered:
        if proto in VERSION_OF:
            return proto
    return None


def peer_certificate(connection: ServerConnection) -> dict[str, Any] | None:
    """The client certificate the TLS layer verified (None on plain ws:// or without one)."""
    cert = connection.transport.get_extra_info("peercert")
    return cert or None


@runtime_checkable
class Admission(Protocol):
    """The handshake decisions (:class:`csms.central.CentralSystem` makes them): "ok", "unknown",
    "unauthorized", "blocked" or "unavailable"."""

    settings: Settings

    async def admit(self, station_id: str, creds: tuple[str, str] | None) -> str: ...

    async def admit_certificate(self, station_id: str, common_name: str | None) -> str: ...


def make_process_request(central: Admission):
    client_certs = central.settings.security.profile == 3

    async def process_request(connection: ServerConnection, request: Request) -> Response | None:
        identity = station_id_from_path(request.path)
        if identity is None:
            return connection.respond(http.HTTPStatus.BAD_REQUEST, "station id must be 1-48 characters without ':'\n")
        if client_certs:
            verdict = await central.admit_certificate(identity, subject_common_name(peer_certificate(connection)))
        else:
            verdict = await central.admit(identity, parse_basic_auth(request.headers.get("Authorization")))
        if verdict == "ok":
            connection.station_id = identity  # type: ignore[attr-defined]
            return None
        if verdict == "unknown":
            return connection.respond(http.HTTPStatus.NOT_FOUND, f"unknown station {identity}\n")
        if verdict == "blocked":
            return connection.respond(
                http.HTTPStatus.FORBIDDEN, f"station {identity} is blocked by the operator of this CSMS\n"
            )
        if verdict == "unavailable":
            response = connection.respond(
                http.HTTPStatus.SERVICE_UNAVAILABLE, "station registry unavailable; retry later\n"
            )
            response.headers["Retry-After"] = "10"
            return response
        if client_certs:
            return connection.respond(
                http.HTTPStatus.UNAUTHORIZED, "client certificate commonName does not match the station id\n"
            )
        response = connection.respond(http.HTTPStatus.UNAUTHORIZED, "invalid credentials\n")
        response.headers["WWW-Authenticate"] = 'Basic realm="csms", charset="UTF-8"'
        return response

    return process_request
