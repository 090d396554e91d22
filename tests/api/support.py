"""Shared by the API and CLI tests: a running CSMS (OCPP server + HTTP API on ephemeral ports)
and simulated stations that answer every command the API sends, over real sockets."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from csms.api.apitokens import issue_token
from csms.clock import to_rfc3339
from csms.config import ApiSettings, SecuritySettings, ServerSettings, Settings
from csms.service import Service
from tests.support import PASSWORD, TestStation, open_ws

STATIONS = ("FE-0001", "FE-0002", "FE-0003")


def now_ts() -> str:
    return to_rfc3339(datetime.now(UTC))


class FakeStation(TestStation):
    """A TestStation whose handlers answer the API's commands like a real charger, including the
    follow-up messages (FirmwareStatusNotification, LogStatusNotification, NotifyReport ...)."""

    def __init__(self, ws: Any, *, delay: dict[str, float] | None = None, errors: dict[str, str] | None = None):
        self.delay = delay or {}
        self.errors = errors or {}
        self.variables: dict[tuple[str, str], str] = {
            ("OCPPCommCtrlr", "HeartbeatInterval"): "300",
            ("SampledDataCtrlr", "TxUpdatedInterval"): "60",
            ("Identity", "SerialNumber"): "SN-0001",
        }
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.transactions: set[str] = set()
        self._tasks: set[asyncio.Task[Any]] = set()
        handlers = {
            name: self._wrap(name, fn)
            for name, fn in {
                "Reset": self.reset,
                "UnlockConnector": self.unlock,
                "ChangeAvailability": self.change_availability,
                "TriggerMessage": self.trigger,
                "GetVariables": self.get_variables,
                "SetVariables": self.set_variables,
                "GetBaseReport": self.get_base_report,
                "RequestStartTransaction": self.request_start,
                "RequestStopTransaction": self.request_stop,
                "SetChargingProfile": self.accepted,
                "ClearChargingProfile": self.accepted,
                "GetCompositeSchedule": self.composite,
                "UpdateFirmware": self.update_firmware,
                "GetLog": self.get_log,
                "GetChargingProfiles": self.no_profiles,
            }.items()
        }
        super().__init__(ws, handlers)

    def _wrap(self, name: str, fn: Any) -> Any:
        async def handler(_ctx: Any, payload: dict[str, Any]) -> dict[str, Any]:
            self.calls.append((name, payload))
            if name in self.delay:
                await asyncio.sleep(self.delay[name])
            if name in self.errors:
                from csms.ocpp.errors import CallError, ErrorCode

                raise CallError(ErrorCode(self.errors[name]), f"{name} refused by the test station")
            return await fn(payload)

        return handler

    def calls_of(self, action: str) -> list[dict[str, Any]]:
        """Payloads of the CALLs of ``action`` this station received (the CSMS also sends its own
        after boot, e.g. capability discovery)."""
        return [p for a, p in self.calls if a == action]

    def later(self, *calls: tuple[str, dict[str, Any]], gap: float = 0.02) -> None:
        async def run() -> None:
            for action, payload in calls:
                await asyncio.sleep(gap)
                with contextlib.suppress(Exception):
                    await self.call(action, payload)

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def settle(self) -> None:
        while self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # ------------------------------------------------------------------ handlers
    async def accepted(self, _p: dict[str, Any]) -> dict[str, Any]:
        return {"status": "Accepted"}

    async def no_profiles(self, _p: dict[str, Any]) -> dict[str, Any]:
        return {"status": "NoProfiles"}

    async def reset(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"status": "Scheduled" if p["type"] == "OnIdle" and self.transactions else "Accepted"}

    async def unlock(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"status": "Unlocked" if p["connectorId"] == 1 else "UnknownConnector"}

    async def change_availability(self, p: dict[str, Any]) -> dict[str, Any]:
        status = "Unavailable" if p["operationalStatus"] == "Inoperative" else "Available"
        evse = p.get("evse", {"id": 1})
        self.later(
            (
                "StatusNotification",
                {"timestamp": now_ts(), "connectorStatus": status, "evseId": evse["id"] or 1, "connectorId": 1},
            )
        )
        return {"status": "Accepted"}

    async def trigger(self, p: dict[str, Any]) -> dict[str, Any]:
        msg = p["requestedMessage"]
        if msg == "StatusNotification":
            evse = p.get("evse", {}).get("id", 1)
            self.later(
                (
                    "StatusNotification",
                    {"timestamp": now_ts(), "connectorStatus": "Available", "evseId": evse, "connectorId": 1},
                )
            )
        elif msg == "Heartbeat":
            self.later(("Heartbeat", {}))
        else:
            return {"status": "NotImplemented"}
        return {"status": "Accepted"}

    async def get_variables(self, p: dict[str, Any]) -> dict[str, Any]:
        results = []
        for item in p["getVariableData"]:
            key = (item["component"]["name"], item["variable"]["name"])
            r: dict[str, Any] = {"component": item["component"], "variable": item["variable"]}
            if key in self.variables:
                r.update(attributeStatus="Accepted", attributeValue=self.variables[key])
            else:
                r["attributeStatus"] = "UnknownVariable"
            results.append(r)
        return {"getVariableResult": results}

    async def set_variables(self, p: dict[str, Any]) -> dict[str, Any]:
        results = []
        for item in p["setVariableData"]:
            key = (item["component"]["name"], item["variable"]["name"])
            status = "Accepted" if key in self.variables and key[0] != "Identity" else "Rejected"
            if status == "Accepted":
                self.variables[key] = item["attributeValue"]
            results.append({"attributeStatus": status, "component": item["component"], "variable": item["variable"]})
        return {"setVariableResult": results}

    async def get_base_report(self, p: dict[str, Any]) -> dict[str, Any]:
        data = [
            {
                "component": {"name": c},
                "variable": {"name": v},
                "variableAttribute": [{"type": "Actual", "value": value}],
                "variableCharacteristics": {"dataType": "string", "supportsMonitoring": False},
            }
            for (c, v), value in self.variables.items()
        ]
        self.later(
            ("NotifyReport", {"requestId": p["requestId"], "generatedAt": now_ts(), "seqNo": 0, "reportData": data})
        )
        return {"status": "Accepted"}

    async def request_start(self, p: dict[str, Any]) -> dict[str, Any]:
        tx = f"TX-{p['remoteStartId']}"
        self.transactions.add(tx)
        return {"status": "Accepted", "transactionId": tx}

    async def request_stop(self, p: dict[str, Any]) -> dict[str, Any]:
        if p["transactionId"] in self.transactions:
            self.transactions.discard(p["transactionId"])
            return {"status": "Accepted"}
        return {"status": "Rejected"}

    async def composite(self, p: dict[str, Any]) -> dict[str, Any]:
        return {
            "status": "Accepted",
            "schedule": {
                "evseId": p["evseId"],
                "duration": p["duration"],
                "scheduleStart": now_ts(),
                "chargingRateUnit": p.get("chargingRateUnit", "W"),
                "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 11000.0}],
            },
        }

    async def update_firmware(self, p: dict[str, Any]) -> dict[str, Any]:
        rid = p["requestId"]
        fail = "fail" in p["firmware"]["location"]
        steps = ["Downloading", "DownloadFailed"] if fail else ["Downloading", "Downloaded", "Installing", "Installed"]
        self.later(*[("FirmwareStatusNotification", {"status": s, "requestId": rid}) for s in steps])
        return {"status": "Accepted"}

    async def get_log(self, p: dict[str, Any]) -> dict[str, Any]:
        rid = p["requestId"]
        self.later(*[("LogStatusNotification", {"status": s, "requestId": rid}) for s in ("Uploading", "Uploaded")])
        return {"status": "Accepted", "filename": "diagnostics-0001.log"}


@dataclass
class Env:
    service: Service
    url: str
    read_token: str
    operator_token: str
    ocpp_port: int
    stations: list[FakeStation] = field(default_factory=list)

    @property
    def central(self) -> Any:
        return self.service.central

    @property
    def store(self) -> Any:
        return self.service.central.store

    def client(self, token: str | None = "operator") -> httpx.AsyncClient:
        tok = {"operator": self.operator_token, "read": self.read_token}.get(token or "", token)
        headers = {"Authorization": f"Bearer {tok}"} if tok else {}
        return httpx.AsyncClient(base_url=self.url, headers=headers, timeout=30)

    async def connect(
        self, station_id: str = "FE-0001", *, version: str = "2.0.1", boot: bool = True, **kw: Any
    ) -> FakeStation:
        ws = await open_ws(self.ocpp_port, station_id, protocols=(f"ocpp{version}",))
        station = FakeStation(ws, **kw)
        self.stations.append(station)
        if boot:
            await station.boot()
            await station.call(
                "StatusNotification",
                {"timestamp": now_ts(), "connectorStatus": "Available", "evseId": 1, "connectorId": 1},
            )
        return station

    async def quiet(self, station_id: str = "FE-0001", still: float = 0.4, timeout: float = 5.0) -> None:
        """Wait until the station's frame log stops growing (the CSMS's own post-boot traffic,
        such as capability discovery, is over) and everything is flushed."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        last = None
        while loop.time() < deadline:
            await self.store.flush()
            frames = await self.store.frames(station_id, limit=1)
            newest = frames[0].id if frames else None
            if newest == last and newest is not None:
                return
            last = newest
            await asyncio.sleep(still)


def api_settings(tmp_path: Path, security: SecuritySettings | None = None, **server: Any) -> Settings:
    return Settings(
        data_dir=tmp_path,
        server=ServerSettings(host="127.0.0.1", port=0, ping_interval=5, **server),
        api=ApiSettings(enabled=True, host="127.0.0.1", port=0),
        security=security or SecuritySettings(),
    )


async def attach_event_book(service: Service) -> Any:
    """Give the service a grid EventBook (what ``csms serve`` wires when the grid part runs)."""
    try:
        from csms.grid.book import EventBook
    except ImportError:
        return None
    book = EventBook(service.central.store, service.central.clock)
    await book.load()
    service.event_book = book  # type: ignore[attr-defined]
    return book


@contextlib.asynccontextmanager
async def running_csms(tmp_path: Path, security: SecuritySettings | None = None, **server: Any) -> AsyncIterator[Env]:
    service = Service(api_settings(tmp_path, security, **server))
    await service.start()
    try:
        store = service.central.store
        read, _ = await issue_token(store, "reader", "read")
        operator, _ = await issue_token(store, "operator", "operator")
        for sid in STATIONS:
            await service.central.register_station(sid, PASSWORD)
        await attach_event_book(service)
        assert service.api is not None and service.central.port is not None
        env = Env(service, service.api.url, read, operator, service.central.port)
        try:
            yield env
        finally:
            for st in env.stations:
                with contextlib.suppress(Exception):
                    await st.close()
    finally:
        await service.stop()


@contextlib.contextmanager
def server_logs_to_stderr() -> Any:
    """CliRunner swaps the process-wide sys.stdout/stderr while a command runs; the server's logs
    (same process) must not land in the command's output, so they go to today's stderr."""
    import logging
    import sys

    import structlog

    saved = structlog.get_config()
    structlog.configure(
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING),
        cache_logger_on_first_use=False,
    )
    try:
        yield
    finally:
        structlog.configure(**saved)


async def wait_for(predicate: Any, timeout: float = 5.0, interval: float = 0.05) -> Any:
    """Poll ``predicate`` (sync or async) until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)
