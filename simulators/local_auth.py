"""The simulated station's Local Authorization List (OCPP D01/D02) and authorization cache (C10-C12).

- SendLocalList: Full replaces the list, Differential applies updates (an entry without
  ``idTokenInfo`` removes the token). Failed when ``LocalAuthListCtrlr.Enabled`` is false, when a
  token appears twice (D01.FR.06), when ``versionNumber`` is not > 0 (D01.FR.18), when a Full
  entry lacks ``idTokenInfo``, or when the request holds more than ``ItemsPerMessage`` entries or
  more than ``Entries.maxLimit`` would be stored. VersionMismatch for a Differential whose version
  is not above the installed one.
- GetLocalListVersion: the installed version, 0 when no list was ever installed (D02).
- ClearCache: Rejected when ``AuthCacheCtrlr.Enabled`` is false, else the cache is emptied.
- Offline authorization consults the list first, then the cache (every CSMS answer to Authorize
  is cached while ``AuthCacheCtrlr.Enabled``, C10); a token found in neither falls back to the
  station's ``OfflineTxForUnknownIdEnabled`` rule.

State lives on the :class:`~simulators.station.Station` (``local_list``), so it survives
reconnects, as a real station's flash would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .devicemodel import READ_ONLY, READ_WRITE, Variable

if TYPE_CHECKING:
    from .devicemodel import DeviceModel
    from .model import Firmware

ITEMS_PER_MESSAGE = 50
MAX_ENTRIES = 1000


@dataclass
class LocalAuthState:
    version: int = 0
    entries: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    cache: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)


def state(st: Firmware) -> LocalAuthState:
    found = st.__dict__.get("local_list")
    if found is None:
        found = st.__dict__["local_list"] = LocalAuthState()
    return found  # type: ignore[no-any-return]


def _key(id_token: dict[str, Any]) -> tuple[str, str]:
    return (str(id_token["type"]), str(id_token["idToken"]))


def add_variables(st: Firmware, dm: DeviceModel) -> None:
    """LocalAuthListCtrlr and AuthCacheCtrlr (appendix names) for the device model."""
    b = "boolean"
    dm.add(Variable("LocalAuthListCtrlr", "Available", "true", READ_ONLY, b))
    dm.add(Variable("LocalAuthListCtrlr", "Enabled", "true", READ_WRITE, b))
    dm.add(
        Variable(
            "LocalAuthListCtrlr",
            "Entries",
            "0",
            READ_ONLY,
            "integer",
            max_limit=MAX_ENTRIES,
            getter=lambda: str(len(state(st).entries)),
        )
    )
    dm.add(Variable("LocalAuthListCtrlr", "ItemsPerMessage", str(ITEMS_PER_MESSAGE), READ_ONLY, "integer"))
    dm.add(Variable("LocalAuthListCtrlr", "BytesPerMessage", "65000", READ_ONLY, "integer"))
    dm.add(Variable("AuthCacheCtrlr", "Available", "true", READ_ONLY, b))
    dm.add(Variable("AuthCacheCtrlr", "Enabled", "true", READ_WRITE, b))
    dm.add(Variable("AuthCacheCtrlr", "LifeTime", "86400", READ_WRITE, "integer", unit="s"))


def _failed(text: str) -> dict[str, Any]:
    return {"status": "Failed", "statusInfo": {"reasonCode": "InvalidValue", "additionalInfo": text[:512]}}


async def send_local_list(st: Firmware, p: dict[str, Any]) -> dict[str, Any]:
    ls = state(st)
    if not st._dm_bool("LocalAuthListCtrlr", "Enabled", True):
        return {"status": "Failed", "statusInfo": {"reasonCode": "Disabled"}}
    version, update = p["versionNumber"], p["updateType"]
    items = p.get("localAuthorizationList", [])
    if version <= 0:
        return _failed("versionNumber must be > 0 (D01.FR.18)")
    keys = [_key(i["idToken"]) for i in items]
    if len(set(keys)) != len(keys):
        return _failed("a token appears twice (D01.FR.06)")
    if len(items) > st._dm_int("LocalAuthListCtrlr", "ItemsPerMessage", ITEMS_PER_MESSAGE):
        return _failed("more entries than LocalAuthListCtrlr.ItemsPerMessage")
    if update == "Full":
        if any("idTokenInfo" not in i for i in items):
            return _failed("every entry of a Full update needs idTokenInfo")
        new = {k: dict(i["idTokenInfo"]) for k, i in zip(keys, items, strict=True)}
    else:
        if version <= ls.version:
            return {"status": "VersionMismatch"}
        new = dict(ls.entries)
        for k, i in zip(keys, items, strict=True):
            if "idTokenInfo" in i:
                new[k] = dict(i["idTokenInfo"])
            else:
                new.pop(k, None)
    if len(new) > MAX_ENTRIES:
        return _failed("the list would exceed LocalAuthListCtrlr.Entries")
    ls.entries, ls.version = new, version
    st.log.info("local list updated", update=update, version=version, entries=len(new))
    return {"status": "Accepted"}


async def get_local_list_version(st: Firmware, p: dict[str, Any]) -> dict[str, Any]:
    return {"versionNumber": state(st).version}


async def clear_cache(st: Firmware, p: dict[str, Any]) -> dict[str, Any]:
    if not st._dm_bool("AuthCacheCtrlr", "Enabled", True):
        return {"status": "Rejected", "statusInfo": {"reasonCode": "Disabled"}}
    state(st).cache.clear()
    return {"status": "Accepted"}


def remember(st: Firmware, id_token: dict[str, Any], info: dict[str, Any]) -> None:
    """C10: cache what the CSMS answered for a token (while the cache is enabled)."""
    if st._dm_bool("AuthCacheCtrlr", "Enabled", True) and id_token.get("type") != "NoAuthorization":
        state(st).cache[_key(id_token)] = dict(info)


def lookup(st: Firmware, id_token: dict[str, Any]) -> dict[str, Any] | None:
    """IdTokenInfo for offline authorization: the local list first (when enabled), then the cache."""
    ls = state(st)
    key = _key(id_token)
    if st._dm_bool("LocalAuthListCtrlr", "Enabled", True) and key in ls.entries:
        return ls.entries[key]
    if st._dm_bool("AuthCacheCtrlr", "Enabled", True):
        return ls.cache.get(key)
    return None


HANDLERS = {"SendLocalList": send_local_list, "GetLocalListVersion": get_local_list_version, "ClearCache": clear_cache}
