"""Pydantic models of the OpenADR 3.0.1 objects the VEN and the bundled VTN exchange.

Field names are the specification's (``components/schemas`` of the OpenAPI document
``oadr3.0.1.yaml``): camelCase, ``programID``, ``eventID``, ``venID``, ``intervalPeriod`` and so
on. Models accept fields they do not know (``extra="allow"``): the specification lets VTNs add
private fields and a VEN must not refuse an object for one. Only what the specification marks
``required`` is required here.

The *meaning* of an event (turning its intervals into a canonical grid event) is not checked
here: :mod:`csms.grid.openadr` does that and names the offending field.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

OBJECT_ID = r"^[a-zA-Z0-9_-]*$"
ObjectType = Literal["PROGRAM", "EVENT", "REPORT", "SUBSCRIPTION", "VEN", "RESOURCE"]
Operation = Literal["GET", "POST", "PUT", "DELETE"]


class _Obj(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)

    def dump(self) -> dict[str, Any]:
        """The JSON object as sent on the wire (no ``null`` members)."""
        return self.model_dump(mode="json", exclude_none=True, by_alias=True)


class ValuesMap(_Obj):
    type: str = Field(min_length=1, max_length=128)
    values: list[Any]


class IntervalPeriod(_Obj):
    start: str
    duration: str | None = None
    randomizeStart: str | None = None


class Interval(_Obj):
    id: int
    intervalPeriod: IntervalPeriod | None = None
    payloads: list[ValuesMap]


class _Stored(_Obj):
    id: str | None = Field(None, pattern=OBJECT_ID, min_length=1, max_length=128)
    createdDateTime: datetime | None = None
    modificationDateTime: datetime | None = None


class Program(_Stored):
    objectType: Literal["PROGRAM"] | None = "PROGRAM"
    programName: str = Field(min_length=1, max_length=128)
    programLongName: str | None = None
    retailerName: str | None = None
    programType: str | None = None
    intervalPeriod: IntervalPeriod | None = None
    payloadDescriptors: list[dict[str, Any]] | None = None
    targets: list[ValuesMap] | None = None


class Event(_Stored):
    objectType: Literal["EVENT"] | None = "EVENT"
    programID: str = Field(pattern=OBJECT_ID, min_length=1, max_length=128)
    eventName: str | None = None
    priority: int | None = Field(None, ge=0)
    targets: list[ValuesMap] | None = None
    reportDescriptors: list[dict[str, Any]] | None = None
    payloadDescriptors: list[dict[str, Any]] | None = None
    intervalPeriod: IntervalPeriod | None = None
    intervals: list[Interval]


class ReportPayloadDescriptor(_Obj):
    objectType: Literal["REPORT_PAYLOAD_DESCRIPTOR"] | None = "REPORT_PAYLOAD_DESCRIPTOR"
    payloadType: str = Field(min_length=1, max_length=128)
    readingType: str | None = None
    units: str | None = None
    accuracy: float | None = None
    confidence: int | None = Field(None, ge=0, le=100)


class ReportResource(_Obj):
    resourceName: str = Field(min_length=1, max_length=128)
    intervalPeriod: IntervalPeriod | None = None
    intervals: list[Interval]


class Report(_Stored):
    objectType: Literal["REPORT"] | None = "REPORT"
    programID: str = Field(pattern=OBJECT_ID, min_length=1, max_length=128)
    eventID: str = Field(pattern=OBJECT_ID, min_length=1, max_length=128)
    clientName: str = Field(min_length=1, max_length=128)
    reportName: str | None = None
    payloadDescriptors: list[ReportPayloadDescriptor] | None = None
    resources: list[ReportResource]


class ObjectOperation(_Obj):
    objects: list[ObjectType]
    operations: list[Operation]
    callbackUrl: str
    bearerToken: str | None = None


class Subscription(_Stored):
    objectType: Literal["SUBSCRIPTION"] | None = "SUBSCRIPTION"
    clientName: str = Field(min_length=1, max_length=128)
    programID: str = Field(pattern=OBJECT_ID, min_length=1, max_length=128)
    objectOperations: list[ObjectOperation]
    targets: list[ValuesMap] | None = None


class Resource(_Stored):
    objectType: Literal["RESOURCE"] | None = "RESOURCE"
    resourceName: str = Field(min_length=1, max_length=128)
    venID: str | None = None
    attributes: list[ValuesMap] | None = None
    targets: list[ValuesMap] | None = None


class Ven(_Stored):
    objectType: Literal["VEN"] | None = "VEN"
    venName: str = Field(min_length=1, max_length=128)
    attributes: list[ValuesMap] | None = None
    targets: list[ValuesMap] | None = None
    resources: list[Resource] | None = None


class Notification(_Obj):
    objectType: ObjectType
    operation: Operation
    object: dict[str, Any]
    targets: list[ValuesMap] | None = None


class ClientCredentialResponse(_Obj):
    access_token: str = Field(min_length=1)
    token_type: Literal["Bearer", "bearer"] = "Bearer"
    expires_in: int | None = None
    scope: str | None = None


class Problem(_Obj):
    type: str = "about:blank"
    title: str | None = None
    status: int | None = None
    detail: str | None = None
    instance: str | None = None
