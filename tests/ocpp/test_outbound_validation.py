"""An outbound request is validated once, by the RPC endpoint, before anything is sent: the error
names the field and says it was our request (the HTTP API maps it to 422), also across nodes."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from csms.cluster import wire
from csms.ocpp.errors import InvalidPayload
from csms.ocpp.rpc import RpcEndpoint


async def test_invalid_request_fails_before_sending_and_names_the_field() -> None:
    sent: list[Any] = []

    async def send(text: str) -> None:
        sent.append(text)

    ep = RpcEndpoint(version="2.0.1", send=send, handlers={}, identity="X")
    with pytest.raises(InvalidPayload) as info:
        await ep.call("Reset", {"type": "ImmediateAndResume"})  # a 2.1 value
    assert info.value.request and info.value.path == "type" and info.value.code == "PropertyConstraintViolation"
    with pytest.raises(orjson.JSONEncodeError):
        await ep.call("DataTransfer", {"vendorId": "v", "data": 2**70})  # valid, but not encodable
    assert sent == []
    # a remote node's failure keeps both facts
    with pytest.raises(InvalidPayload) as remote:
        wire.call_outcome(wire.call_failure(info.value))
    assert remote.value.request and remote.value.path == "type"
