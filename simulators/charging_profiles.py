"""K: the station's answers to the CSMS's charging-profile requests (SetChargingProfile with the
K01 checks and the firmware's own limits, Clear/Get ChargingProfiles, GetCompositeSchedule; on
2.1 NotifyAllowedEnergyTransfer and UpdateDynamicSchedule), and the TxProfile that comes with
RequestStartTransaction."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from csms.ocpp.errors import CallError, ErrorCode
from csms.smartcharging.composite import composite_schedule
from csms.smartcharging.k01 import (
    StationLimits,
    Violation,
    apply_set_charging_profile,
    check_set_charging_profile,
    rejection_response,
)
from csms.smartcharging.model import (
    ChargingProfile,
    ChargingProfileKind,
    ChargingProfilePurpose,
    InstalledProfile,
    ModelError,
    parse_set_charging_profile,
)

from .model import BPT_MODES, _dt, _ts, status_info
from .tree import SUPPORTED_OPERATION_MODES

if TYPE_CHECKING:
    from .model import Evse, Firmware

Handler = Callable[["Firmware", dict[str, Any]], Awaitable[dict[str, Any]]]

NEGATIVE_LIMIT_VENDOR_ID = "org.openv2g.negativeLimit"
REPORT_PROFILES_PER_MESSAGE = 3


def check_tx_profile_for(st: Firmware, evse: Evse, profile: dict[str, Any], now_t: float) -> list[Violation]:
    tx = evse.tx
    prof = dict(profile)
    if tx is not None:
        prof["transactionId"] = tx.id
    request = {"evseId": evse.id, "chargingProfile": prof}
    active = st_active_transactions(st)
    if tx is not None:
        active[evse.id] = tx.id
    return _check_profile_request(st, request, active, now_t)[0]


def install_tx_profile_from_remote_start(st: Firmware, evse: Evse, profile: dict[str, Any], now_t: float) -> None:
    """Install the TxProfile that came with RequestStartTransaction once the transaction exists."""
    tx = evse.tx
    if tx is None:
        return
    prof = dict(profile)
    prof["transactionId"] = tx.id
    request = {"evseId": evse.id, "chargingProfile": prof}
    bad = check_tx_profile_for(st, evse, profile, now_t)
    if bad:
        st.log.warning("TxProfile from RequestStartTransaction dropped", reason=bad[0].code)
        return
    st.profiles = apply_set_charging_profile(request, st.profiles)
    st.wake()


# ====================================================================== smart charging
def station_limits(st: Firmware) -> StationLimits:
    cfg = st.config
    v21 = st.version == "2.1"
    return StationLimits(
        max_stack_level=cfg.profile_stack_levels,
        max_periods=cfg.periods_per_schedule,
        rate_units=frozenset(st._dm_list("SmartChargingCtrlr", "RateUnit", "W,A")),
        max_profiles=cfg.max_profiles,
        supported_operation_modes=frozenset(SUPPORTED_OPERATION_MODES.split(",")) if v21 else None,
        supports_dynamic=cfg.supports_dynamic_profiles,
        num_evses=cfg.evse_count,
        allow_negative_limits=(not v21) and cfg.v2x_vendor_convention,
        supported_additional_purposes=frozenset() if v21 else None,
    )


def st_active_transactions(st: Firmware) -> dict[int, str]:
    return {i: e.tx.id for i, e in st.evses.items() if e.tx is not None and not e.tx.ended}


def _check_profile_request(
    st: Firmware, request: dict[str, Any], active: dict[int, str], now_t: float
) -> tuple[list[Violation], tuple[int, ChargingProfile] | None]:
    """K01 and this firmware's own rules for a SetChargingProfile request, parsed once; returns
    the violations and the parsed (evseId, profile) to install (None if it does not parse)."""
    try:
        parsed: tuple[int, ChargingProfile] | None = parse_set_charging_profile(request)
    except ModelError:
        parsed = None  # check_set_charging_profile reports it as a FormatViolation
    violations = check_set_charging_profile(
        request,
        version=st.version,  # type: ignore[arg-type]
        limits=station_limits(st),
        installed=st.profiles,
        active_transactions=active,
        now=_dt(now_t),
        parsed=parsed,
    )
    if parsed is not None:
        violations += _firmware_checks(st, parsed)
    return violations, parsed


def _firmware_checks(st: Firmware, parsed: tuple[int, ChargingProfile]) -> list[Violation]:
    """Rules beyond K01 that this firmware applies (documented in simulators/README.md)."""
    out: list[Violation] = []
    evse_id, profile = parsed
    if st.version == "2.0.1":
        for i, sched in enumerate(profile.schedules):
            for j, period in enumerate(sched.periods):
                if period.limit is not None and period.limit < 0:
                    cd = period.custom_data or {}
                    if cd.get("vendorId") != NEGATIVE_LIMIT_VENDOR_ID or cd.get("mode") != "discharge":
                        out.append(Violation("InvalidValue", f"chargingSchedule[{i}].chargingSchedulePeriod[{j}]: "
                                             "negative limit without customData "
                                             f"{{vendorId: {NEGATIVE_LIMIT_VENDOR_ID}, mode: discharge}}"))  # fmt: skip
    if profile.purpose is ChargingProfilePurpose.TX_PROFILE and profile.has_discharge():
        evse = st.evses.get(evse_id)
        tx = evse.tx if evse is not None else None
        ev = evse.ev if evse is not None else None
        if evse is not None and tx is not None and not tx.ended:
            if ev is None or not ev.bidirectional:
                out.append(Violation("NoBPTAllowed", "the EV did not select a bidirectional (BPT) service"))
            elif st.version == "2.1":
                if not BPT_MODES.intersection(tx.allowed):
                    out.append(Violation("NoBPTAllowed", "allowedEnergyTransfer of this transaction has no BPT mode "
                                         f"(got {tx.allowed or 'none'}): discharging is not authorized"))  # fmt: skip
                elif not st._dm_bool("V2XChargingCtrlr", "Enabled", True, evse=evse_id):
                    out.append(Violation("NoBPTAllowed", "V2XChargingCtrlr.Enabled is false on this EVSE"))
    return out


async def set_charging_profile(st: Firmware, p: dict[str, Any]) -> dict[str, Any]:
    if st.faults.reject_profiles:
        return {"status": "Rejected", "statusInfo": status_info("SimulatedFault", "fault injection: reject_profiles")}
    if not st.smart_charging_enabled:
        return {
            "status": "Rejected",
            "statusInfo": status_info("SmartChargingOff", "SmartChargingCtrlr.Enabled is false"),
        }
    now_t = st.now_t()
    violations, parsed = _check_profile_request(st, p, st_active_transactions(st), now_t)
    if violations:
        st.log.info("SetChargingProfile rejected", reason=violations[0].code, info=violations[0].message)
        return rejection_response(violations, st.version)  # type: ignore[arg-type]
    for evse in st.evses.values():
        st._advance(evse, now_t)
    st.profiles = apply_set_charging_profile(p, st.profiles, parsed=parsed)
    st.wake()
    return {"status": "Accepted"}


async def clear_charging_profile(st: Firmware, p: dict[str, Any]) -> dict[str, Any]:
    external = ChargingProfilePurpose.CHARGING_STATION_EXTERNAL_CONSTRAINTS
    pid = p.get("chargingProfileId")
    crit = p.get("chargingProfileCriteria") or {}

    def match(inst: InstalledProfile) -> bool:
        if inst.profile.purpose is external:
            return False
        if pid is not None:
            return inst.profile.id == pid
        if "evseId" in crit and inst.evse_id != crit["evseId"]:
            return False
        if "chargingProfilePurpose" in crit and inst.profile.purpose.value != crit["chargingProfilePurpose"]:
            return False
        return not ("stackLevel" in crit and inst.profile.stack_level != crit["stackLevel"])

    gone = [i for i in st.profiles if match(i)]
    if not gone:
        return {"status": "Unknown"}
    now_t = st.now_t()
    for evse in st.evses.values():
        st._advance(evse, now_t)
    st.profiles = [i for i in st.profiles if i not in gone]
    st.wake()
    return {"status": "Accepted"}


async def get_charging_profiles(st: Firmware, p: dict[str, Any]) -> dict[str, Any]:
    crit = p["chargingProfile"]
    evse_id = p.get("evseId")
    ids = crit.get("chargingProfileId")
    sources = crit.get("chargingLimitSource")

    def match(inst: InstalledProfile) -> bool:
        if evse_id is not None and inst.evse_id != evse_id:
            return False
        if sources is not None and "CSO" not in sources:
            return False
        if ids is not None and inst.profile.id not in ids:
            return False
        if "chargingProfilePurpose" in crit and inst.profile.purpose.value != crit["chargingProfilePurpose"]:
            return False
        return not ("stackLevel" in crit and inst.profile.stack_level != crit["stackLevel"])

    found = [i for i in st.profiles if match(i)]
    if not found:
        return {"status": "NoProfiles"}
    by_evse: dict[int, list[dict[str, Any]]] = {}
    for inst in found:
        by_evse.setdefault(inst.evse_id, []).append(inst.profile.to_wire())
    messages: list[dict[str, Any]] = []
    for eid in sorted(by_evse):
        profs = by_evse[eid]
        for i in range(0, len(profs), REPORT_PROFILES_PER_MESSAGE):
            messages.append({
                "requestId": p["requestId"],
                "chargingLimitSource": "CSO",
                "evseId": eid,
                "chargingProfile": profs[i : i + REPORT_PROFILES_PER_MESSAGE],
            })  # fmt: skip
    for n, msg in enumerate(messages):
        if n < len(messages) - 1:
            msg["tbc"] = True
        st._send_if_online("ReportChargingProfiles", msg)
    return {"status": "Accepted"}


async def get_composite_schedule(st: Firmware, p: dict[str, Any]) -> dict[str, Any]:
    evse_id = p["evseId"]
    if evse_id != 0 and evse_id not in st.evses:
        return {"status": "Rejected", "statusInfo": status_info("UnknownEvse")}
    duration = p["duration"]
    if duration <= 0:
        return {"status": "Rejected", "statusInfo": status_info("InvalidValue", "duration must be positive")}
    unit = p.get("chargingRateUnit", "W")
    if unit not in st._dm_list("SmartChargingCtrlr", "RateUnit", "W,A"):
        return {"status": "Rejected", "statusInfo": status_info("UnsupportedRateUnit")}
    now_t = st.now_t()
    now = _dt(now_t)
    evse = st.evses.get(evse_id)
    tx = evse.tx if evse is not None and evse.tx is not None and not evse.tx.ended else None
    cfg = st.config
    sched = composite_schedule(
        st._usable_profiles(now_t) if st.smart_charging_enabled else [],
        evse_id=evse_id,
        start=now,
        duration_s=duration,
        rate_unit=unit,
        transaction_start=_dt(tx.start_t) if tx else None,
        now=now,
        voltage=cfg.ac_voltage,
        phases=cfg.ac_phases,
        transaction_id=tx.id if tx else None,
    )
    rating = cfg.charge_kw * 1000.0 * (cfg.evse_count if evse_id == 0 else 1)
    default = rating if unit == "W" else round(rating / (cfg.ac_voltage * cfg.ac_phases), 1)
    return {"status": "Accepted", "schedule": sched.to_wire(st.version, default_limit=default)}  # type: ignore[arg-type]


async def notify_allowed_energy_transfer(st: Firmware, p: dict[str, Any]) -> dict[str, Any]:
    for evse in st.evses.values():
        tx = evse.tx
        if tx is not None and not tx.ended and tx.id == p["transactionId"]:
            now_t = st.now_t()
            st._advance(evse, now_t)
            tx.allowed = list(p["allowedEnergyTransfer"])
            st.wake()
            return {"status": "Accepted"}
    return {"status": "Rejected", "statusInfo": status_info("TxNotFound")}


async def update_dynamic_schedule(st: Firmware, p: dict[str, Any]) -> dict[str, Any]:
    if not st.config.supports_dynamic_profiles:
        raise CallError(ErrorCode.NOT_SUPPORTED, "dynamic charging profiles are not supported")
    pid = p["chargingProfileId"]
    inst = next((i for i in st.profiles if i.profile.id == pid), None)
    if inst is None:
        return {"status": "Rejected", "statusInfo": status_info("UnknownProfile", f"no profile {pid}")}
    if inst.profile.kind is not ChargingProfileKind.DYNAMIC:
        return {"status": "Rejected", "statusInfo": status_info("InvalidProfile", "profile is not Dynamic")}
    now_t = st.now_t()
    request = inst.to_request()
    prof = request["chargingProfile"]
    periods = prof["chargingSchedule"][0]["chargingSchedulePeriod"]
    for period in periods:
        for key, value in p["scheduleUpdate"].items():
            if key != "customData":
                period[key] = value
    prof["dynUpdateTime"] = _ts(now_t)
    violations, parsed = _check_profile_request(st, request, st_active_transactions(st), now_t)
    if violations:
        return rejection_response(violations, st.version)  # type: ignore[arg-type]
    for evse in st.evses.values():
        st._advance(evse, now_t)
    st.profiles = apply_set_charging_profile(request, st.profiles, parsed=parsed)
    st.wake()
    return {"status": "Accepted"}


HANDLERS: dict[str, Handler] = {
    "SetChargingProfile": set_charging_profile,
    "ClearChargingProfile": clear_charging_profile,
    "GetChargingProfiles": get_charging_profiles,
    "GetCompositeSchedule": get_composite_schedule,
}
HANDLERS_21: dict[str, Handler] = {
    "NotifyAllowedEnergyTransfer": notify_allowed_energy_transfer,
    "UpdateDynamicSchedule": update_dynamic_schedule,
}
