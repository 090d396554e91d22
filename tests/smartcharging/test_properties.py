"""Property tests: the builder only emits profiles a station accepts, and only refuses for a reason.

For random intents and random station capabilities (both OCPP versions):

* every emitted SetChargingProfileRequest validates against the official schema of its version, passes
  ``check_set_charging_profile`` without violations, and makes a simulated station run exactly the
  intended power at every step;
* every refusal is predicted by an independent oracle, and the same intent encoded with the missing
  capability relaxed is indeed rejected by the K01 checks under the real capabilities.

A second property compares composite schedules of random profile stacks with a naive evaluation.
"""

from __future__ import annotations

import itertools
import math
import os
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from csms.smartcharging.builder import (
    BuilderError,
    PowerIntent,
    StationCapabilities,
    build_set_charging_profile,
    validate_wire,
)
from csms.smartcharging.composite import composite_schedule, effective_power_at
from csms.smartcharging.k01 import check_set_charging_profile
from csms.smartcharging.model import InstalledProfile, OperationMode
from tests.smartcharging.factories import T0, installed, profile

# SMARTCHARGING_EXAMPLES=5000 for a longer local soak; no example database is written.
SETTINGS = settings(
    max_examples=int(os.environ.get("SMARTCHARGING_EXAMPLES", "200")),
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
BIG = 1e12


@st.composite
def capabilities(draw: st.DrawFn) -> StationCapabilities:
    modes = draw(
        st.one_of(
            st.none(),
            st.sets(st.sampled_from(["Idle", "CentralSetpoint", "ExternalSetpoint", "LocalFrequency"])).map(
                lambda s: frozenset(s | {"ChargingOnly"})
            ),
        )
    )
    return StationCapabilities(
        version=draw(st.sampled_from(["2.0.1", "2.1"])),
        max_stack_level=draw(st.integers(0, 10)),
        max_periods=draw(st.integers(1, 48)),
        rate_units=draw(st.sampled_from([frozenset({"W"}), frozenset({"A"}), frozenset({"W", "A"})])),
        supported_operation_modes=modes,
        supports_dynamic=draw(st.booleans()),
        v2x_adapter=draw(st.sampled_from([None, "negative-limit"])),
        num_evses=draw(st.integers(1, 4)),
        voltage=draw(st.sampled_from([230.0, 240.0, 120.0])),
        phases=draw(st.sampled_from([1, 3])),
    )


POWER = st.one_of(
    st.just(0.0),
    st.integers(-22_000, 22_000).map(float),
    st.floats(-22_000, 22_000, allow_nan=False, allow_infinity=False),
)


@st.composite
def intents(draw: st.DrawFn, caps: StationCapabilities) -> PowerIntent:
    n = draw(st.integers(1, 60))
    first = draw(st.integers(0, 7200))
    gaps = draw(st.lists(st.integers(1, 7200), min_size=n - 1, max_size=n - 1))
    offsets = list(itertools.accumulate(gaps, initial=first))
    palette = draw(st.lists(POWER, min_size=1, max_size=5))
    powers = draw(st.lists(st.one_of(st.sampled_from(palette), POWER), min_size=n, max_size=n))
    if draw(st.booleans()):  # charge-only intent
        powers = [abs(p) for p in powers]
    steps = draw(st.permutations(list(zip(offsets, powers, strict=True))))
    purpose = draw(st.sampled_from(["TxProfile", "TxDefaultProfile"]))
    low = 1 if purpose == "TxProfile" else 0
    start = T0 + timedelta(seconds=draw(st.integers(0, 10**6)), microseconds=draw(st.integers(0, 999_999)))
    return PowerIntent(
        evse_id=draw(st.integers(low, caps.num_evses or 1)),
        start=start,
        periods=steps,
        purpose=purpose,
        transaction_id=draw(st.text("abcdef0123456789-", min_size=1, max_size=36)) if low else None,
        duration_s=draw(st.one_of(st.none(), st.integers(1, 3 * 86_400))),
        max_offline_duration_s=draw(st.one_of(st.none(), st.integers(0, 3600))),
    )


def expected_steps(intent: PowerIntent) -> tuple[int, list[tuple[int, float]], int | None]:
    """Independent normalisation: (first offset, [(offset from first, rounded power)], duration)."""
    ordered = sorted(intent.periods)
    first = ordered[0][0]
    duration = None if intent.duration_s is None else intent.duration_s - first
    steps = [(o - first, round(p, 1)) for o, p in ordered]
    if duration is not None:
        steps = [s for s in steps if s[0] < duration]
    return first, steps, duration


def predicted_refusals(intent: PowerIntent, caps: StationCapabilities) -> set[str]:
    _first, steps, duration = expected_steps(intent)
    if duration is not None and duration <= 0:
        return {"InvalidIntent"}
    out = set()
    discharge = any(p < 0 for _, p in steps)
    if caps.version == "2.0.1" and discharge and caps.v2x_adapter is None:
        out.add("CannotDischarge")
    if "W" not in caps.rate_units and (discharge or "A" not in caps.rate_units):
        out.add("UnsupportedRateUnit")
    per_amp = caps.voltage * caps.phases
    values = [p if "W" in caps.rate_units else round(p / per_amp, 1) for _, p in steps]
    runs = 1 + sum(1 for a, b in itertools.pairwise(values) if a != b)
    if runs > caps.max_periods:
        out.add("TooManyPeriods")
    modes = caps.supported_operation_modes
    if caps.version == "2.1" and discharge and modes is not None and "CentralSetpoint" not in modes:
        out.add("UnsupportedMode")
    return out


def active_for(intent: PowerIntent) -> dict[int, str]:
    return {intent.evse_id: intent.transaction_id} if intent.transaction_id else {}


def assert_encodes_intent(req: dict[str, Any], intent: PowerIntent, caps: StationCapabilities) -> None:
    first, steps, duration = expected_steps(intent)
    prof = req["chargingProfile"]
    sched = prof["chargingSchedule"][0]
    periods = sched["chargingSchedulePeriod"]
    assert periods[0]["startPeriod"] == 0
    assert len(periods) <= caps.max_periods
    assert [p["startPeriod"] for p in periods] == sorted({p["startPeriod"] for p in periods})
    discharge = any(p < 0 for _, p in steps)
    if caps.version == "2.1" and discharge:
        assert prof["invalidAfterOfflineDuration"] is True and prof["maxOfflineDuration"] >= 0
    amps = sched["chargingRateUnit"] == "A"
    inst = [InstalledProfile.from_request(req)]
    evse = intent.evse_id or 1
    base = intent.start + timedelta(seconds=first)
    for offset, power in steps:
        sp = effective_power_at(
            inst,
            evse_id=evse,
            at=base + timedelta(seconds=offset),
            transaction_id=intent.transaction_id,
            voltage=caps.voltage,
            phases=caps.phases,
        )
        got = sp.target_power_w(max_charge_w=BIG, max_discharge_w=BIG)
        if amps:
            want = round(power / (caps.voltage * caps.phases), 1) * caps.voltage * caps.phases
        else:
            want = power
        assert math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-6), (offset, power, got, want, sp)
        if power == 0 and caps.version == "2.1" and caps.supports_mode(OperationMode.IDLE):
            assert sp.operation_mode is OperationMode.IDLE
    if duration is not None:
        sp = effective_power_at(inst, evse_id=evse, at=base + timedelta(seconds=duration))
        assert sp.operation_mode is OperationMode.CHARGING_ONLY and sp.charge_limit_w is None


@SETTINGS
@given(data=st.data())
def test_builder_emits_only_acceptable_profiles(data: st.DataObject) -> None:
    caps = data.draw(capabilities(), label="caps")
    intent = data.draw(intents(caps), label="intent")
    stack = data.draw(st.integers(0, caps.max_stack_level), label="stack")
    profile_id = data.draw(st.integers(1, 2**31 - 1), label="profile_id")
    predicted = predicted_refusals(intent, caps)
    try:
        req = build_set_charging_profile(intent, caps, profile_id=profile_id, stack_level=stack)
    except BuilderError as err:
        event(f"refused: {err.code}")
        assert err.code in predicted, (err, predicted)
        if err.code != "InvalidIntent":
            assert_refusal_is_a_k01_violation(err.code, intent, caps, profile_id, stack)
        return
    assert not predicted, predicted
    event(
        f"built: {caps.version} {req['chargingProfile']['chargingSchedule'][0]['chargingRateUnit']}"
        f"{' discharge' if req['chargingProfile'].get('maxOfflineDuration') is not None else ''}"
    )
    validate_wire("SetChargingProfile", req, caps.version)
    violations = check_set_charging_profile(
        req,
        version=caps.version,
        limits=caps.to_limits(),
        active_transactions=active_for(intent),
        now=intent.start,
    )
    assert violations == []
    assert_encodes_intent(req, intent, caps)


def assert_refusal_is_a_k01_violation(
    code: str, intent: PowerIntent, caps: StationCapabilities, profile_id: int, stack: int
) -> None:
    relaxed = StationCapabilities(
        version=caps.version,
        max_stack_level=caps.max_stack_level,
        max_periods=10**6,
        rate_units=frozenset({"W", "A"}),
        supported_operation_modes=None,
        v2x_adapter="negative-limit",
        num_evses=caps.num_evses,
        voltage=caps.voltage,
        phases=caps.phases,
    )
    req = build_set_charging_profile(intent, relaxed, profile_id=profile_id, stack_level=stack)
    validate_wire("SetChargingProfile", req, caps.version)
    found = check_set_charging_profile(
        req,
        version=caps.version,
        limits=caps.to_limits(),
        active_transactions=active_for(intent),
        now=intent.start,
    )
    expected = {"CannotDischarge": "InvalidValue"}.get(code, code)
    assert expected in {v.code for v in found}, (code, found)


# ------------------------------------------------------------------------------ composite vs naive


@st.composite
def stacks(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Random Absolute profiles in W (ChargingOnly limits), at most one per (purpose, stackLevel)."""
    out = []
    used_levels: set[tuple[str, int]] = set()
    for pid in range(1, draw(st.integers(1, 6)) + 1):
        purpose = draw(st.sampled_from(["TxDefaultProfile", "TxProfile", "ChargingStationMaxProfile"]))
        level = draw(st.integers(0, 3))
        if (purpose, level) in used_levels:
            continue
        used_levels.add((purpose, level))
        n = draw(st.integers(1, 4))
        starts = [0, *sorted(draw(st.sets(st.integers(1, 7200), min_size=n - 1, max_size=n - 1)))]
        periods = [(s, float(draw(st.integers(0, 50)) * 1000)) for s in starts]
        start = draw(st.integers(-3600, 3600))
        duration = draw(st.one_of(st.none(), st.integers(1, 7200)))
        wire = profile(
            id=pid,
            stack=level,
            purpose=purpose,
            unit="W",
            tx="t" if purpose == "TxProfile" else None,
            start_schedule=T0 + timedelta(seconds=start),
            duration=duration,
            periods=periods,
        )
        evse = 0 if purpose == "ChargingStationMaxProfile" else 1
        out.append({"evse": evse, "wire": wire, "start": start, "duration": duration, "periods": periods})
    return out


def naive_limit(stack: list[dict[str, Any]], t: int) -> float | None:
    """Highest stack level per purpose, TxProfile over TxDefaultProfile, min with the max profile."""
    best: dict[str, tuple[int, float]] = {}
    for item in stack:
        offset = t - item["start"]
        if offset < 0 or (item["duration"] is not None and offset >= item["duration"]):
            continue
        value = [limit for s, limit in item["periods"] if s <= offset][-1]
        purpose, level = item["wire"]["chargingProfilePurpose"], item["wire"]["stackLevel"]
        if purpose not in best or level > best[purpose][0]:
            best[purpose] = (level, value)
    demand = best.get("TxProfile", best.get("TxDefaultProfile", (0, None)))[1]
    cap = best.get("ChargingStationMaxProfile", (0, None))[1]
    if demand is None:
        return cap
    return demand if cap is None else min(demand, cap)


@SETTINGS
@given(stack=stacks(), probes=st.lists(st.integers(0, 4 * 3600 - 1), min_size=1, max_size=20))
def test_composite_matches_naive_evaluation(stack: list[dict[str, Any]], probes: list[int]) -> None:
    inst = [installed(item["evse"], item["wire"]) for item in stack]
    cs = composite_schedule(
        inst,
        evse_id=1,
        start=T0,
        duration_s=4 * 3600,
        rate_unit="W",
        transaction_start=T0,
        now=T0,
    )
    starts = [p.start_period for p in cs.periods]
    assert starts[0] == 0 and starts == sorted(set(starts)) and starts[-1] < 4 * 3600
    for a, b in itertools.pairwise(cs.periods):
        assert (a.limit, a.operation_mode) != (b.limit, b.operation_mode)
    for t in probes + starts:
        assert cs.period_at(t).limit == naive_limit(stack, t), t
