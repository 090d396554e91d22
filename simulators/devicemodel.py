"""Device model of a simulated station: components and variables (OCPP 2.0.1 / 2.1 Part 1 + appendix).

Only the ``Actual`` attribute exists (``Target``/``MinSet``/``MaxSet`` answer
``NotSupportedAttributeType``). Values are strings on the wire, typed here by ``data_type``.
Dynamic values (availability, profile count, instantaneous power, clock) come from a getter.
SetVariables validates the type, limits and value list, refuses ReadOnly variables and calls an
``on_set`` hook so the station applies the change (heartbeat interval, meter intervals...).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

Key = tuple[str, str | None, int | None, int | None, str, str | None]
"""(component name, component instance, evse id, connector id, variable name, variable instance)"""

READ_ONLY, READ_WRITE, WRITE_ONLY = "ReadOnly", "ReadWrite", "WriteOnly"

MEASURANDS = (
    "Energy.Active.Import.Register",
    "Energy.Active.Export.Register",
    "Power.Active.Import",
    "Power.Active.Export",
    "SoC",
    "Voltage",
    "Current.Import",
    "Current.Export",
)
MEASURANDS_21 = (*MEASURANDS, "Power.Active.Setpoint")


@dataclass(slots=True)
class Variable:
    component: str
    name: str
    value: str = ""
    mutability: str = READ_ONLY
    data_type: str = "string"
    component_instance: str | None = None
    evse: int | None = None
    connector: int | None = None
    instance: str | None = None
    unit: str | None = None
    min_limit: float | None = None
    max_limit: float | None = None
    values_list: str | None = None
    persistent: bool = True
    constant: bool = False
    getter: Callable[[], str] | None = None
    on_set: Callable[[str], str | None] | None = field(default=None, repr=False)
    """Called with the new value after validation; may return a reason code to reject it."""

    @property
    def key(self) -> Key:
        return (self.component, self.component_instance, self.evse, self.connector, self.name, self.instance)

    def current(self) -> str:
        return self.getter() if self.getter is not None else self.value

    def component_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.component}
        if self.component_instance is not None:
            out["instance"] = self.component_instance
        if self.evse is not None:
            evse: dict[str, Any] = {"id": self.evse}
            if self.connector is not None:
                evse["connectorId"] = self.connector
            out["evse"] = evse
        return out

    def variable_wire(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.instance is not None:
            out["instance"] = self.instance
        return out

    def report(self) -> dict[str, Any]:
        attr: dict[str, Any] = {
            "type": "Actual",
            "mutability": self.mutability,
            "persistent": self.persistent,
            "constant": self.constant,
        }
        if self.mutability != WRITE_ONLY:
            attr["value"] = self.current()[:2500]
        chars: dict[str, Any] = {"dataType": self.data_type, "supportsMonitoring": False}
        if self.unit:
            chars["unit"] = self.unit
        if self.min_limit is not None:
            chars["minLimit"] = self.min_limit
        if self.max_limit is not None:
            chars["maxLimit"] = self.max_limit
        if self.values_list:
            chars["valuesList"] = self.values_list
        return {
            "component": self.component_wire(),
            "variable": self.variable_wire(),
            "variableAttribute": [attr],
            "variableCharacteristics": chars,
        }


def _bool(text: str) -> bool | None:
    low = text.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    return None


def check_value(var: Variable, text: str) -> str | None:
    """Validate a SetVariables value; return a reason code or None."""
    dt = var.data_type
    if dt == "boolean":
        return None if _bool(text) is not None else "InvalidValue"
    if dt in ("integer", "decimal"):
        try:
            num = int(text) if dt == "integer" else float(text)
        except ValueError:
            return "InvalidValue"
        if var.min_limit is not None and num < var.min_limit:
            return "ValueTooLow"
        if var.max_limit is not None and num > var.max_limit:
            return "ValueTooHigh"
        return None
    if dt == "dateTime":
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return "InvalidValue"
        return None if parsed.tzinfo is not None else "InvalidValue"
    allowed = [v.strip() for v in var.values_list.split(",")] if var.values_list else None
    if dt == "OptionList":
        return None if allowed is None or text in allowed else "ValueOutOfList"
    if dt in ("MemberList", "SequenceList"):
        items = [t.strip() for t in text.split(",") if t.strip()]
        if allowed is not None and any(i not in allowed for i in items):
            return "ValueOutOfList"
        if dt == "MemberList" and len(set(items)) != len(items):
            return "DuplicateMember"
        return None
    if var.max_limit is not None and len(text) > var.max_limit:
        return "ValueTooLong"
    if var.min_limit is not None and len(text) < var.min_limit:
        return "ValueTooShort"
    return None


class DeviceModel:
    """All variables of one station, addressable as OCPP component/variable pairs."""

    __slots__ = ("_by_component", "_vars")

    def __init__(self, variables: Iterable[Variable] = ()) -> None:
        self._vars: dict[Key, Variable] = {}
        self._by_component: dict[tuple[str, str | None, int | None, int | None], list[Variable]] = {}
        for v in variables:
            self.add(v)

    def add(self, var: Variable) -> Variable:
        self._vars[var.key] = var
        self._by_component.setdefault(var.key[:4], []).append(var)
        return var

    def __iter__(self) -> Iterator[Variable]:
        return iter(self._vars.values())

    def __len__(self) -> int:
        return len(self._vars)

    def find(
        self,
        component: str,
        name: str,
        *,
        evse: int | None = None,
        connector: int | None = None,
        component_instance: str | None = None,
        instance: str | None = None,
    ) -> Variable | None:
        return self._vars.get((component, component_instance, evse, connector, name, instance))

    def value(self, component: str, name: str, **kw: Any) -> str:
        var = self.find(component, name, **kw)
        if var is None:
            raise KeyError(f"{component}.{name}")
        return var.current()

    def int(self, component: str, name: str, **kw: Any) -> int:
        return int(float(self.value(component, name, **kw)))

    def float(self, component: str, name: str, **kw: Any) -> float:
        return float(self.value(component, name, **kw))

    def bool(self, component: str, name: str, **kw: Any) -> bool:
        return _bool(self.value(component, name, **kw)) is True

    def list(self, component: str, name: str, **kw: Any) -> list[str]:
        return [t.strip() for t in self.value(component, name, **kw).split(",") if t.strip()]

    def set_internal(self, component: str, name: str, value: str, **kw: Any) -> None:
        """Set a value from the firmware itself (no mutability check, no hook)."""
        var = self.find(component, name, **kw)
        if var is None:
            raise KeyError(f"{component}.{name}")
        var.value = value

    # ------------------------------------------------------------------ lookup from the wire
    def _resolve(self, component: dict[str, Any], variable: dict[str, Any]) -> tuple[Variable | None, str]:
        evse = component.get("evse") or {}
        ckey = (component.get("name"), component.get("instance"), evse.get("id"), evse.get("connectorId"))
        if ckey not in self._by_component:
            return None, "UnknownComponent"
        var = self._vars.get((*ckey, variable.get("name"), variable.get("instance")))  # type: ignore[arg-type]
        if var is None:
            return None, "UnknownVariable"
        return var, "Accepted"

    def get_variables(self, data: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for item in data:
            comp, variable = item["component"], item["variable"]
            attr = item.get("attributeType", "Actual")
            result: dict[str, Any] = {"component": comp, "variable": variable}
            if "attributeType" in item:
                result["attributeType"] = attr
            var, status = self._resolve(comp, variable)
            if var is None:
                result["attributeStatus"] = status
            elif attr != "Actual":
                result["attributeStatus"] = "NotSupportedAttributeType"
            elif var.mutability == WRITE_ONLY:
                result["attributeStatus"] = "Rejected"
                result["attributeStatusInfo"] = {"reasonCode": "WriteOnly"}
            else:
                result["attributeStatus"] = "Accepted"
                result["attributeValue"] = var.current()[:2500]
            out.append(result)
        return out

    def set_variables(self, data: list[dict[str, Any]]) -> list[dict[str, Any]]:
        out = []
        for item in data:
            comp, variable = item["component"], item["variable"]
            attr = item.get("attributeType", "Actual")
            result: dict[str, Any] = {"component": comp, "variable": variable}
            if "attributeType" in item:
                result["attributeType"] = attr
            var, status = self._resolve(comp, variable)
            text = item["attributeValue"]
            if var is None:
                result["attributeStatus"] = status
            elif attr != "Actual":
                result["attributeStatus"] = "NotSupportedAttributeType"
            elif var.mutability == READ_ONLY:
                result["attributeStatus"] = "Rejected"
                result["attributeStatusInfo"] = {"reasonCode": "ReadOnly"}
            else:
                reason = check_value(var, text)
                if reason is None and var.on_set is not None:
                    reason = var.on_set(text)
                if reason is not None:
                    result["attributeStatus"] = "Rejected"
                    result["attributeStatusInfo"] = {"reasonCode": reason[:20]}
                else:
                    if var.data_type == "boolean":
                        text = "true" if _bool(text) else "false"
                    var.value = text
                    result["attributeStatus"] = "Accepted"
            out.append(result)
        return out

    # ------------------------------------------------------------------ reports
    def base_report(self, base: str) -> list[dict[str, Any]]:
        """ReportData entries for GetBaseReport (``ConfigurationInventory`` / ``FullInventory`` /
        ``SummaryInventory``)."""
        if base == "ConfigurationInventory":
            chosen = [v for v in self if v.mutability != READ_ONLY]
        elif base == "SummaryInventory":
            chosen = [v for v in self if v.name in ("Available", "AvailabilityState", "Problem", "Enabled")]
        else:
            chosen = list(self)
        return [v.report() for v in chosen]

    def custom_report(
        self, component_variables: list[dict[str, Any]] | None, criteria: list[str] | None
    ) -> list[dict[str, Any]]:
        """ReportData for GetReport: filter by component/variable and by component criteria."""
        chosen: list[Variable] = list(self)
        if component_variables:
            picked: list[Variable] = []
            for cv in component_variables:
                comp = cv["component"]
                evse = comp.get("evse")
                want_var = cv.get("variable")
                for v in chosen:
                    if v.component != comp["name"]:
                        continue
                    if "instance" in comp and v.component_instance != comp["instance"]:
                        continue
                    if evse is not None and (
                        v.evse != evse["id"] or ("connectorId" in evse and v.connector != evse["connectorId"])
                    ):
                        continue
                    if want_var is not None and (
                        v.name != want_var["name"] or ("instance" in want_var and v.instance != want_var["instance"])
                    ):
                        continue
                    if v not in picked:
                        picked.append(v)
            chosen = picked
        if criteria:
            keep = []
            for v in chosen:
                comp_vars = self._by_component[v.key[:4]]
                flags = {c.name: _bool(c.current()) for c in comp_vars}
                ok = False
                for crit in criteria:
                    if crit == "Active" and flags.get("Active", flags.get("Enabled", True)):
                        ok = True
                    elif crit == "Available" and flags.get("Available", True):
                        ok = True
                    elif crit == "Enabled" and flags.get("Enabled", True):
                        ok = True
                    elif crit == "Problem" and flags.get("Problem", False):
                        ok = True
                if ok:
                    keep.append(v)
            chosen = keep
        return [v.report() for v in chosen]
