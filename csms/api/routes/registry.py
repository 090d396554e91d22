"""The station registry (admin scope): register, change, block and remove stations.

Changes take effect at once for new connections, on this server and on every other process
sharing the database (the registry's change feed); a removed or blocked station's live
connection is closed (WebSocket close 1008).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from csms.server import credentials
from csms.server.connection import station_id_problem

from ..auth import require
from ..context import ApiContext, get_ctx
from ..errors import ApiError, error_responses
from ..params import StationId

router = APIRouter(
    prefix="/api/v1",
    dependencies=[Depends(require("admin"))],
    responses=error_responses(400, 401, 403, 422),
    tags=["station registry"],
)
Ctx = Annotated[ApiContext, Depends(get_ctx)]
BootPolicy = Literal["accept", "pending", "reject"]
Password = Annotated[
    str,
    Field(
        min_length=credentials.MIN_LEN,
        max_length=credentials.MAX_LEN,
        description="HTTP Basic password (security profiles 1 and 2), 16-40 characters",
    ),
]


class StationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, max_length=48, description="station identity (last URL path segment)")
    password: Password | None = Field(None, description="generated and returned once when omitted")
    boot_policy: BootPolicy = "accept"
    blocked: bool = False

    @field_validator("id")
    @classmethod
    def _valid_id(cls, value: str) -> str:
        problem = station_id_problem(value)
        if problem is not None:
            raise ValueError(f"a station id {problem}")
        return value


class StationChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: Password | None = None
    boot_policy: BootPolicy | None = None
    blocked: bool | None = Field(None, description="true: refused at its handshake (403), live connection closed")


class StationRegistration(BaseModel):
    id: str
    boot_policy: str
    blocked: bool
    password: str | None = Field(None, description="only in the answer that generated it; never stored in clear")


async def _answer(ctx: ApiContext, station_id: str, password: str | None = None) -> StationRegistration:
    row = await ctx.station_row(station_id)
    policy = (row.meta or {}).get("boot_policy", ctx.central.settings.boot.default_policy)
    return StationRegistration(id=row.id, boot_policy=policy, blocked=row.blocked, password=password)


@router.post(
    "/stations",
    response_model=StationRegistration,
    status_code=201,
    responses=error_responses(409),
    summary="Register a station (409 if it exists; PATCH changes it)",
)
async def create_station(ctx: Ctx, body: StationCreate) -> StationRegistration:
    if await ctx.store.get_station(body.id) is not None:
        raise ApiError(
            409, "already_exists", f"station {body.id} is registered; PATCH it to change it", {"station_id": body.id}
        )
    generated = body.password is None
    password = body.password or credentials.generate_password()
    await ctx.central.register_station(body.id, password, boot_policy=body.boot_policy, blocked=body.blocked)
    return await _answer(ctx, body.id, password if generated else None)


@router.patch(
    "/stations/{station_id}",
    response_model=StationRegistration,
    responses=error_responses(404),
    summary="Change a station's password, boot policy or blocked state",
)
async def change_station(ctx: Ctx, station_id: StationId, body: StationChange) -> StationRegistration:
    await ctx.station_row(station_id)
    await ctx.central.register_station(station_id, body.password, boot_policy=body.boot_policy, blocked=body.blocked)
    return await _answer(ctx, station_id)


@router.delete(
    "/stations/{station_id}",
    status_code=204,
    response_class=Response,
    responses=error_responses(404),
    summary="Remove a station's registration (history is kept); its live connection is closed",
)
async def delete_station(ctx: Ctx, station_id: StationId) -> Response:
    if not await ctx.central.remove_station(station_id):
        raise ctx.unknown_station(station_id)
    return Response(status_code=204)
