"""``POST /grid/openadr3/notify``: where the VTN delivers subscription notifications.

Not behind the operator API's tokens: the VTN authenticates with the ``bearerToken`` the VEN
put in its subscription (OpenADR 3: "callback endpoints should accept the provided bearer token
to authenticate VTN requests"). Answers 200, 400 with a ``problem`` naming the refused field,
403 for a wrong token, 404 when the VEN is not enabled on this CSMS.
"""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

router = APIRouter(tags=["grid events"])


@router.post(
    "/grid/openadr3/notify",
    summary="OpenADR 3 VTN notification (subscription callback; the subscription's bearer token)",
    responses={
        200: {"description": "applied (or ignored: not an EVENT notification)"},
        400: {"description": "refused: a problem whose detail names the field"},
        403: {"description": "wrong or missing bearer token"},
        404: {"description": "the OpenADR 3 VEN is not enabled"},
    },
)
async def notify(request: Request) -> JSONResponse:
    ctx = getattr(request.app.state, "ctx", None)
    ven: Any = ctx.central.extensions.get("openadr3") if ctx is not None else None
    if ven is None:
        return _problem(404, "Not Found", "the OpenADR 3 VEN is not enabled on this CSMS (openadr3.enabled)")
    header = request.headers.get("authorization", "")
    bearer = header[7:].strip() if header.lower().startswith("bearer ") else None
    try:
        doc = orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        return _problem(400, "Bad Request", f"body: not valid JSON: {exc}")
    status, body = await ven.on_notification(doc, bearer)
    return JSONResponse(body, status_code=status)


def _problem(status: int, title: str, detail: str) -> JSONResponse:
    return JSONResponse({"type": "about:blank", "title": title, "status": status, "detail": detail}, status_code=status)
