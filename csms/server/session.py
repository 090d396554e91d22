"""One station's WebSocket session: the RPC endpoint plus the protocol state machine.

States follow B01-B03: a station whose BootNotification was not Accepted may only send
BootNotification and the provisioning messages the CSMS can trigger while Pending; anything
else is answered with SecurityError. The CSMS, in turn, asks a Pending station nothing but
what Pending allows (B02.FR.xx: device-model reads/writes, reports, TriggerMessage).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import structlog

from csms import metrics
from csms.blocks.context import Central
from csms.domain.station import BootState, StationState
from csms.ocpp.errors import CallError, ErrorCode, NotAllowed
from csms.ocpp.rpc import RpcEndpoint

if TYPE_CHECKING:
    from websockets.asyncio.server import ServerConnection

PENDING_INBOUND = frozenset(
    {
        "BootNotification",
        "Heartbeat",
        "StatusNotification",
        "NotifyReport",
        "NotifyEvent",
        "SecurityEventNotification",
        "FirmwareStatusNotification",
        "LogStatusNotification",
        "SignCertificate",
        "DataTransfer",
    }
)
PENDING_OUTBOUND = frozenset(
    {
        "GetVariables",
        "SetVariables",
        "GetBaseReport",
        "GetReport",
        "TriggerMessage",
        "SetNetworkProfile",
        "CertificateSigned",
        "InstallCertificate",
        "GetInstalledCertificateIds",
        "DeleteCertificate",
        "Reset",
    }
)


@runtime_checkable
class SessionHost(Central, Protocol):
    """What a session needs of the CSMS that holds it (:class:`csms.central.CentralSystem`):
    the handler table and the frame observer, besides what the handlers use."""

    handlers: dict[str, Any]

    def observer_for(self, station_id: str) -> metrics.StationObserver: ...


class StationSession:
    __slots__ = ("central", "endpoint", "log", "state", "station_id", "version", "ws")

    def __init__(self, central: SessionHost, ws: ServerConnection, station_id: str, version: str, state: StationState):
        self.central = central
        self.ws = ws
        self.station_id = station_id
        self.version = version
        self.state = state
        self.log = structlog.get_logger("csms.station").bind(station=station_id)
        settings = central.settings.server
        self.endpoint = RpcEndpoint(
            version=version,
            send=ws.send,
            handlers=central.handlers,
            context=self,
            identity=station_id,
            call_timeout=settings.call_timeout,
            queue_timeout=settings.queue_timeout,
            validate=settings.validate_messages,
            observer=central.observer_for(station_id),
            pipeline=settings.max_pipelined_calls,
            send_utf8=functools.partial(ws.send, text=True),  # frames go out as orjson made them
        )
        self.endpoint.inbound_guard = self._inbound_guard
        self.endpoint.outbound_guard = self._outbound_guard

    def _inbound_guard(self, action: str) -> None:
        boot = self.state.boot
        if boot is BootState.ACCEPTED:
            return
        if boot is BootState.PENDING and action in PENDING_INBOUND:
            return
        if action == "BootNotification":
            return
        raise CallError(
            ErrorCode.SECURITY_ERROR,
            f"{action} refused: station boot is {boot.value}; send BootNotification and wait for Accepted",
        )

    def _outbound_guard(self, action: str) -> None:
        boot = self.state.boot
        if boot is BootState.ACCEPTED or (boot is BootState.PENDING and action in PENDING_OUTBOUND):
            return
        raise NotAllowed(f"{self.station_id}: {action} not allowed while boot is {boot.value}")

    async def call(self, action: str, payload: dict[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
        return await self.endpoint.call(action, payload, timeout=timeout)
