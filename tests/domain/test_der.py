"""csms.domain.der with plain function calls: field per control type, the extra checks, set /
supersede / clear / replay, and report parts flattened back."""

from __future__ import annotations

import pytest

from csms.domain import der

CURVE = {"priority": 1, "yUnit": "PctMaxVar", "curveData": [{"x": 92, "y": 30}, {"x": 108, "y": -30}]}


def _set(cid: str, control_type: str = "VoltVar", priority: int = 1, default: bool = False) -> dict:
    field = der.data_field(control_type)
    gradient = {"priority": priority, "gradient": 1, "softGradient": 2}
    data = {**CURVE, "priority": priority} if field == "curve" else gradient
    return {"isDefault": default, "controlId": cid, "controlType": control_type, field: data}


def test_every_control_type_has_one_field() -> None:
    assert len(der.CONTROL_TYPES) == 22
    assert der.data_field("VoltVar") == "curve" and der.data_field("Gradients") == "gradient"
    assert der.data_field("FixedPFAbsorb") == "fixedPFAbsorb"
    with pytest.raises(der.DerError) as exc:
        der.data_field("Nope")
    assert exc.value.field == "controlType"


def test_check_set_names_the_field() -> None:
    der.check_set(_set("a"))
    with pytest.raises(der.DerError) as missing:
        der.check_set({"isDefault": False, "controlId": "a", "controlType": "FixedVar"})
    assert missing.value.field == "fixedVar"
    with pytest.raises(der.DerError) as extra:
        der.check_set({**_set("a"), "fixedVar": {"priority": 1, "setpoint": 1, "unit": "PctMaxVar"}})
    assert extra.value.field == "fixedVar"
    flat = {**CURVE, "curveData": [{"x": 1, "y": 0}, {"x": 1, "y": 1}]}
    with pytest.raises(der.DerError) as order:
        der.check_set({**_set("a"), "curve": flat})
    assert order.value.field == "curve.curveData"
    with pytest.raises(der.DerError) as duration:
        der.check_set({**_set("a"), "curve": {**CURVE, "duration": 0}})
    assert duration.value.field == "curve.duration"


def test_supersede_replace_clear_and_replay() -> None:
    controls: dict = {}
    assert der.set_control(controls, _set("a", priority=5)) == []
    assert der.set_control(controls, _set("b", priority=5)) == ["a"]  # same priority: the newer wins
    assert der.set_control(controls, _set("c", priority=9)) == []  # lower priority supersedes nothing
    assert der.set_control(controls, _set("d", "VoltWatt", priority=0)) == []  # another type
    assert der.set_control(controls, _set("b", priority=1)) == ["c"]  # same id replaced, now above c
    assert {k: v["isSuperseded"] for k, v in controls.items()} == {"a": True, "b": False, "c": True, "d": False}
    assert controls["b"]["data"]["priority"] == 1
    assert der.clear_controls(controls, {"isDefault": False, "controlType": "VoltWatt"}) == ["d"]
    steps = [("set", _set("a", priority=5)), ("set", _set("b", priority=5)), ("clear", {"isDefault": True})]
    assert set(der.replay(steps)) == {"a", "b"}
    steps.append(("clear", {"isDefault": False, "controlId": "a"}))
    assert set(der.replay(steps)) == {"b"}
    with pytest.raises(ValueError):
        der.replay([("drop", {})])


def test_report_payloads_round_trip_through_flatten() -> None:
    controls: dict = {}
    for i in range(5):
        der.set_control(controls, _set(f"v{i}", priority=10 + i))
    der.set_control(controls, _set("g", "Gradients"))
    payloads = der.report_payloads(7, list(controls.values()), per_message=4)
    assert [p.get("tbc", False) for p in payloads] == [True, False]
    assert all(p["requestId"] == 7 for p in payloads)
    assert "isDefault" not in payloads[1]["gradient"][0]  # GradientGetType has no flags
    back = der.flatten_report(payloads)
    assert [c["controlId"] for c in back] == ["v0", "v1", "v2", "v3", "v4", "g"]
    assert back[-1]["controlType"] == "Gradients" and back[-1]["isDefault"] is None
    assert back[0]["data"]["priority"] == 10 and back[0]["controlType"] == "VoltVar"
    assert der.report_payloads(1, [], per_message=4) == [{"requestId": 1}]
