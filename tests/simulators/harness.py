"""Drive a Station's firmware without sockets: a manual clock, direct handler calls, a fake link."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from csms.clock import Clock, to_rfc3339
from csms.ocpp import schemas
from simulators.config import StationConfig
from simulators.handlers import HANDLERS
from simulators.station import Station

EPOCH = datetime(2026, 8, 18, 23, 0, tzinfo=UTC)


class ManualClock(Clock):
    """A clock that moves only when told to."""

    def __init__(self, epoch: datetime = EPOCH) -> None:
        super().__init__(epoch, 1.0)
        self._now = epoch

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)


Responder = Callable[[dict[str, Any]], dict[str, Any]]


class Rig:
    """A station whose link is faked: the outbox is answered synchronously with canned responses."""

    __test__ = False

    def __init__(self, version: str = "2.1", **cfg: Any) -> None:
        self.clock = ManualClock()
        cfg.setdefault("id", "SIM-1")
        cfg.setdefault("ocpp", [version])
        cfg.setdefault("ramp_kw_per_s", 2.0)
        self.station = Station(StationConfig(**cfg), self.clock, "ws://unused")
        self.version = version
        self.station.version = version
        self.sent: list[tuple[str, dict[str, Any]]] = []
        self.responses: dict[str, Responder] = {
            "BootNotification": lambda p: {"currentTime": self.ts(), "interval": 300, "status": "Accepted"},
            "Heartbeat": lambda p: {"currentTime": self.ts()},
            "Authorize": self._authorize,
            "NotifyEVChargingNeeds": lambda p: {"status": "Accepted"},
            "TransactionEvent": lambda p: {},
        }
        self.allowed: list[str] | None = ["DC", "DC_BPT"]
        self.go_online()

    # ------------------------------------------------------------------ link
    def go_online(self) -> None:
        st = self.station
        st.online = True
        st.registration = "Accepted"
        st.offline_since_t = None
        st._went_online()

    def go_offline(self) -> None:
        st = self.station
        st.online = False
        st.offline_since_t = self.now_t()

    def ts(self) -> str:
        return to_rfc3339(self.clock.now())

    def now_t(self) -> float:
        return self.clock.now().timestamp()

    def _authorize(self, p: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"idTokenInfo": {"status": "Accepted"}}
        if self.version == "2.1" and self.allowed is not None:
            out["allowedEnergyTransfer"] = self.allowed
        return out

    def deliver(self) -> list[tuple[str, dict[str, Any]]]:
        """Answer everything in the outbox (schema-checked both ways) while online."""
        st = self.station
        out: list[tuple[str, dict[str, Any]]] = []
        while st.online and st._outbox:
            item = st._outbox.popleft()
            schemas.validate(self.version, item.action, "request", item.payload)
            resp = self.responses.get(item.action, lambda p: {})(item.payload)
            schemas.validate(self.version, item.action, "response", resp)
            out.append((item.action, item.payload))
            if item.on_result is not None:
                item.on_result(resp)
        self.sent.extend(out)
        return out

    def tick(self) -> list[tuple[str, dict[str, Any]]]:
        self.station._tick(self.now_t())
        return self.deliver()

    def run(self, seconds: float, step: float = 1.0) -> list[tuple[str, dict[str, Any]]]:
        out: list[tuple[str, dict[str, Any]]] = []
        remaining = seconds
        while remaining > 1e-9:
            dt = min(step, remaining)
            self.clock.advance(dt)
            remaining -= dt
            out.extend(self.tick())
        return out

    # ------------------------------------------------------------------ CSMS -> station
    async def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Run a station handler like the RPC endpoint would (schemas checked both ways)."""
        schemas.validate(self.version, action, "request", payload)
        handler = HANDLERS[self.version][action]
        resp = await handler(self.station, payload)
        schemas.validate(self.version, action, "response", resp)
        self.station._tick(self.now_t())  # the real firmware loop wakes at once after a CSMS request
        return resp

    # ------------------------------------------------------------------ scenario helpers
    def plug(self, evse: int = 1, **kw: Any) -> None:
        self.station.plug_in(evse, **kw)
        self.tick()
        self.tick()  # authorization answered -> charging needs -> control

    def events(self, action: str = "TransactionEvent") -> list[dict[str, Any]]:
        return [p for a, p in self.sent if a == action]

    def tx_id(self, evse: int = 1) -> str:
        tx = self.station.evses[evse].transaction_id
        assert tx is not None
        return tx

    def profile(
        self,
        periods: list[dict[str, Any]],
        *,
        profile_id: int = 1,
        purpose: str = "TxProfile",
        evse: int = 1,
        stack: int = 1,
        tx: bool = True,
        **extra: Any,
    ) -> dict[str, Any]:
        prof: dict[str, Any] = {
            "id": profile_id,
            "stackLevel": stack,
            "chargingProfilePurpose": purpose,
            "chargingProfileKind": "Absolute",
            "chargingSchedule": [
                {"id": 1, "startSchedule": self.ts(), "chargingRateUnit": "W", "chargingSchedulePeriod": periods}
            ],
            **extra,
        }
        if purpose == "TxProfile" and tx:
            prof["transactionId"] = self.tx_id(evse)
        return {"evseId": evse, "chargingProfile": prof}
