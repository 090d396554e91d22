"""What a functional block sees of the CSMS: the narrow interface its handlers are typed against.

A handler gets a :class:`Session` (one station's connection state) and reaches the rest of the
CSMS through ``session.central``, a :class:`Central`: the store, the event publisher, ``call``
(a CALL to any station, whether its WebSocket is held here or, in cluster mode, by another
node), live station state and the per-process extensions. The blocks never import
:mod:`csms.central` or :mod:`csms.server`; :class:`csms.central.CentralSystem` and
:class:`csms.server.session.StationSession` satisfy these protocols structurally.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from csms.config import Settings
from csms.domain.station import StationState
from csms.domain.writebehind import WriteBehind
from csms.security.certificates import SigningCa
from csms.store.repository import Store

Listener = Callable[[str, str, dict[str, Any]], None]
"""``listener(kind, station_id, data)``; kinds: connected, disconnected, boot, status, meter,
transaction, needs, profile, ..."""


@runtime_checkable
class ChargingService(Protocol):
    """The part of charging control (:mod:`csms.services.charging_control`) the K and Q
    handlers feed: profile reports (K09), dispatch claims, V2X permission (Q)."""

    def claimed(self, station_id: str, evse_id: int) -> bool: ...

    def on_report(self, station_id: str, payload: dict[str, Any]) -> None: ...

    async def set_allowed_energy_transfer(
        self, station_id: str, transaction_id: str, modes: list[str]
    ) -> dict[str, Any]: ...


@runtime_checkable
class Central(Protocol):
    """The CSMS services a block uses."""

    settings: Settings
    store: Store | None
    signing_ca: SigningCa | None
    status_writer: WriteBehind | None
    station_writer: WriteBehind | None
    extensions: dict[str, Any]
    """Per-process services the blocks attach (local list, reservations, tariffs, ...)."""
    charging: ChargingService

    @property
    def sessions(self) -> Mapping[str, Session]:
        """The stations connected to this process."""
        ...

    def now(self) -> datetime: ...

    def state(self, station_id: str) -> StationState: ...

    def station_meta(self, station_id: str) -> dict[str, Any] | None: ...

    def boot_policy(self, station_id: str) -> str: ...

    async def call(
        self, station_id: str, action: str, payload: dict[str, Any], *, timeout: float | None = None
    ) -> dict[str, Any]:
        """One CALL to a station, connected here or to another node; raises the typed errors of
        :mod:`csms.ocpp.errors` (and StationOffline / UnknownStation)."""
        ...

    def emit(self, kind: str, station_id: str, data: dict[str, Any]) -> None:
        """Publish a station event to the listeners (HTTP API feeds, dispatch, cluster)."""
        ...

    def subscribe(self, listener: Listener, *, cluster: bool = False) -> Callable[[], None]: ...

    def background(self, coro: Awaitable[Any]) -> asyncio.Task[Any]: ...


@runtime_checkable
class Session(Protocol):
    """One station's connection as its handlers see it."""

    @property
    def central(self) -> Central: ...

    @property
    def station_id(self) -> str: ...

    @property
    def version(self) -> str:
        """The negotiated OCPP version: "2.0.1" or "2.1"."""
        ...

    @property
    def state(self) -> StationState: ...

    @property
    def log(self) -> Any:
        """A structlog logger bound to the station id."""
        ...

    async def call(self, action: str, payload: dict[str, Any], *, timeout: float | None = None) -> dict[str, Any]: ...
