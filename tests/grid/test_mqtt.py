"""The MQTT bridge against the real Mosquitto on 127.0.0.1:1883 (no auth).

Each test uses its own topic prefix and client ids (parallel runs do not collide) and, at the
end, clears the retained messages it left and drops the persistent sessions it created.
``test_broker_restart`` really stops and restarts the local Mosquitto daemon.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from csms.config import MqttSettings
from csms.grid.book import EventBook
from csms.grid.mqtt import MqttBridge
from csms.store.repository import Store
from tests.conftest import require_service, service_up
from tests.grid.conftest import ManualClock, event_doc
from tests.grid.test_leap import SLOT, notification
from tests.mqtt_support import (
    HOST,
    PORT,
    Collector,
    can_restart_broker,
    clear_retained,
    forget,
    publish,
    start_broker,
    stop_broker,
    until,
)


@dataclass
class Env:
    prefix: str
    book: EventBook
    settings: MqttSettings
    client_ids: list[str] = field(default_factory=list)
    bridges: list[MqttBridge] = field(default_factory=list)

    @property
    def events(self) -> str:
        return self.settings.event_topic

    def st(self, suffix: str) -> str:
        return f"{self.settings.status_topic}/{suffix}"

    def bridge(self, client_id: str | None = None, **kw: Any) -> MqttBridge:
        cid = client_id or f"{self.prefix.replace('/', '-')}-bridge"
        if cid not in self.client_ids:
            self.client_ids.append(cid)
        kw = {"min_backoff_s": 0.1, "max_backoff_s": 0.5, "keepalive": 5, **kw}
        b = MqttBridge(self.settings, self.book, self.book.clock, client_id=cid, **kw)
        self.bridges.append(b)
        return b


@pytest.fixture
async def env(store: Store, clock: ManualClock) -> AsyncIterator[Env]:
    require_service("Mosquitto", HOST, PORT)
    prefix = f"csms-test/{uuid.uuid4().hex[:12]}"
    book = EventBook(store, clock)
    settings = MqttSettings(host=HOST, port=PORT, event_topic=f"{prefix}/events", status_topic=f"{prefix}/status")
    e = Env(prefix, book, settings)
    try:
        yield e
    finally:
        for b in e.bridges:
            await b.stop(flush_timeout_s=0.5)
        if service_up(HOST, PORT):
            for cid in e.client_ids:
                await forget(cid)
            await clear_retained(prefix)


@contextlib.asynccontextmanager
async def running(bridge: MqttBridge) -> AsyncIterator[MqttBridge]:
    await bridge.start()
    assert await bridge.wait_connected(10), f"bridge did not connect: {bridge.stats.last_error}"
    try:
        yield bridge
    finally:
        await bridge.stop()


# -------------------------------------------------------------------------------- tests
def test_status_topic_must_not_be_under_event_topic(book: EventBook) -> None:
    s = MqttSettings(event_topic="a/events", status_topic="a/events/status")
    with pytest.raises(ValueError, match="status_topic"):
        MqttBridge(s, book, book.clock)


@pytest.mark.mqtt
async def test_event_in_ack_out_and_rejections(env: Env) -> None:
    async with Collector(env.st("#")) as acks, running(env.bridge()):
        await publish(env.events, event_doc("e1"))
        ack = await acks.wait(env.st("e1/ack"))
        assert ack["accepted"] is True and ack["outcome"] == "submitted" and ack["status"] == "pending"
        ev = env.book.get("e1")
        assert ev is not None and ev.source == "mqtt"

        # on a sub-topic, with an invalid interval: rejected, the field is named
        bad = event_doc("e2")
        bad["intervals"][0]["end"] = bad["intervals"][0]["start"]
        await publish(f"{env.events}/site-a", bad)
        nack = await acks.wait(env.st("e2/ack"))
        assert nack["accepted"] is False
        assert nack["error"]["field"] == "intervals[0].end" and nack["error"]["reason"] == "must be after start"
        assert env.book.get("e2") is None

        # not JSON at all: refused on the errors topic
        await publish(env.events, b"{not json", raw=True)
        err = await acks.wait(env.st("errors"))
        assert err["accepted"] is False
        assert (err["error"]["field"], err["error"]["code"]) == ("payload", "invalid_json")

        # revision conflict names the revision field
        await publish(env.events, event_doc("e1", kw=1))
        await until(lambda: len(acks.on(env.st("e1/ack"))) >= 2)
        assert acks.on(env.st("e1/ack"))[-1]["error"]["field"] == "revision"

        # cancel, and a Leap notification (recognised by market_group_event_id)
        await publish(env.events, {"cancel": "e1", "reason": "withdrawn"})
        await until(lambda: any(a.get("status") == "cancelled" for a in acks.on(env.st("e1/ack"))))
        assert env.book.get("e1").status == "cancelled"  # type: ignore[union-attr]
        await publish(env.events, notification(SLOT, test=True))
        leap_ack = await acks.wait(env.st(f"{SLOT['market_group_event_id']}/ack"))
        assert leap_ack["accepted"] and leap_ack["is_test"] is True


@pytest.mark.mqtt
async def test_status_and_delivery_topics(env: Env) -> None:
    async with running(env.bridge()) as bridge:
        await bridge.publish_status("e9", {"state": "dispatching", "target_kw": 400})
        await bridge.publish_delivery("e9", {"delivered_kw": 380})
        await until(lambda: bridge.pending == 0)
    # status is retained: a subscriber arriving later still sees the latest one
    async with Collector(env.st("e9/#")) as late:
        status = await late.wait(env.st("e9/status"))
        assert status == {"state": "dispatching", "target_kw": 400}
        assert late.on(env.st("e9/delivery")) == []  # delivery is a stream, not retained


@pytest.mark.mqtt
async def test_events_published_while_bridge_is_away_arrive_after_reconnect(env: Env) -> None:
    async with running(env.bridge()):
        pass  # the first connection creates the persistent session (subscription kept by the broker)
    await publish(env.events, event_doc("offline-1"))  # nobody connected now
    assert env.book.get("offline-1") is None
    async with running(env.bridge()):  # a new bridge instance, same client id
        await until(lambda: env.book.get("offline-1"), what="queued event delivered")


@pytest.mark.mqtt
async def test_message_is_not_acked_until_stored(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """The store fails on the first write: the bridge does not PUBACK, reconnects, and the broker
    re-delivers the message, which then goes in."""
    real = env.book.store.put_grid_event
    failures = [RuntimeError("database is locked")]

    async def flaky(*args: Any, **kwargs: Any) -> Any:
        if failures:
            raise failures.pop()
        return await real(*args, **kwargs)

    monkeypatch.setattr(env.book.store, "put_grid_event", flaky)
    async with Collector(env.st("#")) as acks, running(env.bridge()) as bridge:
        await publish(env.events, event_doc("retry-1"))
        ack = await acks.wait(env.st("retry-1/ack"))
        assert ack["accepted"] and env.book.get("retry-1") is not None
        assert bridge.stats.redelivery_forced == 1 and bridge.stats.connects >= 2


@pytest.mark.mqtt
@pytest.mark.timeout(90)
async def test_broker_restart(env: Env) -> None:
    if not await can_restart_broker():
        pytest.skip("Mosquitto does not run as a local daemon here: cannot restart it")
    sub_id = f"{env.prefix.replace('/', '-')}-sub"
    env.client_ids.append(sub_id)
    bridge = env.bridge()
    try:
        async with running(bridge):
            # a persistent test subscriber: what the bridge publishes while it is offline is queued for it
            async with Collector(env.st("#"), sub_id, persistent=True):
                pass
            await stop_broker()
            await until(lambda: not bridge.connected, 10, "bridge noticed the outage")

            # the dispatch loop keeps reporting during the outage: buffered, not lost
            await bridge.publish_status("ev-outage", {"state": "dispatching", "kw": 123})
            await bridge.publish_status("ev-outage", {"state": "dispatching", "kw": 120})  # replaces the unsent one
            await bridge.publish_delivery("ev-outage", {"delivered_kw": 118})
            assert bridge.pending == 2

            await start_broker()
            await publish(env.events, event_doc("ev-after"))  # right after the restart
            assert await bridge.wait_connected(15), "bridge did not reconnect"

            async with Collector(env.st("#"), sub_id, persistent=True) as sub:
                ack = await sub.wait(env.st("ev-after/ack"), 15)
                assert ack["accepted"] is True
                status = await sub.wait(env.st("ev-outage/status"))
                assert status == {"state": "dispatching", "kw": 120}
                assert await sub.wait(env.st("ev-outage/delivery")) == {"delivered_kw": 118}
            assert env.book.get("ev-after") is not None
            await until(lambda: bridge.pending == 0, 5, "outbox drained")
            assert bridge.stats.connects >= 2
    finally:
        if not service_up(HOST, PORT):
            await start_broker()
