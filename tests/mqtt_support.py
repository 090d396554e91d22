"""Helpers for tests against the real Mosquitto on 127.0.0.1:1883 (no auth): a recording
subscriber, one-shot publishing, clean-up of retained messages and persistent sessions, and
stopping/restarting the local Mosquitto daemon (``mosquitto -d -c /etc/mosquitto/mosquitto.conf``)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import time
from collections.abc import Callable
from typing import Any

import aiomqtt
import orjson

from tests.conftest import service_up

HOST, PORT = "127.0.0.1", 1883
MOSQUITTO_CMD = ["mosquitto", "-d", "-c", "/etc/mosquitto/mosquitto.conf"]


async def until(predicate: Callable[[], Any], timeout: float = 8.0, what: str = "condition") -> Any:
    """Poll ``predicate`` every 50 ms until it is truthy; its value, or AssertionError naming ``what``."""
    try:
        async with asyncio.timeout(timeout):
            while True:
                value = predicate()
                if value:
                    return value
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"timed out after {timeout} s waiting for {what}") from None


class Collector:
    """A test subscriber recording every message on ``topic_filter`` as ``(topic, body, retain)``
    (``received_at`` keeps the wall time of each).

    With ``reconnect=True`` (use it with ``persistent=True`` and a fixed ``client_id``) it survives a
    broker restart: it reconnects with the same persistent session and receives what the broker
    queued for it meanwhile."""

    def __init__(
        self,
        topic_filter: str,
        client_id: str | None = None,
        *,
        persistent: bool = False,
        reconnect: bool = False,
    ) -> None:
        self.topic_filter = topic_filter
        self.client_id = client_id
        self.persistent = persistent
        self.reconnect = reconnect
        self.client = self._new_client()
        self.messages: list[tuple[str, Any, bool]] = []
        self.received_at: list[float] = []
        self.connects = 0
        self._task: asyncio.Task[None] | None = None

    def _new_client(self) -> aiomqtt.Client:
        return aiomqtt.Client(HOST, PORT, identifier=self.client_id, clean_session=not self.persistent, keepalive=5)

    async def __aenter__(self) -> Collector:
        await self.client.__aenter__()
        await self.client.subscribe(self.topic_filter, qos=1)
        self.connects = 1
        self._task = asyncio.create_task(self._pump())
        return self

    async def _pump(self) -> None:
        with contextlib.suppress(aiomqtt.MqttError):
            await self._receive()
        while self.reconnect:
            with contextlib.suppress(aiomqtt.MqttError):
                await self.client.__aexit__(None, None, None)
            await asyncio.sleep(0.2)
            client = self._new_client()  # a fresh client per connection (aiomqtt keeps stale futures)
            try:
                await client.__aenter__()
            except aiomqtt.MqttError:
                continue
            self.client = client
            self.connects += 1
            with contextlib.suppress(aiomqtt.MqttError):
                await client.subscribe(self.topic_filter, qos=1)
                await self._receive()

    async def _receive(self) -> None:
        async for m in self.client.messages:
            body = orjson.loads(m.payload) if m.payload else None
            self.messages.append((str(m.topic), body, bool(m.retain)))
            self.received_at.append(time.monotonic())

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(aiomqtt.MqttError):
            await self.client.__aexit__(None, None, None)

    def on(self, topic: str) -> list[Any]:
        return [body for t, body, _ in self.messages if t == topic]

    async def wait(self, topic: str, timeout: float = 8.0) -> Any:
        return (await until(lambda: self.on(topic), timeout, f"a message on {topic}"))[-1]


async def publish(topic: str, payload: Any, *, raw: bool = False) -> None:
    async with aiomqtt.Client(HOST, PORT) as c:
        await c.publish(topic, payload if raw else orjson.dumps(payload), qos=1)


async def clear_retained(prefix: str) -> None:
    """Clear every retained message under ``prefix/#``."""
    topics: set[str] = set()
    async with aiomqtt.Client(HOST, PORT) as c:
        await c.subscribe(prefix + "/#", qos=1)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(0.5):
                async for m in c.messages:
                    if m.retain and m.payload:
                        topics.add(str(m.topic))
        for t in topics:
            await c.publish(t, b"", qos=1, retain=True)


async def forget(client_id: str) -> None:
    """Drop the persistent session of ``client_id`` at the broker."""
    with contextlib.suppress(aiomqtt.MqttError):
        async with aiomqtt.Client(HOST, PORT, identifier=client_id, clean_session=True):
            pass


# ------------------------------------------------------------------------- the daemon itself
async def broker_pids() -> list[int]:
    proc = await asyncio.create_subprocess_exec("pgrep", "-x", "mosquitto", stdout=asyncio.subprocess.PIPE)
    out, _ = await proc.communicate()
    return [int(p) for p in out.split()]


async def can_restart_broker() -> bool:
    """Mosquitto runs here as a local daemon this process may stop and start again."""
    return shutil.which("mosquitto") is not None and shutil.which("pgrep") is not None and bool(await broker_pids())


async def stop_broker() -> None:
    for pid in await broker_pids():
        os.kill(pid, signal.SIGTERM)  # SIGTERM: Mosquitto saves its persistence file (sessions) on the way out
    await until(lambda: not service_up(HOST, PORT), 10, "broker stopped")
    for _ in range(200):  # Mosquitto writes its persistence file before it exits
        if not await broker_pids():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("mosquitto did not exit within 10 s")


async def start_broker() -> None:
    proc = await asyncio.create_subprocess_exec(*MOSQUITTO_CMD)
    assert await proc.wait() == 0, "mosquitto -d failed to start"
    await until(lambda: service_up(HOST, PORT), 10, "broker listening again")
