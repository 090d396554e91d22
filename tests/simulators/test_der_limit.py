"""The simulator's LimitMaxDischarge (OCPP 2.1 DER control) caps what it discharges: driven
directly with payload dicts (no sockets, manual clock), like test_firmware."""

from __future__ import annotations

from datetime import timedelta

import pytest

from csms.clock import to_rfc3339

from .harness import Rig
from .test_firmware import discharge


def _limit(cid: str, pct: float, *, default: bool = True, priority: int = 1, **extra: object) -> dict[str, object]:
    return {
        "isDefault": default,
        "controlId": cid,
        "controlType": "LimitMaxDischarge",
        "limitMaxDischarge": {"priority": priority, "pctMaxDischargePower": pct, **extra},
    }


async def test_limit_max_discharge_caps_the_setpoint_until_cleared() -> None:
    rig = Rig("2.1", ramp_kw_per_s=100.0)
    rig.plug(soc=80.0, target_soc=60.0)
    evse = rig.station.evses[1]
    rating = evse.stage.discharge_rating_w
    assert (await rig.call("SetChargingProfile", rig.profile([discharge(-10_000.0)])))["status"] == "Accepted"
    rig.run(5)
    assert evse.power_w == pytest.approx(-10_000.0)
    assert (await rig.call("SetDERControl", _limit("LMD-default", 20.0)))["status"] == "Accepted"
    rig.run(5)
    assert evse.power_w == pytest.approx(-0.2 * rating)
    # a scheduled control in force beats the default; one in the future does not
    later = to_rfc3339(rig.clock.now() + timedelta(hours=1))
    await rig.call("SetDERControl", _limit("LMD-later", 5.0, default=False, startTime=later, duration=600))
    rig.run(5)
    assert evse.power_w == pytest.approx(-0.2 * rating)
    now = to_rfc3339(rig.clock.now() - timedelta(seconds=1))
    await rig.call("SetDERControl", _limit("LMD-now", 10.0, default=False, startTime=now, duration=60))
    rig.run(5)
    assert evse.power_w == pytest.approx(-0.1 * rating)
    rig.run(70, step=5)  # its 60 s are over: the default again
    assert evse.power_w == pytest.approx(-0.2 * rating)
    assert (await rig.call("ClearDERControl", {"isDefault": True}))["status"] == "Accepted"
    rig.run(5)
    assert evse.power_w == pytest.approx(-10_000.0)
