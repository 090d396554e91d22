"""Sending one station command: :func:`execute` maps every failure onto the API's error codes.

The table of those codes is in :mod:`csms.api.commands`. Also here: the ``timeout`` query
parameter the command routes share, and keeping ``central.charging``'s installed profiles in step
with what operator commands changed.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import orjson
import structlog
from fastapi import Query

from csms.central import StationOffline, UnknownStation
from csms.clock import to_rfc3339
from csms.ocpp.errors import CallErrorReceived, CallTimeout, ConnectionLost, InvalidPayload, NotAllowed

from .command_bodies import ClearChargingProfileBody
from .context import ApiContext
from .errors import ApiError
from .models import CommandResult

log = structlog.get_logger("csms.api")

Timeout = Annotated[
    float | None,
    Query(ge=0.1, le=300, description="seconds to wait for the station's answer (default: server.call_timeout)"),
]


def _offline(ctx: ApiContext, station_id: str, message: str | None = None) -> ApiError:
    state = ctx.central.states.get(station_id)
    last_seen = state.last_seen if state is not None else None
    seen = f" (last seen {to_rfc3339(last_seen)})" if last_seen is not None else " (never connected)"
    return ApiError(
        409,
        "station_offline",
        message or f"station {station_id} is offline{seen}; commands work again once it reconnects",
        {"station_id": station_id, "last_seen": to_rfc3339(last_seen) if last_seen else None},
    )


def invalid_request(exc: InvalidPayload, version: str | None) -> ApiError:
    """422 for a request the station's RPC endpoint refused before sending it (the one schema
    validation of an outbound request), naming the field."""
    return ApiError(
        422,
        "invalid_payload",
        f"{exc.action} request breaks the OCPP {version} schema at '{exc.path}': {exc.message}",
        {"field": exc.path, "ocpp_code": str(exc.code), "action": exc.action, "ocpp_version": version},
    )


async def execute(
    ctx: ApiContext, station_id: str, action: str, payload: dict[str, Any], timeout: float | None = None
) -> CommandResult:
    """Send one OCPP CALL and map every failure onto the API's error codes."""
    central = ctx.central
    version = await central.locate(station_id)  # here or, in cluster mode, on another node
    if version is None:
        if not central.known(station_id) and await ctx.store.get_station(station_id) is None:
            raise ctx.unknown_station(station_id)
        raise _offline(ctx, station_id)
    # validated against the negotiated version's schema and encoded once, by the station's RPC
    # endpoint (here or on the node holding the station); a bad request fails before it is sent
    started = time.perf_counter()
    try:
        response = await central.call(station_id, action, payload, timeout=timeout)
    except orjson.JSONEncodeError as exc:
        raise ApiError(422, "invalid_payload", f"{action}: cannot encode the request: {exc}") from None
    except InvalidPayload as exc:
        if not exc.request:
            raise ApiError(
                502,
                "station_bad_response",
                f"station {station_id} answered {action} with a payload that breaks the schema: {exc.message}",
                {"action": action, "ocpp_code": str(exc.code)},
            ) from None
        raise invalid_request(exc, version) from None
    except UnknownStation:
        raise ctx.unknown_station(station_id) from None
    except StationOffline:
        raise _offline(ctx, station_id) from None
    except ConnectionLost:
        raise _offline(ctx, station_id, f"station {station_id} disconnected before answering {action}") from None
    except NotAllowed as exc:
        boot = central.state(station_id).boot.value
        raise ApiError(
            409,
            "not_allowed",
            f"{exc}; accept the station first (boot policy) or wait for its boot to be Accepted",
            {"action": action, "boot": boot},
        ) from None
    except CallTimeout as exc:
        raise ApiError(
            504,
            "station_timeout",
            f"station {station_id} did not answer {action} within {exc.timeout:g} s",
            {"action": action, "timeout_s": exc.timeout},
        ) from None
    except CallErrorReceived as exc:
        raise ApiError(
            502,
            "station_callerror",
            f"station {station_id} answered {action} with CALLERROR {exc.code}: "
            f"{exc.description or '(no description)'}",
            {"action": action, "ocpp_code": exc.code, "description": exc.description, "ocpp_details": exc.details},
        ) from None
    ms = (time.perf_counter() - started) * 1000
    status = response.get("status") if isinstance(response.get("status"), str) else None
    log.info("command", station=station_id, action=action, status=status, ms=round(ms, 1))
    return CommandResult(
        station_id=station_id,
        action=action,
        ocpp_version=version,
        request=payload,
        response=response,
        status=status,
        duration_ms=round(ms, 3),
    )


def _accepted(result: CommandResult) -> bool:
    return result.status == "Accepted"


def _sync_installed(
    ctx: ApiContext,
    station_id: str,
    *,
    set_request: dict[str, Any] | None = None,
    clear: ClearChargingProfileBody | None = None,
) -> None:
    """Keep the smart-charging layer's in-memory list of installed profiles (``central.charging``,
    used for K01 checks when dispatch builds profiles) in step with what an operator changed."""
    charging = getattr(ctx.central, "charging", None)
    installed = getattr(charging, "installed", None)
    if not isinstance(installed, dict):
        return
    current = list(installed.get(station_id, []))
    if set_request is not None:
        from csms.smartcharging.k01 import apply_set_charging_profile

        installed[station_id] = apply_set_charging_profile(set_request, current)
    elif clear is not None:

        def cleared(p: Any) -> bool:
            prof = p.profile
            if clear.charging_profile_id is not None:
                return bool(prof.id == clear.charging_profile_id)
            return (
                (clear.evse_id is None or p.evse_id == clear.evse_id)
                and (clear.purpose is None or str(prof.purpose) == clear.purpose)
                and (clear.stack_level is None or prof.stack_level == clear.stack_level)
            )

        installed[station_id] = [p for p in current if not cleared(p)]
