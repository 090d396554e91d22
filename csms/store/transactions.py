"""Transactions (E) and meter samples (J): TransactionEvents applied once per seqNo, meter values written behind."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from .base import (
    _METER_COLUMNS,
    _TX_EVENT_TYPES,
    _TX_ID_LEN,
    _TX_SETTABLE,
    StoreBase,
    _check_station_id,
    _ts_in,
)
from .batch import GroupCommit
from .models import MeterSample, Transaction, TransactionEvent
from .payloads import pick
from .rows import MeterSampleRow, TransactionEventRow, TransactionRow
from .types import ensure_utc, parse_ts, utcnow


@dataclass(slots=True)
class _TxEvent:
    """A validated TransactionEventRequest, ready to apply."""

    station_id: str
    event: dict[str, Any]
    tx_id: str
    etype: str
    seq: int
    ts: datetime
    trigger: Any
    offline: bool
    evse_id: Any
    connector_id: Any
    token: Any
    id_token: Any
    charging_state: Any
    stopped_reason: Any
    now: datetime


class TransactionStore(StoreBase):
    """Transactions, their events and meter samples."""

    _tx_group: GroupCommit[_TxEvent, tuple[bool, TransactionRow]] | None  # SQLite: events stored together

    # ------------------------------------------------------------------ transactions
    async def apply_transaction_event(
        self,
        station_id: str,
        event: Mapping[str, Any],
        *,
        validated: bool = False,
        meter_rows: list[dict[str, Any]] | None = None,
    ) -> tuple[bool, TransactionRow]:
        """Store one TransactionEventRequest (camelCase wire dict; snake_case also accepted).

        Returns ``(False, current row)`` without changing anything when this ``seqNo`` is
        already stored for the transaction (a resent message). Otherwise the event is appended
        to the history and the transaction's current state is recomputed:

        * ``state``, ``charging_state``, ``stopped_reason``, ``last_seq_no`` follow the event with
          the highest ``seqNo`` (offline events arriving late only add history), except that an
          ``Ended`` event always ends the transaction (``state='Ended'``, ``ended_at`` set) even
          when it arrives out of order;
        * ``started_at`` is the earliest ``Started`` timestamp (the first event's timestamp until
          a ``Started`` event is seen);
        * ``evse``/``connector`` follow the highest ``seqNo`` that carries them; ``id_token`` is the
          first token seen, a ``Started`` event's token taking precedence, ``StopAuthorized``
          tokens ignored;
        * meter values go to ``meter_samples`` through the batch writer, tagged with the
          transaction id, only for events not seen before.
        """
        e = self._wire_tx_event(station_id, event) if validated else self._parse_tx_event(station_id, event)
        if self._tx_group is not None:
            inserted, row = await self._tx_group.write(e)
        else:
            async with self._write() as s:
                inserted, row = await self._apply_tx_event(s, e)
        if not inserted:
            return False, row
        if meter_rows is not None:  # the caller read the meterValue already: only the EVSE is new here
            sample_evse = int((e.evse_id if e.evse_id is not None else row.evse_id) or 0)
            for sample in meter_rows:
                sample["evse_id"] = sample_evse
            self.meters.add_rows(meter_rows)
            return True, row
        meter_values = pick(event, "meterValue")
        if meter_values:
            sample_evse = e.evse_id if e.evse_id is not None else row.evse_id
            self.add_meter_values(station_id, int(sample_evse or 0), e.tx_id, meter_values)
        return True, row

    @staticmethod
    def _wire_tx_event(station_id: str, event: Mapping[str, Any]) -> _TxEvent:
        """A TransactionEventRequest the RPC endpoint validated against the schema (``validated=True``):
        only what the schema leaves open is checked (an empty transactionId)."""
        info = event["transactionInfo"]
        tx_id = info["transactionId"]
        if not tx_id:
            raise ValueError(f"transactionInfo.transactionId must be a 1-{_TX_ID_LEN} character string")
        evse = event.get("evse") or {}
        token = event.get("idToken") or {}
        return _TxEvent(
            station_id, dict(event), tx_id, event["eventType"], event["seqNo"], parse_ts(event["timestamp"]),
            event["triggerReason"], bool(event.get("offline", False)), evse.get("id"), evse.get("connectorId"),
            token, token.get("idToken"), info.get("chargingState"), info.get("stoppedReason"), utcnow(),
        )  # fmt: skip

    @staticmethod
    def _parse_tx_event(station_id: str, event: Mapping[str, Any]) -> _TxEvent:
        info = pick(event, "transactionInfo") or {}
        tx_id = pick(info, "transactionId")
        if not isinstance(tx_id, str) or not tx_id or len(tx_id) > _TX_ID_LEN:
            raise ValueError(f"transactionInfo.transactionId must be a 1-{_TX_ID_LEN} character string")
        _check_station_id(station_id)
        etype = pick(event, "eventType")
        if etype not in _TX_EVENT_TYPES:
            raise ValueError(f"unknown eventType {etype!r}")
        seq_raw = pick(event, "seqNo")
        if seq_raw is None or isinstance(seq_raw, bool):
            raise ValueError("seqNo is required")
        seq = int(seq_raw)
        raw_ts = pick(event, "timestamp")
        if raw_ts is None:
            raise ValueError("timestamp is required")
        ts = _ts_in(raw_ts)
        trigger = pick(event, "triggerReason")
        offline = bool(pick(event, "offline") or False)
        evse = pick(event, "evse") or {}
        evse_id = pick(evse, "id")
        connector_id = pick(evse, "connectorId")
        token = pick(event, "idToken") or {}
        id_token = pick(token, "idToken")
        charging_state = pick(info, "chargingState")
        stopped_reason = pick(info, "stoppedReason")
        return _TxEvent(
            station_id, dict(event), tx_id, etype, seq, ts, trigger, offline, evse_id, connector_id, token,
            id_token, charging_state, stopped_reason, utcnow(),
        )  # fmt: skip

    async def _apply_tx_batch(self, events: list[_TxEvent]) -> list[tuple[bool, TransactionRow]]:
        async with self._write() as s:
            return [await self._apply_tx_event(s, e) for e in events]

    async def _apply_tx_event(self, s: AsyncSession, e: _TxEvent) -> tuple[bool, TransactionRow]:
        """The transaction-state rules of :meth:`apply_transaction_event`, inside session ``s``."""
        station_id, tx_id, etype, seq, ts, now = e.station_id, e.tx_id, e.etype, e.seq, e.ts, e.now
        evse_id, connector_id = e.evse_id, e.connector_id
        charging_state, stopped_reason = e.charging_state, e.stopped_reason
        tx = await self._lock_transaction(s, station_id, tx_id)
        if tx is None:
            # Placeholder (last_seq_no -1) that the generic rules below fill in. A concurrent
            # creator makes this a no-op; FOR UPDATE then waits for its commit.
            await s.execute(
                self._insert(Transaction)
                .values(
                    station_id=station_id,
                    transaction_id=tx_id,
                    state=etype,
                    last_seq_no=-1,
                    meta={},
                    updated_at=now,
                )
                .on_conflict_do_nothing(index_elements=[Transaction.station_id, Transaction.transaction_id])
            )
            tx = await self._lock_transaction(s, station_id, tx_id)
            assert tx is not None
        new_event_id = (
            await s.execute(
                self._insert(TransactionEvent)
                .values(
                    transaction_pk=tx.id,
                    seq_no=seq,
                    event_type=etype,
                    trigger_reason=e.trigger,
                    timestamp=ts,
                    offline=e.offline,
                    payload=e.event,
                    received_at=now,
                )
                .on_conflict_do_nothing(index_elements=[TransactionEvent.transaction_pk, TransactionEvent.seq_no])
                .returning(TransactionEvent.id)
            )
        ).scalar_one_or_none()
        if new_event_id is None:
            return False, TransactionRow.model_validate(tx)

        is_latest = seq > tx.last_seq_no
        if is_latest:
            tx.last_seq_no = seq
            if tx.state != "Ended":
                tx.state = etype
            if charging_state is not None:
                tx.charging_state = charging_state
            if stopped_reason is not None:
                tx.stopped_reason = stopped_reason
        if etype == "Ended":
            tx.state = "Ended"
            if tx.ended_at is None or is_latest:
                tx.ended_at = ts
            if stopped_reason is not None:
                tx.stopped_reason = stopped_reason
        if etype == "Started":
            earlier_started = await s.scalar(
                select(
                    exists().where(
                        TransactionEvent.transaction_pk == tx.id,
                        TransactionEvent.event_type == "Started",
                        TransactionEvent.id != new_event_id,
                    )
                )
            )
            if earlier_started and tx.started_at is not None:
                tx.started_at = min(tx.started_at, ts)
            else:
                tx.started_at = ts
        elif tx.started_at is None:
            tx.started_at = ts
        if evse_id is not None and (is_latest or tx.evse_id is None):
            tx.evse_id = int(evse_id)
            if connector_id is not None:
                tx.connector_id = int(connector_id)
        if e.id_token is not None and e.trigger != "StopAuthorized" and (tx.id_token is None or etype == "Started"):
            tx.id_token = str(e.id_token)
            tx.id_token_type = pick(e.token, "type")
        tx.updated_at = now
        await s.flush()
        return True, TransactionRow.model_validate(tx)

    async def _lock_transaction(self, s: AsyncSession, station_id: str, transaction_id: str) -> Transaction | None:
        stmt = (
            select(Transaction)
            .where(Transaction.station_id == station_id, Transaction.transaction_id == transaction_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        )
        return (await s.scalars(stmt)).first()

    async def get_transaction(self, station_id: str, transaction_id: str) -> TransactionRow | None:
        obj = await self._one(
            select(Transaction).where(
                Transaction.station_id == station_id, Transaction.transaction_id == transaction_id
            )
        )
        return None if obj is None else TransactionRow.model_validate(obj)

    async def list_transactions(
        self, station_id: str | None = None, active: bool | None = None, limit: int = 100, offset: int = 0
    ) -> list[TransactionRow]:
        """Newest first (by ``started_at``); ``active`` = not ended."""
        stmt = select(Transaction).order_by(Transaction.started_at.desc(), Transaction.id.desc())
        if station_id is not None:
            stmt = stmt.where(Transaction.station_id == station_id)
        if active is True:
            stmt = stmt.where(Transaction.ended_at.is_(None))
        elif active is False:
            stmt = stmt.where(Transaction.ended_at.is_not(None))
        return [TransactionRow.model_validate(o) for o in await self._all(stmt.limit(limit).offset(offset))]

    async def transaction_events(self, station_id: str, transaction_id: str) -> list[TransactionEventRow]:
        """The stored events of one transaction ordered by ``seqNo`` (not by arrival)."""
        stmt = (
            select(TransactionEvent)
            .join(Transaction, Transaction.id == TransactionEvent.transaction_pk)
            .where(Transaction.station_id == station_id, Transaction.transaction_id == transaction_id)
            .order_by(TransactionEvent.seq_no)
        )
        return [TransactionEventRow.model_validate(o) for o in await self._all(stmt)]

    async def active_transaction(self, station_id: str, evse_id: int) -> TransactionRow | None:
        stmt = (
            select(Transaction)
            .where(
                Transaction.station_id == station_id,
                Transaction.evse_id == evse_id,
                Transaction.ended_at.is_(None),
            )
            .order_by(Transaction.started_at.desc(), Transaction.id.desc())
            .limit(1)
        )
        obj = await self._one(stmt)
        return None if obj is None else TransactionRow.model_validate(obj)

    async def set_transaction_fields(
        self, station_id: str, transaction_id: str, **fields: Any
    ) -> TransactionRow | None:
        """Set ``charging_needs``, ``allowed_energy_transfer``, ``energy_import_wh``,
        ``energy_export_wh`` and/or ``meta``. Returns None if the transaction is unknown."""
        unknown = set(fields) - _TX_SETTABLE
        if unknown:
            raise TypeError(f"fields not settable on a transaction: {sorted(unknown)}")
        async with self._write() as s:
            tx = await self._lock_transaction(s, station_id, transaction_id)
            if tx is None:
                return None
            for key, value in fields.items():
                setattr(tx, key, value)
            tx.updated_at = utcnow()
            await s.flush()
            return TransactionRow.model_validate(tx)

    # ------------------------------------------------------------------ meter samples
    def add_meter_values(
        self,
        station_id: str,
        evse_id: int,
        transaction_id: str | None,
        meter_values: Iterable[Mapping[str, Any]] | None,
    ) -> int:
        """Queue OCPP ``MeterValueType[]`` for the batch writer. Synchronous and non-blocking;
        returns the number of samples queued (malformed ones are skipped and logged)."""
        _check_station_id(station_id)
        return self.meters.add(station_id, evse_id, transaction_id, meter_values)

    async def _insert_meter_rows(self, rows: list[dict[str, Any]]) -> None:
        await self._bulk_insert(MeterSample.__table__, _METER_COLUMNS, rows)

    async def meter_samples(
        self,
        station_id: str,
        start: datetime | None = None,
        end: datetime | None = None,
        measurand: str | None = None,
        transaction_id: str | None = None,
        limit: int = 10_000,
        *,
        evse_id: int | None = None,
        newest_first: bool = False,
    ) -> list[MeterSampleRow]:
        """Samples of a station in ``[start, end)``, oldest first unless ``newest_first``."""
        stmt = select(MeterSample).where(MeterSample.station_id == station_id)
        if start is not None:
            stmt = stmt.where(MeterSample.timestamp >= ensure_utc(start, "start"))
        if end is not None:
            stmt = stmt.where(MeterSample.timestamp < ensure_utc(end, "end"))
        if measurand is not None:
            stmt = stmt.where(MeterSample.measurand == measurand)
        if transaction_id is not None:
            stmt = stmt.where(MeterSample.transaction_id == transaction_id)
        if evse_id is not None:
            stmt = stmt.where(MeterSample.evse_id == evse_id)
        if newest_first:
            stmt = stmt.order_by(MeterSample.timestamp.desc(), MeterSample.id.desc())
        else:
            stmt = stmt.order_by(MeterSample.timestamp, MeterSample.id)
        return [MeterSampleRow.model_validate(o) for o in await self._all(stmt.limit(limit))]
