"""JSON errors: every non-2xx answer of the API is ``{"error": {"code", "message", "details"}}``.

``code`` is a stable snake_case identifier a client can branch on; ``message`` is one sentence
for a human; ``details`` (optional) carries structured context such as the OCPP error code of a
station's CALLERROR, the offending field of an invalid payload or close matches of an unknown
station id.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

log = structlog.get_logger("csms.api")


class ErrorInfo(BaseModel):
    code: str = Field(description="stable machine-readable code, e.g. station_offline")
    message: str = Field(description="what went wrong, for a human")
    details: dict[str, Any] | None = Field(None, description="structured context (OCPP code, field, matches ...)")


class ErrorResponse(BaseModel):
    error: ErrorInfo


class ApiError(Exception):
    """Raise anywhere in a route to answer with the JSON error format."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        self.headers = headers


_DESCRIPTIONS = {
    400: "the request body could not be read (code: bad_request)",
    401: "missing or invalid bearer token (code: unauthorized)",
    403: "the token's scope does not allow this (code: forbidden)",
    404: "not found (codes: not_found, unknown_station, ...)",
    409: "conflict (codes: station_offline, not_allowed, already_exists)",
    422: "invalid request (codes: validation_error, invalid_payload)",
    502: "the station answered with an error (codes: station_callerror, station_bad_response)",
    504: "the station did not answer in time (code: station_timeout)",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries documenting the JSON error body for ``statuses``."""
    return {s: {"model": ErrorResponse, "description": _DESCRIPTIONS.get(s, HTTPStatus(s).phrase)} for s in statuses}


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


def json_error(
    status: int, code: str, message: str, details: dict[str, Any] | None = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(code, message, details), status_code=status, headers=headers)


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "too_many_requests",
}


def _field(loc: tuple[Any, ...] | list[Any]) -> str:
    """``("body", "variables", 0, "component")`` -> ``body.variables[0].component``."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "request"


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return json_error(exc.status, exc.code, exc.message, exc.details, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = []
        for err in exc.errors():
            errors.append({"field": _field(err.get("loc", ())), "message": str(err.get("msg", "invalid"))})
        first = errors[0] if errors else {"field": "request", "message": "invalid"}
        message = f"{first['field']}: {first['message']}"
        if len(errors) > 1:
            message += f" (and {len(errors) - 1} more)"
        return json_error(422, "validation_error", message, {"errors": errors})

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
        if exc.status_code == 404 and message == "Not Found":
            message = "no such resource; see /docs for the API"
        return json_error(exc.status_code, code, message, None, getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("API request failed", method=request.method, path=request.url.path)
        return json_error(500, "internal_error", "internal error; the CSMS log has the details")
