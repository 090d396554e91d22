"""Handlers grouped by OCPP functional block (names and requirement ids from the spec).

Each module exports ``HANDLERS: dict[action, handler]`` where a handler is
``async def handler(session: Session, payload: dict) -> dict``, or a plain ``def`` for a
handler that never waits (the RPC endpoint then answers inline, without a task: the hot
Heartbeat, StatusNotification and MeterValues are). Payloads are wire dicts (camelCase),
already validated against the negotiated version's schema.
"""

from __future__ import annotations

from typing import Any


def all_handlers() -> dict[str, Any]:
    from . import (
        authorization,
        datatransfer,
        der,
        diagnostics,
        display_message,
        monitoring,
        pnc,
        provisioning,
        reservation,
        security,
        smartcharging,
        transactions,
    )

    table: dict[str, Any] = {}
    for module in (
        provisioning,
        authorization,
        transactions,
        security,
        diagnostics,
        datatransfer,
        smartcharging,
        reservation,
        display_message,
        monitoring,
        der,
        pnc,
    ):
        overlap = table.keys() & module.HANDLERS.keys()
        if overlap:
            raise RuntimeError(f"actions handled twice: {sorted(overlap)}")
        table.update(module.HANDLERS)
    return table
