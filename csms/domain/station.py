"""Live, in-memory state of each known station (survives reconnects, rebuilt from the store).

This is what dispatch and the API read without touching the database: EVSE and connector
states, the active transaction per EVSE, the latest metered power and SoC, the car's charging
needs and V2X permission. It is updated by the functional blocks as frames arrive.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class BootState(StrEnum):
    """B01-B03: a station is Unknown until its first BootNotification is answered."""

    UNKNOWN = "Unknown"
    PENDING = "Pending"
    ACCEPTED = "Accepted"
    REJECTED = "Rejected"


@dataclass(slots=True)
class EvseState:
    evse_id: int
    connectors: dict[int, str] = field(default_factory=dict)  # connectorId -> ConnectorStatus
    transaction_id: str | None = None
    transaction_started_at: datetime | None = None
    """When the current transaction started (the car plugged in), as the store has it."""
    id_token: str | None = None
    charging_state: str | None = None
    operation_mode: str | None = None
    power_import_w: float = 0.0
    power_export_w: float = 0.0
    soc: float | None = None
    energy_import_wh: float | None = None
    energy_export_wh: float | None = None
    metered_at: datetime | None = None
    charging_needs: Any = None  # csms.smartcharging.needs.ChargingNeeds
    needs_at: datetime | None = None
    allowed_energy_transfer: list[str] | None = None
    external_limit: dict[str, Any] | None = None

    @property
    def net_export_w(self) -> float:
        return self.power_export_w - self.power_import_w


@dataclass(slots=True)
class StationState:
    station_id: str
    boot: BootState = BootState.UNKNOWN
    ocpp_version: str | None = None
    vendor: str | None = None
    model: str | None = None
    connected: bool = False
    connected_since: datetime | None = None
    last_seen: datetime | None = None
    evses: dict[int, EvseState] = field(default_factory=dict)
    capabilities: dict[str, Any] | None = None
    client_certificate: dict[str, Any] | None = None
    """Profile 3: the certificate presented on the current connection (subject, serialNumber,
    notAfter as an aware datetime)."""

    def evse(self, evse_id: int) -> EvseState:
        state = self.evses.get(evse_id)
        if state is None:
            state = self.evses[evse_id] = EvseState(evse_id)
        return state

    def evse_of_transaction(self, transaction_id: str) -> EvseState | None:
        for evse in self.evses.values():
            if evse.transaction_id == transaction_id:
                return evse
        return None
