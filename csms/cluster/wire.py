"""What nodes send each other: forwarded calls, their answers (typed errors included) and
station events. Pure functions over bytes; no broker in here."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import orjson

from csms.central import StationOffline, UnknownStation
from csms.ocpp.errors import (
    CallErrorReceived,
    CallTimeout,
    ConnectionLost,
    ErrorCode,
    InvalidPayload,
    NotAllowed,
    OcppError,
)

_PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]{1,200}")


def station_key(station_id: str) -> str:
    """A NATS KV key for a station id (KV keys allow only ``[-/_=.a-zA-Z0-9]``)."""
    if _PLAIN_KEY.fullmatch(station_id):
        return "s." + station_id
    return "h." + station_id.encode().hex()


def station_of_key(key: str) -> str:
    kind, _, rest = key.partition(".")
    return rest if kind == "s" else bytes.fromhex(rest).decode()


def _default(obj: Any) -> Any:
    dump = getattr(obj, "model_dump", None)
    if dump is not None:
        return dump(mode="json")
    return str(obj)


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, default=_default, option=orjson.OPT_NON_STR_KEYS)


def loads(data: bytes) -> Any:
    return orjson.loads(data)


# ---------------------------------------------------------------- forwarded calls
def call_request(station_id: str, action: str, payload: dict[str, Any], timeout: float | None) -> bytes:
    return dumps({"station": station_id, "action": action, "payload": payload, "timeout": timeout})


def call_result(response: dict[str, Any]) -> bytes:
    return dumps({"ok": response})


def call_failure(exc: Exception) -> bytes:
    """The answer for a call that raised: the exception's type and the fields to rebuild it."""
    fields: dict[str, Any]
    match exc:
        case StationOffline() | UnknownStation():
            fields = {"station_id": exc.station_id}
        case CallTimeout():
            fields = {"action": exc.action, "timeout": exc.timeout}
        case CallErrorReceived():
            fields = {"action": exc.action, "code": exc.code, "description": exc.description, "details": exc.details}
        case InvalidPayload():
            fields = {
                "action": exc.action,
                "code": str(exc.code),
                "message": exc.message,
                "path": exc.path,
                "request": exc.request,
            }
        case NotAllowed() | ConnectionLost():
            fields = {"message": str(exc)}
        case _:
            return dumps({"error": "InternalError", "fields": {"message": f"{type(exc).__name__}: {exc}"}})
    return dumps({"error": type(exc).__name__, "fields": fields})


class RemoteError(OcppError):
    """The other node failed in a way that has no typed counterpart (a bug there): logged, and
    reported to the caller as an internal error."""


def call_outcome(data: bytes) -> dict[str, Any]:
    """The station's response, or raise the error the serving node raised."""
    msg = loads(data)
    if "ok" in msg:
        return dict(msg["ok"])
    kind, f = msg.get("error"), msg.get("fields") or {}
    match kind:
        case "StationOffline":
            raise StationOffline(f["station_id"])
        case "UnknownStation":
            raise UnknownStation(f["station_id"])
        case "CallTimeout":
            raise CallTimeout(f["action"], float(f["timeout"]))
        case "CallErrorReceived":
            raise CallErrorReceived(f["action"], f["code"], f["description"], f["details"] or {})
        case "InvalidPayload":
            raise InvalidPayload(
                f["action"],
                ErrorCode(f["code"]),
                f["message"],
                path=f.get("path") or "",
                request=bool(f.get("request")),
            )
        case "NotAllowed":
            raise NotAllowed(f["message"])
        case "ConnectionLost":
            raise ConnectionLost(f["message"])
    raise RemoteError(str(f.get("message") or kind))


# ---------------------------------------------------------------- station events
def event(node: str, kind: str, station_id: str, data: dict[str, Any]) -> bytes:
    return dumps({"node": node, "kind": kind, "station": station_id, "data": data})


_TIME_KEYS = ("at", "timestamp", "connected_since")


def event_of(data: bytes) -> tuple[str, str, str, dict[str, Any]]:
    """(node, kind, station_id, data) with the timestamps as aware datetimes again."""
    msg = loads(data)
    body = dict(msg.get("data") or {})
    for key in _TIME_KEYS:
        value = body.get(key)
        if isinstance(value, str):
            try:
                body[key] = datetime.fromisoformat(value)
            except ValueError:
                pass
    return msg["node"], msg["kind"], msg["station"], body
