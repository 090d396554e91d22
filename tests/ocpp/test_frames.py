"""OCPP-J frame parsing: every malformed-frame class maps to the code the spec names."""

import orjson
import pytest

from csms.ocpp.errors import ErrorCode
from csms.ocpp.frames import (
    Call,
    CallErrorFrame,
    CallResult,
    FrameError,
    Send,
    error_frame,
    parse_frame,
)


@pytest.mark.parametrize(
    ("raw", "version", "mid", "code", "reply"),
    [
        ("not json", "2.0.1", "-1", ErrorCode.RPC_FRAMEWORK_ERROR, True),
        ('{"a": 1}', "2.0.1", "-1", ErrorCode.RPC_FRAMEWORK_ERROR, True),
        ("[]", "2.1", "-1", ErrorCode.RPC_FRAMEWORK_ERROR, True),
        ('[2, 17, "Heartbeat", {}]', "2.0.1", "-1", ErrorCode.RPC_FRAMEWORK_ERROR, True),
        ('[2, "' + "x" * 37 + '", "Heartbeat", {}]', "2.0.1", "-1", ErrorCode.RPC_FRAMEWORK_ERROR, True),
        ('[9, "m1", "Heartbeat", {}]', "2.0.1", "m1", ErrorCode.MESSAGE_TYPE_NOT_SUPPORTED, True),
        ('[6, "m1", "Heartbeat", {}]', "2.0.1", "m1", ErrorCode.MESSAGE_TYPE_NOT_SUPPORTED, True),
        ('[9, "m1", "Heartbeat", {}]', "2.1", "m1", ErrorCode.MESSAGE_TYPE_NOT_SUPPORTED, False),
        ('[2, "m1", "Heartbeat"]', "2.0.1", "m1", ErrorCode.RPC_FRAMEWORK_ERROR, True),
        ('[2, "m1", "Heartbeat", []]', "2.0.1", "m1", ErrorCode.FORMAT_VIOLATION, True),
        ('[3, "m1"]', "2.0.1", "m1", ErrorCode.RPC_FRAMEWORK_ERROR, False),  # responses are never answered
        ('[4, "m1", "GenericError"]', "2.0.1", "m1", ErrorCode.RPC_FRAMEWORK_ERROR, False),
        ('[3, "m1", []]', "2.1", "m1", ErrorCode.FORMAT_VIOLATION, False),
        ('[5, "m1"]', "2.1", "m1", ErrorCode.RPC_FRAMEWORK_ERROR, False),
        ("[3]", "2.0.1", "-1", ErrorCode.RPC_FRAMEWORK_ERROR, False),
    ],
)
def test_malformed_frames(raw: str, version: str, mid: str, code: ErrorCode, reply: bool) -> None:
    with pytest.raises(FrameError) as info:
        parse_frame(raw, version=version)
    assert info.value.message_id == mid
    assert info.value.code == code
    assert info.value.reply is reply


def test_well_formed_frames() -> None:
    assert parse_frame('[2, "a", "Heartbeat", {}]', version="2.0.1") == Call("a", "Heartbeat", {})
    assert parse_frame('[3, "a", {"x": 1}]', version="2.0.1") == CallResult("a", {"x": 1})
    err = parse_frame('[4, "a", "NotSupported", "no", {}]', version="2.0.1")
    assert err == CallErrorFrame("a", "NotSupported", "no", {})
    assert parse_frame('[5, "a", "InternalError", "x", {}]', version="2.1").result_error  # type: ignore[union-attr]
    assert parse_frame('[6, "a", "NotifyPeriodicEventStream", {}]', version="2.1") == Send(
        "a", "NotifyPeriodicEventStream", {}
    )


def test_error_frame_truncates_description_and_defaults_details() -> None:
    frame = orjson.loads(error_frame("m", "GenericError", "x" * 400))
    assert frame[:3] == [4, "m", "GenericError"]
    assert len(frame[3]) == 255
    assert frame[4] == {}
