"""Station commands for the provisioning and transaction use cases the OCA test cases exercise:
``POST /api/v1/stations/{station_id}/commands/<Action>`` (operator scope), answered like every
other command (:func:`csms.api.command_execution.execute`: the station's OCPP answer, or the API error).

- ``GetReport`` (B08): a custom device-model report by component criteria and/or
  component-variables; the parts arrive as NotifyReport and land in ``GET .../variables``;
- ``SetNetworkProfile`` (B09): store a connection profile (NetworkConnectionProfileType, wire
  form) in a configuration slot; checked against the station's OCPP version, so 2.1's
  ``identity`` / ``basicAuthPassword`` are refused for a 2.0.1 station;
- ``GetTransactionStatus`` (E14): whether a transaction is ongoing and whether messages about
  it (or, without ``transaction_id``, any transaction message) are still queued.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from csms.ocpp.schemas import enum_values

from ..auth import require_operator
from ..command_bodies import ConnectorId, EvseId, Int, _drop_none, _evse, next_request_id
from ..commands import command
from ..errors import error_responses
from ..params import Text

router = APIRouter(
    prefix="/api/v1/stations/{station_id}/commands",
    dependencies=[Depends(require_operator)],
    responses=error_responses(400, 401, 403, 404, 409, 422, 502, 504),
    tags=["commands"],
)
ComponentCriterion = Literal[enum_values("2.1", "GetReportRequest", "ComponentCriterionEnumType")]  # type: ignore[valid-type]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ReportComponentVariable(_Body):
    component: Text = Field(description="component name, e.g. EVSE")
    component_instance: Text | None = None
    evse_id: EvseId | None = None
    connector_id: ConnectorId | None = None
    variable: Text | None = Field(None, description="omit for every variable of the component")
    variable_instance: Text | None = None

    def to_ocpp(self) -> dict[str, Any]:
        component = _drop_none(
            {
                "name": self.component,
                "instance": self.component_instance,
                "evse": _evse(self.evse_id, self.connector_id),
            }
        )
        variable = _drop_none({"name": self.variable, "instance": self.variable_instance}) if self.variable else None
        return _drop_none({"component": component, "variable": variable})


class GetReportBody(_Body):
    component_criteria: list[ComponentCriterion] | None = Field(None, min_length=1, max_length=4)
    component_variables: list[ReportComponentVariable] | None = Field(None, min_length=1, max_length=100)
    request_id: Int | None = Field(None, description="default: allocated by the CSMS")

    def to_ocpp(self) -> dict[str, Any]:
        variables = [c.to_ocpp() for c in self.component_variables] if self.component_variables else None
        return _drop_none(
            {
                "requestId": self.request_id if self.request_id is not None else next_request_id(),
                "componentCriteria": self.component_criteria,
                "componentVariable": variables,
            }
        )


class SetNetworkProfileBody(_Body):
    configuration_slot: Annotated[int, Field(ge=0, le=2**31 - 1)]
    connection_data: dict[str, Any] = Field(description="OCPP NetworkConnectionProfileType, wire form (camelCase)")

    def to_ocpp(self) -> dict[str, Any]:
        return {"configurationSlot": self.configuration_slot, "connectionData": self.connection_data}


class GetTransactionStatusBody(_Body):
    transaction_id: Annotated[Text, Field(min_length=1, max_length=36)] | None = Field(
        None, description="omit to ask whether any transaction-related message is queued"
    )

    def to_ocpp(self) -> dict[str, Any]:
        return _drop_none({"transactionId": self.transaction_id})


get_report = command(router, "GetReport", GetReportBody, "a custom device-model report (parts arrive as NotifyReport)")


set_network_profile = command(
    router, "SetNetworkProfile", SetNetworkProfileBody, "store a connection profile in a slot"
)


get_transaction_status = command(
    router, "GetTransactionStatus", GetTransactionStatusBody, "is a transaction ongoing, are its messages queued"
)
