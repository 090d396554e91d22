"""Local Authorization List (D), authorization cache (C) and reservations (H) (operator scope
for writes, read scope for reads).

- ``GET/PUT/DELETE /api/v1/local-list...``: the CSMS's list; every change gets the next version
  and is pushed to the connected stations (``push=false`` to only record it);
- ``GET /api/v1/stations/{id}/local-list``, ``POST .../local-list/sync``: a station's version,
  bring it up to date (Differential when possible, else Full; ``full=true`` forces Full);
- ``POST .../commands/GetLocalListVersion | SendLocalList | ClearCache``: the raw OCPP commands;
- ``POST /api/v1/stations/{id}/reservations``: ReserveNow (``evse_id`` omitted = any EVSE);
  ``GET /api/v1/reservations``, ``GET/DELETE /api/v1/reservations/{id}`` (DELETE = CancelReservation).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from csms.blocks.local_auth_list import LocalAuthList, id_token_info
from csms.blocks.reservation import Reservations
from csms.central import StationOffline, UnknownStation
from csms.clock import to_rfc3339
from csms.ocpp.errors import CallErrorReceived, CallTimeout, ConnectionLost, InvalidPayload, NotAllowed, OcppError
from csms.ocpp.schemas import enum_values
from csms.store import operations as ops

from ..auth import require_operator, require_read
from ..command_execution import Timeout, _offline, execute, invalid_request
from ..context import ApiContext, get_ctx
from ..errors import ApiError, error_responses
from ..models import CommandResult
from ..params import Limit, Offset, StationId, Text, utc
from .tokens import AuthorizationStatus

router = APIRouter(prefix="/api/v1", responses=error_responses(400, 401, 403, 404, 409, 422, 502, 504))
Ctx = Annotated[ApiContext, Depends(get_ctx)]
READ = [Depends(require_read)]
WRITE = [Depends(require_operator)]

TokenValue = Annotated[Text, Field(min_length=1, max_length=255)]
TokenType = Annotated[Text, Field(min_length=1, max_length=20, examples=["ISO14443"])]


# ---------------------------------------------------------------------------- models
class LocalListEntryIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id_token: TokenValue
    type: TokenType = "ISO14443"
    status: AuthorizationStatus | None = Field(
        None, description="default: the CSMS id token's status (Accepted when the CSMS does not know the token)"
    )
    cache_expiry: AwareDatetime | None = Field(None, description="idTokenInfo.cacheExpiryDateTime")
    group_id: Annotated[Text, Field(min_length=1, max_length=255)] | None = Field(
        None, description="idTokenInfo.groupIdToken (default: the CSMS id token's group)"
    )


class LocalListPut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entries: list[LocalListEntryIn] = Field(min_length=1, max_length=10_000)


class LocalListEntryOut(BaseModel):
    id_token: str
    type: str
    id_token_info: dict[str, Any] | None = None
    version: int
    deleted: bool = False


class LocalListOut(BaseModel):
    version: int = Field(description="the list's version (0: never set)")
    entries: list[LocalListEntryOut]


class LocalListChange(BaseModel):
    version: int
    changed: int
    pushed_to: list[str] = Field(description="connected stations being brought up to date")


class StationLocalList(BaseModel):
    station_id: str
    csms_version: int
    station_version: int | None = Field(None, description="last version the station confirmed")
    status: str | None = Field(None, description="outcome of the last synchronisation")


class SyncResult(BaseModel):
    station_id: str
    result: str = Field(description="UpToDate, Accepted, Failed, VersionMismatch, NotSupported, NoList")
    station_version: int | None = None
    csms_version: int
    sent: list[dict[str, Any]] = []


class SendLocalListBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version_number: Annotated[int, Field(ge=1, le=2**31 - 1)] = Field(description="> 0 (D01.FR.18)")
    update_type: Literal[enum_values("2.1", "SendLocalListRequest", "UpdateEnumType")]  # type: ignore[valid-type]
    local_authorization_list: list[dict[str, Any]] | None = Field(
        None, description="OCPP AuthorizationData list, wire form (camelCase)"
    )

    def to_ocpp(self) -> dict[str, Any]:
        out: dict[str, Any] = {"versionNumber": self.version_number, "updateType": self.update_type}
        if self.local_authorization_list:
            out["localAuthorizationList"] = self.local_authorization_list
        return out


class EmptyBody(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReservationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id_token: TokenValue
    id_token_type: TokenType = "ISO14443"
    evse_id: Annotated[int, Field(ge=1, le=2**31 - 1)] | None = Field(None, description="omit: any EVSE (H01)")
    connector_type: Annotated[Text, Field(max_length=20)] | None = Field(None, description="e.g. cCCS2, cType2")
    group_id: Annotated[Text, Field(min_length=1, max_length=255)] | None = None
    expires_at: AwareDatetime | None = Field(None, description="expiryDateTime (default: now + duration_s)")
    duration_s: Annotated[int, Field(ge=1, le=7 * 86400)] = 1800


ReservationOut = ops.ReservationRow  # the stored row is the answer, field for field


class ReservationResult(BaseModel):
    reservation: ReservationOut | None
    command: CommandResult


# ---------------------------------------------------------------------------- helpers
def _entry_out(row: ops.LocalListEntryRow) -> LocalListEntryOut:
    return LocalListEntryOut(
        id_token=row.id_token, type=row.type, id_token_info=row.id_token_info, version=row.version, deleted=row.deleted
    )


async def _station_call(ctx: ApiContext, station_id: str, what: Callable[[], Awaitable[Any]]) -> Any:
    """Run a multi-call operation on one station, mapping failures as the commands do (a request
    that breaks the schema is refused by the station's RPC endpoint before it is sent: 422)."""
    central = ctx.central
    if not central.reachable(station_id):  # here or on another node (cluster mode)
        if not central.known(station_id) and await ctx.store.get_station(station_id) is None:
            raise ctx.unknown_station(station_id)
        raise _offline(ctx, station_id)
    try:
        return await what()
    except UnknownStation:
        raise ctx.unknown_station(station_id) from None
    except (StationOffline, ConnectionLost):
        raise _offline(ctx, station_id) from None
    except NotAllowed as exc:
        raise ApiError(409, "not_allowed", str(exc)) from None
    except CallTimeout as exc:
        raise ApiError(
            504, "station_timeout", f"station {station_id} did not answer within {exc.timeout:g} s"
        ) from None
    except CallErrorReceived as exc:
        raise ApiError(
            502, "station_callerror", f"station {station_id} answered CALLERROR {exc.code}", {"ocpp_code": exc.code}
        ) from None
    except InvalidPayload as exc:
        if not exc.request:
            raise ApiError(502, "station_bad_response", str(exc)) from None
        raise invalid_request(exc, await central.locate(station_id)) from None
    except OcppError as exc:
        raise ApiError(502, "station_bad_response", str(exc)) from None


# ---------------------------------------------------------------------------- local list
@router.get("/local-list", response_model=LocalListOut, dependencies=READ, tags=["local list"], summary="The list")
async def get_local_list(ctx: Ctx) -> LocalListOut:
    rows = await ops.local_list_entries(ctx.store)
    return LocalListOut(version=await ops.local_list_version(ctx.store), entries=[_entry_out(r) for r in rows])


@router.put(
    "/local-list/entries",
    response_model=LocalListChange,
    dependencies=WRITE,
    tags=["local list"],
    summary="Add or replace entries (one new version); pushed to the connected stations",
)
async def put_local_list_entries(
    ctx: Ctx, body: LocalListPut, push: Annotated[bool, Query(description="push to connected stations")] = True
) -> LocalListChange:
    keys = [(e.type, e.id_token) for e in body.entries]
    if len(set(keys)) != len(keys):  # D01.FR.06
        raise ApiError(422, "validation_error", "a token appears twice in entries (D01.FR.06)")
    entries = []
    for e in body.entries:
        row = await ctx.store.get_id_token(e.id_token, e.type)
        info = id_token_info(row, e.status)
        expiry = utc(e.cache_expiry, "cache_expiry")
        if expiry is not None:
            info["cacheExpiryDateTime"] = to_rfc3339(expiry)
        if e.group_id:
            info["groupIdToken"] = {"idToken": e.group_id, "type": "Central"}
        entries.append((e.id_token, e.type, info))
    lal = LocalAuthList.of(ctx.central)
    version = await lal.put(entries, push=False)
    pushed = lal.push_all() if push else []
    return LocalListChange(version=version, changed=len(entries), pushed_to=pushed)


@router.delete(
    "/local-list/entries/{token_type}/{id_token}",
    response_model=LocalListChange,
    dependencies=WRITE,
    tags=["local list"],
    summary="Remove an entry (one new version); pushed to the connected stations",
)
async def delete_local_list_entry(
    ctx: Ctx,
    token_type: Annotated[str, Path(min_length=1, max_length=20)],
    id_token: Annotated[str, Path(min_length=1, max_length=255)],
    push: Annotated[bool, Query()] = True,
) -> LocalListChange:
    lal = LocalAuthList.of(ctx.central)
    version, removed = await lal.remove([(id_token, token_type)], push=False)
    if not removed:
        raise ApiError(404, "not_found", f"{token_type}/{id_token} is not on the local list")
    pushed = lal.push_all() if push else []
    return LocalListChange(version=version, changed=removed, pushed_to=pushed)


@router.get(
    "/stations/{station_id}/local-list",
    response_model=StationLocalList,
    dependencies=READ,
    tags=["local list"],
    summary="The list version a station last confirmed",
)
async def station_local_list(ctx: Ctx, station_id: StationId) -> StationLocalList:
    await ctx.require_station(station_id)
    row = await ops.local_list_station(ctx.store, station_id)
    return StationLocalList(
        station_id=station_id,
        csms_version=await ops.local_list_version(ctx.store),
        station_version=row.version if row else None,
        status=row.status if row else None,
    )


@router.post(
    "/stations/{station_id}/local-list/sync",
    response_model=SyncResult,
    dependencies=WRITE,
    tags=["local list"],
    summary="GetLocalListVersion, then SendLocalList (Differential when possible, else Full)",
)
async def sync_local_list(ctx: Ctx, station_id: StationId, full: Annotated[bool, Query()] = False) -> SyncResult:
    done = await _station_call(ctx, station_id, lambda: LocalAuthList.of(ctx.central).sync(station_id, full=full))
    return SyncResult(station_id=station_id, **done)


@router.post(
    "/stations/{station_id}/commands/GetLocalListVersion",
    response_model=CommandResult,
    dependencies=WRITE,
    tags=["commands"],
    summary="GetLocalListVersion: the station's list version (0: no list)",
)
async def get_local_list_version(
    ctx: Ctx, station_id: StationId, body: EmptyBody | None = None, timeout: Timeout = None
) -> CommandResult:
    return await execute(ctx, station_id, "GetLocalListVersion", {}, timeout)


@router.post(
    "/stations/{station_id}/commands/SendLocalList",
    response_model=CommandResult,
    dependencies=WRITE,
    tags=["commands"],
    summary="SendLocalList as given (the CSMS records the version when Accepted)",
)
async def send_local_list(
    ctx: Ctx, station_id: StationId, body: SendLocalListBody, timeout: Timeout = None
) -> CommandResult:
    entries = body.local_authorization_list or []
    keys = [(e.get("idToken") or {}).get("idToken") for e in entries]
    if len(set(keys)) != len(keys):
        raise ApiError(422, "validation_error", "a token appears twice in local_authorization_list (D01.FR.06)")
    result = await execute(ctx, station_id, "SendLocalList", body.to_ocpp(), timeout)
    if result.status == "Accepted":
        await LocalAuthList.of(ctx.central).record(station_id, body.version_number, "Manual")
    return result


@router.post(
    "/stations/{station_id}/commands/ClearCache",
    response_model=CommandResult,
    dependencies=WRITE,
    tags=["commands"],
    summary="ClearCache: empty the station's authorization cache (C11)",
)
async def clear_cache(
    ctx: Ctx, station_id: StationId, body: EmptyBody | None = None, timeout: Timeout = None
) -> CommandResult:
    return await execute(ctx, station_id, "ClearCache", {}, timeout)


# ---------------------------------------------------------------------------- reservations
@router.post(
    "/stations/{station_id}/reservations",
    response_model=ReservationResult,
    dependencies=WRITE,
    tags=["reservations"],
    summary="ReserveNow: reserve an EVSE (or any EVSE) for a token (H01)",
)
async def reserve(ctx: Ctx, station_id: StationId, body: ReservationIn, timeout: Timeout = None) -> ReservationResult:
    res = Reservations.of(ctx.central)
    expiry = utc(body.expires_at, "expires_at") or ctx.central.now() + timedelta(seconds=body.duration_s)
    if expiry <= ctx.central.now():
        raise ApiError(422, "validation_error", "expires_at is in the past")
    rid = await res.allocate()
    payload = res.request(
        rid,
        expiry_at=expiry,
        id_token=body.id_token,
        id_token_type=body.id_token_type,
        evse_id=body.evse_id,
        connector_type=body.connector_type,
        group_id_token=body.group_id,
    )
    result = await execute(ctx, station_id, "ReserveNow", payload, timeout)
    row = await res.record(station_id, payload, result.status or "Rejected")
    ctx.central.emit("reservation", station_id, {"id": rid, "status": row.status})
    return ReservationResult(reservation=row, command=result)


@router.get(
    "/reservations", response_model=list[ReservationOut], dependencies=READ, tags=["reservations"], summary="List"
)
async def list_reservations(
    ctx: Ctx,
    station_id: Annotated[str | None, Query(max_length=48)] = None,
    status: Annotated[str | None, Query(max_length=32)] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> list[ReservationOut]:
    res = Reservations.of(ctx.central)
    rows = await ops.list_reservations(ctx.store, station_id=station_id, limit=limit, offset=offset)
    current = [await res.current(r) for r in rows]
    return [r for r in current if status is None or r.status == status]


@router.get(
    "/reservations/{reservation_id}",
    response_model=ReservationOut,
    dependencies=READ,
    tags=["reservations"],
    summary="One reservation",
)
async def get_reservation(ctx: Ctx, reservation_id: Annotated[int, Path(ge=0, le=2**31 - 1)]) -> ReservationOut:
    row = await ops.get_reservation(ctx.store, reservation_id)
    if row is None:
        raise ApiError(404, "not_found", f"no reservation {reservation_id}")
    return await Reservations.of(ctx.central).current(row)


@router.delete(
    "/reservations/{reservation_id}",
    response_model=CommandResult,
    dependencies=WRITE,
    tags=["reservations"],
    summary="CancelReservation (H02); the reservation is Cancelled when the station Accepts",
)
async def cancel_reservation(
    ctx: Ctx, reservation_id: Annotated[int, Path(ge=0, le=2**31 - 1)], timeout: Timeout = None
) -> CommandResult:
    row = await ops.get_reservation(ctx.store, reservation_id)
    if row is None:
        raise ApiError(404, "not_found", f"no reservation {reservation_id}")
    result = await execute(ctx, row.station_id, "CancelReservation", {"reservationId": reservation_id}, timeout)
    if result.status == "Accepted":
        await Reservations.of(ctx.central).cancelled(reservation_id)
    return result
