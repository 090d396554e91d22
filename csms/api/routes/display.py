"""Display messages on a station's screen (OCPP O block), operator scope.

- ``POST /api/v1/stations/{id}/display-messages``: SetDisplayMessage (``id`` omitted: allocated;
  the same id replaces the message, O02);
- ``GET /api/v1/stations/{id}/display-messages``: GetDisplayMessages, then the messages of the
  NotifyDisplayMessages it causes (``status`` Unknown: none match);
- ``DELETE /api/v1/stations/{id}/display-messages/{message_id}``: ClearDisplayMessage.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from csms.blocks.display_message import EVENT_CLEARED, EVENT_SET, DisplayMessages
from csms.clock import to_rfc3339
from csms.ocpp.schemas import enum_values

from ..auth import require_operator
from ..command_bodies import next_request_id
from ..command_execution import Timeout, execute
from ..context import ApiContext, get_ctx
from ..errors import ApiError, error_responses
from ..models import CommandResult
from ..params import StationId, Text, utc
from .operations import _station_call

router = APIRouter(
    prefix="/api/v1/stations/{station_id}/display-messages",
    dependencies=[Depends(require_operator)],
    responses=error_responses(400, 401, 403, 404, 409, 422, 502, 504),
    tags=["display messages"],
)
Ctx = Annotated[ApiContext, Depends(get_ctx)]

Priority = Literal[enum_values("2.1", "SetDisplayMessageRequest", "MessagePriorityEnumType")]  # type: ignore[valid-type]
State = Literal[enum_values("2.1", "SetDisplayMessageRequest", "MessageStateEnumType")]  # type: ignore[valid-type]
Format = Literal[enum_values("2.1", "SetDisplayMessageRequest", "MessageFormatEnumType")]  # type: ignore[valid-type]


class DisplayMessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = Field(None, description="default: allocated")
    content: Annotated[Text, Field(min_length=1, max_length=1024)] = Field(description="message.content")
    format: Format = "UTF8"
    language: Annotated[Text, Field(max_length=8)] | None = Field(None, description="RFC 5646, e.g. en, de")
    priority: Priority = "NormalCycle"
    state: State | None = Field(None, description="only show in this station state (Suspended, Discharging: 2.1)")
    start: AwareDatetime | None = Field(None, description="startDateTime")
    end: AwareDatetime | None = Field(None, description="endDateTime")
    transaction_id: Annotated[Text, Field(max_length=36)] | None = Field(None, description="only during it")

    def to_ocpp(self, message_id: int) -> dict[str, Any]:
        content: dict[str, Any] = {"format": self.format, "content": self.content}
        if self.language:
            content["language"] = self.language
        info: dict[str, Any] = {"id": message_id, "priority": self.priority, "message": content}
        if self.state:
            info["state"] = self.state
        start, end = utc(self.start, "start"), utc(self.end, "end")
        if start is not None and end is not None and end <= start:
            raise ApiError(422, "validation_error", "end must be after start")
        if start is not None:
            info["startDateTime"] = to_rfc3339(start)
        if end is not None:
            info["endDateTime"] = to_rfc3339(end)
        if self.transaction_id:
            info["transactionId"] = self.transaction_id
        return {"message": info}


class DisplayMessagesOut(BaseModel):
    station_id: str
    request_id: int
    status: str = Field(description="Accepted, or Unknown when no message matches")
    messages: list[dict[str, Any]] = Field(description="OCPP MessageInfoType, wire form")


@router.post("", response_model=CommandResult, summary="SetDisplayMessage: show a message (O01)")
async def set_display_message(
    ctx: Ctx, station_id: StationId, body: DisplayMessageIn, timeout: Timeout = None
) -> CommandResult:
    dm = DisplayMessages.of(ctx.central)
    payload = body.to_ocpp(body.id if body.id is not None else dm.next_id() % 2**31)
    result = await execute(ctx, station_id, "SetDisplayMessage", payload, timeout)
    if result.status == "Accepted":
        await dm.record(station_id, EVENT_SET, payload["message"])
    return result


@router.get("", response_model=DisplayMessagesOut, summary="GetDisplayMessages and the messages the station reports")
async def get_display_messages(
    ctx: Ctx,
    station_id: StationId,
    id: Annotated[list[int] | None, Query(description="only these message ids")] = None,
    priority: Annotated[Priority | None, Query()] = None,
    state: Annotated[State | None, Query()] = None,
    wait_s: Annotated[float, Query(ge=0.1, le=120, description="how long to wait for the reports")] = 10.0,
) -> DisplayMessagesOut:
    request: dict[str, Any] = {"requestId": next_request_id()}
    if id:
        request["id"] = id
    if priority:
        request["priority"] = priority
    if state:
        request["state"] = state
    dm = DisplayMessages.of(ctx.central)
    response, messages = await _station_call(ctx, station_id, lambda: dm.get(station_id, request, wait_s=wait_s))
    return DisplayMessagesOut(
        station_id=station_id, request_id=request["requestId"], status=response["status"], messages=messages
    )


@router.delete("/{message_id}", response_model=CommandResult, summary="ClearDisplayMessage (O05)")
async def clear_display_message(
    ctx: Ctx,
    station_id: StationId,
    message_id: Annotated[int, Path(ge=0, le=2**31 - 1)],
    timeout: Timeout = None,
) -> CommandResult:
    result = await execute(ctx, station_id, "ClearDisplayMessage", {"id": message_id}, timeout)
    if result.status == "Accepted":
        await DisplayMessages.of(ctx.central).record(station_id, EVENT_CLEARED, {"id": message_id})
    return result
