"""A real cluster for the tests: ``csms serve`` processes on one fresh PostgreSQL database and
one NATS server (a prefix of their own), stations that reconnect to the next node when theirs
goes away, and the operator API of every node."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from csms.api.apitokens import issue_token
from csms.central import CentralSystem
from csms.config import Settings, StorageSettings
from csms.store.repository import Store
from tests.conftest import PG_URL, require_service
from tests.support import PASSWORD, TestStation, open_ws

pytestmark = pytest.mark.cluster

CONTROL_INTERVAL_S = 2.0
LEASE_TTL_S = 6.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def until(check: Callable[[], Awaitable[Any]], timeout: float, what: str, every: float = 0.05) -> Any:
    """Poll ``check`` (an API read on another process: nothing to await an event on)."""
    async with asyncio.timeout(timeout):
        while not (value := await check()):  # noqa: ASYNC110
            await asyncio.sleep(every)
    assert value, what
    return value


class Node:
    """One ``csms serve`` process."""

    def __init__(self, name: str, env: dict[str, str], data_dir: Path, ocpp_port: int | None = None) -> None:
        self.name = name
        self.ocpp_port, self.api_port = ocpp_port or free_port(), free_port()
        self.env = {**env, "CSMS_CLUSTER__NODE_ID": name}
        self.data_dir = data_dir / name
        self.log_path = data_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = ["serve", "--port", str(self.ocpp_port), "--api-port", str(self.api_port)]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "csms", *args, "--data-dir", str(self.data_dir)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        """kill -9: no goodbye to the broker, the database or the stations."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Cluster:
    def __init__(self, tmp_path: Path, db_url: str, prefix: str, token: str) -> None:
        self.tmp_path = tmp_path
        self.db_url = db_url
        self.prefix = prefix
        self.token = token
        self.env = {
            **os.environ,
            "CSMS_STORAGE__URL": db_url,
            "CSMS_CLUSTER__ENABLED": "true",
            "CSMS_CLUSTER__PREFIX": prefix,
            "CSMS_CLUSTER__LEASE_TTL_S": str(LEASE_TTL_S),
            "CSMS_CLUSTER__LEADER_POLL_S": "0.5",
            "CSMS_DISPATCH__CONTROL_INTERVAL_S": str(CONTROL_INTERVAL_S),
            "CSMS_SERVER__PING_INTERVAL": "10",
            "CSMS_SERVER__PING_TIMEOUT": "10",
            "CSMS_SERVER__CALL_TIMEOUT": "3",
            "CSMS_MQTT__ENABLED": "false",
            "CSMS_LOG__LEVEL": "info",
        }
        self.nodes: dict[str, Node] = {}

    async def start(self, *names: str, ocpp_port: int | None = None) -> list[Node]:
        """Start nodes (all on ``ocpp_port`` when given: set ``CSMS_SERVER__REUSE_PORT`` first)."""
        started = []
        for name in names:
            node = self.nodes[name] = Node(name, self.env, self.tmp_path, ocpp_port)
            node.start()
            started.append(node)
        for node in started:
            await self.wait_ready(node)
        return started

    async def wait_ready(self, node: Node, timeout: float = 30) -> None:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{node.api_port}") as http:
            async with asyncio.timeout(timeout):
                while True:
                    assert node.alive, f"node {node.name} exited:\n{node.log()[-3000:]}"
                    try:
                        if (await http.get("/health")).status_code == 200:
                            return
                    except httpx.TransportError:
                        pass
                    await asyncio.sleep(0.1)

    def api(self, name: str) -> httpx.AsyncClient:
        node = self.nodes[name]
        return httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{node.api_port}",
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
        )

    async def view(self, name: str) -> dict[str, Any]:
        async with self.api(name) as http:
            r = await http.get("/api/v1/cluster")
            r.raise_for_status()
            return dict(r.json())

    async def holder(self, via: str, station_id: str) -> str | None:
        async with self.api(via) as http:
            r = await http.get(f"/api/v1/cluster/stations/{station_id}")
            r.raise_for_status()
            return r.json()["node"]

    def stop(self) -> None:
        for node in self.nodes.values():  # all at once: each closes its connections with 1001
            if node.alive:
                assert node.proc is not None
                node.proc.send_signal(signal.SIGTERM)
        for node in self.nodes.values():
            node.stop()


class Station:
    """A station that keeps itself connected: when its node goes away it tries the nodes in
    turn (as a station behind a load balancer would), boots and carries on."""

    def __init__(
        self,
        station_id: str,
        ports: Callable[[], Sequence[int]],
        handlers: dict[str, Any] | None = None,
    ) -> None:
        self.station_id = station_id
        self.ports = ports
        self.handlers = handlers or {}
        self.current: TestStation | None = None
        self.port: int | None = None
        self.connections = 0
        self.boots: list[int] = []  # port of each Accepted boot
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()
        self._closing = False

    def start(self, first: int) -> None:
        self._task = asyncio.create_task(self._run(first))

    async def wait_connected(self, timeout: float = 20) -> int:
        async with asyncio.timeout(timeout):
            await self._connected.wait()
        assert self.port is not None
        return self.port

    async def wait_on(self, port: int, timeout: float = 20) -> None:
        """Until the station is connected (and Accepted) through ``port``."""
        async with asyncio.timeout(timeout):
            while not (self._connected.is_set() and self.port == port):  # noqa: ASYNC110
                await asyncio.sleep(0.02)

    async def _run(self, first: int) -> None:
        order = [first]
        while not self._closing:
            for port in order:
                try:
                    st = TestStation(await open_ws(port, self.station_id), self.handlers)
                except (OSError, InvalidStatus, TimeoutError, ConnectionClosed):
                    continue
                self.current, self.port = st, port
                self.connections += 1
                try:
                    if (await st.boot())["status"] == "Accepted":
                        self.boots.append(port)
                        self._connected.set()
                    await st._task  # until the connection ends
                except Exception:
                    pass
                finally:
                    self._connected.clear()
                    self.current = None
                break
            await asyncio.sleep(0.2)
            ports = list(self.ports())
            order = ports[(ports.index(self.port) + 1) :] + ports if self.port in ports else ports

    async def close(self) -> None:
        self._closing = True
        if self.current is not None:
            await self.current.ws.close()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass


@pytest.fixture
async def cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    async with new_cluster(tmp_path) as c:
        yield c


@contextlib.asynccontextmanager
async def new_cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    """A fresh database and NATS prefix (dropped after); start the nodes with ``Cluster.start``."""
    require_service("PostgreSQL", "127.0.0.1", 5432)
    require_service("NATS", "127.0.0.1", 4222)
    base = PG_URL.replace("postgresql+asyncpg://", "postgresql://")
    admin_dsn = base.rsplit("/", 1)[0] + "/postgres"
    db = f"cluster_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{db}"')
    finally:
        await conn.close()
    db_url = PG_URL.rsplit("/", 1)[0] + "/" + db
    store = await Store.open(db_url)
    try:
        token, _ = await issue_token(store, "cluster-tests", "admin")
    finally:
        await store.close()
    c = Cluster(tmp_path, db_url, f"t{uuid.uuid4().hex[:10]}", token)
    try:
        yield c
    finally:
        c.stop()
        await _drop_nats(c.prefix)
        conn = await asyncpg.connect(admin_dsn)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        finally:
            await conn.close()


async def _drop_nats(prefix: str) -> None:
    import nats

    nc = await nats.connect("nats://127.0.0.1:4222")
    try:
        js = nc.jetstream()
        for bucket in (f"{prefix}_nodes", f"{prefix}_conns"):
            try:
                await js.delete_key_value(bucket)
            except Exception:
                pass
    finally:
        await nc.close()


async def register(db_url: str, tmp_path: Path, station_ids: Sequence[str]) -> None:
    """Register stations in the shared database (as ``csms admin add-station`` does)."""
    settings = Settings(data_dir=tmp_path, storage=StorageSettings(url=db_url))
    central = CentralSystem(settings)
    central.store = await Store.open(db_url)
    try:
        for sid in station_ids:
            await central.register_station(sid, PASSWORD)
    finally:
        await central.store.close()
