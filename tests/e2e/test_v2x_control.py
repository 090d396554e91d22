"""Issue 4, against the bundled simulators over real sockets: commanding one bidirectional
charger on OCPP 2.1 (standard CentralSetpoint) and 2.0.1 (vendor negative-limit adapter)."""

from __future__ import annotations

from pathlib import Path

import pytest

from csms.services.charging_control import ProfileRejected
from tests.e2e.conftest import rig, station, until


async def _plugged(central, fleet, sid: str, soc: float = 60.0):
    fleet[sid].plug_in(1, soc=soc, target_soc=80, departure_s=6 * 3600, min_soc=20)
    needs = await until(lambda: central.charging.needs(sid, 1), what=f"{sid} charging needs")
    await until(
        lambda: central.state(sid).evse(1).allowed_energy_transfer or central.state(sid).ocpp_version != "2.1",
        what="V2X permission",
    )
    await until(lambda: central.state(sid).capabilities, what="capability discovery")
    return needs


async def test_21_discharge_setpoint_composite_follow_and_clear(tmp_path: Path) -> None:
    async with rig(tmp_path, [station("FE21-1", "2.1")]) as (central, fleet):
        needs = await _plugged(central, fleet, "FE21-1")
        assert needs.bidirectional and needs.requested_energy_transfer == "DC_BPT"
        assert needs.max_discharge_w > 10_000 and needs.departure_time is not None
        assert needs.min_soc is not None and 19 < needs.min_soc < 21  # floor derived from evMinV2XEnergyRequest

        applied = await central.charging.set_power_schedule("FE21-1", 1, [(0, -10_000.0)], duration_s=1800)
        period = applied.request["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"][0]
        assert period["operationMode"] == "CentralSetpoint" and period["setpoint"] == -10_000.0
        assert applied.request["chargingProfile"]["chargingProfilePurpose"] == "TxProfile"
        assert applied.request["chargingProfile"]["invalidAfterOfflineDuration"] is True

        composite = await central.charging.composite("FE21-1", 1, 1800)
        assert composite["status"] == "Accepted"
        first = composite["schedule"]["chargingSchedulePeriod"][0]
        assert first.get("setpoint") == -10_000.0

        sim = fleet["FE21-1"].evses[1]
        await until(lambda: abs(sim.power_w + 10_000) < 50, what="simulator discharging at 10 kW")
        # the CSMS sees it in the metered Power.Active.Export
        await until(lambda: central.state("FE21-1").evse(1).power_export_w > 9_000, timeout=20, what="metered export")

        await central.charging.clear("FE21-1", evse_id=1)
        await until(lambda: sim.power_w > 1_000, what="charging again after clear")
        assert await central.store.profiles("FE21-1") == []


async def test_201_vendor_negative_limit_discharges(tmp_path: Path) -> None:
    async with rig(tmp_path, [station("FE201-1", "2.0.1")]) as (central, fleet):
        needs = await _plugged(central, fleet, "FE201-1")
        assert needs.bidirectional and needs.max_discharge_w > 0 and needs.min_soc == 20
        applied = await central.charging.set_power_schedule("FE201-1", 1, [(0, -8_000.0)], duration_s=1800)
        period = applied.request["chargingProfile"]["chargingSchedule"][0]["chargingSchedulePeriod"][0]
        assert period["limit"] == -8_000.0
        assert period["customData"]["vendorId"] == "org.openv2g.negativeLimit"
        assert "operationMode" not in period
        sim = fleet["FE201-1"].evses[1]
        await until(lambda: abs(sim.power_w + 8_000) < 50, what="2.0.1 station discharging at 8 kW")
        await until(lambda: central.state("FE201-1").evse(1).power_export_w > 7_000, timeout=20, what="metered export")


async def test_21_without_allowed_energy_transfer_refuses_discharge(tmp_path: Path) -> None:
    def no_v2x(settings) -> None:
        settings.v2x.allowed_energy_transfer = []

    async with rig(tmp_path, [station("FE21-2", "2.1")], configure=no_v2x) as (central, fleet):
        fleet["FE21-2"].plug_in(1, soc=60, target_soc=80, departure_s=6 * 3600)
        await until(lambda: central.charging.needs("FE21-2", 1), what="needs")
        assert central.state("FE21-2").evse(1).allowed_energy_transfer is None
        with pytest.raises(ProfileRejected) as info:
            await central.charging.set_power_schedule("FE21-2", 1, [(0, -10_000.0)], duration_s=1800)
        assert info.value.reason == "NoBPTAllowed"
        assert "NoBPTAllowed" in str(info.value)
        assert fleet["FE21-2"].evses[1].power_w >= 0  # still charging, never discharged
        # granting permission mid-session (NotifyAllowedEnergyTransfer) makes the same command work
        tx = central.state("FE21-2").evse(1).transaction_id
        await central.charging.set_allowed_energy_transfer("FE21-2", tx, ["DC_BPT"])
        await central.charging.set_power_schedule("FE21-2", 1, [(0, -10_000.0)], duration_s=1800)
        await until(lambda: fleet["FE21-2"].evses[1].power_w < -9_000, what="discharging after permission")


async def test_profile_record_matches_station_after_reboot(tmp_path: Path) -> None:
    async with rig(tmp_path, [station("FE21-3", "2.1")]) as (central, fleet):
        await _plugged(central, fleet, "FE21-3")
        await central.charging.set_power_schedule("FE21-3", 1, [(0, -5_000.0)], duration_s=3600)
        await central.charging.set_power_schedule(
            "FE21-3", 1, [(0, 7_000.0)], purpose="TxDefaultProfile", duration_s=86_400
        )
        stored = {r.profile_id for r in await central.store.profiles("FE21-3")}
        assert len(stored) == 2
        fleet["FE21-3"].reboot()  # transactions end: the station drops TxProfiles, keeps TxDefault
        await until(lambda: not central.state("FE21-3").connected, what="station down")
        await until(lambda: fleet["FE21-3"].online and central.state("FE21-3").connected, timeout=20, what="back")

        def matches() -> bool:
            return on_station == {p.profile.id for p in fleet["FE21-3"].profiles}

        on_station = {p.profile.id for p in fleet["FE21-3"].profiles}
        assert len(on_station) == 1  # the TxDefaultProfile survived the reboot

        async def record() -> set[int]:
            return {r.profile_id for r in await central.store.profiles("FE21-3")}

        for _ in range(100):
            if await record() == on_station:
                break
            import asyncio

            await asyncio.sleep(0.1)
        assert await record() == on_station
        assert matches()
