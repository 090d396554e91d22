"""Live site meter readings for load balancing: an MQTT topic per site, or a station's EVSE 0
MeterValues (the ``site_meter`` event of :mod:`csms.blocks.transactions`).

MQTT payloads: a bare number (W), or JSON ``{"power_w": ...}`` / ``{"power_kw": ...}`` with an
optional ``"timestamp"`` (RFC 3339; default: when it arrived). Import is positive. Readings are
kept as :class:`Reading`; the balancer decides whether one is fresh enough.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiomqtt
import orjson
import structlog

from csms.config import MqttSettings

log = structlog.get_logger("csms.sites.meter")


@dataclass(frozen=True, slots=True)
class Reading:
    power_w: float  # import positive
    at: datetime
    source: str


class MeterPayloadError(ValueError):
    pass


def parse_payload(payload: bytes | str, now: datetime) -> tuple[float, datetime]:
    """(W, timestamp) from an MQTT site meter payload; :class:`MeterPayloadError` names what is wrong."""
    text = payload.decode() if isinstance(payload, bytes) else payload
    try:
        data: Any = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise MeterPayloadError(f"not a number or JSON: {text[:60]!r}") from None
    if isinstance(data, bool):
        raise MeterPayloadError("a boolean is not a power")
    if isinstance(data, int | float):
        return float(data), now
    if not isinstance(data, dict):
        raise MeterPayloadError("expected a number or an object with power_w or power_kw")
    if "power_w" in data:
        value = data["power_w"]
        scale = 1.0
    elif "power_kw" in data:
        value = data["power_kw"]
        scale = 1000.0
    else:
        raise MeterPayloadError("object without power_w or power_kw")
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MeterPayloadError(f"power is not a number: {value!r}")
    at = now
    if "timestamp" in data:
        try:
            at = datetime.fromisoformat(str(data["timestamp"]).replace("Z", "+00:00"))
        except ValueError:
            raise MeterPayloadError(f"bad timestamp {data['timestamp']!r}") from None
        if at.tzinfo is None:
            raise MeterPayloadError("timestamp needs a UTC offset")
    return float(value) * scale, at


class MqttSiteMeters:
    """One MQTT client subscribed to every site's meter topic; ``on_reading(topic, W, at)``."""

    def __init__(
        self,
        settings: MqttSettings,
        topics: list[str],
        on_reading: Callable[[str, float, datetime], None],
        now: Callable[[], datetime],
    ) -> None:
        self.settings = settings
        self.topics = sorted(set(topics))
        self.on_reading = on_reading
        self.now = now
        self.errors = 0
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="site-meters-mqtt")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        s = self.settings
        backoff = 0.5
        while True:
            try:
                async with aiomqtt.Client(s.host, s.port, username=s.username, password=s.password) as client:
                    await client.subscribe([(t, 0) for t in self.topics])
                    self.connected.set()
                    backoff = 0.5
                    log.info("site meters subscribed", topics=self.topics)
                    async for message in client.messages:
                        self._handle(str(message.topic), message.payload)
            except aiomqtt.MqttError as exc:
                self.connected.clear()
                log.warning("site meter broker unreachable", error=str(exc), retry_in_s=backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)

    def _handle(self, topic: str, payload: Any) -> None:
        try:
            if not isinstance(payload, bytes | str):
                raise MeterPayloadError("empty payload")
            watts, at = parse_payload(payload, self.now())
        except MeterPayloadError as exc:
            self.errors += 1
            log.warning("site meter reading refused", topic=topic, error=str(exc))
            return
        self.on_reading(topic, watts, at)
