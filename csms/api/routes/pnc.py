"""ISO 15118 Plug & Charge (OCPP 2.0.1 and 2.1): what the CSMS uses and what it decided.

- ``GET /api/v1/pnc`` (read): the contract-certificate provider (configured or not), the trusted
  contract roots, the OCSP answers cached until their nextUpdate;
- ``POST /api/v1/pnc/ocsp-check`` (operator): ask an OCSP responder about one certificate as a
  GetCertificateStatus would (same cache);
- ``POST /api/v1/pnc/contract-check`` (operator): the certificateStatus an Authorize with this
  contract certificate chain would get (central validation);
- ``GET /api/v1/stations/{id}/pnc/events`` (read): the station's Get15118EVCertificate,
  GetCertificateStatus and contract Authorize outcomes, newest first.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from csms.blocks.pnc import EVENT, PlugAndCharge
from csms.security import pnc
from csms.security.certificates import describe

from ..auth import require_operator, require_read
from ..context import ApiContext, get_ctx
from ..errors import ApiError, error_responses
from ..models import StationEventOut
from ..params import Limit, Offset, StationId, Text

router = APIRouter(responses=error_responses(400, 401, 403, 404, 422), tags=["plug and charge"])
Ctx = Annotated[ApiContext, Depends(get_ctx)]
WRITE = [Depends(require_operator)]
READ = [Depends(require_read)]
Hex = Annotated[Text, Field(min_length=1, max_length=128, pattern=r"^[0-9A-Fa-f]+$")]


class PncStatusOut(BaseModel):
    contract_provider_url: str | None = Field(description="where Get15118EVCertificate goes (none: Failed)")
    contract_roots: list[dict[str, Any]] = Field(description="trusted contract roots: subject, serial, validity")
    ocsp_cache: list[dict[str, Any]] = Field(description="OCSP answers kept until their nextUpdate")
    ocsp_fetches: int = Field(description="OCSP requests sent by this process")


class OcspCheckIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hash_algorithm: Literal["SHA256", "SHA384", "SHA512"] = "SHA256"
    issuer_name_hash: Hex
    issuer_key_hash: Hex
    serial_number: Annotated[Text, Field(min_length=1, max_length=40, pattern=r"^[0-9A-Fa-f]+$")]
    responder_url: Annotated[Text, Field(min_length=1, max_length=2000)]

    def to_ocpp(self) -> dict[str, str]:
        return {
            "hashAlgorithm": self.hash_algorithm,
            "issuerNameHash": self.issuer_name_hash,
            "issuerKeyHash": self.issuer_key_hash,
            "serialNumber": self.serial_number,
            "responderURL": self.responder_url,
        }


class OcspCheckOut(BaseModel):
    status: Literal["Accepted", "Failed"] = Field(description="as GetCertificateStatus would answer")
    reason: str | None = Field(None, description="reasonCode when Failed")
    message: str | None = None
    cert_status: Literal["good", "revoked", "unknown"] | None = None
    this_update: str | None = None
    next_update: str | None = None
    revoked_at: str | None = None
    cached: bool | None = None


class ContractCheckIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    certificate: Annotated[str, Field(min_length=1, max_length=10_000, description="contract chain, PEM, leaf first")]
    emaid: Annotated[Text, Field(max_length=255)] | None = Field(None, description="also check it is this eMAID's")


class ContractCheckOut(BaseModel):
    certificate_status: str = Field(description="AuthorizeCertificateStatusEnumType")
    emaid: str | None = Field(None, description="the eMAID the leaf certificate is for")
    notes: list[str]


@router.get("/api/v1/pnc", response_model=PncStatusOut, dependencies=READ, summary="Plug & Charge set-up")
async def pnc_status(ctx: Ctx) -> PncStatusOut:
    p = PlugAndCharge.of(ctx.central)
    return PncStatusOut(
        contract_provider_url=ctx.central.settings.pnc.contract_provider_url,
        contract_roots=[describe(c) for c in p.roots()],
        ocsp_cache=p.ocsp.cached(),
        ocsp_fetches=p.ocsp.fetches,
    )


@router.post("/api/v1/pnc/ocsp-check", response_model=OcspCheckOut, dependencies=WRITE, summary="OCSP look-up")
async def ocsp_check(ctx: Ctx, body: OcspCheckIn) -> OcspCheckOut:
    try:
        result = await PlugAndCharge.of(ctx.central).ocsp.check(body.to_ocpp())
    except pnc.OcspError as exc:
        return OcspCheckOut(status="Failed", reason=exc.reason, message=exc.message)
    facts = result.answer.facts()
    return OcspCheckOut(
        status="Accepted",
        cert_status=result.answer.status,
        this_update=facts["thisUpdate"],
        next_update=facts.get("nextUpdate"),
        revoked_at=facts.get("revokedAt"),
        cached=result.cached,
    )


@router.post(
    "/api/v1/pnc/contract-check", response_model=ContractCheckOut, dependencies=WRITE, summary="Check a contract chain"
)
async def contract_check(ctx: Ctx, body: ContractCheckIn) -> ContractCheckOut:
    certs = pnc.load_chain(body.certificate)
    if not certs:
        raise ApiError(422, "invalid_certificate", "not a PEM certificate chain", {"field": "certificate"})
    status, notes = await PlugAndCharge.of(ctx.central).contract_status({"certificate": body.certificate})
    emaid = pnc.emaid_of(certs[0])
    if status == "Accepted" and body.emaid is not None and (emaid is None or not pnc.same_emaid(emaid, body.emaid)):
        status = "CertChainError"
        notes.append(f"the certificate is for eMAID {emaid}, not {body.emaid}")
    return ContractCheckOut(certificate_status=status, emaid=emaid, notes=notes)


@router.get(
    "/api/v1/stations/{station_id}/pnc/events",
    response_model=list[StationEventOut],
    dependencies=READ,
    summary="The station's Plug & Charge outcomes",
)
async def pnc_events(ctx: Ctx, station_id: StationId, limit: Limit = 100, offset: Offset = 0) -> list[StationEventOut]:
    await ctx.require_station(station_id)
    rows = await ctx.store.list_station_events(station_id=station_id, kind=EVENT, limit=limit, offset=offset)
    return [StationEventOut.model_validate(r, from_attributes=True) for r in rows]
