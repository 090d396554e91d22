"""In-memory write-behind buffers for the hot, append-only paths.

Meter values, the frame log and Heartbeat ``last_seen`` updates arrive far more often than
anything else and nobody needs them on disk within the same millisecond. Their producers call a
*synchronous* method that only appends to a buffer, so a message handler never waits for the
database; one background task per writer drains the buffer every ``flush_interval`` seconds, or
as soon as it holds ``max_rows`` rows, with a single ``executemany`` per chunk.

Guarantees and limits:

* ``await writer.flush()`` returns once everything added before the call is committed (a lock
  orders it behind an in-flight background flush) and raises if the write fails.
* A transient failure (connection lost, timeout, SQLite busy) puts the rows back in front and
  the next tick retries them, for as long as the outage lasts; the buffer is capped at
  ``max_buffer`` rows (oldest dropped), so an outage costs memory only up to that cap. Any other
  error means a bad row: the batch is retried row by row and only the rows that fail again are
  dropped, so one bad row can neither wedge the writer nor take its batch down with it.
  ``dropped`` counts what was lost (and every loss is logged).
* ``close()`` stops the task after a last flush; adding afterwards raises ``RuntimeError``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import structlog
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as SATimeoutError

from .payloads import parse_wire_meter_values
from .types import ensure_utc, utcnow

log = structlog.get_logger("csms.store")

T = TypeVar("T")
R = TypeVar("R")
Row = dict[str, Any]


def is_transient(exc: BaseException) -> bool:
    """Errors worth retrying the same rows for: lost connections, timeouts, a locked SQLite file."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    return isinstance(exc, (OperationalError, InterfaceError, SATimeoutError, OSError, TimeoutError))


class _Unwritten(Exception):
    """Internal: a transient error stopped the write; ``rows`` were not written."""

    def __init__(self, rows: list[Any], error: Exception) -> None:
        super().__init__(f"{len(rows)} rows not written: {error!r}")
        self.rows = rows
        self.error = error


class BatchWriter(Generic[T]):
    """Generic buffered writer: ``sink(batch)`` must write one batch in one transaction."""

    def __init__(
        self,
        name: str,
        sink: Callable[[list[T]], Awaitable[None]],
        *,
        flush_interval: float = 0.5,
        max_rows: int = 1000,
        max_buffer: int = 200_000,
    ) -> None:
        if flush_interval <= 0:
            raise ValueError("flush_interval must be positive")
        self.name = name
        self.flush_interval = flush_interval
        self.max_rows = max(1, max_rows)
        self.max_buffer = max(self.max_rows, max_buffer)
        self.dropped = 0
        self.written = 0
        self._sink = sink
        self._buf: list[T] = []
        self._wake = asyncio.Event()
        self._flush_lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    # -- buffer primitives (overridden by TouchWriter) ---------------------------------------
    def __len__(self) -> int:
        return len(self._buf)

    def _take(self, n: int) -> list[T]:
        batch = self._buf[:n]
        del self._buf[:n]
        return batch

    def _requeue(self, batch: list[T]) -> None:
        self._buf[:0] = batch
        self._trim()

    def _trim(self) -> None:
        excess = len(self._buf) - self.max_buffer
        if excess > 0:
            del self._buf[:excess]
            self._note_dropped(excess, "buffer full")

    def _note_dropped(self, n: int, reason: str) -> None:
        self.dropped += n
        log.warning("store rows dropped", writer=self.name, rows=n, reason=reason, dropped_total=self.dropped)

    # -- producer side -----------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"store writer {self.name!r} is closed")

    def _enqueue(self, items: Iterable[T]) -> None:
        self._check_open()
        self._buf.extend(items)
        self._trim()
        if len(self) >= self.max_rows:
            self._wake.set()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"store-writer-{self.name}")

    async def _run(self) -> None:
        while not self._closed:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.flush_interval):
                    await self._wake.wait()
            self._wake.clear()
            try:
                drained = await self._flush(background=True)
            except Exception:  # never let the task die
                log.exception("store writer flush failed", writer=self.name)
                drained = False
            if not drained and not self._closed:
                await asyncio.sleep(self.flush_interval)  # back off instead of spinning on wake-ups

    async def flush(self) -> None:
        """Write everything buffered so far; raises if the database write fails."""
        await self._flush(background=False)

    @property
    def pending(self) -> int:
        return len(self)

    async def close(self) -> None:
        self._closed = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(Exception):
                await self._task
            self._task = None
        await self._flush(background=False)

    async def _flush(self, *, background: bool) -> bool:
        """Drain the buffer; False if a background flush stopped on a transient error."""
        async with self._flush_lock:
            while len(self):
                batch = self._take(self.max_rows)
                try:
                    await self._write_batch(batch)
                except _Unwritten as unwritten:
                    self._requeue(unwritten.rows)
                    if background:
                        log.warning(
                            "store writer flush failed, will retry",
                            writer=self.name,
                            pending=len(self),
                            error=repr(unwritten.error),
                        )
                        return False
                    raise unwritten.error from None
                except BaseException:
                    # Cancelled mid-write: keep the rows (at worst written twice, never lost).
                    self._requeue(batch)
                    raise
            await self._after_flush(force=not background)
            return True

    async def _write_batch(self, batch: list[T]) -> None:
        """Write a batch. A transient error (connection lost, database locked) raises
        :class:`_Unwritten` with the rows to keep; any other error means some row is bad, so the
        batch is retried row by row and only the rows that fail again are dropped."""
        try:
            await self._sink(batch)
        except Exception as exc:
            if is_transient(exc):
                raise _Unwritten(batch, exc) from exc
            if len(batch) == 1:
                self._note_dropped(1, f"row rejected: {exc!r}")
                return
            log.warning("store batch rejected, retrying row by row", writer=self.name, error=repr(exc))
        else:
            self.written += len(batch)
            return
        for i, item in enumerate(batch):
            try:
                await self._sink([item])
            except Exception as exc:
                if is_transient(exc):
                    raise _Unwritten(batch[i:], exc) from exc
                self._note_dropped(1, f"row rejected: {exc!r}")
            else:
                self.written += 1

    async def _after_flush(self, *, force: bool) -> None:
        """Hook run under the flush lock once the buffer is drained."""


class MeterBatchWriter(BatchWriter[Row]):
    """Buffers parsed OCPP meter values; see :func:`csms.store.payloads.parse_meter_values`.

    Backpressure: past ``soft_water`` rows waiting (the database is slower than the stations,
    not down: an outage is what ``max_buffer`` is for), :meth:`room` returns a short pause, longer
    the fuller the buffer (up to ``max_pace_s`` at ``high_water``); past ``high_water``, a wait
    until the backlog is back under the mark. The MeterValues handler awaits it before
    answering, so a saturated CSMS slows its stations down instead of dropping their samples, and
    slows them evenly: with the hard mark alone, every station that hit it waited for the next
    flush to begin (up to a quarter of a second at 6,000 calls/s) while the others went on."""

    soft_water = 10_000
    high_water = 20_000
    max_pace_s = 0.05

    def room(self) -> Awaitable[None] | None:
        """None while under ``soft_water`` rows; else something to await before answering."""
        n = len(self._buf)
        if n <= self.soft_water or self._closed:
            return None
        if n <= self.high_water:
            return asyncio.sleep(self.max_pace_s * (n - self.soft_water) / (self.high_water - self.soft_water))
        return self._wait_room()

    async def _wait_room(self) -> None:
        while len(self._buf) > self.high_water and not self._closed:
            self._wake.set()
            await asyncio.sleep(0.01)

    def add(
        self,
        station_id: str,
        evse_id: int,
        transaction_id: str | None,
        meter_values: Iterable[Mapping[str, Any]] | None,
    ) -> int:
        return self.add_rows(parse_wire_meter_values(station_id, evse_id, transaction_id, meter_values or ()))

    def add_rows(self, rows: list[Row]) -> int:
        """Queue rows already parsed (:func:`csms.store.payloads.read_wire_meter_values`)."""
        self._check_open()
        if rows:
            self._enqueue(rows)
        return len(rows)


FrameItem = tuple[str, str, datetime, "str | bytes"]
"""A buffered frame: (station id, direction, timestamp, text or the UTF-8 bytes sent)."""


class FrameLogWriter(BatchWriter[FrameItem]):
    """Buffers raw OCPP-J frames; the sink writes each batch as one segment per station
    (:class:`csms.store.models.FrameSegment`), and the log keeps a station's newest ``limit``.

    Pruning runs in the flush task, after the insert, and only for stations that gained at
    least ``slack`` frames (half the limit: segments are cheap to keep, prunes are not) since
    their last prune; an explicit ``flush()`` or ``close()`` prunes every station that gained
    anything. Each prune is one indexed ``DELETE`` of the station's segments older than the one
    holding its limit-th newest frame, so the cost stays proportional to the traffic.
    """

    def __init__(
        self,
        sink: Callable[[list[FrameItem]], Awaitable[None]],
        pruner: Callable[[list[str]], Awaitable[None]],
        *,
        limit: int,
        flush_interval: float = 0.5,
        max_rows: int = 1000,
        max_buffer: int = 200_000,
    ) -> None:
        super().__init__("frames", sink, flush_interval=flush_interval, max_rows=max_rows, max_buffer=max_buffer)
        self.limit = limit
        self.slack = max(1, limit // 2)
        self._pruner = pruner
        self._unpruned: dict[str, int] = {}

    def add(self, station_id: str, direction: str, frame: str | bytes, at: datetime | None = None) -> None:
        """``frame``: text, or the UTF-8 bytes of a frame as sent (decoded when written)."""
        # two frames per OCPP call: one append and the bookkeeping, nothing more
        if self._closed:
            self._check_open()
        if self.limit <= 0:
            return
        ts = utcnow() if at is None else at if at.tzinfo is UTC else ensure_utc(at, "at")
        buf = self._buf
        buf.append((station_id, direction, ts, frame))
        if len(buf) >= self.max_rows:
            self._trim()
            self._wake.set()
        unpruned = self._unpruned
        unpruned[station_id] = unpruned.get(station_id, 0) + 1

    async def _after_flush(self, *, force: bool) -> None:
        threshold = 1 if force else self.slack
        due = [sid for sid, n in self._unpruned.items() if n >= threshold]
        if not due:
            return
        await self._pruner(due)
        for sid in due:
            self._unpruned.pop(sid, None)


class TouchWriter(BatchWriter[tuple[str, datetime]]):
    """Coalesces ``last_seen_at`` updates: one pending timestamp (the latest) per station."""

    def __init__(
        self, sink: Callable[[list[tuple[str, datetime]]], Awaitable[None]], *, flush_interval: float = 0.5
    ) -> None:
        super().__init__("touch", sink, flush_interval=flush_interval, max_rows=5000, max_buffer=1_000_000)
        self._pending: dict[str, datetime] = {}

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, station_id: str, at: datetime) -> None:
        self._check_open()
        prev = self._pending.get(station_id)
        if prev is None or at > prev:
            self._pending[station_id] = at

    def pending_for(self, station_id: str) -> datetime | None:
        return self._pending.get(station_id)

    def _take(self, n: int) -> list[tuple[str, datetime]]:
        batch = []
        for _ in range(min(n, len(self._pending))):
            key = next(iter(self._pending))
            batch.append((key, self._pending.pop(key)))
        return batch

    def _requeue(self, batch: list[tuple[str, datetime]]) -> None:
        for station_id, at in batch:
            prev = self._pending.get(station_id)
            if prev is None or at > prev:
                self._pending[station_id] = at


class GroupCommit(Generic[T, R]):
    """Coalesces concurrent *awaited* writes (group commit).

    Each ``await write(item)`` returns that item's result once it is committed, or raises what
    its write raised; items that arrive while a write is in flight go together into the next
    ``sink(batch)`` call, which must write them in one transaction and return one result per item
    (up to ``max_rows`` per batch). When a batch of several fails, each item is retried alone,
    so one bad item fails only its own caller. On SQLite, where writes are serialised anyway, a
    thousand stations answering at once cost a handful of commits instead of a thousand, and
    nobody is told "stored" before it is.
    """

    def __init__(self, name: str, sink: Callable[[list[T]], Awaitable[Sequence[R]]], *, max_rows: int = 500) -> None:
        self.name = name
        self.max_rows = max(1, max_rows)
        self.batches = 0
        self._sink = sink
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._task: asyncio.Task[None] | None = None

    async def write(self, item: T) -> R:
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[R] = loop.create_future()
        self._pending.append((item, fut))
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._drain(), name=f"store-group-{self.name}")
        return await fut

    async def flush(self) -> None:
        """Return once everything written before the call is committed (or failed)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def _drain(self) -> None:
        while self._pending:
            batch = self._pending[: self.max_rows]
            del self._pending[: self.max_rows]
            try:
                results = await self._sink([item for item, _ in batch])
            except Exception as exc:
                if len(batch) == 1:
                    _settle(batch[0][1], error=exc)
                    continue
                log.warning("store group write failed; retrying one by one", writer=self.name, rows=len(batch),
                            error=repr(exc))  # fmt: skip
                for item, fut in batch:
                    try:
                        (result,) = await self._sink([item])
                    except Exception as one:
                        _settle(fut, error=one)
                    else:
                        _settle(fut, result)
                continue
            self.batches += 1
            for (_, fut), result in zip(batch, results, strict=True):
                _settle(fut, result)


def _settle(fut: asyncio.Future[Any], result: Any = None, *, error: BaseException | None = None) -> None:
    if fut.done():  # the waiter was cancelled
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(result)
