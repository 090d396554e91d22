"""Prometheus metrics (served at ``/metrics`` by the HTTP API)."""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge, Histogram

CONNECTED = Gauge("csms_connected_stations", "Stations with an open OCPP connection")
MESSAGES_IN = Counter("csms_ocpp_messages_in_total", "OCPP CALLs received, by action", ["action"])
MESSAGES_OUT = Counter("csms_ocpp_messages_out_total", "OCPP CALLs sent, by action and outcome", ["action", "outcome"])
CALLERRORS = Counter("csms_ocpp_callerrors_sent_total", "CALLERRORs sent, by error code", ["code"])
CALL_LATENCY = Histogram(
    "csms_ocpp_call_seconds",
    "Time from sending a CALL to its answer, by action",
    ["action"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
DISPATCH_TARGET_KW = Gauge("csms_dispatch_target_kw", "Current grid-event target, kW", ["event"])
DISPATCH_DELIVERED_KW = Gauge("csms_dispatch_delivered_kw", "Metered delivery for the event, kW", ["event"])


class StationObserver:
    """Per-connection RPC observer: metrics, frame log and debug frame logging."""

    __slots__ = ("clock", "debug_log", "frame_log", "station_id")

    def __init__(self, station_id, frame_log, clock, debug_log) -> None:
        """``frame_log(direction, frame, at)``: the store's logger for this station."""
        self.station_id = station_id
        self.frame_log = frame_log
        self.clock = clock
        self.debug_log = debug_log

    def frame(self, direction: str, text: str | bytes) -> None:
        self.frame_log(direction, text, self.clock.now())
        if self.debug_log is not None:
            shown = text.decode(errors="replace") if isinstance(text, bytes) else text
            self.debug_log.debug("frame", direction=direction, frame=shown)

    def call_in(self, action: str) -> None:
        child = _IN.get(action)
        if child is None:
            child = _IN[action] = MESSAGES_IN.labels(action)
        child.inc()

    def call_out(self, action: str, seconds: float, outcome: str) -> None:
        MESSAGES_OUT.labels(action, outcome).inc()
        CALL_LATENCY.labels(action).observe(seconds)

    def error_sent(self, code: str) -> None:
        CALLERRORS.labels(code).inc()


_IN: dict[str, Any] = {}  # label children cached: inbound CALLs are the hot path
