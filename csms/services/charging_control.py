"""The CSMS's Python API for commanding one station's charging (used by dispatch, the HTTP API
and the CLI): capabilities, charging needs, power schedules, composite schedules, profile
records and V2X permission.

Power schedules are intents ("EVSE 1: these (offset s, W) periods from t0; positive charges,
negative discharges") turned into a SetChargingProfile by the pure builder
(:mod:`csms.smartcharging.builder`) for the station's version and capabilities: standard
CentralSetpoint periods on 2.1, the ``negative-limit`` vendor adapter on 2.0.1 models that
follow ``docs/v2x-ocpp201-extension.md``. Dispatch profiles get ids from a reserved range
(>= 1,000,000) and a stack level above the operator's defaults, so clearing them never
touches operator profiles.

Errors are typed: :class:`ProfileRejected` (the station's reasonCode and text),
:class:`NoActiveTransaction`, :class:`~csms.smartcharging.builder.BuilderError` (refused before
sending), and from :mod:`csms.central` / :mod:`csms.ocpp.errors` StationOffline,
CallTimeout, CallErrorReceived.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol, runtime_checkable

import structlog

from csms.blocks.context import Central
from csms.domain.station import BootState
from csms.ocpp.errors import OcppError
from csms.smartcharging.builder import (
    BuilderError,
    PowerIntent,
    ProfileAllocator,
    StationCapabilities,
    build_set_charging_profile,
)
from csms.smartcharging.k01 import apply_set_charging_profile
from csms.smartcharging.model import InstalledProfile
from csms.smartcharging.needs import ChargingNeeds

log = structlog.get_logger("csms.charging")

DEFAULTS = {"max_stack_level": 8, "max_periods": 24}
"""Conservative defaults for a station that does not report its SmartChargingCtrlr limits."""


class ProfileRejected(OcppError):
    def __init__(self, station_id: str, action: str, status: str, reason: str | None, info: str | None):
        text = f"{station_id}: {action} {status}" + (f" ({reason}: {info})" if reason or info else "")
        super().__init__(text)
        self.station_id = station_id
        self.status = status
        self.reason = reason
        self.info = info


class NoActiveTransaction(OcppError):
    pass


@dataclass(slots=True)
class AppliedProfile:
    station_id: str
    evse_id: int
    profile_id: int
    request: dict[str, Any]
    response: dict[str, Any]


@dataclass(slots=True)
class _Report:
    parts: list[dict[str, Any]] = field(default_factory=list)
    done: asyncio.Event = field(default_factory=asyncio.Event)


_DISCOVERY = [
    ("SmartChargingCtrlr", "RateUnit", None),
    ("SmartChargingCtrlr", "ProfileStackLevel", None),
    ("SmartChargingCtrlr", "PeriodsPerSchedule", None),
    ("SmartChargingCtrlr", "Entries", "ChargingProfiles"),
]
_DISCOVERY_21 = [
    ("SmartChargingCtrlr", "SupportedOperationModes", None),
    ("SmartChargingCtrlr", "SupportedEnergyTransferModes", None),
    ("SmartChargingCtrlr", "SupportsDynamicProfiles", None),
    ("SmartChargingCtrlr", "SupportedAdditionalPurposes", None),
]


@runtime_checkable
class ControlHost(Central, Protocol):
    """What charging control needs beyond a block's view of the CSMS: whether a station is
    reachable (here or on another node), and the typed StationOffline / UnknownStation errors."""

    def reachable(self, station_id: str) -> bool: ...

    def session(self, station_id: str) -> Any:
        """The station's local session; raises StationOffline / UnknownStation."""
        ...


class ChargingControl:
    def __init__(self, central: ControlHost) -> None:
        self.central = central
        self.allocator = ProfileAllocator(dispatch_stack_level=central.settings.dispatch.stack_level)
        self.installed: dict[str, list[InstalledProfile]] = {}
        self._reports: dict[tuple[str, int], _Report] = {}
        self._request_ids = itertools.count(1)
        self._claims: set[tuple[str, int]] = set()
        self._boot_gen: dict[str, int] = {}
        central.subscribe(self._on_event)

    # ------------------------------------------------------------------ events
    def _on_event(self, kind: str, station_id: str, data: dict[str, Any]) -> None:
        if kind == "boot" and data.get("status") == "Accepted":
            self._boot_gen[station_id] = self._boot_gen.get(station_id, 0) + 1
            self.central.background(self.after_boot(station_id))
        elif kind == "connected":
            # a rebooted station sends BootNotification first and that path reconciles; a station
            # that only reconnected is reconciled if no boot arrives within a second
            gen = self._boot_gen.get(station_id, 0)
            asyncio.get_running_loop().call_later(1.0, self._after_reconnect, station_id, gen)

    async def after_boot(self, station_id: str) -> None:
        """Capability discovery then profile reconciliation; a silent station keeps defaults."""
        try:
            await self.discover(station_id)
        except Exception as exc:
            log.warning("capability discovery failed; using conservative defaults", station=station_id, error=str(exc))
        await self._reconcile_quietly(station_id)

    def _after_reconnect(self, station_id: str, gen: int) -> None:
        state = self.central.state(station_id)
        if self._boot_gen.get(station_id, 0) == gen and state.connected and state.boot is BootState.ACCEPTED:
            self.central.background(self._reconcile_quietly(station_id))

    async def _reconcile_quietly(self, station_id: str) -> None:
        try:
            await self.reconcile(station_id)
        except Exception as exc:
            log.warning("profile reconciliation failed", station=station_id, error=str(exc))

    # ------------------------------------------------------------------ capabilities
    async def discover(self, station_id: str) -> dict[str, Any]:
        state = self.central.state(station_id)
        wanted = list(_DISCOVERY) + (list(_DISCOVERY_21) if state.ocpp_version == "2.1" else [])
        evse_ids = sorted(e for e in state.evses if e > 0) or [1]
        if state.ocpp_version == "2.1":
            for evse_id in evse_ids:
                wanted += [
                    ("V2XChargingCtrlr", "Enabled", evse_id),
                    ("V2XChargingCtrlr", "SupportedOperationModes", evse_id),
                ]
        data = []
        for comp, var, extra in wanted:
            item: dict[str, Any] = {"component": {"name": comp}, "variable": {"name": var}}
            if isinstance(extra, str):
                item["variable"]["instance"] = extra
            elif isinstance(extra, int):
                item["component"]["evse"] = {"id": extra}
            data.append(item)
        response = await self.central.call(station_id, "GetVariables", {"getVariableData": data})
        caps: dict[str, Any] = {"evse": {}}
        for res in response["getVariableResult"]:
            if res["attributeStatus"] != "Accepted" or "attributeValue" not in res:
                continue
            name, value = res["variable"]["name"], res["attributeValue"]
            evse = res["component"].get("evse", {}).get("id")
            if res["component"]["name"] == "V2XChargingCtrlr" and evse is not None:
                caps["evse"].setdefault(str(evse), {})[name] = value
            else:
                caps[name] = value
        await self.central.store.set_capabilities(station_id, caps)
        state.capabilities = caps
        log.info("capabilities discovered", station=station_id, caps=caps)
        return caps

    def capabilities(self, station_id: str) -> StationCapabilities:
        state = self.central.state(station_id)
        raw = state.capabilities or {}
        version = state.ocpp_version or "2.0.1"

        def as_int(key: str, default: int) -> int:
            try:
                return int(raw[key])
            except (KeyError, ValueError, TypeError):
                return default

        def as_set(key: str) -> frozenset[str] | None:
            if key not in raw:
                return None
            return frozenset(x.strip() for x in str(raw[key]).split(",") if x.strip())

        modes = as_set("SupportedOperationModes") if version == "2.1" else None
        adapter = None
        if version == "2.0.1":
            adapter = self.central.settings.v2x.adapters.get(
                state.model or ""
            ) or self.central.settings.v2x.adapters.get("*")
        return StationCapabilities(
            version=version,  # type: ignore[arg-type]
            max_stack_level=as_int("ProfileStackLevel", DEFAULTS["max_stack_level"]),
            max_periods=as_int("PeriodsPerSchedule", DEFAULTS["max_periods"]),
            rate_units=as_set("RateUnit") or frozenset({"W", "A"}),
            supported_operation_modes=modes if modes is not None else frozenset({"ChargingOnly"}),
            supports_dynamic=str(raw.get("SupportsDynamicProfiles", "false")).lower() == "true",
            v2x_adapter=adapter,
            max_profiles=as_int("Entries", 0) or None if "EntriesMax" in raw else None,
        )

    # ------------------------------------------------------------------ needs and claims
    def needs(self, station_id: str, evse_id: int) -> ChargingNeeds | None:
        evse = self.central.state(station_id).evses.get(evse_id)
        return evse.charging_needs if evse is not None else None

    def claim(self, station_id: str, evse_id: int) -> None:
        """A controller (dispatch) will send this EVSE its profiles: needs are answered Processing."""
        self._claims.add((station_id, evse_id))

    def release(self, station_id: str, evse_id: int) -> None:
        self._claims.discard((station_id, evse_id))

    def claimed(self, station_id: str, evse_id: int) -> bool:
        return (station_id, evse_id) in self._claims

    # ------------------------------------------------------------------ power schedules
    async def set_power_schedule(
        self,
        station_id: str,
        evse_id: int,
        periods: list[tuple[int, float]],
        *,
        start: datetime | None = None,
        duration_s: int | None = None,
        purpose: str = "TxProfile",
        max_offline_duration_s: int | None = None,
        timeout: float | None = None,
    ) -> AppliedProfile:
        """Command ``periods`` of (offset s, W) on one EVSE; positive charges, negative discharges."""
        central = self.central
        if not central.reachable(station_id):  # here or on another node (cluster mode)
            central.session(station_id)  # raises StationOffline / UnknownStation early
        state = central.state(station_id)
        evse = state.evses.get(evse_id)
        tx = evse.transaction_id if evse is not None else None
        if purpose == "TxProfile" and tx is None:
            raise NoActiveTransaction(f"{station_id}: no active transaction on EVSE {evse_id}")
        caps = self.capabilities(station_id)
        alloc = self.allocator.allocate(station_id, evse_id, caps, purpose)
        intent = PowerIntent(
            evse_id=evse_id,
            start=start or central.now(),
            periods=self._capped(evse, periods),
            purpose=purpose,
            transaction_id=tx if purpose == "TxProfile" else None,
            duration_s=duration_s,
            max_offline_duration_s=max_offline_duration_s or central.settings.dispatch.max_offline_duration_s,
        )
        request = build_set_charging_profile(
            intent,
            caps,
            profile_id=alloc.profile_id,
            stack_level=alloc.stack_level,
            installed=self.installed.get(station_id, []),
            active_transactions={evse_id: tx} if tx else {},
            now=central.now(),
        )
        response = await central.call(station_id, "SetChargingProfile", request, timeout=timeout)
        if response["status"] != "Accepted":
            info = response.get("statusInfo", {})
            raise ProfileRejected(
                station_id, "SetChargingProfile", response["status"], info.get("reasonCode"), info.get("additionalInfo")
            )
        self.installed[station_id] = apply_set_charging_profile(request, self.installed.get(station_id, []))
        await central.store.record_profile(station_id, evse_id, request["chargingProfile"], source="csms")
        central.emit("profile", station_id, {"evse_id": evse_id, "profile_id": alloc.profile_id, "set": True})
        return AppliedProfile(station_id, evse_id, alloc.profile_id, request, response)

    def _capped(self, evse: Any, periods: list[tuple[int, float]]) -> list[tuple[int, float]]:
        """Clamp charging power to an external limit (NotifyChargingLimit) reported in W."""
        limit = evse.external_limit if evse is not None else None
        if not limit:
            return list(periods)
        caps = [
            p.get("limit")
            for sched in limit.get("schedules", [])
            if sched.get("chargingRateUnit") == "W"
            for p in sched.get("chargingSchedulePeriod", [])
            if p.get("limit") is not None
        ]
        if not caps:
            return list(periods)
        cap = min(caps)
        return [(t, min(p, cap) if p > 0 else p) for t, p in periods]

    async def clear(
        self, station_id: str, *, evse_id: int | None = None, profile_id: int | None = None, dispatch_only: bool = True
    ) -> list[dict[str, Any]]:
        """Clear one profile by id, or every dispatch-owned profile (on one EVSE)."""
        central = self.central
        if profile_id is not None:
            requests = [{"chargingProfileId": profile_id}]
        elif dispatch_only:
            ids = {
                p.profile.id
                for p in self.installed.get(station_id, [])
                if self.allocator.is_dispatch_owned(p.profile.id) and (evse_id is None or p.evse_id == evse_id)
            }
            ids |= set(self.allocator.owned_ids(station_id, evse_id))
            requests = [{"chargingProfileId": i} for i in sorted(ids)]
        else:
            crit: dict[str, Any] = {}
            if evse_id is not None:
                crit["evseId"] = evse_id
            requests = [{"chargingProfileCriteria": crit}] if crit else [{}]
        responses = []
        for req in requests:
            resp = await central.call(station_id, "ClearChargingProfile", req)
            responses.append(resp)
            pid = req.get("chargingProfileId")
            if pid is not None:
                self.allocator.release(station_id, pid)
                self.installed[station_id] = [p for p in self.installed.get(station_id, []) if p.profile.id != pid]
                await central.store.delete_profiles(station_id, profile_id=pid)
            elif resp["status"] == "Accepted":
                self.installed[station_id] = [
                    p for p in self.installed.get(station_id, []) if evse_id is not None and p.evse_id != evse_id
                ]
                await central.store.delete_profiles(station_id, evse_id=evse_id)
        central.emit("profile", station_id, {"evse_id": evse_id, "set": False})
        return responses

    async def composite(self, station_id: str, evse_id: int, duration_s: int, unit: str = "W") -> dict[str, Any]:
        return await self.central.call(
            station_id, "GetCompositeSchedule", {"evseId": evse_id, "duration": duration_s, "chargingRateUnit": unit}
        )

    # ------------------------------------------------------------------ profile records
    def on_report(self, station_id: str, payload: dict[str, Any]) -> None:
        report = self._reports.get((station_id, payload["requestId"]))
        if report is None:
            log.warning(
                "ReportChargingProfiles for an unknown request", station=station_id, request=payload["requestId"]
            )
            return
        report.parts.append(payload)
        if not payload.get("tbc", False):
            report.done.set()

    async def get_profiles(
        self,
        station_id: str,
        criteria: dict[str, Any] | None = None,
        *,
        evse_id: int | None = None,
        timeout: float = 30,
    ) -> list[InstalledProfile]:
        """GetChargingProfiles, collecting every ReportChargingProfiles part (until tbc is false)."""
        request_id = next(self._request_ids)
        report = self._reports[(station_id, request_id)] = _Report()
        try:
            payload: dict[str, Any] = {"requestId": request_id, "chargingProfile": criteria or {}}
            if evse_id is not None:
                payload["evseId"] = evse_id
            response = await self.central.call(station_id, "GetChargingProfiles", payload)
            if response["status"] != "Accepted":
                return []
            async with asyncio.timeout(timeout):
                await report.done.wait()
        finally:
            self._reports.pop((station_id, request_id), None)
        out = []
        for part in report.parts:
            for profile in part["chargingProfile"]:
                out.append(InstalledProfile.from_request({"evseId": part["evseId"], "chargingProfile": profile}))
        return out

    async def reconcile(self, station_id: str) -> dict[str, Any]:
        """Make the CSMS's record of a station's profiles equal to what the station reports."""
        reported = await self.get_profiles(station_id)
        before = {(p["profile_id"]) for p in (r.model_dump() for r in await self.central.store.profiles(station_id))}
        await self.central.store.replace_profiles(
            station_id, [(p.evse_id, p.profile.to_wire()) for p in reported], source="station"
        )
        self.installed[station_id] = reported
        for slot_id in self.allocator.owned_ids(station_id):
            if all(p.profile.id != slot_id for p in reported):
                self.allocator.release(station_id, slot_id)
        after = {p.profile.id for p in reported}
        summary = {"removed": sorted(before - after), "added": sorted(after - before), "profiles": sorted(after)}
        log.info("profiles reconciled", station=station_id, **summary)
        self.central.emit("profile", station_id, {"reconciled": True, **summary})
        return summary

    # ------------------------------------------------------------------ V2X permission (2.1)
    async def set_allowed_energy_transfer(
        self, station_id: str, transaction_id: str, modes: list[str]
    ) -> dict[str, Any]:
        response = await self.central.call(
            station_id, "NotifyAllowedEnergyTransfer", {"transactionId": transaction_id, "allowedEnergyTransfer": modes}
        )
        if response["status"] == "Accepted":
            evse = self.central.state(station_id).evse_of_transaction(transaction_id)
            if evse is not None:
                evse.allowed_energy_transfer = list(modes)
        return response

    async def update_setpoint(self, station_id: str, profile_id: int, setpoint_w: float) -> dict[str, Any]:
        """2.1 UpdateDynamicSchedule for a Dynamic profile (fast setpoint change)."""
        caps = self.capabilities(station_id)
        if caps.version != "2.1" or not caps.supports_dynamic:
            raise BuilderError("UnsupportedKind", f"{station_id} does not support dynamic profiles")
        update: dict[str, Any] = {"setpoint": setpoint_w}
        if setpoint_w >= 0:
            update["limit"] = setpoint_w
        else:
            update["dischargeLimit"] = setpoint_w
        return await self.central.call(
            station_id, "UpdateDynamicSchedule", {"chargingProfileId": profile_id, "scheduleUpdate": update}
        )


def horizon(start: datetime, periods: list[tuple[int, float]], tail_s: int = 60) -> datetime:
    return start + timedelta(seconds=(periods[-1][0] if periods else 0) + tail_s)
