"""The simulated station's display messages (OCPP O01-O06).

- SetDisplayMessage: Rejected when ``DisplayMessageCtrlr.Enabled`` is false or the store is full
  (``DisplayMessageCtrlr.DisplayMessages`` maxLimit; replacing an id needs no room);
  NotSupportedMessageFormat / NotSupportedPriority / NotSupportedState for values outside
  ``SupportedFormats`` / ``SupportedPriorities`` / ``SupportedStates``; UnknownTransaction for a
  ``transactionId`` that is not ongoing; (2.1) LanguageNotSupported for a language outside
  ``DisplayMessageCtrlr.Language``. The same id replaces the message (O02).
- GetDisplayMessages: Unknown when nothing matches the filters (ids, priority, state), else
  Accepted and NotifyDisplayMessages (``ItemsPerMessage`` per message, ``tbc`` on all but the
  last). Messages past their ``endDateTime`` are gone (O01.FR.14).
- ClearDisplayMessage: Accepted, or Unknown for an id the station does not hold.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from csms.clock import parse_rfc3339

from .devicemodel import READ_ONLY, READ_WRITE, Variable

if TYPE_CHECKING:
    from .devicemodel import DeviceModel
    from .model import Firmware

CTRLR = "DisplayMessageCtrlr"
MAX_MESSAGES = 10
ITEMS_PER_MESSAGE = 4


def _store(st: Firmware) -> dict[int, dict[str, Any]]:
    found = st.__dict__.get("display_messages")
    if found is None:
        found = st.__dict__["display_messages"] = {}
    return found  # type: ignore[no-any-return]


def add_variables(st: Firmware, dm: DeviceModel) -> None:
    v21 = st.dm_version == "2.1"
    dm.add(Variable(CTRLR, "Available", "true", READ_ONLY, "boolean"))
    dm.add(Variable(CTRLR, "Enabled", "true", READ_WRITE, "boolean"))
    dm.add(
        Variable(
            CTRLR,
            "DisplayMessages",
            "0",
            READ_ONLY,
            "integer",
            max_limit=MAX_MESSAGES,
            getter=lambda: str(len(_store(st))),
        )
    )
    dm.add(Variable(CTRLR, "SupportedFormats", "ASCII,UTF8,URI", READ_WRITE, "MemberList"))
    dm.add(Variable(CTRLR, "SupportedPriorities", "InFront,NormalCycle", READ_WRITE, "MemberList"))
    states = "Charging,Faulted,Idle" + (",Suspended" if v21 else "")
    dm.add(Variable(CTRLR, "SupportedStates", states, READ_WRITE, "MemberList"))
    dm.add(Variable(CTRLR, "PersonalMessageSize", "256", READ_ONLY, "integer"))
    dm.add(Variable(CTRLR, "Language", "en,de,nl", READ_WRITE, "MemberList"))


def _expired(st: Firmware) -> None:
    now = st.clock.now()
    store = _store(st)
    for mid, info in list(store.items()):
        end = info.get("endDateTime")
        if end is not None and parse_rfc3339(end) <= now:
            del store[mid]


def _active_transaction(st: Firmware, tx_id: str) -> bool:
    return any(e.tx is not None and not e.tx.ended and e.tx.id == tx_id for e in st.evses.values())


async def set_display_message(st: Firmware, p: dict[str, Any]) -> dict[str, Any]:
    info = p["message"]
    if not st._dm_bool(CTRLR, "Enabled", True):
        return {"status": "Rejected", "statusInfo": {"reasonCode": "Disabled"}}
    content = info["message"]
    if content["format"] not in st._dm_list(CTRLR, "SupportedFormats", "ASCII,UTF8,URI"):
        return {"status": "NotSupportedMessageFormat"}
    if info["priority"] not in st._dm_list(CTRLR, "SupportedPriorities", "InFront,NormalCycle"):
        return {"status": "NotSupportedPriority"}
    if "state" in info and info["state"] not in st._dm_list(CTRLR, "SupportedStates", "Charging,Faulted,Idle"):
        return {"status": "NotSupportedState"}
    if "transactionId" in info and not _active_transaction(st, info["transactionId"]):
        return {"status": "UnknownTransaction"}
    language = content.get("language")
    if st.version == "2.1" and language and language not in st._dm_list(CTRLR, "Language", "en"):
        return {"status": "LanguageNotSupported"}
    _expired(st)
    store = _store(st)
    if info["id"] not in store and len(store) >= MAX_MESSAGES:
        return {"status": "Rejected", "statusInfo": {"reasonCode": "NoCapacity"}}
    store[info["id"]] = dict(info)
    return {"status": "Accepted"}


async def get_display_messages(st: Firmware, p: dict[str, Any]) -> dict[str, Any]:
    _expired(st)
    ids = p.get("id")
    found = [
        m
        for mid, m in sorted(_store(st).items())
        if (not ids or mid in ids)
        and ("priority" not in p or m["priority"] == p["priority"])
        and ("state" not in p or m.get("state") == p["state"])
    ]
    if not found:
        return {"status": "Unknown"}
    chunks = [found[i : i + ITEMS_PER_MESSAGE] for i in range(0, len(found), ITEMS_PER_MESSAGE)]
    for n, chunk in enumerate(chunks):
        payload: dict[str, Any] = {"requestId": p["requestId"], "messageInfo": chunk}
        if n < len(chunks) - 1:
            payload["tbc"] = True
        st._send_if_online("NotifyDisplayMessages", payload)
    return {"status": "Accepted"}


async def clear_display_message(st: Firmware, p: dict[str, Any]) -> dict[str, Any]:
    if _store(st).pop(p["id"], None) is None:
        return {"status": "Unknown"}
    return {"status": "Accepted"}


def shown(st: Firmware) -> list[dict[str, Any]]:
    """The messages the station holds now (after dropping expired ones), by id."""
    _expired(st)
    return [m for _mid, m in sorted(_store(st).items())]


HANDLERS = {
    "SetDisplayMessage": set_display_message,
    "GetDisplayMessages": get_display_messages,
    "ClearDisplayMessage": clear_display_message,
}
