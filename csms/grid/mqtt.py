"""MQTT bridge: grid events in, acknowledgements and dispatch status out.

Topics (``E`` = ``settings.event_topic``, ``S`` = ``settings.status_topic``):

=====================  =====================================================================
``E`` and ``E/#``      in, QoS 1: one JSON document per message, in any format of
                       :mod:`csms.grid.intake` (canonical event, ``{"cancel": "<id>"}``, Leap
                       notification, OpenADR 3 event) or a JSON list of them
``S/<id>/ack``         out, QoS 1: ``{"id", "accepted": true, "outcome", "revision", "status",
                       ...}`` or ``{"id", "accepted": false, "error": {"code", "message",
                       "field", "reason"}}``
``S/errors``           out, QoS 1: refusals that name no usable event id (unparseable JSON,
                       missing or malformed id)
``S/ack``              out, QoS 1: documents that scheduled nothing (a Leap communication test)
``S/<id>/status``      out, QoS 1, **retained**: :meth:`MqttBridge.publish_status`
``S/<id>/delivery``    out, QoS 1: :meth:`MqttBridge.publish_delivery`
``S/bridge``           out, retained: ``{"online": true}``; the broker publishes
                       ``{"online": false}`` (last will) if the bridge vanishes
=====================  =====================================================================

Delivery guarantee (at least once, end to end)
----------------------------------------------
* The bridge keeps a **persistent session** (MQTT 3.1.1, ``clean_session=False``, a stable
  client id): the broker keeps the QoS 1 subscription while the bridge is away and queues what
  is published meanwhile; it is delivered after reconnect.
* Incoming messages are acknowledged **manually**: aiomqtt 2.x has no manual-ack API, so the
  bridge switches the underlying paho-mqtt client to ``manual_ack`` and sends the PUBACK
  itself (``paho.Client.ack(mid, qos)``) only after the event is stored by the
  :class:`~csms.grid.book.EventBook` (or definitively refused) and the ``ack``/rejection
  message was handed to the broker. If the CSMS stops, crashes or the store fails before
  that, the message is un-acknowledged and the broker re-sends it on the next connection
  (the bridge drops and re-opens the connection after an internal error to force this).
  Messages are handled one at a time, so PUBACKs go out in arrival order, as MQTT requires.
* Re-delivery means duplicates are possible: the book treats an identical resubmission as a
  no-op (``outcome: duplicate``) and acknowledges it again.
* Limits: the broker must persist sessions across its own restarts (Mosquitto does with
  ``persistence true`` and a clean shutdown; a ``kill -9`` loses what it had not saved), and an
  event published with QoS 0 gets no broker-side guarantee.
* Outgoing status/delivery messages are buffered in memory (bounded, ``max_buffer``; a newer
  retained status for the same event replaces an unsent older one) while the broker is
  unreachable and sent after reconnect; they are lost if the CSMS process exits meanwhile.

The bridge reconnects forever with exponential back-off (``min_backoff_s`` .. ``max_backoff_s``,
with jitter).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiomqtt
import orjson
import structlog

from csms.clock import Clock
from csms.config import MqttSettings

from .book import EventBook, Submission
from .intake import ingest
from .model import EventRejected, check_id
from .results import IntakeResult, Rejection

log = structlog.get_logger("csms.grid.mqtt")

MAX_PAYLOAD = 1 << 20


def default_client_id(settings: MqttSettings) -> str:
    """Stable across restarts (so the broker keeps the session) and distinct per deployment;
    ``mqtt.client_id`` overrides it (set it when two CSMS instances share a broker)."""
    if settings.client_id:
        return settings.client_id
    key = f"{settings.host}:{settings.port}/{settings.event_topic}"
    return "csms-grid-" + hashlib.sha1(key.encode()).hexdigest()[:12]


def _dumps(payload: Any) -> bytes:
    return orjson.dumps(payload, default=str, option=orjson.OPT_NON_STR_KEYS)


@dataclass
class _Out:
    topic: str
    payload: bytes
    retain: bool
    inflight: bool = False


@dataclass
class BridgeStats:
    connects: int = 0
    received: int = 0
    accepted: int = 0
    rejected: int = 0
    published: int = 0
    dropped: int = 0
    redelivery_forced: int = 0
    last_error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class MqttBridge:
    def __init__(
        self,
        settings: MqttSettings,
        book: EventBook,
        clock: Clock,
        *,
        client_id: str | None = None,
        keepalive: int = 30,
        min_backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
        max_buffer: int = 1000,
        publish_timeout_s: float = 10.0,
    ) -> None:
        self.settings = settings
        self.book = book
        self.clock = clock
        self.client_id = client_id or default_client_id(settings)
        self.keepalive = keepalive
        self.min_backoff_s = min_backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_buffer = max_buffer
        self.publish_timeout_s = publish_timeout_s
        self.event_topic = settings.event_topic.rstrip("/")
        self.status_topic = settings.status_topic.rstrip("/")
        if not self.event_topic or not self.status_topic:
            raise ValueError("mqtt.event_topic and mqtt.status_topic must not be empty")
        if any(c in self.event_topic + self.status_topic for c in "+#"):
            raise ValueError("mqtt topics must not contain wildcards (+ or #)")
        if self.status_topic == self.event_topic or self.status_topic.startswith(self.event_topic + "/"):
            raise ValueError(
                "mqtt.status_topic must not be under mqtt.event_topic (the bridge would read its own acks)"
            )
        self.stats = BridgeStats()
        self._outbox: deque[_Out] = deque()
        self._outbox_changed = asyncio.Event()
        self._drained = asyncio.Event()
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    # ------------------------------------------------------------------ public API
    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def pending(self) -> int:
        """Outgoing messages waiting for the broker."""
        return len(self._outbox)

    async def wait_connected(self, timeout: float | None = None) -> bool:
        try:
            async with asyncio.timeout(timeout):
                await self._connected.wait()
        except TimeoutError:
            return False
        return True

    async def start(self) -> None:
        """Start the connection loop in the background (returns at once; the broker may be down)."""
        if self._task is not None and not self._task.done():
            return
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name="mqtt-bridge")
        log.info("mqtt bridge starting", host=self.settings.host, port=self.settings.port, client_id=self.client_id)

    async def stop(self, flush_timeout_s: float = 2.0) -> None:
        """Send what is buffered (up to ``flush_timeout_s``), then disconnect. The broker keeps
        the session, so events published while the CSMS is down arrive after the next start."""
        if self._task is None:
            return
        if self.connected and self._outbox:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(flush_timeout_s):
                    await self._drained.wait()
        self._stopping = True
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
        self._task = None
        self._connected.clear()
        if self._outbox:
            log.warning("mqtt bridge stopped with unsent status messages", count=len(self._outbox))
        log.info("mqtt bridge stopped")

    async def publish_status(self, event_id: str, payload: Mapping[str, Any]) -> None:
        """Queue ``payload`` for ``<status_topic>/<id>/status`` (QoS 1, retained); never blocks on
        the broker. While disconnected only the newest status per event is kept."""
        check_id(event_id, "event_id")
        self._enqueue(f"{self.status_topic}/{event_id}/status", _dumps(dict(payload)), retain=True)

    async def publish_delivery(self, event_id: str, payload: Mapping[str, Any]) -> None:
        """Queue ``payload`` for ``<status_topic>/<id>/delivery`` (QoS 1, not retained)."""
        check_id(event_id, "event_id")
        self._enqueue(f"{self.status_topic}/{event_id}/delivery", _dumps(dict(payload)), retain=False)

    async def forget_session(self) -> None:
        """Ask the broker to drop this client id's persistent session (and what it queued):
        for decommissioning a deployment. Do not call while the bridge runs."""
        async with self._make_client(clean_session=True):
            pass

    # ------------------------------------------------------------------ outbox
    def _enqueue(self, topic: str, payload: bytes, *, retain: bool) -> None:
        if retain:
            for item in self._outbox:
                if item.retain and item.topic == topic and not item.inflight:
                    item.payload = payload
                    self._outbox_changed.set()
                    return
        if len(self._outbox) >= self.max_buffer:
            dropped = self._outbox.popleft()
            self.stats.dropped += 1
            log.warning("mqtt outbox full: dropped the oldest message", topic=dropped.topic, limit=self.max_buffer)
        self._outbox.append(_Out(topic, payload, retain))
        self._drained.clear()
        self._outbox_changed.set()

    async def _sender(self, client: aiomqtt.Client) -> None:
        while True:
            await self._outbox_changed.wait()
            self._outbox_changed.clear()
            while self._outbox:
                item = self._outbox[0]
                item.inflight = True
                try:
                    await client.publish(
                        item.topic, item.payload, qos=1, retain=item.retain, timeout=self.publish_timeout_s
                    )
                except aiomqtt.MqttError as exc:
                    item.inflight = False
                    log.warning("mqtt publish failed; kept for retry", topic=item.topic, error=str(exc))
                    await asyncio.sleep(1.0)
                    continue
                with contextlib.suppress(ValueError):
                    self._outbox.remove(item)
                self.stats.published += 1
            self._drained.set()

    # ------------------------------------------------------------------ connection loop
    def _make_client(self, *, clean_session: bool = False) -> aiomqtt.Client:
        s = self.settings
        client = aiomqtt.Client(
            s.host,
            s.port,
            username=s.username,
            password=s.password,
            identifier=self.client_id,
            clean_session=clean_session,
            keepalive=self.keepalive,
            timeout=self.publish_timeout_s,
            will=aiomqtt.Will(f"{self.status_topic}/bridge", _dumps({"online": False}), qos=1, retain=True),
        )
        # aiomqtt 2.x acknowledges QoS 1 messages as soon as they are queued; the paho client
        # underneath supports manual acknowledgement, which the bridge uses (see module doc).
        _paho(client).manual_ack_set(True)
        return client

    async def _run(self) -> None:
        backoff = self.min_backoff_s
        while not self._stopping:
            try:
                async with self._make_client() as client:
                    self.stats.connects += 1
                    backoff = self.min_backoff_s
                    await client.subscribe([(self.event_topic, 1), (self.event_topic + "/#", 1)])
                    self._connected.set()
                    log.info("mqtt bridge connected", client_id=self.client_id, topic=self.event_topic)
                    await client.publish(f"{self.status_topic}/bridge", _dumps({"online": True}), qos=1, retain=True)
                    self._outbox_changed.set()
                    sender = asyncio.create_task(self._sender(client), name="mqtt-bridge-sender")
                    try:
                        async for message in client.messages:
                            await self._handle(client, message)
                    finally:
                        sender.cancel()
                        with contextlib.suppress(asyncio.CancelledError, Exception):
                            await sender
            except aiomqtt.MqttError as exc:
                self.stats.last_error = str(exc)
                log.warning("mqtt broker unreachable or connection lost", error=str(exc), retry_in_s=round(backoff, 2))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # e.g. the store failed while submitting: the message stays un-acknowledged and a
                # new connection makes the broker deliver it again
                self.stats.last_error = repr(exc)
                self.stats.redelivery_forced += 1
                log.error(
                    "mqtt bridge error; reconnecting so the broker re-delivers the message",
                    error=repr(exc),
                    retry_in_s=round(backoff, 2),
                )
            finally:
                for item in self._outbox:
                    item.inflight = False
                self._connected.clear()
            if self._stopping:
                break
            await asyncio.sleep(backoff * random.uniform(0.8, 1.2))
            backoff = min(backoff * 2, self.max_backoff_s)

    # ------------------------------------------------------------------ incoming
    async def _handle(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        self.stats.received += 1
        topic = str(message.topic)
        raw = message.payload if isinstance(message.payload, bytes | bytearray) else str(message.payload).encode()
        if not raw:
            # an empty retained message clears a retained event: nothing to do
            _paho(client).ack(message.mid, message.qos)
            return
        result: IntakeResult
        if len(raw) > MAX_PAYLOAD:
            result = IntakeResult(
                rejected=[Rejection(None, EventRejected("payload", f"larger than {MAX_PAYLOAD} bytes"))]
            )
        else:
            try:
                doc = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                result = IntakeResult(rejected=[Rejection(None, EventRejected("payload", f"not valid JSON: {exc}"))])
            else:
                result = await ingest(self.book, doc, source="mqtt")  # store errors propagate: no PUBACK
        await self._reply(client, topic, raw, result)
        _paho(client).ack(message.mid, message.qos)

    async def _reply(self, client: aiomqtt.Client, topic: str, raw: bytes, result: IntakeResult) -> None:
        replies: list[tuple[str, dict[str, Any]]] = []
        for sub in result.accepted:
            self.stats.accepted += 1
            replies.append((f"{self.status_topic}/{sub.event.id}/ack", _accepted(sub, result.notes)))
        for rej in result.rejected:
            self.stats.rejected += 1
            body = {"id": rej.event_id, "accepted": False, "error": rej.error.to_dict(), "topic": topic}
            if rej.event_id is None:
                body["payload"] = raw[:200].decode("utf-8", "replace")
                code = "invalid_json" if rej.error.field == "payload" else "invalid_event"
                body["error"]["code"] = code
                replies.append((f"{self.status_topic}/errors", body))
            else:
                replies.append((f"{self.status_topic}/{rej.event_id}/ack", body))
            log.info("grid event rejected", channel="mqtt", topic=topic, event_id=rej.event_id, error=str(rej.error))
        if not replies:
            replies.append((f"{self.status_topic}/ack", {"accepted": True, "events": [], "notes": result.notes}))
        for reply_topic, body in replies:
            payload = _dumps(body)
            try:
                await client.publish(reply_topic, payload, qos=1, timeout=self.publish_timeout_s)
                self.stats.published += 1
            except aiomqtt.MqttError:
                # the incoming message is not PUBACKed, so it comes again after reconnect; the
                # ack is also queued in case the session did not survive
                self._enqueue(reply_topic, payload, retain=False)
                raise


def _accepted(sub: Submission, notes: list[str]) -> dict[str, Any]:
    ev = sub.event
    return {
        "id": ev.id,
        "accepted": True,
        "outcome": sub.outcome,
        "revision": ev.revision,
        "status": ev.status,
        "is_test": ev.is_test,
        "source": ev.source,
        "received_at": ev.received_at,
        "notes": ev.notes or notes,
    }


def _paho(client: aiomqtt.Client) -> Any:
    """The paho-mqtt client inside aiomqtt (no public accessor in aiomqtt 2.x)."""
    return client._client
