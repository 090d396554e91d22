"""Small builders of wire-format charging profiles for the smart-charging tests."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from csms.smartcharging.model import ChargingProfile, InstalledProfile, format_datetime

T0 = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
HOUR = 3600


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def period(start: int, limit: float | None = None, **fields: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"startPeriod": start}
    if limit is not None:
        out["limit"] = limit
    out.update(fields)
    return out


def profile(
    *,
    id: int = 1,
    stack: int = 0,
    purpose: str = "TxDefaultProfile",
    kind: str = "Absolute",
    periods: Sequence[dict[str, Any] | tuple[int, float]] = ((0, 16.0),),
    unit: str = "A",
    start_schedule: datetime | None = T0,
    duration: int | None = None,
    recurrency: str | None = None,
    valid_from: datetime | None = None,
    valid_to: datetime | None = None,
    tx: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    schedule: dict[str, Any] = {
        "id": 1,
        "chargingRateUnit": unit,
        "chargingSchedulePeriod": [p if isinstance(p, dict) else period(p[0], p[1]) for p in periods],
    }
    if start_schedule is not None and kind != "Relative":
        schedule["startSchedule"] = format_datetime(start_schedule)
    if duration is not None:
        schedule["duration"] = duration
    out: dict[str, Any] = {
        "id": id,
        "stackLevel": stack,
        "chargingProfilePurpose": purpose,
        "chargingProfileKind": kind,
        "chargingSchedule": [schedule],
    }
    if recurrency is not None:
        out["recurrencyKind"] = recurrency
    if valid_from is not None:
        out["validFrom"] = format_datetime(valid_from)
    if valid_to is not None:
        out["validTo"] = format_datetime(valid_to)
    if tx is not None:
        out["transactionId"] = tx
    out.update(extra)
    return out


def request(evse_id: int, prof: dict[str, Any]) -> dict[str, Any]:
    return {"evseId": evse_id, "chargingProfile": prof}


def installed(evse_id: int, prof: dict[str, Any]) -> InstalledProfile:
    return InstalledProfile(evse_id, ChargingProfile.from_wire(prof))
