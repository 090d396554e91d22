"""Build the planner's :class:`~csms.dispatch.fleet.FleetSnapshot` from the CSMS's live state.

One car per EVSE with an active transaction on a connected, accepted station. What each
field comes from (first match wins), all documented defaults in :class:`SnapshotOptions`:

===================  ==========================================================================
SoC                  the latest metered ``SoC`` (MeterValues / TransactionEvent) when it is not
                     older than the car's charging needs, else ``needs.soc``, else
                     ``default_soc``
capacity             ``needs.capacity_wh`` (``evEnergyCapacity``), else ``default_capacity_kwh``
charge limit         ``needs.max_charge_w`` (car, grid side as the station reports it), capped
                     by the charger rating when known (``charger_limits_kw``), else
                     ``default_charge_kw``
discharge limit      ``needs.max_discharge_w`` capped by the charger rating; 0 (charge-only) when
                     the car or the charger cannot discharge (see below)
min discharge        ``needs.min_discharge_w`` (minimum stable discharge power)
efficiency           ``eta_charge`` / ``eta_discharge`` = 0.95 each way (the DC charger's conversion,
                     Fermata class) times ``eta_vehicle`` = 0.95 (the car's own inverter and
                     battery losses, which OCPP does not report): 0.9025 grid-to-battery each
                     way, grid.md's "about 0.9". Erring low is the safe side: a car is never
                     planned to come back from a discharge faster than it can. A site that
                     knows its chain passes its own values (``eta_vehicle=1`` plans with the
                     charger's efficiency only)
floor                ``needs.min_soc`` (2.1: from ``evMinV2XEnergyRequest``; 2.0.1
                     ``org.openv2g.bpt`` ``evMinSoC``), else ``default_floor_soc`` (20 %)
max SoC              1 for a bidirectional car on a 2.1 station (a positive ``CentralSetpoint`` takes it
                     above its own target), else ``max(target, SoC)``: under a charge limit the car
                     stops at its own target
target SoC           ``needs.target_soc``, else SoC + ``needs.energy_target_wh`` / capacity, else
                     ``max(SoC, default_target_soc)``; ``target_margin_soc`` (default 0) plans
                     above it. Keep it 0 unless the cars accept it: a car under a ChargingOnly
                     limit stops at its own target, so a margin becomes charging that never
                     happens. Efficiency errors are corrected by re-planning from metered SoC
departure            ``needs.departure_time``, else now + ``default_stay_s``
===================  ==========================================================================

With a **departure model** (``departure_model``, :mod:`csms.dispatch.departure`, learned from the
site's past sessions: :mod:`csms.dispatch.history`) a car's departure is modelled from when it
plugged in (the transaction's start) and how long it has stayed so far, the driver's announced
time moving the middle while it lies ahead: the car is planned as available until the model's
late quantile, weighed by the chance it is still there, and its promise holds at every moment (a
car below its target charges at full power, a car at its target gives only what it holds above
it), so a driver who leaves earlier than announced or modelled is never left short. Nothing below
about overdue cars applies then.

Without one, departures are planned ``departure_margin_s`` (10 min) before the announced time. **Overdue cars**
(within that margin of, or past, the departure they announced: the driver may unplug any minute)
are planned as leaving in ``overdue_departure_s`` and never taken below their target: below it
they are *uncontrolled*: left out of the plan and of the commands so they charge at full power on
their own, their metered import going into the snapshot's ``baseline_kw`` (the rest of the fleet
then covers it). Above it by at least ``overdue_headroom_soc`` a bidirectional car may still
discharge, with its floor raised to its target (plus ``target_margin_soc``): whenever the driver
unplugs, the promise holds. (Drivers often stay well past the departure they announced - in the
Caltech sessions a third of the cars do - and a car at 90 % promised 60 % is the fleet's best
reserve.) Otherwise they are planned as charge-only.

A car is **charge-only** (``max_discharge_kw = 0``) when it has no charging needs yet, its needs
are not bidirectional (``requestedEnergyTransfer`` without BPT / no ``org.openv2g.bpt`` data),
the station cannot discharge (2.1: the transaction's ``allowedEnergyTransfer`` has no BPT mode or
``SmartChargingCtrlr.SupportedOperationModes`` lacks ``CentralSetpoint``; 2.0.1: no V2X vendor
adapter configured for the model), or the caller lists it in ``charge_only`` (e.g. after the
station refused a discharge profile). Charge-only cars are still planned (their charging is part
of the fleet's net export) and commanded.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import structlog

from csms.dispatch.departure import DepartureModel, modelled_departure
from csms.dispatch.fleet import CarState, FleetSnapshot
from csms.domain.station import BootState
from csms.smartcharging.model import OperationMode
from csms.smartcharging.needs import BPT_MODES, ChargingNeeds

if TYPE_CHECKING:
    from csms.central import CentralSystem

log = structlog.get_logger("csms.dispatch.snapshot")

__all__ = ["CarRef", "FleetView", "SnapshotOptions", "build_snapshot", "car_id_for"]


@dataclass(frozen=True, slots=True)
class SnapshotOptions:
    """Defaults for what the live state does not say (see the module docstring)."""

    eta_charge: float = 0.95
    eta_discharge: float = 0.95
    eta_vehicle: float = 0.95
    default_floor_soc: float = 0.20
    default_target_soc: float = 0.80
    default_soc: float = 0.50
    default_capacity_kwh: float = 60.0
    default_charge_kw: float = 7.4
    default_stay_s: float = 4 * 3600.0
    overdue_departure_s: float = 1800.0
    overdue_headroom_soc: float = 0.02
    """An overdue car discharges only this far above its target (and never below the target)."""
    target_margin_soc: float = 0.0
    extrapolate_soc: bool = True
    """Move a metered SoC forward to ``now`` with the metered power and the assumed efficiencies
    (meter values arrive every minute or so; a car discharging at 15 kW moves ~0.4 % a minute)."""
    max_extrapolation_s: float = 600.0
    departure_margin_s: float = 600.0
    """Plan every car to be ready this long before the departure it announced: no discharge in a
    car's last 10 minutes (message latency, step rounding, drivers leaving a little early)."""
    charger_limits_kw: Mapping[str, tuple[float, float]] = field(default_factory=dict)
    """Per station id: (charge kW, discharge kW) grid-side ratings, when known."""
    departure_model: DepartureModel | None = None
    """The site's departure model (:mod:`csms.dispatch.departure`, learned from its past sessions):
    when set, a car's departure is modelled, not taken from the driver's word (see the module doc)."""


@dataclass(frozen=True, slots=True)
class CarRef:
    """Where a planned car is and what the snapshot assumed about it."""

    car_id: str
    station_id: str
    evse_id: int
    transaction_id: str
    version: str
    has_needs: bool
    bidirectional: bool
    car: CarState
    announced_departure: datetime | None
    target_soc: float
    """The driver's promise (without ``target_margin_soc``), fraction."""
    assumptions: tuple[str, ...] = ()
    baseline_kw: float = 0.0
    """Uncontrolled cars: the load assumed for them (kW, import positive)."""


@dataclass(frozen=True, slots=True)
class FleetView:
    """A snapshot plus, per car id, where the car is; ``uncontrolled`` cars are not in the
    snapshot (their load is its ``baseline_kw``)."""

    snapshot: FleetSnapshot
    cars: dict[str, CarRef]
    uncontrolled: dict[str, CarRef] = field(default_factory=dict)

    def ref(self, car_id: str) -> CarRef:
        return self.cars[car_id]

    def evses(self) -> set[tuple[str, int]]:
        return {(r.station_id, r.evse_id) for r in self.cars.values()}


def car_id_for(station_id: str, evse_id: int, transaction_id: str) -> str:
    """Stable id of one car visit: a new transaction on the same EVSE is a new car."""
    return f"{station_id}/{evse_id}/{transaction_id}"


def _can_discharge_station(central: CentralSystem, station_id: str, evse: Any, version: str) -> tuple[bool, str]:
    caps = central.charging.capabilities(station_id)
    if version == "2.1":
        allowed = evse.allowed_energy_transfer
        if allowed is not None and not BPT_MODES.intersection(allowed):
            return False, "allowedEnergyTransfer has no BPT mode"
        if not caps.supports_mode(OperationMode.CENTRAL_SETPOINT):
            return False, "station does not report CentralSetpoint support"
        return True, ""
    if caps.v2x_adapter is None:
        return False, "OCPP 2.0.1 station without a V2X adapter"
    return True, ""


def build_snapshot(
    central: CentralSystem,
    *,
    now: datetime | None = None,
    options: SnapshotOptions | None = None,
    stations: Iterable[str] | None = None,
    exclude: Iterable[tuple[str, int]] = (),
    charge_only: Iterable[str] = (),
    uncontrolled: Iterable[str] = (),
    gone: Iterable[str] = (),
    commanded_energy: Callable[[str, datetime, datetime], tuple[float, float] | None] | None = None,
    site_export_limit_kw: float | None = None,
    site_import_limit_kw: float | None = None,
) -> FleetView:
    """The fleet as the CSMS sees it now (see the module docstring).

    ``stations`` restricts to those station ids (an event's targets); ``exclude`` drops
    (station, EVSE) pairs; ``charge_only`` lists car ids never to discharge; ``uncontrolled``
    lists car ids left out of the plan (their metered load becomes the baseline), e.g. cars whose
    station keeps refusing profiles; ``gone`` lists car ids known to have left although their
    TransactionEvent Ended has not arrived yet (the station answered ``TxNotFound``).
    ``commanded_energy(car_id, since, now)`` returns the grid-side Wh the dispatch commanded over
    that span and the seconds it covers (None: unknown); the SoC extrapolation uses it where it can,
    since a meter sample taken just before a new command shows the old power.
    """
    opts = options or SnapshotOptions()
    now = now or central.now()
    wanted = set(stations) if stations is not None else None
    skip = set(exclude)
    no_discharge = set(charge_only)
    loose_ids = set(uncontrolled)
    left = set(gone)
    cars: list[CarState] = []
    refs: dict[str, CarRef] = {}
    loose: dict[str, CarRef] = {}
    baseline_kw = 0.0
    for sid, state in central.states.items():
        if wanted is not None and sid not in wanted:
            continue
        if not state.connected or state.boot is not BootState.ACCEPTED or not central.reachable(sid):
            continue
        version = state.ocpp_version or "2.0.1"
        for evse_id, evse in state.evses.items():
            tx = evse.transaction_id
            if evse_id <= 0 or tx is None or (sid, evse_id) in skip:
                continue
            cid = car_id_for(sid, evse_id, tx)
            if cid in left:
                continue
            ref = _car(central, sid, evse_id, evse, tx, version, now, opts, cid in no_discharge, commanded_energy)
            if cid in loose_ids or "overdue: below target, uncontrolled" in ref.assumptions:
                # left alone, a car below its target charges at full power; otherwise assume what it does now
                metered = max(evse.power_import_w - evse.power_export_w, 0.0) / 1000.0
                load = ref.car.max_charge_kw if ref.car.soc + 0.005 < ref.target_soc else metered
                loose[cid] = replace(ref, baseline_kw=load)
                baseline_kw += load
                continue
            cars.append(ref.car)
            refs[cid] = ref
    snap = FleetSnapshot(
        time=now,
        cars=cars,
        site_export_limit_kw=site_export_limit_kw,
        site_import_limit_kw=site_import_limit_kw,
        baseline_kw=baseline_kw if loose else None,
    )
    return FleetView(snap, refs, loose)


def _car(
    central: CentralSystem,
    sid: str,
    evse_id: int,
    evse: Any,
    tx: str,
    version: str,
    now: datetime,
    opts: SnapshotOptions,
    forced_charge_only: bool,
    commanded_energy: Callable[[str, datetime, datetime], tuple[float, float] | None] | None = None,
) -> CarRef:
    needs: ChargingNeeds | None = evse.charging_needs
    notes: list[str] = []
    cid = car_id_for(sid, evse_id, tx)
    # --- SoC
    soc_pct: float | None = None
    needs_soc = needs.soc if needs is not None else None
    if evse.soc is not None and evse.metered_at is not None:
        if needs_soc is None or evse.needs_at is None or evse.metered_at >= evse.needs_at - timedelta(seconds=5):
            soc_pct = evse.soc
    if soc_pct is None and needs_soc is not None:
        soc_pct = needs_soc
    if soc_pct is None and evse.soc is not None:
        soc_pct = evse.soc
    if soc_pct is None:
        soc_pct = 100.0 * opts.default_soc
        notes.append("soc: default")
    # --- capacity
    cap_kwh = (needs.capacity_wh / 1000.0) if needs is not None and needs.capacity_wh else None
    if not cap_kwh or cap_kwh <= 0:
        cap_kwh = opts.default_capacity_kwh
        notes.append("capacity: default")
    metered_soc = soc_pct == evse.soc and evse.metered_at is not None
    soc = min(max(soc_pct / 100.0, 0.0), 1.0)
    # --- limits
    charger = opts.charger_limits_kw.get(sid)
    max_c = (needs.max_charge_w / 1000.0) if needs is not None and needs.max_charge_w else None
    if max_c is None:
        max_c = max(opts.default_charge_kw, evse.power_import_w / 1000.0)
        notes.append("max charge: default")
    if charger is not None:
        max_c = min(max_c, charger[0])
    bidirectional = bool(needs is not None and needs.bidirectional and (needs.max_discharge_w or 0.0) > 0)
    reason = ""
    if needs is None:
        reason = "no charging needs yet"
    elif not bidirectional:
        reason = "car is not bidirectional"
    else:
        ok, reason = _can_discharge_station(central, sid, evse, version)
        bidirectional = ok
    if forced_charge_only and bidirectional:
        bidirectional, reason = False, "discharge refused earlier"
    announced = needs.departure_time if needs is not None else None
    model = opts.departure_model
    # with a departure model the promise holds at every moment, so there is no "overdue" car
    overdue = (
        model is None
        and announced is not None
        and announced <= now + timedelta(seconds=max(opts.departure_margin_s, 60.0))
    )
    max_d = (needs.max_discharge_w or 0.0) / 1000.0 if bidirectional and needs is not None else 0.0
    if charger is not None:
        max_d = min(max_d, charger[1])
    if not bidirectional:
        notes.append(f"charge-only: {reason}")
    min_d = (needs.min_discharge_w or 0.0) / 1000.0 if bidirectional and needs is not None else 0.0
    # --- floor, target
    floor = (needs.min_soc / 100.0) if needs is not None and needs.min_soc is not None else None
    if floor is None:
        floor = opts.default_floor_soc
        if bidirectional:
            notes.append("floor: default")
    floor = min(max(floor, 0.0), 1.0)
    target: float | None = None
    if needs is not None and needs.target_soc is not None:
        target = needs.target_soc / 100.0
    elif needs is not None and needs.energy_target_wh is not None and cap_kwh:
        target = soc + needs.energy_target_wh / 1000.0 / cap_kwh
    if target is None:
        target = max(soc, opts.default_target_soc)
        notes.append("target: default")
    target = min(max(target, 0.0), 1.0)
    if opts.extrapolate_soc and metered_soc:
        soc = _extrapolate(soc, evse, now, opts, cap_kwh, floor, target, commanded_energy, cid)
    plan_target = min(1.0, target + opts.target_margin_soc)
    if overdue and bidirectional:
        if soc >= plan_target + opts.overdue_headroom_soc:
            floor = max(floor, plan_target)
        else:
            bidirectional, reason = False, "past its announced departure"
            max_d = min_d = 0.0
            notes.append(f"charge-only: {reason}")
    # --- departure
    departure = announced
    earliest = expected = None
    if model is not None:
        arrival = evse.transaction_started_at or evse.needs_at or now
        departure, earliest, expected = modelled_departure(model, arrival, now, announced)
        notes.append("departure: modelled")
    elif departure is None:
        departure = now + timedelta(seconds=opts.default_stay_s)
        notes.append("departure: default")
    else:
        departure -= timedelta(seconds=opts.departure_margin_s)
    if overdue:
        departure = now + timedelta(seconds=opts.overdue_departure_s)
        if soc + 0.005 < target:
            notes.append("overdue: below target, uncontrolled")
        elif bidirectional:
            notes.append("overdue: discharge down to target only")
        else:
            notes.append("overdue: charge-only")
    car = CarState(
        car_id=cid,
        station_id=sid,
        evse_id=evse_id,
        soc=soc,
        capacity_kwh=cap_kwh,
        max_charge_kw=max(max_c, 0.0),
        max_discharge_kw=max(max_d, 0.0),
        min_discharge_kw=max(min_d, 0.0),
        eta_charge=opts.eta_charge * opts.eta_vehicle,
        eta_discharge=opts.eta_discharge * opts.eta_vehicle,
        soc_floor=floor,
        target_soc=plan_target,
        # charging above its own target needs a positive setpoint (2.1 CentralSetpoint); under a
        # charge limit (charge-only profile, 2.0.1) the car stops at its target
        max_soc=1.0 if bidirectional and version != "2.0.1" else max(target, soc),
        departure=departure,
        earliest_departure=earliest,
        expected_departure=expected,
    )
    return CarRef(
        car_id=cid,
        station_id=sid,
        evse_id=evse_id,
        transaction_id=tx,
        version=version,
        has_needs=needs is not None,
        bidirectional=bidirectional,
        car=car,
        announced_departure=announced,
        target_soc=target,
        assumptions=tuple(notes),
    )


def _extrapolate(
    soc: float,
    evse: Any,
    now: datetime,
    opts: SnapshotOptions,
    cap_kwh: float,
    floor: float,
    target: float,
    commanded_energy: Callable[[str, datetime, datetime], tuple[float, float] | None] | None = None,
    car_id: str = "",
) -> float:
    """SoC moved from the meter sample's time to ``now``: with the commanded energy over the span
    where a command covers it, else at the metered power. A discharging car stops at its floor,
    a charging one at its target (or where it already is above it)."""
    age = min(max((now - evse.metered_at).total_seconds(), 0.0), opts.max_extrapolation_s)
    if age <= 0:
        return soc
    since = now - timedelta(seconds=age)
    metered_w = evse.power_import_w - evse.power_export_w
    grid_wh, covered = (None, 0.0)
    if commanded_energy is not None:
        got = commanded_energy(car_id, since, now)
        if got is not None:
            grid_wh, covered = got
    if grid_wh is None:
        grid_wh, covered = 0.0, 0.0
    grid_wh += metered_w * max(age - covered, 0.0) / 3600.0
    eta_c, eta_d = opts.eta_charge * opts.eta_vehicle, opts.eta_discharge * opts.eta_vehicle
    battery_kwh = grid_wh / 1000.0 * (eta_c if grid_wh > 0 else 1.0 / eta_d)
    moved = soc + battery_kwh / cap_kwh
    if battery_kwh < 0:
        moved = max(moved, min(floor, soc))
    elif battery_kwh > 0:
        moved = min(moved, max(target, soc))
    return min(max(moved, 0.0), 1.0)
