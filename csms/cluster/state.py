"""A station's live state (:class:`~csms.domain.station.StationState`) as JSON and back, so that
every node - the dispatch leader above all - sees the EVSEs, transactions, meter readings and
charging needs of stations connected to other nodes. Pure functions."""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from typing import Any

from csms.domain.station import BootState, EvseState, StationState
from csms.smartcharging.needs import ChargingNeeds

_EVSE_TIMES = ("metered_at", "needs_at")
_STATION_FIELDS = ("boot", "ocpp_version", "vendor", "model", "connected", "connected_since", "last_seen")
_STATION_TIMES = ("connected_since", "last_seen")


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


def encode(state: StationState) -> dict[str, Any]:
    """The parts of a station's state other nodes need (JSON-ready but for datetimes and
    dataclasses, which :func:`csms.cluster.wire.dumps` writes)."""
    out: dict[str, Any] = {name: getattr(state, name) for name in _STATION_FIELDS}
    out["capabilities"] = state.capabilities
    out["evses"] = [{f.name: getattr(evse, f.name) for f in fields(EvseState)} for evse in state.evses.values()]
    return out


def _needs(value: Any) -> ChargingNeeds | None:
    if not isinstance(value, dict):
        return None
    d = dict(value)
    d["departure_time"] = _time(d.get("departure_time"))
    d["available_energy_transfer"] = tuple(d.get("available_energy_transfer") or ())
    return ChargingNeeds(**d)


def apply(state: StationState, data: dict[str, Any]) -> None:
    """Overwrite ``state`` (a mirror of a station held elsewhere) with ``data`` from :func:`encode`."""
    state.boot = BootState(data["boot"])
    state.ocpp_version, state.vendor, state.model = data["ocpp_version"], data["vendor"], data["model"]
    state.connected = bool(data["connected"])
    for name in _STATION_TIMES:
        setattr(state, name, _time(data.get(name)))
    state.capabilities = data.get("capabilities")
    evses: dict[int, EvseState] = {}
    for raw in data.get("evses") or []:
        evse = EvseState(int(raw["evse_id"]))
        for f in fields(EvseState):
            if f.name == "evse_id" or f.name not in raw:
                continue
            value = raw[f.name]
            if f.name in _EVSE_TIMES:
                value = _time(value)
            elif f.name == "charging_needs":
                value = _needs(value)
            elif f.name == "connectors":
                value = {int(k): v for k, v in (value or {}).items()}
            setattr(evse, f.name, value)
        evses[evse.evse_id] = evse
    state.evses = evses
