"""OCPP-J framing rules the CSMS keeps with a strict (or broken) peer, over real sockets.

- A CALLRESULT / CALLERROR / CALLRESULTERROR is never answered with a CALLERROR (two peers
  doing that ping-pong for ever): unmatched or unreadable ones are logged and dropped.
- A malformed CALLRESULT for the CALL we have outstanding fails that call at once; on 2.1 it is
  answered with CALLRESULTERROR (type 5), on 2.0.1 with nothing.
- One outstanding CALL per direction: a CALL that arrives while the station's previous CALL is
  still being handled is refused with RpcFrameworkError (``server.max_pipelined_calls`` = 0, the
  default) or queued behind it and answered in order (> 0); a repeat of the message id in flight
  is answered once; an identical repeat of a just-answered CALL gets the same answer again
  without being processed twice.
- A binary WebSocket frame closes the connection with 1003 (OCPP-J messages are text frames).
- Replacing a connection leaves no "Future exception was never retrieved" behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from pathlib import Path
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import ClientConnection
from websockets.client import ClientProtocol
from websockets.exceptions import ConnectionClosed
from websockets.frames import Opcode
from websockets.protocol import State
from websockets.typing import Subprotocol
from websockets.uri import parse_uri

from csms.blocks import datatransfer
from csms.central import CentralSystem
from csms.ocpp.errors import ConnectionLost, InvalidPayload
from tests.conftest import make_settings
from tests.support import PASSWORD, basic, open_ws, raw_exchange

VERSIONS = ["ocpp2.0.1", "ocpp2.1"]
BOOT = '[2, "boot-1", "BootNotification", {"chargingStation": {"model": "FE", "vendorName": "F"}, "reason": "PowerUp"}]'
GET_HB = {"getVariableData": [{"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}]}


async def booted(central: CentralSystem, station_id: str, protocol: str) -> ClientConnection:
    await central.register_station(station_id, PASSWORD)
    ws = await open_ws(central.port, station_id, protocols=[protocol])
    reply = await raw_exchange(ws, BOOT)
    assert reply[0] == 3 and reply[2]["status"] == "Accepted"
    return ws


async def frames_until(ws: ClientConnection, message_id: str, timeout: float = 3) -> list[list[Any]]:
    """Every non-CALL frame received up to and including the answer to ``message_id``; CALLs the
    CSMS sends meanwhile (capability discovery after boot) are answered NotSupported."""
    got: list[list[Any]] = []
    async with asyncio.timeout(timeout):
        while True:
            frame = orjson.loads(await ws.recv())
            if frame[0] == 2:
                await ws.send(orjson.dumps([4, frame[1], "NotSupported", "", {}]).decode())
                continue
            got.append(frame)
            if frame[1] == message_id:
                return got


async def assert_unanswered(ws: ClientConnection, raw: str) -> None:
    """``raw`` gets no reply: the next frame after it is the answer to a Heartbeat sent after it."""
    await ws.send(raw)
    await ws.send('[2, "hb-probe", "Heartbeat", {}]')
    got = await frames_until(ws, "hb-probe")
    assert len(got) == 1, f"{raw} was answered: {got[:-1]}"
    assert got[0][0] == 3 and "currentTime" in got[0][2]


RESPONSES_NEVER_ANSWERED = [
    '[3, "nobody-asked", {}]',
    '[3, "-1", {}]',
    '[4, "-1", "GenericError", "", {}]',
    '[4, "nobody-asked", "NotSupported", "no", {}]',
    "[3]",  # unreadable id
    "[3, 17, {}]",
    '[3, "x"]',  # wrong element count
    '[3, "x", "not an object"]',
    '[4, "x"]',
    '[4, "x", 1, 2, {}]',
    '[4, "' + "i" * 40 + '", "GenericError", "", {}]',  # over-long id
]


@pytest.mark.parametrize("protocol", VERSIONS)
@pytest.mark.parametrize("raw", RESPONSES_NEVER_ANSWERED)
async def test_unmatched_or_unreadable_response_frames_are_dropped(
    central: CentralSystem, protocol: str, raw: str
) -> None:
    ws = await booted(central, "CS-R", protocol)
    try:
        await assert_unanswered(ws, raw)
    finally:
        await ws.close()


async def test_21_callresulterror_is_never_answered(central: CentralSystem) -> None:
    ws = await booted(central, "CS-R5", "ocpp2.1")
    try:
        await assert_unanswered(ws, '[5, "nobody-asked", "FormatViolation", "", {}]')
        await assert_unanswered(ws, '[5, "x"]')
    finally:
        await ws.close()


async def _answer_our_call_with(ws: ClientConnection, raw_reply: str) -> str:
    """Wait for the CSMS's GetVariables CALL, answer it with ``raw_reply`` (``{mid}`` filled in)
    and return its message id; other CALLs get NotSupported."""
    async with asyncio.timeout(3):
        while True:
            frame = orjson.loads(await ws.recv())
            if frame[0] == 2 and frame[2] == "GetVariables" and frame[3] == GET_HB:
                await ws.send(raw_reply.replace("{mid}", frame[1]))
                return frame[1]
            if frame[0] == 2:
                await ws.send(orjson.dumps([4, frame[1], "NotSupported", "", {}]).decode())


@pytest.mark.parametrize(
    ("protocol", "reply_type"),
    [("ocpp2.0.1", None), ("ocpp2.1", 5)],
)
@pytest.mark.parametrize(
    ("raw_reply", "code"),
    [('[3, "{mid}", "not an object"]', "FormatViolation"), ('[3, "{mid}"]', "RpcFrameworkError")],
)
async def test_malformed_callresult_fails_the_call_at_once(
    central: CentralSystem, protocol: str, reply_type: int | None, raw_reply: str, code: str
) -> None:
    ws = await booted(central, "CS-M", protocol)
    try:
        call = asyncio.create_task(central.call("CS-M", "GetVariables", GET_HB, timeout=4))
        mid = await _answer_our_call_with(ws, raw_reply)
        async with asyncio.timeout(1):  # not the 4 s call timeout
            with pytest.raises(InvalidPayload) as info:
                await call
        assert info.value.code == code
        await ws.send('[2, "hb-after", "Heartbeat", {}]')
        got = await frames_until(ws, "hb-after")
        if reply_type is None:
            assert len(got) == 1, f"2.0.1 answered a CALLRESULT: {got[:-1]}"
        else:
            assert got[0][:3] == [5, mid, code], got
            assert len(got) == 2
    finally:
        await ws.close()


# ---------------------------------------------------------------------------- one CALL at a time
class Slow:
    """A DataTransfer vendor handler that takes a while and counts its runs."""

    def __init__(self, seconds: float = 0.3) -> None:
        self.seconds = seconds
        self.runs: list[str] = []
        self.in_flight = 0
        self.peak = 0

    async def __call__(self, s: Any, p: dict[str, Any]) -> dict[str, Any]:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            await asyncio.sleep(self.seconds)
            self.runs.append(p.get("data", ""))
            return {"status": "Accepted", "data": p.get("data", "")}
        finally:
            self.in_flight -= 1


@pytest.fixture
def slow() -> Any:
    handler = Slow()
    datatransfer.KNOWN_VENDORS["test.slow"] = handler
    yield handler
    del datatransfer.KNOWN_VENDORS["test.slow"]


def slow_call(mid: str, data: str) -> str:
    return orjson.dumps([2, mid, "DataTransfer", {"vendorId": "test.slow", "data": data}]).decode()


async def collect(ws: ClientConnection, ids: set[str], timeout: float = 5) -> dict[str, list[Any]]:
    """Answers to ``ids`` by message id, failing on a second answer to any of them."""
    answers: dict[str, list[Any]] = {}
    order: list[str] = []
    async with asyncio.timeout(timeout):
        while not ids <= answers.keys():
            frame = orjson.loads(await ws.recv())
            if frame[0] == 2:
                await ws.send(orjson.dumps([4, frame[1], "NotSupported", "", {}]).decode())
                continue
            assert frame[1] not in answers, f"{frame[1]} answered twice"
            answers[frame[1]] = frame
            order.append(frame[1])
    answers["__order__"] = order  # type: ignore[assignment]
    return answers


@pytest.mark.parametrize("protocol", VERSIONS)
async def test_call_sent_while_one_is_outstanding_is_rpc_framework_error(
    central: CentralSystem, slow: Slow, protocol: str
) -> None:
    ws = await booted(central, "CS-P", protocol)
    try:
        await ws.send(slow_call("first", "a"))
        await ws.send('[2, "second", "Heartbeat", {}]')
        await ws.send(slow_call("third", "c"))
        got = await collect(ws, {"first", "second", "third"})
        assert got["first"] == [3, "first", {"status": "Accepted", "data": "a"}]
        for mid in ("second", "third"):
            assert got[mid][:3] == [4, mid, "RpcFrameworkError"]
            assert "first" in got[mid][3] and "one outstanding CALL" in got[mid][3]
        assert slow.runs == ["a"]  # the refused ones were not processed
        # once answered, the next CALL is served normally
        assert (await raw_exchange(ws, slow_call("fourth", "d")))[:2] == [3, "fourth"]
    finally:
        await ws.close()


async def test_a_thousand_calls_without_waiting_run_one_at_a_time(central: CentralSystem, slow: Slow) -> None:
    slow.seconds = 0.01
    ws = await booted(central, "CS-K", "ocpp2.1")
    try:
        ids = {f"k{i}" for i in range(1000)}
        for i in range(1000):
            await ws.send(slow_call(f"k{i}", str(i)))
        got = await collect(ws, ids, timeout=30)
        ok = [m for m in ids if got[m][0] == 3]
        refused = [m for m in ids if got[m][0] == 4]
        assert len(ok) + len(refused) == 1000
        assert all(got[m][2] == "RpcFrameworkError" for m in refused)
        assert len(refused) > 900, f"only {len(refused)} of 1,000 pipelined CALLs refused"
        assert slow.peak == 1 and len(slow.runs) == len(ok)
    finally:
        await ws.close()


async def test_pipelined_calls_may_queue_and_are_answered_in_order(tmp_path: Path, slow: Slow) -> None:
    c = CentralSystem(make_settings(tmp_path, call_timeout=5, max_pipelined_calls=2))
    await c.start()
    try:
        ws = await booted(c, "CS-Q", "ocpp2.0.1")
        for mid, data in (("q1", "1"), ("q2", "2"), ("q3", "3"), ("q4", "4")):
            await ws.send(slow_call(mid, data))
        got = await collect(ws, {"q1", "q2", "q3", "q4"})
        assert got["q4"][:3] == [4, "q4", "RpcFrameworkError"]  # beyond the two that may wait
        assert [got[m][:2] for m in ("q1", "q2", "q3")] == [[3, "q1"], [3, "q2"], [3, "q3"]]
        assert [m for m in got["__order__"] if m != "q4"] == ["q1", "q2", "q3"]  # type: ignore[index]
        assert slow.runs == ["1", "2", "3"] and slow.peak == 1
        await ws.close()
    finally:
        await c.stop()


@pytest.mark.parametrize("protocol", VERSIONS)
async def test_repeated_message_id_is_processed_once(central: CentralSystem, slow: Slow, protocol: str) -> None:
    ws = await booted(central, "CS-D", protocol)
    try:
        # a repeat while the first is in flight: one answer
        await ws.send(slow_call("dup", "x"))
        await ws.send(slow_call("dup", "x"))
        await ws.send('[2, "hb-d", "Heartbeat", {}]')  # refused (one outstanding): proves the order
        got = await frames_until(ws, "dup")
        assert got[-1] == [3, "dup", {"status": "Accepted", "data": "x"}]
        assert got[0][:3] == [4, "hb-d", "RpcFrameworkError"] and len(got) == 2
        # a retransmission of the answered CALL: the same answer again, not processed again
        again = await raw_exchange(ws, slow_call("dup", "x"))
        assert again == [3, "dup", {"status": "Accepted", "data": "x"}]
        assert slow.runs == ["x"]
        # the same id reused for another message is a new message, processed
        reused = await raw_exchange(ws, slow_call("dup", "y"))
        assert reused == [3, "dup", {"status": "Accepted", "data": "y"}]
        assert slow.runs == ["x", "y"]
        # and nothing else was ever answered for "dup"
        await assert_unanswered(ws, '[3, "dup", {}]')
    finally:
        await ws.close()


# ---------------------------------------------------------------------------- binary frames
@pytest.mark.parametrize("protocol", VERSIONS)
async def test_binary_frame_closes_with_1003(central: CentralSystem, protocol: str) -> None:
    ws = await booted(central, "CS-B", protocol)
    await ws.send(b'[2, "bin", "Heartbeat", {}]')
    with pytest.raises(ConnectionClosed):
        async with asyncio.timeout(3):
            while True:
                frame = orjson.loads(await ws.recv())
                assert frame[0] == 2, f"binary frame was processed: {frame}"
                await ws.send(orjson.dumps([4, frame[1], "NotSupported", "", {}]).decode())
    assert ws.close_code == 1003
    assert "text" in (ws.close_reason or "")


# ---------------------------------------------------------------------------- replacement
class SilentStation:
    """A station on a bare TCP socket, driven by websockets' sans-I/O client protocol so that the
    test decides what goes on the wire: here, it never answers the closing handshake."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, proto: ClientProtocol) -> None:
        self.reader, self.writer, self.proto = reader, writer, proto

    @classmethod
    async def connect(cls, port: int, station_id: str) -> SilentStation:
        proto = ClientProtocol(
            parse_uri(f"ws://127.0.0.1:{port}/ocpp/{station_id}"), subprotocols=[Subprotocol("ocpp2.1")]
        )
        request = proto.connect()
        request.headers.update(basic(station_id, PASSWORD))
        proto.send_request(request)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        station = cls(reader, writer, proto)
        station._flush()
        while proto.state is State.CONNECTING:
            proto.receive_data(await reader.read(65536))
        assert proto.state is State.OPEN, proto.handshake_exc
        proto.events_received()  # the handshake response
        return station

    def _flush(self) -> None:
        for data in self.proto.data_to_send():
            if data:
                self.writer.write(data)

    def send(self, text: str) -> None:
        self.proto.send_text(text.encode())
        self._flush()

    async def frames(self, seconds: float) -> list[list[Any]]:
        """What arrives within ``seconds``; CALLs from the CSMS are answered NotSupported."""
        got: list[list[Any]] = []
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                while True:
                    self.proto.receive_data(await self.reader.read(65536))
                    for event in self.proto.events_received():
                        if event.opcode is Opcode.TEXT:
                            frame = orjson.loads(event.data)
                            got.append(frame)
                            if frame[0] == 2:
                                self.send(orjson.dumps([4, frame[1], "NotSupported", "", {}]).decode())

        return got

    def abort(self) -> None:
        self.writer.transport.abort()


async def test_replacing_a_connection_while_a_call_is_being_sent_leaves_no_unretrieved_future(
    central: CentralSystem, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="asyncio")
    await central.register_station("CS-X", PASSWORD)
    for _ in range(3):
        old = await SilentStation.connect(central.port, "CS-X")
        old.send(BOOT)
        assert any(f[:2] == [3, "boot-1"] for f in await old.frames(0.5))  # and discovery answered
        old_session = central.sessions["CS-X"]
        new = await open_ws(central.port, "CS-X", protocols=["ocpp2.1"])
        for _ in range(100):  # the server is closing the old socket; the old station never answers
            if old_session.ws.state is State.CLOSING:
                break
            await asyncio.sleep(0.01)
        assert old_session.ws.state is State.CLOSING
        call = asyncio.create_task(central.call("CS-X", "GetVariables", GET_HB, timeout=5))
        await asyncio.sleep(0.05)  # the CALL is on its way out of a closing socket
        old.abort()
        with pytest.raises(ConnectionLost):
            await call
        await new.close()
    del call, old_session
    gc.collect()
    await asyncio.sleep(0.05)
    never = [r.getMessage() for r in caplog.records if "never retrieved" in r.getMessage()]
    assert not never, never[0]
