"""GetVariables as B06 asks of the CSMS (used by ``POST .../commands/GetVariables``):

- B06.FR.05: never more getVariableData elements in one GetVariablesRequest than the station
  reported in ``DeviceDataCtrlr.ItemsPerMessage[GetVariables]`` (known from a NotifyReport or an
  earlier GetVariables answer); a longer list goes out as several requests, one after another,
  and the answer joins their results in the order asked;
- every Accepted value read is remembered with the station's reported variables (``GET
  .../variables``), so the CSMS knows e.g. ItemsPerMessage from a plain GetVariables too.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import structlog

from .models import CommandResult

log = structlog.get_logger("csms.api")

if TYPE_CHECKING:
    from .context import ApiContext


async def items_per_message(ctx: ApiContext, station_id: str, instance: str) -> int | None:
    """The station's DeviceDataCtrlr.ItemsPerMessage[instance] (Actual), or None when unknown."""
    for row in await ctx.store.get_variables(station_id, "DeviceDataCtrlr", "ItemsPerMessage"):
        if row.variable_instance == instance and row.attribute_type == "Actual" and row.value:
            try:
                value = int(row.value)
            except ValueError:
                return None
            return value if value > 0 else None
    return None


def _rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for r in results:
        if r.get("attributeStatus") != "Accepted" or "attributeValue" not in r:
            continue
        comp, var = r["component"], r["variable"]
        rows.append(
            {
                "component": comp["name"],
                "component_instance": comp.get("instance", ""),
                "evse_id": comp.get("evse", {}).get("id", -1),
                "connector_id": comp.get("evse", {}).get("connectorId", -1),
                "variable": var["name"],
                "variable_instance": var.get("instance", ""),
                "attribute_type": r.get("attributeType", "Actual"),
                "value": r["attributeValue"],
                "characteristics": None,
            }
        )
    return rows


Execute = Callable[["ApiContext", str, str, dict[str, Any], float | None], Awaitable[CommandResult]]


async def get_variables(
    ctx: ApiContext, station_id: str, data: list[dict[str, Any]], timeout: float | None, execute: Execute
) -> CommandResult:
    """``execute`` sends one request (:func:`csms.api.command_execution.execute`)."""
    limit = await items_per_message(ctx, station_id, "GetVariables") or len(data)
    parts = [data[i : i + limit] for i in range(0, len(data), limit)]
    results: list[CommandResult] = []
    for part in parts:
        results.append(await execute(ctx, station_id, "GetVariables", {"getVariableData": part}, timeout))
    joined = [r for res in results for r in res.response.get("getVariableResult", [])]
    rows = _rows(joined)
    if rows:
        try:
            await ctx.store.upsert_variables(station_id, rows)
        except Exception:  # the station answered; a record that cannot be written does not fail the command
            log.exception("GetVariables values not recorded", station=station_id)
    if len(results) == 1:
        return results[0]
    first = results[0]
    return CommandResult(
        station_id=station_id,
        action="GetVariables",
        ocpp_version=first.ocpp_version,
        request={"getVariableData": data},
        response={"getVariableResult": joined},
        status=None,
        duration_ms=round(sum(r.duration_ms for r in results), 3),
    )
