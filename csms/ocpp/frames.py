"""OCPP-J frame parsing and serialisation (OCPP-J Part 4, section 4), with no I/O.

``parse_frame`` turns one WebSocket text message into a typed frame or raises
:class:`FrameError`, which carries the message id to answer with (``"-1"`` when the id is
unreadable) and the error code the specification names.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import orjson

from .errors import ErrorCode

MAX_MESSAGE_ID_LEN = 36
MAX_DESCRIPTION_LEN = 255
UNREADABLE_ID = "-1"


class MessageType(IntEnum):
    CALL = 2
    CALLRESULT = 3
    CALLERROR = 4
    CALLRESULTERROR = 5  # OCPP 2.1
    SEND = 6  # OCPP 2.1


@dataclass(slots=True, frozen=True)
class Call:
    message_id: str
    action: str
    payload: dict[str, Any]


@dataclass(slots=True, frozen=True)
class CallResult:
    message_id: str
    payload: dict[str, Any]


@dataclass(slots=True, frozen=True)
class CallErrorFrame:
    message_id: str
    code: str
    description: str
    details: dict[str, Any]
    result_error: bool = False  # True for a 2.1 CALLRESULTERROR


@dataclass(slots=True, frozen=True)
class Send:
    message_id: str
    action: str
    payload: dict[str, Any]


Frame = Call | CallResult | CallErrorFrame | Send


class FrameError(Exception):
    """A frame that must be answered with a CALLERROR (or ignored when ``reply`` is False).

    ``response`` is the message type of a CALLRESULT / CALLERROR / CALLRESULTERROR that could
    not be read: such a frame is never answered with a CALLERROR (``reply`` is False); the RPC
    layer fails the CALL it answers, if any, and on 2.1 answers a CALLRESULT with CALLRESULTERROR.
    """

    def __init__(
        self, message_id: str, code: ErrorCode, description: str, *, reply: bool = True, response: int | None = None
    ):
        super().__init__(f"{code}: {description}")
        self.message_id = message_id
        self.code = code
        self.description = description
        self.reply = reply and response is None
        self.response = response


def _message_id(frame: list[Any]) -> str:
    if len(frame) > 1 and isinstance(frame[1], str) and 0 < len(frame[1]) <= MAX_MESSAGE_ID_LEN:
        return frame[1]
    return UNREADABLE_ID


def parse_frame(text: str | bytes, *, version: str) -> Frame:
    """Parse one OCPP-J message.

    Rules (OCPP-J 4.1-4.3):
    - not JSON, or JSON that is not an array: RpcFrameworkError with id "-1";
    - a CALLRESULT / CALLERROR (and on 2.1 CALLRESULTERROR) is never answered with a CALLERROR,
      whatever is wrong with it (``response`` set, ``reply=False``): answering one lets two
      peers ping-pong errors for ever;
    - unreadable or over-long message id: RpcFrameworkError with id "-1";
    - unknown message type: MessageTypeNotSupported on 2.0.1; on 2.1 the frame is
      ignored (``reply=False``), as are types 5/6 are understood only on 2.1;
    - wrong element count or element types: RpcFrameworkError with the message id; a payload
      that is not an object: FormatViolation.
    """
    try:
        frame = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise FrameError(UNREADABLE_ID, ErrorCode.RPC_FRAMEWORK_ERROR, "message is not valid JSON") from None
    if not isinstance(frame, list) or not frame:
        raise FrameError(UNREADABLE_ID, ErrorCode.RPC_FRAMEWORK_ERROR, "message is not a JSON array")
    mtype = frame[0]
    is21 = version == "2.1"
    known = (2, 3, 4, 5, 6) if is21 else (2, 3, 4)
    if not isinstance(mtype, int) or isinstance(mtype, bool) or mtype not in known:
        mid = _message_id(frame)
        if is21:
            raise FrameError(mid, ErrorCode.MESSAGE_TYPE_NOT_SUPPORTED, f"unknown message type {mtype!r}", reply=False)
        if mid == UNREADABLE_ID:
            raise FrameError(UNREADABLE_ID, ErrorCode.RPC_FRAMEWORK_ERROR, "message id unreadable or over 36 chars")
        raise FrameError(mid, ErrorCode.MESSAGE_TYPE_NOT_SUPPORTED, f"message type {mtype!r} is not supported")
    if mtype in (MessageType.CALL, MessageType.SEND):
        mid = _message_id(frame)
        if mid == UNREADABLE_ID:
            raise FrameError(UNREADABLE_ID, ErrorCode.RPC_FRAMEWORK_ERROR, "message id unreadable or over 36 chars")
        if len(frame) != 4 or not isinstance(frame[2], str) or not frame[2]:
            raise FrameError(mid, ErrorCode.RPC_FRAMEWORK_ERROR, "CALL needs [2, id, action, payload]")
        if not isinstance(frame[3], dict):
            raise FrameError(mid, ErrorCode.FORMAT_VIOLATION, "payload must be a JSON object")
        cls = Call if mtype == MessageType.CALL else Send
        return cls(mid, frame[2], frame[3])
    return _parse_response(frame, mtype)


def _parse_response(frame: list[Any], mtype: int) -> CallResult | CallErrorFrame:
    """A CALLRESULT, CALLERROR or CALLRESULTERROR; what cannot be read raises a FrameError
    with ``response`` set (never answered with a CALLERROR)."""
    mid = frame[1] if len(frame) > 1 and isinstance(frame[1], str) and frame[1] else UNREADABLE_ID
    if mid == UNREADABLE_ID or len(mid) > MAX_MESSAGE_ID_LEN:
        raise FrameError(UNREADABLE_ID, ErrorCode.RPC_FRAMEWORK_ERROR, "message id unreadable", response=mtype)
    if mtype == MessageType.CALLRESULT:
        if len(frame) != 3:
            raise FrameError(mid, ErrorCode.RPC_FRAMEWORK_ERROR, "CALLRESULT needs [3, id, payload]", response=mtype)
        if not isinstance(frame[2], dict):
            raise FrameError(mid, ErrorCode.FORMAT_VIOLATION, "payload must be a JSON object", response=mtype)
        return CallResult(mid, frame[2])
    if len(frame) != 5 or not isinstance(frame[2], str) or not isinstance(frame[3], str):
        raise FrameError(
            mid,
            ErrorCode.RPC_FRAMEWORK_ERROR,
            f"type {mtype} needs [{mtype}, id, code, description, details]",
            response=mtype,
        )
    details = frame[4] if isinstance(frame[4], dict) else {}
    return CallErrorFrame(mid, frame[2], frame[3], details, result_error=mtype == MessageType.CALLRESULTERROR)


# Frames are built as UTF-8 bytes (what orjson produces and what goes on the wire): the RPC
# endpoint sends them as text frames as they are (websockets' ``send(data, text=True)``), with no
# bytes -> str -> bytes round trip. The ``str`` builders are for code that wants text.


def call_frame_utf8(message_id: str, action: str, payload: dict[str, Any]) -> bytes:
    return orjson.dumps([2, message_id, action, payload])


def send_frame_utf8(message_id: str, action: str, payload: dict[str, Any]) -> bytes:
    return orjson.dumps([6, message_id, action, payload])


def result_frame_utf8(message_id: str, payload: dict[str, Any]) -> bytes:
    return orjson.dumps([3, message_id, payload])


def error_frame_utf8(
    message_id: str,
    code: str,
    description: str = "",
    details: dict[str, Any] | None = None,
    *,
    result_error: bool = False,
) -> bytes:
    mtype = MessageType.CALLRESULTERROR if result_error else MessageType.CALLERROR
    return orjson.dumps([int(mtype), message_id, str(code), description[:MAX_DESCRIPTION_LEN], details or {}])


def call_frame(message_id: str, action: str, payload: dict[str, Any]) -> str:
    return call_frame_utf8(message_id, action, payload).decode()


def send_frame(message_id: str, action: str, payload: dict[str, Any]) -> str:
    return send_frame_utf8(message_id, action, payload).decode()


def result_frame(message_id: str, payload: dict[str, Any]) -> str:
    return result_frame_utf8(message_id, payload).decode()


def error_frame(
    message_id: str,
    code: str,
    description: str = "",
    details: dict[str, Any] | None = None,
    *,
    result_error: bool = False,
) -> str:
    return error_frame_utf8(message_id, code, description, details, result_error=result_error).decode()
