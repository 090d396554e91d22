"""Id tokens (the CSMS's authorization list for drivers' RFID cards, apps, ...): CRUD."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from csms.ocpp.schemas import enum_values

from ..auth import require_operator, require_read
from ..context import ApiContext, get_ctx
from ..errors import ApiError, error_responses
from ..models import IdTokenOut, Page
from ..params import Limit, Offset, Text, page_of, utc

router = APIRouter(prefix="/api/v1", responses=error_responses(400, 401, 403, 422), tags=["id tokens"])
Ctx = Annotated[ApiContext, Depends(get_ctx)]

AuthorizationStatus = Literal[enum_values("2.1", "AuthorizeResponse", "AuthorizationStatusEnumType")]  # type: ignore[valid-type]
EnergyTransferMode = Literal[enum_values("2.1", "AuthorizeResponse", "EnergyTransferModeEnumType")]  # type: ignore[valid-type]
TokenType = Annotated[
    str,
    Path(
        min_length=1,
        max_length=20,
        description="IdTokenEnumType: Central, eMAID, ISO14443, ISO15693, KeyCode, Local, MacAddress, ...",
        examples=["ISO14443"],
    ),
]
TokenValue = Annotated[str, Path(min_length=1, max_length=255, examples=["04A2B3C4D5E6F7"])]


class IdTokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: AuthorizationStatus = "Accepted"
    expires_at: AwareDatetime | None = Field(None, description="RFC 3339 with offset")
    group_id: Annotated[Text, Field(min_length=1, max_length=255)] | None = None
    allowed_energy_transfer: list[EnergyTransferMode] | None = Field(
        None, max_length=11, description="V2X: energy transfer modes this token may use (e.g. DC_BPT)"
    )


class IdTokenCreate(IdTokenIn):
    id_token: Annotated[Text, Field(min_length=1, max_length=255)]
    type: Annotated[Text, Field(min_length=1, max_length=20, examples=["ISO14443"])]


async def _put(ctx: ApiContext, id_token: str, token_type: str, body: IdTokenIn) -> IdTokenOut:
    row = await ctx.store.upsert_id_token(
        id_token,
        token_type,
        status=body.status,
        expires_at=utc(body.expires_at, "expires_at"),
        group_id=body.group_id,
        allowed_energy_transfer=None if body.allowed_energy_transfer is None else list(body.allowed_energy_transfer),
    )
    return IdTokenOut.model_validate(row, from_attributes=True)


@router.get(
    "/id-tokens", response_model=Page[IdTokenOut], dependencies=[Depends(require_read)], summary="List id tokens"
)
async def list_id_tokens(
    ctx: Ctx,
    status: Annotated[AuthorizationStatus | None, Query()] = None,
    group_id: Annotated[str | None, Query(max_length=255)] = None,
    limit: Limit = 100,
    offset: Offset = 0,
) -> dict[str, Any]:
    rows = await ctx.store.list_id_tokens(status=status, group_id=group_id, limit=limit + 1, offset=offset)
    rows, nxt = page_of(rows, limit, offset)
    items = [IdTokenOut.model_validate(r, from_attributes=True) for r in rows]
    return {"items": items, "limit": limit, "offset": offset, "next_offset": nxt}


@router.post(
    "/id-tokens",
    response_model=IdTokenOut,
    status_code=201,
    dependencies=[Depends(require_operator)],
    responses=error_responses(409),
    summary="Create an id token (409 if it exists; PUT replaces)",
)
async def create_id_token(ctx: Ctx, body: IdTokenCreate) -> IdTokenOut:
    if await ctx.store.get_id_token(body.id_token, body.type) is not None:
        raise ApiError(
            409,
            "already_exists",
            f"id token {body.type}/{body.id_token} exists; use PUT to replace it",
            {"id_token": body.id_token, "type": body.type},
        )
    return await _put(ctx, body.id_token, body.type, body)


@router.get(
    "/id-tokens/{token_type}/{id_token}",
    response_model=IdTokenOut,
    dependencies=[Depends(require_read)],
    responses=error_responses(404),
    summary="One id token",
)
async def get_id_token(ctx: Ctx, token_type: TokenType, id_token: TokenValue) -> IdTokenOut:
    row = await ctx.store.get_id_token(id_token, token_type)
    if row is None:
        raise ApiError(404, "not_found", f"no id token {token_type}/{id_token}")
    return IdTokenOut.model_validate(row, from_attributes=True)


@router.put(
    "/id-tokens/{token_type}/{id_token}",
    response_model=IdTokenOut,
    dependencies=[Depends(require_operator)],
    summary="Create or replace an id token",
)
async def put_id_token(ctx: Ctx, token_type: TokenType, id_token: TokenValue, body: IdTokenIn) -> IdTokenOut:
    return await _put(ctx, id_token, token_type, body)


@router.delete(
    "/id-tokens/{token_type}/{id_token}",
    status_code=204,
    response_class=Response,
    dependencies=[Depends(require_operator)],
    responses=error_responses(404),
    summary="Delete an id token",
)
async def delete_id_token(ctx: Ctx, token_type: TokenType, id_token: TokenValue) -> Response:
    if not await ctx.store.delete_id_token(id_token, token_type):
        raise ApiError(404, "not_found", f"no id token {token_type}/{id_token}")
    return Response(status_code=204)
