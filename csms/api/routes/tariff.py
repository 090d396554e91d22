"""Tariffs and cost (OCPP I block).

- ``GET/PUT/DELETE /api/v1/stations/{id}/tariff``: the station's tariff for central cost
  calculation (running ``totalCost`` in TransactionEventResponse, CostUpdated while charging);
- ``POST .../commands/CostUpdated``: send a total cost for a transaction now;
- OCPP 2.1 only (409 ``not_in_version`` for a 2.0.1 station): ``POST .../commands/SetDefaultTariff``,
  ``GetTariffs``, ``ClearTariffs``, ``ChangeTransactionTariff`` with the tariff in wire form
  (``TariffType``, camelCase), checked against the official schema.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field

from csms.blocks.tariff import Tariffs
from csms.ocpp import schemas

from ..auth import require_operator, require_read
from ..command_execution import Timeout, execute
from ..context import ApiContext, get_ctx
from ..errors import ApiError, error_responses
from ..models import CommandResult
from ..params import StationId, Text

router = APIRouter(
    prefix="/api/v1/stations/{station_id}",
    responses=error_responses(400, 401, 403, 404, 409, 422, 502, 504),
    tags=["tariffs"],
)
Ctx = Annotated[ApiContext, Depends(get_ctx)]
WRITE = [Depends(require_operator)]
READ = [Depends(require_read)]
TxId = Annotated[Text, Field(min_length=1, max_length=36)]


class TariffIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    currency: Annotated[Text, Field(min_length=3, max_length=3, examples=["EUR"])]
    price_kwh: Annotated[float, Field(ge=0, le=100)]
    fixed_fee: Annotated[float, Field(ge=0, le=10_000)] = 0.0
    cost_update_interval_s: Annotated[float, Field(ge=1, le=86_400)] = 60.0


class CostUpdatedBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    transaction_id: TxId
    total_cost: Annotated[float, Field(ge=0)]


class SetDefaultTariffBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    evse_id: Annotated[int, Field(ge=0, le=2**31 - 1)] = Field(0, description="0: every EVSE")
    tariff: dict[str, Any] = Field(description="OCPP 2.1 TariffType, wire form")


class GetTariffsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    evse_id: Annotated[int, Field(ge=0, le=2**31 - 1)] = 0


class ClearTariffsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tariff_ids: list[Annotated[Text, Field(max_length=60)]] | None = None
    evse_id: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = None


class ChangeTransactionTariffBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    transaction_id: TxId
    tariff: dict[str, Any] = Field(description="OCPP 2.1 TariffType, wire form")


@router.get("/tariff", response_model=TariffIn, dependencies=READ, summary="The station's tariff")
async def get_tariff(ctx: Ctx, station_id: StationId) -> TariffIn:
    await ctx.require_station(station_id)
    tariff = Tariffs.of(ctx.central).tariff(station_id)
    if tariff is None:
        raise ApiError(404, "not_found", f"station {station_id} has no tariff")
    return TariffIn(**tariff)


@router.put("/tariff", response_model=TariffIn, dependencies=WRITE, summary="Set the station's tariff")
async def put_tariff(ctx: Ctx, station_id: StationId, body: TariffIn) -> TariffIn:
    await ctx.require_station(station_id)
    await ctx.central.set_station_meta(station_id, tariff=body.model_dump())
    return body


@router.delete(
    "/tariff", status_code=204, response_class=Response, dependencies=WRITE, summary="No central cost calculation"
)
async def delete_tariff(ctx: Ctx, station_id: StationId) -> Response:
    await ctx.require_station(station_id)
    await ctx.central.set_station_meta(station_id, tariff=None)
    return Response(status_code=204)


@router.post("/commands/CostUpdated", response_model=CommandResult, dependencies=WRITE, summary="CostUpdated (I01)")
async def cost_updated(
    ctx: Ctx, station_id: StationId, body: CostUpdatedBody, timeout: Timeout = None
) -> CommandResult:
    payload = {"totalCost": body.total_cost, "transactionId": body.transaction_id}
    return await execute(ctx, station_id, "CostUpdated", payload, timeout)


def _v21(ctx: ApiContext, station_id: str, action: str) -> None:
    session = ctx.central.sessions.get(station_id)
    if session is not None and action not in schemas.actions(session.version):
        raise ApiError(
            409,
            "not_in_version",
            f"{action} is an OCPP 2.1 message; station {station_id} speaks OCPP {session.version}",
            {"action": action, "ocpp_version": session.version},
        )


@router.post("/commands/SetDefaultTariff", response_model=CommandResult, dependencies=WRITE, summary="2.1")
async def set_default_tariff(
    ctx: Ctx, station_id: StationId, body: SetDefaultTariffBody, timeout: Timeout = None
) -> CommandResult:
    _v21(ctx, station_id, "SetDefaultTariff")
    return await execute(ctx, station_id, "SetDefaultTariff", {"evseId": body.evse_id, "tariff": body.tariff}, timeout)


@router.post("/commands/GetTariffs", response_model=CommandResult, dependencies=WRITE, summary="2.1")
async def get_tariffs(ctx: Ctx, station_id: StationId, body: GetTariffsBody, timeout: Timeout = None) -> CommandResult:
    _v21(ctx, station_id, "GetTariffs")
    return await execute(ctx, station_id, "GetTariffs", {"evseId": body.evse_id}, timeout)


@router.post("/commands/ClearTariffs", response_model=CommandResult, dependencies=WRITE, summary="2.1")
async def clear_tariffs(
    ctx: Ctx, station_id: StationId, body: ClearTariffsBody, timeout: Timeout = None
) -> CommandResult:
    _v21(ctx, station_id, "ClearTariffs")
    payload: dict[str, Any] = {}
    if body.tariff_ids:
        payload["tariffIds"] = body.tariff_ids
    if body.evse_id is not None:
        payload["evseId"] = body.evse_id
    return await execute(ctx, station_id, "ClearTariffs", payload, timeout)


@router.post("/commands/ChangeTransactionTariff", response_model=CommandResult, dependencies=WRITE, summary="2.1")
async def change_transaction_tariff(
    ctx: Ctx, station_id: StationId, body: ChangeTransactionTariffBody, timeout: Timeout = None
) -> CommandResult:
    _v21(ctx, station_id, "ChangeTransactionTariff")
    payload = {"transactionId": body.transaction_id, "tariff": body.tariff}
    return await execute(ctx, station_id, "ChangeTransactionTariff", payload, timeout)
