"""Validation of wire payloads against the official OCA JSON schemas shipped in the ``ocpp`` package.

The schemas (``ocpp/v201/schemas/*.json``: OCPP 2.0.1 FINAL, ``ocpp/v21/schemas/*.json``: OCPP 2.1
Edition 1) are compiled once per (version, message) with ``fastjsonschema`` and cached. Unlike the
``ocpp`` package's own validation, ``date-time`` formats are checked.
"""

from __future__ import annotations

import functools
import importlib.resources
import json
from collections.abc import Callable, Mapping
from typing import Any

import fastjsonschema

from csms.smartcharging.model import OcppVersion

__all__ = ["WireValidationError", "schema_for", "validate_wire"]

_DIRS = {"2.0.1": "v201", "2.1": "v21"}


class WireValidationError(ValueError):
    """A payload does not match its official schema. ``path`` is the failing location (``data.x.y``)."""

    def __init__(self, message: str, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path


def _schema_name(action: str, response: bool) -> str:
    if action.endswith(("Request", "Response")):
        return action
    return f"{action}{'Response' if response else 'Request'}"


@functools.cache
def schema_for(version: OcppVersion, name: str) -> dict[str, Any]:
    """The parsed official schema ``name`` (e.g. ``SetChargingProfileRequest``) for ``version``."""
    try:
        folder = _DIRS[version]
    except KeyError:
        raise ValueError(f"unknown OCPP version {version!r}") from None
    resource = importlib.resources.files("ocpp") / folder / "schemas" / f"{name}.json"
    if not resource.is_file():
        raise ValueError(f"no OCPP {version} schema named {name!r}")
    return json.loads(resource.read_text(encoding="utf-8"))


@functools.cache
def _validator(version: OcppVersion, name: str) -> Callable[[Any], Any]:
    return fastjsonschema.compile(schema_for(version, name))


def validate_wire(
    action: str,
    payload: Mapping[str, Any],
    version: OcppVersion,
    *,
    response: bool = False,
) -> None:
    """Validate ``payload`` of ``action`` (``"SetChargingProfile"``, or a full schema name such as
    ``"GetCompositeScheduleResponse"``) against the official schema of ``version``.

    Raises :class:`WireValidationError` on mismatch.
    """
    validator = _validator(version, _schema_name(action, response))
    try:
        validator(payload)
    except fastjsonschema.JsonSchemaValueException as exc:
        name = _schema_name(action, response)
        raise WireValidationError(f"{name} ({version}): {exc.message}", exc.name) from None
    except fastjsonschema.JsonSchemaException as exc:  # pragma: no cover - malformed schema
        raise WireValidationError(str(exc)) from None
