"""The simulated station's cost display and OCPP 2.1 tariffs (I01/I02, I07-I10 of 2.1).

- CostUpdated: the total cost is kept per transaction (what the display would show), ``{}``.
- SetDefaultTariff (2.1): Rejected when ``TariffCostCtrlr.Enabled[Tariff]`` is false,
  TooManyElements beyond ``TariffCostCtrlr.MaxElements[Tariff]`` energy prices,
  ConditionNotSupported for a price with ``conditions`` while
  ``TariffCostCtrlr.TariffConditionsSupported`` is false, DuplicateTariffId when the id is
  already used by a different tariff, else Accepted (``evseId`` 0: every EVSE).
- GetTariffs: the default tariffs (and driver tariffs of ongoing transactions) with their EVSEs;
  NoTariff when there are none.
- ClearTariffs: by ids and/or EVSE; NoTariff when nothing matched.
- A ``tariff`` in the AuthorizeResponse (2.1) becomes the transaction's driver tariff.
- ChangeTransactionTariff: TxNotFound, NoCurrencyChange (another currency than the tariff the
  transaction runs on), TooManyElements, ConditionNotSupported, else Accepted.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .devicemodel import READ_ONLY, READ_WRITE, Variable

if TYPE_CHECKING:
    from .devicemodel import DeviceModel
    from .model import Firmware

CTRLR = "TariffCostCtrlr"
MAX_ELEMENTS = 4


def _state(st: Firmware) -> dict[str, Any]:
    found = st.__dict__.get("tariffs")
    if found is None:
        found = st.__dict__["tariffs"] = {"default": {}, "driver": {}, "costs": {}}
    return found  # type: ignore[no-any-return]


def costs(st: Firmware) -> dict[str, float]:
    """Transaction id -> the last total cost the CSMS sent."""
    return _state(st)["costs"]  # type: ignore[no-any-return]


def add_variables(st: Firmware, dm: DeviceModel) -> None:
    dm.add(Variable(CTRLR, "Available", "true", READ_ONLY, "boolean", instance="Tariff"))
    dm.add(Variable(CTRLR, "Available", "true", READ_ONLY, "boolean", instance="Cost"))
    dm.add(Variable(CTRLR, "Enabled", "true", READ_WRITE, "boolean", instance="Tariff"))
    dm.add(Variable(CTRLR, "Enabled", "true", READ_WRITE, "boolean", instance="Cost"))
    dm.add(Variable(CTRLR, "Currency", "EUR", READ_WRITE, "string"))
    if st.dm_version == "2.1":
        dm.add(Variable(CTRLR, "MaxElements", str(MAX_ELEMENTS), READ_ONLY, "integer", instance="Tariff"))
        dm.add(Variable(CTRLR, "TariffConditionsSupported", "false", READ_WRITE, "boolean"))


async def cost_updated(st: Firmware, p: dict[str, Any]) -> dict[str, Any]:
    costs(st)[p["transactionId"]] = p["totalCost"]
    return {}


def _check(st: Firmware, tariff: dict[str, Any]) -> str | None:
    prices = (tariff.get("energy") or {}).get("prices", [])
    if len(prices) > st._dm_int(CTRLR, "MaxElements", MAX_ELEMENTS, instance="Tariff"):
        return "TooManyElements"
    if any("conditions" in price for price in prices) and not st._dm_bool(CTRLR, "TariffConditionsSupported", False):
        return "ConditionNotSupported"
    return None


async def set_default_tariff(st: Firmware, p: dict[str, Any]) -> dict[str, Any]:
    if not st._dm_bool(CTRLR, "Enabled", True, instance="Tariff"):
        return {"status": "Rejected", "statusInfo": {"reasonCode": "Disabled"}}
    tariff, evse_id = p["tariff"], p["evseId"]
    if evse_id != 0 and evse_id not in st.evses:
        return {"status": "Rejected", "statusInfo": {"reasonCode": "UnknownEvse"}}
    bad = _check(st, tariff)
    if bad:
        return {"status": bad}
    default = _state(st)["default"]
    for other in default.values():
        if other["tariffId"] == tariff["tariffId"] and other != tariff:
            return {"status": "DuplicateTariffId"}
    for eid in st.evses if evse_id == 0 else [evse_id]:
        default[eid] = dict(tariff)
    return {"status": "Accepted"}


async def get_tariffs(st: Firmware, p: dict[str, Any]) -> dict[str, Any]:
    evse_id = p["evseId"]
    wanted = set(st.evses) if evse_id == 0 else {evse_id}
    by_id: dict[str, dict[str, Any]] = {}
    for eid, tariff in sorted(_state(st)["default"].items()):
        if eid in wanted:
            item = by_id.setdefault(tariff["tariffId"], {"tariffId": tariff["tariffId"], "tariffKind": "DefaultTariff",
                                                          "evseIds": []})  # fmt: skip
            item["evseIds"].append(eid)
    out = list(by_id.values())
    for tx_id, tariff in _state(st)["driver"].items():
        evse = next((e for e in st.evses.values() if e.tx is not None and e.tx.id == tx_id), None)
        if evse is not None and evse.id in wanted:
            out.append({"tariffId": tariff["tariffId"], "tariffKind": "DriverTariff", "evseIds": [evse.id]})
    if not out:
        return {"status": "NoTariff"}
    return {"status": "Accepted", "tariffAssignments": out}


async def clear_tariffs(st: Firmware, p: dict[str, Any]) -> dict[str, Any]:
    default = _state(st)["default"]
    ids, evse_id = p.get("tariffIds"), p.get("evseId")
    cleared: dict[str, None] = {}
    for eid, tariff in list(default.items()):
        if (ids is None or tariff["tariffId"] in ids) and (evse_id in (None, 0) or eid == evse_id):
            del default[eid]
            cleared[tariff["tariffId"]] = None
    results = [{"tariffId": tid, "status": "Accepted"} for tid in cleared]
    results += [{"tariffId": tid, "status": "NoTariff"} for tid in (ids or []) if tid not in cleared]
    return {"clearTariffsResult": results or [{"status": "NoTariff"}]}


async def change_transaction_tariff(st: Firmware, p: dict[str, Any]) -> dict[str, Any]:
    tx_id, tariff = p["transactionId"], p["tariff"]
    evse = next((e for e in st.evses.values() if e.tx is not None and not e.tx.ended and e.tx.id == tx_id), None)
    if evse is None:
        return {"status": "TxNotFound"}
    current = _state(st)["driver"].get(tx_id) or _state(st)["default"].get(evse.id)
    if current is not None and current["currency"] != tariff["currency"]:
        return {"status": "NoCurrencyChange"}
    bad = _check(st, tariff)
    if bad:
        return {"status": bad}
    _state(st)["driver"][tx_id] = dict(tariff)
    return {"status": "Accepted"}


def on_authorized(st: Firmware, tx_id: str, response: dict[str, Any]) -> None:
    """2.1: a ``tariff`` in the AuthorizeResponse is the driver's tariff for the transaction."""
    if "tariff" in response:
        _state(st)["driver"][tx_id] = dict(response["tariff"])


HANDLERS = {"CostUpdated": cost_updated}
HANDLERS_21 = {
    "SetDefaultTariff": set_default_tariff,
    "GetTariffs": get_tariffs,
    "ClearTariffs": clear_tariffs,
    "ChangeTransactionTariff": change_transaction_tariff,
}
