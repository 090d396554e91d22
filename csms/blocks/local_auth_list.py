"""D - Local Authorization List (D01 SendLocalList, D02 GetLocalListVersion) and C - the
authorization cache (C11 ClearCache).

The operator edits one list for the whole CSMS (:mod:`csms.store.operations`: every change gets
the next version number). The CSMS keeps, per station, the version the station last confirmed,
and brings a station up to date (:meth:`LocalAuthList.sync`):

1. GetLocalListVersion (D02); the same version as ours: nothing to send;
2. the station is at a version it got from us: a Differential update with the entries changed
   since (an entry without ``idTokenInfo`` removes the token); otherwise a Full update with every
   entry (an empty list is a Full update without ``localAuthorizationList``, D01);
3. a Differential answered VersionMismatch or Failed is followed by a Full update.

``versionNumber`` is always > 0 (D01.FR.18) and every token appears once (D01.FR.06); Full
updates carry ``idTokenInfo`` for every entry. A sync runs after every Accepted boot once the
operator has a list (version > 0), after every change of the list for the connected stations, and
on demand (API / CLI). The idTokenInfo of an entry comes from the operator's id token (status,
``cacheExpiryDateTime`` from its expiry, ``groupIdToken``) unless given explicitly.

Limits: the list is sent in one SendLocalList, so a list longer than a station's
``LocalAuthListCtrlr.ItemsPerMessage`` is refused by that station (recorded as Failed); the list
is one for the whole CSMS (no per-station lists yet).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import structlog

from csms.blocks.context import Central, Session
from csms.clock import to_rfc3339
from csms.domain.station import BootState
from csms.ocpp.errors import CallErrorReceived, OcppError
from csms.store import operations as ops

if TYPE_CHECKING:
    from csms.store.rows import IdTokenRow

log = structlog.get_logger("csms.local_list")

EXTENSION = "local_auth_list"
POST_BOOT_WAIT_S = 2.0


def id_token_info(row: IdTokenRow | None, status: str | None = None) -> dict[str, Any]:
    """IdTokenInfoType for a list entry, from the operator's id token (when there is one)."""
    info: dict[str, Any] = {"status": status or (row.status if row is not None else "Accepted")}
    if row is not None:
        if row.expires_at is not None:
            info["cacheExpiryDateTime"] = to_rfc3339(row.expires_at)
        if row.group_id:
            info["groupIdToken"] = {"idToken": row.group_id, "type": "Central"}
    return info


def _entry(row: ops.LocalListEntryRow) -> dict[str, Any]:
    token: dict[str, Any] = {"idToken": row.id_token, "type": row.type}
    out: dict[str, Any] = {"idToken": token}
    if row.id_token_info is not None and not row.deleted:
        out["idTokenInfo"] = dict(row.id_token_info)
    return out


class LocalAuthList:
    """The CSMS side of D01/D02: one per Central (``central.extensions``)."""

    def __init__(self, central: Central) -> None:
        self.central = central
        self._locks: dict[str, asyncio.Lock] = {}
        self._post_boot: dict[str, asyncio.TimerHandle] = {}
        central.subscribe(self._on_event)

    # ------------------------------------------------------------------ after boot
    def booted(self, station_id: str) -> None:
        """A station's boot was Accepted. Its list is checked once the CSMS's own post-boot work
        (capability discovery, profile reconciliation: the ``profile`` event with ``reconciled``)
        is done, or after :data:`POST_BOOT_WAIT_S` when that never comes, so the two do not
        interleave on the station."""
        old = self._post_boot.pop(station_id, None)
        if old is not None:
            old.cancel()
        loop = asyncio.get_running_loop()
        self._post_boot[station_id] = loop.call_later(POST_BOOT_WAIT_S, self._start_post_boot, station_id)

    def _on_event(self, kind: str, station_id: str, data: dict[str, Any]) -> None:
        if kind == "profile" and data.get("reconciled") and station_id in self._post_boot:
            self._start_post_boot(station_id)
        elif kind == "disconnected":
            handle = self._post_boot.pop(station_id, None)
            if handle is not None:
                handle.cancel()

    def _start_post_boot(self, station_id: str) -> None:
        handle = self._post_boot.pop(station_id, None)
        if handle is not None:
            handle.cancel()
        self.central.background(self._sync_after_boot(station_id))

    async def _sync_after_boot(self, station_id: str) -> None:
        try:
            if self.central.store is None or await ops.local_list_version(self.store) == 0:
                return
            await self.sync(station_id)
        except OcppError as exc:
            log.warning("local list not synchronised after boot", station=station_id, error=str(exc))

    @classmethod
    def of(cls, central: Central) -> LocalAuthList:
        found = central.extensions.get(EXTENSION)
        if found is None:
            found = central.extensions[EXTENSION] = cls(central)
        return found  # type: ignore[no-any-return]

    @property
    def store(self) -> Any:
        assert self.central.store is not None
        return self.central.store

    # ------------------------------------------------------------------ operator edits
    async def put(self, entries: list[tuple[str, str, dict[str, Any]]], *, push: bool = True) -> int:
        version = await ops.local_list_put(self.store, entries)
        log.info("local list changed", version=version, put=len(entries))
        if push:
            self.push_all()
        return version

    async def remove(self, keys: list[tuple[str, str]], *, push: bool = True) -> tuple[int, int]:
        version, removed = await ops.local_list_remove(self.store, keys)
        log.info("local list changed", version=version, removed=removed)
        if push and removed:
            self.push_all()
        return version, removed

    def push_all(self) -> list[str]:
        """Start a sync of every connected, Accepted station (in the background)."""
        ids = [
            sid
            for sid, sess in list(self.central.sessions.items())
            if sess.state.boot is BootState.ACCEPTED and sess.state.connected
        ]
        for sid in ids:
            self.central.background(self.sync_quietly(sid))
        return ids

    # ------------------------------------------------------------------ synchronisation
    async def sync_quietly(self, station_id: str) -> None:
        try:
            await self.sync(station_id)
        except Exception as exc:
            log.warning("local list sync failed", station=station_id, error=str(exc))

    async def sync(self, station_id: str, *, full: bool = False) -> dict[str, Any]:
        """Bring the station's list to the CSMS's version; returns what was done.

        ``result``: UpToDate, Accepted, Failed, VersionMismatch, NotSupported (the station
        answered GetLocalListVersion or SendLocalList with a CALLERROR) or NoList (the operator
        has no list yet: nothing to send)."""
        lock = self._locks.setdefault(station_id, asyncio.Lock())
        async with lock:
            return await self._sync(station_id, full)

    async def _sync(self, station_id: str, full: bool) -> dict[str, Any]:
        central = self.central
        ours = await ops.local_list_version(self.store)
        try:
            theirs = (await central.call(station_id, "GetLocalListVersion", {}))["versionNumber"]
        except CallErrorReceived as exc:
            await ops.set_local_list_station(self.store, station_id, 0, "NotSupported")
            return {"result": "NotSupported", "error": exc.code, "csms_version": ours}
        done: dict[str, Any] = {"station_version": theirs, "csms_version": ours, "sent": []}
        if ours == 0:
            done["result"] = "NoList"
            return done
        if theirs == ours and not full:
            await ops.set_local_list_station(self.store, station_id, theirs, "UpToDate")
            done["result"] = "UpToDate"
            return done
        known = await ops.local_list_station(self.store, station_id)
        differential = (
            not full
            and 0 < theirs < ours
            and known is not None
            and known.version == theirs
            and known.status != "Failed"
        )
        if differential:
            changed = await ops.local_list_entries(self.store, since=theirs)
            status = await self._send(station_id, done, "Differential", ours, changed)
            if status == "Accepted":
                return done
        entries = await ops.local_list_entries(self.store)
        await self._send(station_id, done, "Full", ours, entries)
        return done

    async def _send(
        self, station_id: str, done: dict[str, Any], update_type: str, version: int, rows: list[ops.LocalListEntryRow]
    ) -> str:
        payload: dict[str, Any] = {"versionNumber": version, "updateType": update_type}
        if update_type == "Full":
            rows = [r for r in rows if not r.deleted]
        if rows:
            payload["localAuthorizationList"] = [_entry(r) for r in rows]
        try:
            reply = await self.central.call(station_id, "SendLocalList", payload)
        except CallErrorReceived as exc:
            await ops.set_local_list_station(self.store, station_id, done["station_version"], "NotSupported")
            done["sent"].append({"updateType": update_type, "versionNumber": version, "error": exc.code})
            done["result"] = "NotSupported"
            return "NotSupported"
        status = reply["status"]
        done["sent"].append(
            {"updateType": update_type, "versionNumber": version, "entries": len(rows), "status": status}
        )
        done["result"] = status
        if status == "Accepted":
            await ops.set_local_list_station(self.store, station_id, version, "Accepted")
            done["station_version"] = version
        else:
            await ops.set_local_list_station(self.store, station_id, done["station_version"], status)
        log.info("SendLocalList", station=station_id, update_type=update_type, version=version, status=status)
        self.central.emit("local_list", station_id, {"update_type": update_type, "version": version, "status": status})
        return str(status)

    async def record(self, station_id: str, version: int, status: str) -> None:
        """An operator's raw SendLocalList / GetLocalListVersion command: keep the bookkeeping."""
        await ops.set_local_list_station(self.store, station_id, version, status)


def after_boot(s: Session) -> None:
    """Called by BootNotification once Accepted: re-sync the list when the operator keeps one."""
    LocalAuthList.of(s.central).booted(s.station_id)


HANDLERS: dict[str, Any] = {}
