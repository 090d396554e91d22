"""An OCTT-style charging station for the CSMS test cases, and a rig shared by a test module.

The OCA's test tool plays the charging station and checks what the CSMS answers; :class:`Octt`
does the same over a real WebSocket: it sends exactly the messages a test case scripts, answers
the CSMS's requests from a table (``answers``), and records every request it gets. Each test
takes a fresh station id (:func:`connect`), so one CSMS (:func:`module_rig`) serves a whole
module without tests seeing each other's state.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import pytest_asyncio

from csms.clock import to_rfc3339
from tests.support import PASSWORD, TestStation, open_ws

from .conftest import Rig, running_rig, wait_for

_station_ids = itertools.count(1)
_tx_ids = itertools.count(1)
Answer = dict[str, Any] | Callable[[dict[str, Any]], dict[str, Any]] | None


class _Answers(Mapping[str, Any]):
    """The RPC endpoint's handler table: a handler for every action the test gave an answer to."""

    def __init__(self, station: Octt) -> None:
        self.station = station

    def __getitem__(self, action: str) -> Any:
        if action not in self.station.answers:
            raise KeyError(action)

        answer = self.station.answers[action]
        if answer is None:  # a station that never answers: the CSMS's call times out

            async def silent(_context: Any, payload: dict[str, Any]) -> dict[str, Any]:
                self.station.requests.append((action, payload))
                await asyncio.Event().wait()
                return {}

            return silent

        def handler(_context: Any, payload: dict[str, Any]) -> dict[str, Any]:
            self.station.requests.append((action, payload))
            return answer(payload) if callable(answer) else answer

        return handler

    def __iter__(self) -> Iterator[str]:
        return iter(self.station.answers)

    def __len__(self) -> int:
        return len(self.station.answers)


class Octt(TestStation):
    """A scripted station: ``answers`` maps an action the CSMS may send to the payload to answer
    (or a function of the request, or None: never answer); any other action is answered
    NotSupported."""

    __test__ = False

    def __init__(self, ws: Any, station_id: str, answers: dict[str, Answer] | None = None) -> None:
        self.station_id = station_id
        self.answers: dict[str, Answer] = dict(answers or {})
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.seq = itertools.count(0)
        super().__init__(ws, _Answers(self))

    async def detach(self) -> None:
        """Stop reading the socket (a test then reads raw frames itself)."""
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    def got(self, action: str) -> list[dict[str, Any]]:
        return [p for a, p in self.requests if a == action]

    async def status(self, status: str, evse_id: int = 1, connector_id: int = 1) -> dict[str, Any]:
        return await self.call(
            "StatusNotification",
            {"timestamp": now(), "connectorStatus": status, "evseId": evse_id, "connectorId": connector_id},
        )

    async def tx(
        self,
        event_type: str,
        trigger: str,
        tx_id: str,
        *,
        evse_id: int | None = 1,
        seq_no: int | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        """A TransactionEvent; ``charging_state`` / ``stopped_reason`` / ``remote_start_id`` go to
        transactionInfo, everything else (camelCase) to the request."""
        info: dict[str, Any] = {"transactionId": tx_id}
        for key, name in (
            ("charging_state", "chargingState"),
            ("stopped_reason", "stoppedReason"),
            ("remote_start_id", "remoteStartId"),
        ):
            if key in extra:
                info[name] = extra.pop(key)
        payload: dict[str, Any] = {
            "eventType": event_type,
            "timestamp": extra.pop("timestamp", now()),
            "triggerReason": trigger,
            "seqNo": next(self.seq) if seq_no is None else seq_no,
            "transactionInfo": info,
            **extra,
        }
        if evse_id is not None and event_type == "Started":
            payload.setdefault("evse", {"id": evse_id, "connectorId": 1})
        return await self.call("TransactionEvent", payload)


def now(offset_s: float = 0.0) -> str:
    return to_rfc3339(datetime.now(UTC) + timedelta(seconds=offset_s))


def new_tx_id() -> str:
    return f"TX-{next(_tx_ids):05d}"


def token(value: str = "OCTT-VALID", kind: str = "ISO14443") -> dict[str, str]:
    return {"idToken": value, "type": kind}


def energy(wh: float, context: str = "Sample.Periodic", **extra: Any) -> list[dict[str, Any]]:
    """One meterValue with the import register (Wh)."""
    sample = {"value": wh, "context": context, "measurand": "Energy.Active.Import.Register", **extra}
    return [{"timestamp": now(), "sampledValue": [sample]}]


async def connect(rig: Rig, answers: dict[str, Answer] | None = None, *, boot: bool = True) -> Octt:
    """A newly registered station id, connected on the rig's OCPP version (and booted)."""
    station_id = f"OCTT-{next(_station_ids):04d}"
    await rig.central.register_station(station_id, PASSWORD)
    ws = await open_ws(rig.port, station_id, protocols=(f"ocpp{rig.version}",))
    station = Octt(ws, station_id, {"GetChargingProfiles": {"status": "NoProfiles"}, **(answers or {})})
    if boot:
        reconciled = asyncio.Event()

        def listen(kind: str, sid: str, data: dict[str, Any]) -> None:
            if sid == station_id and kind == "profile" and data.get("reconciled"):
                reconciled.set()

        stop = rig.central.subscribe(listen)
        try:
            assert (await station.boot())["status"] == "Accepted"
            # the CSMS's own post-boot work (capability discovery, profile reconciliation) is
            # over before the test case starts: its requests are not the test's
            async with asyncio.timeout(8):
                await reconciled.wait()
        finally:
            stop()
        station.requests.clear()
    return station


async def reconnect(
    rig: Rig, station: Octt, reason: str | None = "RemoteReset", *, password: str = PASSWORD
) -> tuple[Octt, dict[str, Any] | None]:
    """The same station after a reboot: a new connection (same answers table), booted with
    ``reason`` (None: not booted). Returns the station and the BootNotification answer."""
    await station.close()
    await wait_for(lambda: not rig.central.state(station.station_id).connected)
    ws = await open_ws(rig.port, station.station_id, password, protocols=(f"ocpp{rig.version}",))
    again = Octt(ws, station.station_id, station.answers)
    answer = None
    if reason is not None:
        answer = await again.call(
            "BootNotification", {"chargingStation": {"model": "FE-20", "vendorName": "Fermata"}, "reason": reason}
        )
    return again, answer


async def api_get(rig: Rig, path: str, **params: Any) -> Any:
    async with rig.client() as c:
        r = await c.get(path, params=params)
    assert r.status_code == 200, (path, r.status_code, r.text)
    return r.json()


async def command(rig: Rig, station: Octt, action: str, body: Any = None, status: int = 200, **params: Any) -> Any:
    path = f"/api/v1/stations/{station.station_id}/commands/{action}"
    r = await rig.post(path, body if body is not None else {}, **params)
    assert r.status_code == status, (action, r.status_code, r.text)
    return r.json()


async def transaction(rig: Rig, station: Octt, tx_id: str) -> dict[str, Any]:
    return await api_get(rig, f"/api/v1/stations/{station.station_id}/transactions/{tx_id}")  # type: ignore[no-any-return]


async def settle(station: Octt) -> None:
    """Let the CSMS finish what a just-answered message started (it answers before it writes some
    records, e.g. status rows, in the background)."""
    await asyncio.sleep(0.05)


def module_rig(versions: tuple[str, ...] = ("2.0.1", "2.1"), **server: Any) -> Any:
    """A module-scoped fixture: one CSMS per OCPP version for every test of the module."""

    @pytest_asyncio.fixture(scope="module", loop_scope="module", params=list(versions))
    async def rig(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Rig]:
        path = tmp_path_factory.mktemp(f"rig-{request.param}")
        async with running_rig(path, request.param, **{"call_timeout": 5, **server}) as r:
            yield r

    return rig


def shared_rig() -> Any:
    """The test's ``rig``: the session's CSMS for its OCPP version (``octt_rig`` in conftest),
    shared by every module that uses it; tests then run on the session's event loop (SESSION)."""

    @pytest.fixture
    def rig(octt_rig: Rig) -> Rig:
        return octt_rig

    return rig


MODULE = pytest.mark.asyncio(loop_scope="module")
SESSION = pytest.mark.asyncio(loop_scope="session")
