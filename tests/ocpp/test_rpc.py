"""RpcEndpoint behaviour with two endpoints wired back to back (no sockets)."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from csms.ocpp.errors import CallErrorReceived, CallTimeout, ConnectionLost, InvalidPayload
from csms.ocpp.rpc import RpcEndpoint


class Pipe:
    """Connects two endpoints; records every frame; can drop frames in one direction."""

    def __init__(self) -> None:
        self.a: RpcEndpoint
        self.b: RpcEndpoint
        self.frames: list[tuple[str, list[Any]]] = []
        self.drop_b_to_a = False

    def send_from(self, side: str):
        async def send(text: str) -> None:
            self.frames.append((side, orjson.loads(text)))
            if side == "b" and self.drop_b_to_a:
                return
            target = self.b if side == "a" else self.a
            asyncio.get_running_loop().call_soon(lambda: asyncio.ensure_future(target.feed(text)))

        return send


def wire(version: str, a_handlers: dict, b_handlers: dict, **kw: Any) -> Pipe:
    pipe = Pipe()
    pipe.a = RpcEndpoint(version=version, send=pipe.send_from("a"), handlers=a_handlers, identity="A", **kw)
    pipe.b = RpcEndpoint(version=version, send=pipe.send_from("b"), handlers=b_handlers, identity="B", **kw)
    return pipe


async def heartbeat(ctx: Any, p: dict) -> dict:
    return {"currentTime": "2026-06-01T16:00:00Z"}


async def test_call_roundtrip_and_callerror_is_raised() -> None:
    pipe = wire("2.0.1", {}, {"Heartbeat": heartbeat})
    assert await pipe.a.call("Heartbeat", {}) == {"currentTime": "2026-06-01T16:00:00Z"}
    with pytest.raises(CallErrorReceived) as info:
        await pipe.a.call("Authorize", {"idToken": {"idToken": "x", "type": "Central"}})
    assert info.value.code == "NotSupported"


async def test_handler_calling_back_into_same_peer_completes() -> None:
    """A's handler for BootNotification awaits a call to B before answering B."""
    pipe: Pipe

    async def boot(ctx: Any, p: dict) -> dict:
        await pipe.a.call("Heartbeat", {})
        return {"currentTime": "2026-06-01T16:00:00Z", "interval": 10, "status": "Accepted"}

    pipe = wire("2.0.1", {"BootNotification": boot}, {"Heartbeat": heartbeat})
    payload = {"chargingStation": {"model": "m", "vendorName": "v"}, "reason": "PowerUp"}
    async with asyncio.timeout(2):
        assert (await pipe.b.call("BootNotification", payload))["status"] == "Accepted"


async def test_calls_go_out_one_at_a_time_in_order() -> None:
    order: list[int] = []
    in_flight = 0
    peak = 0

    async def set_vars(ctx: Any, p: dict) -> dict:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        order.append(int(p["setVariableData"][0]["attributeValue"]))
        await asyncio.sleep(0.001)
        in_flight -= 1
        return {
            "setVariableResult": [
                {"attributeStatus": "Accepted", "component": {"name": "C"}, "variable": {"name": "V"}}
            ]
        }

    pipe = wire("2.0.1", {}, {"SetVariables": set_vars})

    def req(i: int) -> dict:
        return {"setVariableData": [{"attributeValue": str(i), "component": {"name": "C"}, "variable": {"name": "V"}}]}

    await asyncio.gather(*(pipe.a.call("SetVariables", req(i)) for i in range(50)))
    assert order == list(range(50))
    assert peak == 1
    calls = [f for side, f in pipe.frames if side == "a" and f[0] == 2]
    results = [f for side, f in pipe.frames if side == "b" and f[0] == 3]
    assert len(calls) == len(results) == 50
    # each CALL is sent only after the previous CALLRESULT: frames alternate
    seq = [f[0] for _, f in pipe.frames]
    assert seq == [2, 3] * 50


async def test_timeout_does_not_block_the_next_call() -> None:
    pipe = wire("2.0.1", {}, {"Heartbeat": heartbeat}, call_timeout=0.2)
    pipe.drop_b_to_a = True
    with pytest.raises(CallTimeout):
        await pipe.a.call("Heartbeat", {})
    pipe.drop_b_to_a = False
    assert "currentTime" in await pipe.a.call("Heartbeat", {})


async def test_invalid_outbound_payload_is_refused_before_sending() -> None:
    pipe = wire("2.0.1", {}, {"Heartbeat": heartbeat})
    with pytest.raises(InvalidPayload):
        await pipe.a.call("Heartbeat", {"extra": 1})
    assert pipe.frames == []


async def test_close_fails_outstanding_call() -> None:
    pipe = wire("2.0.1", {}, {"Heartbeat": heartbeat})
    pipe.drop_b_to_a = True
    task = asyncio.create_task(pipe.a.call("Heartbeat", {}))
    await asyncio.sleep(0.05)
    pipe.a.close()
    with pytest.raises(ConnectionLost):
        await task


async def test_invalid_response_raises_and_21_sends_callresulterror() -> None:
    async def bad(ctx: Any, p: dict) -> dict:
        return {"currentTime": "2026-06-01T16:00:00Z"}

    pipe = wire("2.1", {}, {"Heartbeat": bad}, validate=True)
    # B's handler output is validated on B's side: make B skip validation to send a bad answer
    pipe.b.validate = False

    async def worse(ctx: Any, p: dict) -> dict:
        return {"currentTime": 12}

    pipe.b.handlers = {"Heartbeat": worse}
    with pytest.raises(InvalidPayload):
        await pipe.a.call("Heartbeat", {})
    await asyncio.sleep(0.05)
    assert any(side == "a" and f[0] == 5 for side, f in pipe.frames)
