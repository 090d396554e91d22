"""The running CSMS: OCPP server, live station state, store and the hooks other parts use.

``CentralSystem`` is what the HTTP API, the CLI's ``serve`` command, dispatch and the tests
hold. Its Python API for one station (``call``, ``session``, ``state``) raises typed errors:
:class:`StationOffline`, and the OCPP errors of :mod:`csms.ocpp.errors`.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

import structlog
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from csms import metrics
from csms.blocks import all_handlers
from csms.clock import Clock
from csms.config import Settings
from csms.domain.station import BootState, StationState
from csms.domain.writebehind import Batch, WriteBehind
from csms.logging import debug_enabled
from csms.ocpp import schemas
from csms.ocpp.errors import OcppError
from csms.security.certificates import SigningCa
from csms.server import credentials, tls
from csms.server.connection import (
    SUPPORTED_SUBPROTOCOLS,
    VERSION_OF,
    make_process_request,
    peer_certificate,
    select_subprotocol,
)
from csms.server.session import StationSession
from csms.services.certificate_renewal import CertificateRenewal
from csms.services.charging_control import ChargingControl
from csms.store.repository import Store
from csms.store.rows import StationRow
from csms.store.statuses import write_connector_statuses

log = structlog.get_logger("csms.central")

CLOSE_REPLACED = 4000  # private-use close code: a newer connection took over this station id
CLOSE_BINARY = 1003  # RFC 6455 "unsupported data": a binary frame where OCPP-J sends text
CLOSE_POLICY = 1008  # RFC 6455 "policy violation": the operator removed or blocked the station
_MISSING: Any = object()


class StationOffline(OcppError):
    def __init__(self, station_id: str):
        super().__init__(f"station {station_id} is not connected")
        self.station_id = station_id


class UnknownStation(OcppError):
    def __init__(self, station_id: str):
        super().__init__(f"unknown station {station_id}")
        self.station_id = station_id


Listener = Callable[[str, str, dict[str, Any]], None]
"""``listener(kind, station_id, data)``; kinds: connected, disconnected, boot, status, meter,
transaction, needs, profile."""


class StationRouter(Protocol):
    """Reaches stations whose WebSocket is held by another process (cluster mode,
    :mod:`csms.cluster`). :meth:`CentralSystem.call` stays the one entry point: it serves a
    local session itself and hands everything else to the router, which raises the same typed
    errors as a local call (StationOffline, CallTimeout, CallErrorReceived, ...)."""

    async def locate(self, station_id: str) -> str | None:
        """The OCPP version of the station's connection on another node; None: not connected."""
        ...

    async def call(
        self, station_id: str, action: str, payload: dict[str, Any], timeout: float | None
    ) -> dict[str, Any]: ...


class CentralSystem:
    def __init__(self, settings: Settings, *, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or Clock(settings.clock.epoch, settings.clock.speed, settings.clock.anchor)
        self.store: Store | None = None
        self.states: dict[str, StationState] = {}
        self.sessions: dict[str, StationSession] = {}
        self._passwords: dict[str, str | None] = {}
        self._policy: dict[str, str] = {}
        self._meta: dict[str, dict[str, Any]] = {}
        self._blocked: set[str] = set()
        self._registry_rev = 0
        self._registry_gen: dict[str, int] = {}  # bumped whenever a station's cached registration changes
        self._registry_task: asyncio.Task[None] | None = None
        self._verified = credentials.VerifiedCache()
        self._listeners: list[Listener] = []
        self._cluster_listeners: list[Listener] = []
        self.router: StationRouter | None = None  # cluster mode: stations held by other nodes
        self._server: Server | None = None
        self._closed: dict[str, asyncio.Event] = {}
        self._bg: set[asyncio.Task[Any]] = set()
        self.handlers = all_handlers()
        self.extensions: dict[str, Any] = {}  # smart charging, dispatch, ... attach here
        self.port: int | None = None
        self.charging = ChargingControl(self)
        self.certificate_renewal = CertificateRenewal(self)
        self.status_writer: WriteBehind | None = None
        self.station_writer: WriteBehind | None = None
        self.signing_ca: SigningCa | None = None

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> None:
        s = self.settings
        ssl_ctx = tls.server_context(s.security)  # first: a TLS ConfigError leaves nothing open
        self.signing_ca = tls.signing_ca(s.security)
        s.data_dir.mkdir(parents=True, exist_ok=True)
        schemas.prepare()  # every validator now (about 0.15 s, once per process), none at a first CALL
        self.store = await Store.open(s.database_url, frame_log_limit=s.storage.frame_log_limit)
        self._registry_rev = await self.store.station_changes_head()  # before the load: nothing slips between
        await self._load_stations()
        self._registry_task = asyncio.create_task(self._follow_registry(), name="registry-follower")
        self.status_writer = WriteBehind("connector-status", self._write_statuses)
        self.station_writer = WriteBehind("stations", self.store.update_stations)
        self._server = await serve(
            self._handle,
            s.server.host,
            s.server.port,
            process_request=make_process_request(self),
            select_subprotocol=select_subprotocol,
            subprotocols=list(SUPPORTED_SUBPROTOCOLS),  # type: ignore[arg-type]
            ping_interval=s.server.ping_interval,
            ping_timeout=s.server.ping_timeout,
            compression="deflate" if s.server.compression else None,
            max_size=s.server.max_message_size,
            ssl=ssl_ctx,
            server_header="csms",
            backlog=s.server.backlog,
            reuse_port=s.server.reuse_port or None,
        )
        sock = next(iter(self._server.sockets))
        self.port = sock.getsockname()[1]
        log.info(
            "ocpp server listening",
            host=s.server.host,
            port=self.port,
            tls=ssl_ctx is not None,
            security_profile=s.security.profile,
        )

    async def stop(self) -> None:
        """Stop accepting, close every connection with 1001, flush pending writes."""
        if self._registry_task is not None:
            self._registry_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._registry_task
            self._registry_task = None
        if self._server is not None:
            # websockets closes every open connection with 1001 (going away)
            self._server.close(close_connections=True)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(10):
                    await self._server.wait_closed()
            self._server = None
        if self._bg:  # let pending writes finish; give up on anything slower (e.g. a silent station)
            _done, pending = await asyncio.wait(list(self._bg), timeout=2)
            for task in pending:
                task.cancel()
        for writer in (self.status_writer, self.station_writer):
            if writer is not None:
                await writer.close()
        if self.store is not None:
            await self.store.close()
            self.store = None
        log.info("ocpp server stopped")

    async def _load_stations(self) -> None:
        assert self.store is not None
        offset = 0
        while True:
            rows = await self.store.list_stations(limit=1000, offset=offset)
            for row in rows:
                self._apply_registration(row)
                st = self.state(row.id)
                st.boot = BootState(row.boot_status) if row.boot_status else BootState.UNKNOWN
                st.ocpp_version = row.ocpp_version
                st.vendor, st.model = row.vendor, row.model
                st.capabilities = row.capabilities
            if len(rows) < 1000:
                break
            offset += 1000
        # connection flags left over from a crash are stale
        await self.store.update_stations(
            [(sid, {"connected": False, "connected_since": None}) for sid in self._passwords]
        )

    # ------------------------------------------------------------------ registry
    # The database is the registry; the dicts below are this process's cache of it. A station
    # missing from the cache is looked up in the database at its handshake (registered by the
    # CLI or another node a moment ago), and the change feed (``station_changes``) is followed
    # every ``server.registry_poll_interval`` so that blocks, removals and new credentials made
    # elsewhere hold here too.
    def _apply_registration(self, row: StationRow) -> None:
        """Take a station's registration (credentials, boot policy, meta, blocked) into the cache."""
        sid = row.id
        self._registry_gen[sid] = self._registry_gen.get(sid, 0) + 1
        if self._passwords.get(sid, _MISSING) != row.password_hash:
            self._verified.forget(sid)
        self._passwords[sid] = row.password_hash
        self._policy[sid] = (row.meta or {}).get("boot_policy", self.settings.boot.default_policy)
        self._meta[sid] = dict(row.meta or {})
        if row.blocked:
            self._blocked.add(sid)
        else:
            self._blocked.discard(sid)

    def _forget_registration(self, station_id: str) -> None:
        self._registry_gen[station_id] = self._registry_gen.get(station_id, 0) + 1
        for table in (self._passwords, self._policy, self._meta):
            table.pop(station_id, None)
        self._blocked.discard(station_id)
        self._verified.forget(station_id)

    async def _lookup(self, station_id: str) -> bool | None:
        """Whether the station is registered: the cache, else the database (None: it cannot answer)."""
        if station_id in self._passwords:
            return True
        assert self.store is not None
        try:
            row = await self.store.get_station(station_id)
        except Exception as exc:  # the handshake answers 503; the station retries later
            log.error("station registry lookup failed", station=station_id, error=repr(exc))
            return None
        if row is None:
            return False
        self._apply_registration(row)
        return True

    async def _close_for(self, station_id: str, reason: str) -> None:
        """Close the station's live connection, if any (1008: the operator's policy refuses it)."""
        sess = self.sessions.get(station_id)
        if sess is not None:
            sess.log.info("closing the live connection", reason=reason)
            await sess.ws.close(CLOSE_POLICY, reason)

    async def sync_registry(self) -> int:
        """Apply the registry changes made since the last sync (by this process, the CLI or other
        nodes); returns how many stations were reloaded. Removed or blocked stations lose their
        live connection."""
        assert self.store is not None
        changes, head = await self.store.station_changes(self._registry_rev)
        if head < self._registry_rev:  # the database went back in time (restore): reload all
            log.warning("station registry went back in time; reloading it", seen=self._registry_rev, head=head)
            self._registry_rev = 0
            changes, head = await self.store.station_changes(0)
        if not changes:
            return 0
        ids = list(dict.fromkeys(c.station_id for c in changes))
        seen = {sid: self._registry_gen.get(sid, 0) for sid in ids}
        rows = {row.id: row for row in await self.store.get_stations(ids)}
        for sid in ids:
            if self._registry_gen.get(sid, 0) != seen[sid]:
                continue  # registered here while the rows were read: that is newer than this read
            row = rows.get(sid)
            if row is None:
                if sid in self._passwords:
                    log.info("station removed from the registry", station=sid)
                self._forget_registration(sid)
                await self._close_for(sid, "station removed by the operator")
                continue
            self._apply_registration(row)
            if row.blocked:
                await self._close_for(sid, "station blocked by the operator")
        self._registry_rev = changes[-1].rev
        return len(ids)

    async def _follow_registry(self) -> None:
        interval = self.settings.server.registry_poll_interval
        while True:
            await asyncio.sleep(interval)
            try:
                await self.sync_registry()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database is away for a moment: try again next time
                log.warning("station registry sync failed", error=repr(exc))

    async def register_station(
        self,
        station_id: str,
        password: str | None = None,
        *,
        boot_policy: str | None = None,
        blocked: bool | None = None,
    ) -> bool:
        """Register (or update) a station; ``password`` is checked (16-40 chars) and hashed.
        Returns True when the station is new. Takes effect at once, here and (through the change
        feed) on every other process sharing the database."""
        assert self.store is not None
        fields: dict[str, Any] = {}
        if password is not None:
            fields["password_hash"] = await asyncio.to_thread(
                credentials.hash_password, password, self.settings.security.pbkdf2_iterations
            )
        meta = {"boot_policy": boot_policy} if boot_policy is not None else None
        row, created = await self.store.register_station(
            station_id, meta=meta, blocked=blocked, at=self.clock.now(), **fields
        )
        self._apply_registration(row)
        self.state(station_id)
        if row.blocked:
            await self._close_for(station_id, "station blocked by the operator")
        return created

    async def remove_station(self, station_id: str) -> bool:
        """Delete a station's registration (its history stays); its live connection is closed.
        Returns False when there was no such station."""
        assert self.store is not None
        deleted = await self.store.delete_station(station_id)
        self._forget_registration(station_id)
        await self._close_for(station_id, "station removed by the operator")
        return deleted

    def blocked(self, station_id: str) -> bool:
        return station_id in self._blocked

    def station_meta(self, station_id: str) -> dict[str, Any] | None:
        return self._meta.get(station_id)

    async def set_station_meta(self, station_id: str, **values: Any) -> None:
        """Operator settings kept per station (boot policy, V2X permission, ...)."""
        assert self.store is not None
        row, _ = await self.store.register_station(station_id, meta=values)
        self._apply_registration(row)

    def boot_policy(self, station_id: str) -> str:
        return self._policy.get(station_id, self.settings.boot.default_policy)

    async def set_boot_policy(self, station_id: str, policy: str) -> None:
        await self.register_station(station_id, boot_policy=policy)

    def known(self, station_id: str) -> bool:
        return station_id in self._passwords

    async def admit(self, station_id: str, creds: tuple[str, str] | None) -> str:
        """Handshake decision: "ok", "unknown" (404), "unauthorized" (401), "blocked" (403) or
        "unavailable" (503: the registry cannot be read)."""
        found = await self._lookup(station_id)
        if found is None:
            return "unavailable"
        if not found:
            if not self.settings.security.auto_register:
                return "unknown"
            if creds is None or creds[0] != station_id:
                return "unauthorized"
            try:
                credentials.check_password_rules(creds[1])
            except credentials.CredentialError:
                return "unauthorized"
            await self.register_station(station_id, creds[1], boot_policy="pending")
            log.info("station auto-registered (Pending until an operator accepts it)", station=station_id)
            return "ok"
        verdict = await self._check_password(station_id, creds)
        if verdict == "ok" and station_id in self._blocked:
            log.warning("blocked station refused", station=station_id)
            return "blocked"
        return verdict

    async def _check_password(self, station_id: str, creds: tuple[str, str] | None) -> str:
        stored = self._passwords.get(station_id, _MISSING)
        if stored is _MISSING:  # removed from the registry meanwhile
            return "unknown"
        if stored is None:
            return "ok" if creds is None or creds[0] == station_id else "unauthorized"
        if creds is None or creds[0] != station_id:
            return "unauthorized"
        if self._verified.hit(station_id, creds[1], stored):
            return "ok"
        # PBKDF2 is CPU work by design: off the event loop, so a reconnect storm does not stall
        # every connected station's frames
        ok = await asyncio.to_thread(credentials.verify_password, creds[1], stored)
        if self._passwords.get(station_id, _MISSING) != stored:  # credentials changed meanwhile
            return await self._check_password(station_id, creds)
        if ok:
            self._verified.remember(station_id, creds[1], stored)
            return "ok"
        log.warning("station failed authentication", station=station_id)
        return "unauthorized"

    async def admit_certificate(self, station_id: str, common_name: str | None) -> str:
        """Security profile 3 handshake decision from the verified client certificate's subject
        commonName: "ok", "unknown" (404), "unauthorized" (401, CN is not the station id),
        "blocked" (403) or "unavailable" (503)."""
        if common_name != station_id:
            log.warning(
                "client certificate commonName does not match the station id",
                station=station_id,
                common_name=common_name,
            )
            return "unauthorized"
        found = await self._lookup(station_id)
        if found is None:
            return "unavailable"
        if not found:
            if not self.settings.security.auto_register:
                return "unknown"
            await self.register_station(station_id, boot_policy="pending")
            log.info("station auto-registered (Pending until an operator accepts it)", station=station_id)
        if station_id in self._blocked:
            log.warning("blocked station refused", station=station_id)
            return "blocked"
        return "ok"

    # ------------------------------------------------------------------ connections
    def state(self, station_id: str) -> StationState:
        st = self.states.get(station_id)
        if st is None:
            st = self.states[station_id] = StationState(station_id)
        return st

    def observer_for(self, station_id: str) -> metrics.StationObserver:
        assert self.store is not None
        debug = structlog.get_logger("csms.frames").bind(station=station_id) if debug_enabled() else None
        return metrics.StationObserver(station_id, self.store.frame_logger(station_id), self.clock, debug)

    async def _handle(self, ws: ServerConnection) -> None:
        station_id: str = ws.station_id  # type: ignore[attr-defined]
        if ws.subprotocol is None:
            log.warning("no common OCPP subprotocol; closing", station=station_id)
            await ws.close(1002, "no supported OCPP subprotocol (ocpp2.1, ocpp2.0.1)")
            return
        old = self.sessions.get(station_id)
        if old is not None:
            log.info("new connection replaces the old one", station=station_id)
            done = self._closed.get(station_id)
            await old.ws.close(CLOSE_REPLACED, "replaced by a new connection")
            if done is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(done.wait(), 10)
        version = VERSION_OF[ws.subprotocol]
        state = self.state(station_id)
        session = StationSession(self, ws, station_id, version, state)
        self.sessions[station_id] = session
        closed = self._closed[station_id] = asyncio.Event()
        now = self.clock.now()
        state.connected, state.connected_since, state.last_seen = True, now, now
        state.client_certificate = tls.certificate_facts(peer_certificate(ws))
        if state.ocpp_version != version:
            state.ocpp_version = version
        metrics.CONNECTED.inc()
        assert self.station_writer is not None
        self.station_writer.add(station_id, connected=True, connected_since=now, last_seen_at=now)
        self.emit("connected", station_id, {"version": version})
        session.log.info("station connected", ocpp=version)
        try:
            async for message in ws:
                if type(message) is not str:  # OCPP-J messages are text frames
                    await self._refuse_binary(session, message)
                    break
                await session.endpoint.feed(message)
        except ConnectionClosed:
            pass
        finally:
            session.endpoint.close()
            metrics.CONNECTED.dec()
            if self.sessions.get(station_id) is session:
                del self.sessions[station_id]
                state.connected = False
                if self.station_writer is not None:
                    self.station_writer.add(
                        station_id, connected=False, connected_since=None, last_seen_at=self.clock.now()
                    )
                self.emit("disconnected", station_id, {})
            session.log.info("station disconnected", code=ws.close_code, reason=ws.close_reason)
            closed.set()

    async def _refuse_binary(self, session: StationSession, message: bytes) -> None:
        """A binary WebSocket frame: RFC 6455 close 1003 (data it cannot accept), logged with the
        frame in the frame log for diagnosis; nothing in it is processed."""
        if session.endpoint.observer is not None:
            session.endpoint.observer.frame("in", message.decode(errors="replace"))
        session.log.warning("binary WebSocket frame: closing with 1003", size=len(message))
        await session.ws.close(CLOSE_BINARY, "OCPP-J messages must be sent as text frames")

    def session(self, station_id: str) -> StationSession:
        sess = self.sessions.get(station_id)
        if sess is None:
            if station_id not in self._passwords:
                raise UnknownStation(station_id)
            raise StationOffline(station_id)
        return sess

    async def call(
        self, station_id: str, action: str, payload: dict[str, Any], *, timeout: float | None = None
    ) -> dict[str, Any]:
        """Send one CALL to a station, connected here or (cluster mode) to another node; raises
        StationOffline / UnknownStation / OCPP errors."""
        sess = self.sessions.get(station_id)
        if sess is None and self.router is not None and await self._lookup(station_id):
            return await self.router.call(station_id, action, payload, timeout)
        return await self.session(station_id).call(action, payload, timeout=timeout)

    def reachable(self, station_id: str) -> bool:
        """Connected here or (cluster mode) to another node, as far as this node has heard."""
        if station_id in self.sessions:
            return True
        st = self.states.get(station_id)
        return self.router is not None and st is not None and st.connected

    async def locate(self, station_id: str) -> str | None:
        """The OCPP version of the station's live connection, here or on another node; None: offline."""
        sess = self.sessions.get(station_id)
        if sess is not None:
            return sess.version
        if self.router is not None and await self._lookup(station_id):  # registered on another node a moment ago
            return await self.router.locate(station_id)
        return None

    async def release(self, station_id: str, reason: str) -> None:
        """Close the station's local connection because another node holds it now (4000)."""
        sess = self.sessions.get(station_id)
        if sess is not None:
            sess.log.info("closing the stale connection", reason=reason)
            await sess.ws.close(CLOSE_REPLACED, reason)

    # ------------------------------------------------------------------ events
    def subscribe(self, listener: Listener, *, cluster: bool = False) -> Callable[[], None]:
        """Listen to station events of this process; ``cluster=True``: of every node (in cluster
        mode the events of stations held elsewhere arrive over the broker, with ISO timestamps
        turned back into datetimes)."""
        table = self._cluster_listeners if cluster else self._listeners
        table.append(listener)
        return lambda: table.remove(listener) if listener in table else None

    def emit(self, kind: str, station_id: str, data: dict[str, Any]) -> None:
        self._notify(self._listeners, kind, station_id, data)
        self._notify(self._cluster_listeners, kind, station_id, data)

    def emit_remote(self, kind: str, station_id: str, data: dict[str, Any]) -> None:
        """An event of a station held by another node: only cluster-wide listeners hear it."""
        self._notify(self._cluster_listeners, kind, station_id, data)

    @staticmethod
    def _notify(listeners: list[Listener], kind: str, station_id: str, data: dict[str, Any]) -> None:
        for listener in list(listeners):
            try:
                listener(kind, station_id, data)
            except Exception:
                log.exception("listener failed", kind=kind, station=station_id)

    async def _write_statuses(self, batch: Batch) -> None:
        assert self.store is not None
        await write_connector_statuses(
            self.store, [(sid, evse, connector, f["status"], f["at"]) for (sid, evse, connector), f in batch]
        )

    def background(self, coro: Any) -> asyncio.Task[Any]:
        """Run a coroutine without blocking the caller; failures are logged, never lost silently."""
        task = asyncio.ensure_future(coro)
        self._bg.add(task)

        def _done(t: asyncio.Task[Any]) -> None:
            self._bg.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("background task failed", error=repr(t.exception()))

        task.add_done_callback(_done)
        return task

    def now(self) -> datetime:
        return self.clock.now()
