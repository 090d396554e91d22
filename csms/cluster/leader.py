"""The one dispatch controller of the cluster, elected with a PostgreSQL advisory lock.

Every node runs a :class:`DispatchLeadership` part. Each keeps the grid-event book (so grid
events may arrive on any node: HTTP webhook, API, CLI) and tells the others of every change
over the broker (``<prefix>.grid``; they reload the book from PostgreSQL). Each tries
``pg_try_advisory_lock`` on its own connection every ``cluster.leader_poll_s``; the one that
holds it runs the :class:`~csms.dispatch.controller.DispatchController`. PostgreSQL releases the
lock when the holder's session ends - its process killed, its machine gone (TCP keepalive) - so
a standby takes over within one poll. The new controller starts from PostgreSQL: the running
events from the book and the schedule last sent to each car (``dispatch_commands``, written by
the leader every second through :class:`CommandLedger`), so it re-sends only what its plan
changes - and what stations lost by reconnecting, as a single node would.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import asyncpg
import structlog
from sqlalchemy.engine import make_url

from csms.cluster import wire
from csms.dispatch.executor import Command
from csms.dispatch.records import TickSample
from csms.domain.metering import latest_readings

if TYPE_CHECKING:
    from csms.central import CentralSystem
    from csms.cluster.node import ClusterNode
    from csms.dispatch.controller import DispatchController

log = structlog.get_logger("csms.cluster.leader")


def lock_key(prefix: str) -> int:
    """The advisory lock's 64-bit key, from the cluster prefix."""
    return int.from_bytes(hashlib.sha256(f"{prefix}:dispatch".encode()).digest()[:8], "big", signed=True)


def asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


LEDGER_FLUSH_S = 1.0
LEDGER_MEASURANDS = ("Energy.Active.Import.Register", "Energy.Active.Export.Register", "SoC")


async def reload_meter_ledger(store: Any, ledger: Any, since: datetime) -> int:
    """Feed ``ledger`` (the controller's :class:`~csms.dispatch.ledger.MeterLedger`) the energy
    registers and SoCs stored since ``since``, so that a new leader's reports cover the event
    from its start, not from the takeover. Returns the number of readings."""
    rows = await store.meter_samples_since(since, LEDGER_MEASURANDS)
    groups: dict[tuple[str, int, datetime], list[dict[str, Any]]] = {}
    for r in rows:
        sv: dict[str, Any] = {"value": r.value, "measurand": r.measurand}
        if r.unit:
            sv["unitOfMeasure"] = {"unit": r.unit}
        if r.location:
            sv["location"] = r.location
        if r.phase:
            sv["phase"] = r.phase
        groups.setdefault((r.station_id, r.evse_id, r.timestamp), []).append(sv)
    for (station_id, evse_id, at), values in groups.items():
        ts, readings = latest_readings([{"timestamp": at.isoformat(), "sampledValue": values}])
        if ts is not None:
            ledger.add(station_id, evse_id, ts, readings)
    return len(groups)


async def restore_samples(store: Any, runs: dict[str, Any], now: datetime) -> int:
    """Seed each running event's control-tick samples with what the previous leader last
    stored in its report (one sample per interval that had begun before ``now``), so that a new
    leader's report keeps the planned and feasible power and the car counts of the intervals
    before the takeover instead of falling back to the target. Returns the samples restored."""
    restored = 0
    for run in runs.values():
        row = await store.get_event_report(run.event_id)
        if row is None:
            log.info("no stored report to restore from", event_id=run.event_id)
            continue
        seeded: list[TickSample] = []
        for iv in row.report.get("intervals", []):
            start, end = datetime.fromisoformat(iv["start"]), datetime.fromisoformat(iv["end"])
            if start >= now or iv.get("planned_kw") is None:
                continue
            seeded.append(
                TickSample(
                    at=start + (min(end, now) - start) / 2,
                    target_kw=float(iv["target_kw"]),
                    planned_kw=iv.get("planned_kw"),
                    feasible_kw=iv.get("feasible_kw"),
                    delivered_kw=float(iv.get("delivered_kw") or 0.0),
                    cars_connected=int(iv.get("cars_connected") or 0),
                    cars_dispatched=0,
                    commands_total=0,
                )
            )
        if seeded:
            run.samples[:0] = seeded
            restored += len(seeded)
        intervals = len(row.report.get("intervals", []))
        log.info("report samples restored", event_id=run.event_id, samples=len(seeded), intervals=intervals)
    return restored


def command_json(cmd: Command) -> dict[str, Any]:
    return {
        "car_id": cmd.car_id,
        "station_id": cmd.station_id,
        "evse_id": cmd.evse_id,
        "start": cmd.start.isoformat(),
        "periods": [list(p) for p in cmd.periods],
        "duration_s": cmd.duration_s,
    }


def command_of(data: dict[str, Any]) -> Command:
    return Command(
        car_id=data["car_id"],
        station_id=data["station_id"],
        evse_id=int(data["evse_id"]),
        start=datetime.fromisoformat(data["start"]),
        periods=tuple((int(o), float(w)) for o, w in data["periods"]),
        duration_s=int(data["duration_s"]),
    )


class CommandLedger(dict[str, Command]):
    """The controller's ``commanded`` (car -> schedule sent), remembering which cars changed
    since the last :meth:`flush` to PostgreSQL."""

    def __init__(self, initial: dict[str, Command] | None = None) -> None:
        super().__init__(initial or {})
        self.dirty: set[str] = set()
        self.cleared = False

    def __setitem__(self, key: str, value: Command) -> None:
        super().__setitem__(key, value)
        self.dirty.add(key)

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self.dirty.add(key)

    def pop(self, key: str, *default: Any) -> Any:
        self.dirty.add(key)
        return super().pop(key, *default)

    def clear(self) -> None:
        super().clear()
        self.dirty.clear()
        self.cleared = True

    async def flush(self, store: Any) -> None:
        dirty, cleared = self.dirty, self.cleared
        self.dirty, self.cleared = set(), False
        try:
            if cleared:
                await store.delete_dispatch_commands(None)
                dirty = set(self)
            await store.put_dispatch_commands({cid: command_json(self[cid]) for cid in dirty if cid in self})
            await store.delete_dispatch_commands([cid for cid in dirty if cid not in self])
        except BaseException:
            self.dirty |= dirty  # try again next time
            self.cleared = self.cleared or cleared
            raise


class DispatchLeadership:
    def __init__(self, central: CentralSystem, node: ClusterNode) -> None:
        self.central = central
        self.node = node
        self.book: Any = None
        self.controller: DispatchController | None = None
        self._publisher: Any = None
        self.leader_since: float | None = None
        self.terms = 0
        self.schedules_loaded = 0
        self.readings_loaded = 0
        self.samples_restored = 0
        self._conn: asyncpg.Connection | None = None
        self._ledger: CommandLedger | None = None
        self._flusher: asyncio.Task[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._sub: Any = None

    @property
    def event_book(self) -> Any:
        return self.book

    @property
    def publisher(self) -> Any:
        """The MQTT bridge, when enabled: status and delivery go out through the leader's controller."""
        return self._publisher

    @publisher.setter
    def publisher(self, value: Any) -> None:
        self._publisher = value
        if self.controller is not None:
            self.controller.publisher = value

    @property
    def is_leader(self) -> bool:
        return self.controller is not None

    async def start(self) -> None:
        from csms.grid.book import EventBook

        central = self.central
        assert central.store is not None and self.node.nc is not None
        self.book = EventBook(central.store, central.clock, on_change=self._on_local_change)
        await self.book.load()
        central.extensions["event_book"] = self.book
        self._sub = await self.node.nc.subscribe(f"{self.node.prefix}.grid", cb=self._on_remote_change)
        self._task = asyncio.create_task(self._run(), name="cluster:leader")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._step_down("stopping")
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
        if self._conn is not None:
            with contextlib.suppress(Exception):
                await self._conn.close()  # releases the lock
        if self.central.extensions.get("event_book") is self.book:
            del self.central.extensions["event_book"]

    # ------------------------------------------------------------------ grid events on any node
    async def _on_local_change(self, event: Any, kind: str) -> None:
        assert self.node.nc is not None
        msg = {"node": self.node.node_id, "event_id": event.id, "kind": kind}
        await self.node.nc.publish(f"{self.node.prefix}.grid", wire.dumps(msg))

    async def _on_remote_change(self, msg: Any) -> None:
        try:
            change = wire.loads(msg.data)
        except Exception:
            return
        if change.get("node") == self.node.node_id:
            return
        await self.book.load()
        event = self.book.get(change["event_id"])
        if event is not None and self.controller is not None:
            self.controller.on_event_change(event, change["kind"])

    # ------------------------------------------------------------------ election
    async def _run(self) -> None:
        key = lock_key(self.node.prefix)
        dsn = asyncpg_dsn(self.central.settings.database_url)
        poll = self.node.settings.leader_poll_s
        while True:
            try:
                if self._conn is None or self._conn.is_closed():
                    self._conn = await asyncpg.connect(dsn, timeout=5)
                if self.controller is None:
                    if await self._conn.fetchval("select pg_try_advisory_lock($1)", key):
                        await self._lead()
                else:
                    await asyncio.wait_for(self._conn.fetchval("select 1"), timeout=max(poll, 1.0))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the lock went with the connection: someone else may lead now
                log.warning("leader election: database connection lost", node=self.node.node_id, error=repr(exc))
                await self._step_down("database connection lost")
                if self._conn is not None:
                    with contextlib.suppress(Exception):
                        self._conn.terminate()
                self._conn = None
            await asyncio.sleep(poll)

    async def _lead(self) -> None:
        from csms.dispatch.controller import ControllerOptions, DispatchController

        loop = asyncio.get_running_loop()
        self.terms += 1
        store = self.central.store
        assert store is not None
        await self.book.load()  # what was submitted on other nodes up to now
        sent = {cid: command_of(c) for cid, c in (await store.dispatch_commands()).items()}
        self.schedules_loaded = len(sent)
        options = ControllerOptions(report_every_s=self.node.settings.report_every_s, report_min_wall_s=1.0)
        controller = DispatchController(self.central, self.book, publisher=self.publisher, options=options)
        self._ledger = controller.commanded = CommandLedger(sent)  # type: ignore[assignment]
        now = self.central.now()
        starts = [ev.start for ev in self.book.upcoming(now)]
        if starts:  # the meter readings of the running events so far (reports without a gap)
            since = min(starts) - timedelta(seconds=controller.options.lead_s)
            self.readings_loaded = await reload_meter_ledger(store, controller.ledger, since)

        async def restore(runs: dict[str, Any]) -> None:
            self.samples_restored = await restore_samples(store, runs, now)

        await controller.start(before_loop=restore)
        self.controller = controller
        self.leader_since = loop.time()
        self._flusher = asyncio.create_task(self._flush_loop(), name="cluster:ledger")
        log.info(
            "dispatch leader: this node runs the controller",
            node=self.node.node_id,
            events=len(controller.runs),
            schedules_held=len(sent),
            meter_readings_loaded=self.readings_loaded,
            report_samples_restored=self.samples_restored,
        )

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(LEDGER_FLUSH_S)
            if self._ledger is not None and self.central.store is not None:
                try:
                    await self._ledger.flush(self.central.store)
                except Exception as exc:
                    log.warning("dispatch commands not saved", error=repr(exc))

    async def _step_down(self, reason: str) -> None:
        controller, self.controller = self.controller, None
        self.leader_since = None
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        if controller is not None:
            log.warning("dispatch leader stepping down", node=self.node.node_id, reason=reason)
            with contextlib.suppress(Exception):
                await controller.stop()
        ledger, self._ledger = self._ledger, None
        if ledger is not None and self.central.store is not None and reason == "stopping":
            with contextlib.suppress(Exception):
                await ledger.flush(self.central.store)
