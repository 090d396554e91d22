"""Compiled validators for the official OCA JSON schemas shipped in the ``ocpp`` package.

Every payload is checked by ``jsonschema-rs`` (compiled Rust validators, all built at startup
by :func:`prepare` and shared by every connection). A payload it rejects is run through
``fastjsonschema``, whose exception names the violated keyword and path, to pick the CALLERROR
code below; the two agree on every verdict (``tests/ocpp/test_schemas.py`` holds them to it), and
should they ever differ, fastjsonschema's acceptance wins.

Schema failures map onto OCPP-J error codes by the class of the violated keyword
(documented in the README, tested in ``tests/ocpp/test_schemas.py``):

=====================================  =================================
violated keyword                       CALLERROR code
=====================================  =================================
``type`` (the payload is no object)    FormatViolation
``additionalProperties`` (unknown key) FormatViolation
``type`` (a field)                     TypeConstraintViolation
``required``, ``minItems``, ``maxItems`` OccurrenceConstraintViolation
``enum``, ``maxLength``, ``minLength``, PropertyConstraintViolation
``minimum``, ``maximum``, ``format``,
``pattern``, ``multipleOf``, ``const``
anything else                          FormatViolation
=====================================  =================================

The OCA schemas leave ``date-time`` formats unchecked by most validators; both libraries are
told to check them, so a timestamp without an offset is a PropertyConstraintViolation.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable
from importlib import resources
from typing import Any

import fastjsonschema
import jsonschema_rs

from .errors import ErrorCode

VERSIONS = ("2.0.1", "2.1")
_DIR = {"2.0.1": "v201", "2.1": "v21"}  # folders of the ``ocpp`` package


def _schemas_dir(version: str) -> Any:
    """The version's schema folder, found without importing ``ocpp.v201`` / ``ocpp.v21`` (half a
    second of dataclass building that would stall the event loop at the first CALL)."""
    return resources.files("ocpp") / _DIR[version] / "schemas"


_CODE_BY_RULE = {
    "type": ErrorCode.TYPE_CONSTRAINT_VIOLATION,
    "additionalProperties": ErrorCode.FORMAT_VIOLATION,
    "required": ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION,
    "minItems": ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION,
    "maxItems": ErrorCode.OCCURRENCE_CONSTRAINT_VIOLATION,
    "enum": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "maxLength": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "minLength": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "minimum": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "maximum": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "exclusiveMinimum": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "exclusiveMaximum": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "format": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "pattern": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "multipleOf": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
    "const": ErrorCode.PROPERTY_CONSTRAINT_VIOLATION,
}


class SchemaViolation(Exception):
    def __init__(self, code: ErrorCode, message: str, path: str):
        super().__init__(message)
        self.code = code
        self.message = message
        self.path = path


@functools.cache
def actions(version: str) -> frozenset[str]:
    """Every action the given version defines (from its ``<Action>Request.json`` files)."""
    folder = _schemas_dir(version)
    return frozenset(p.name[: -len("Request.json")] for p in folder.iterdir() if p.name.endswith("Request.json"))


@functools.cache
def _load(version: str, name: str) -> dict[str, Any]:
    path = _schemas_dir(version) / f"{name}.json"
    schema = json.loads(path.read_text(encoding="utf-8"))
    schema.pop("$id", None)  # URNs confuse ref resolution; all refs are local (#/definitions/...)
    return schema


@functools.cache
def checker(version: str, action: str, kind: str) -> Callable[[Any], bool]:
    """``is_valid`` of the ``jsonschema-rs`` validator for ``<action>Request`` (kind="request")
    or ``Response``: the verdict of every validation (about 1.5 us for a MeterValues with six
    samples, against 20 us for the fastest fastjsonschema code). Compiling all 308 takes about
    0.15 s, so :func:`prepare` does it at startup and no first CALL waits for a compile."""
    suffix = "Request" if kind == "request" else "Response"
    return jsonschema_rs.validator_for(_load(version, f"{action}{suffix}"), validate_formats=True).is_valid


@functools.cache
def validator(version: str, action: str, kind: str) -> Callable[[Any], Any]:
    """fastjsonschema validator for the same schema: run only on a payload :func:`checker`
    rejected, to name the violated rule and path that pick the CALLERROR code (compiled on the
    first rejection). It is also the last word: a payload it accepts is accepted."""
    suffix = "Request" if kind == "request" else "Response"
    # use_default=False: validation must never write schema defaults into the payload
    return fastjsonschema.compile(_load(version, f"{action}{suffix}"), use_default=False)


def prepare(versions: Iterable[str] = VERSIONS) -> None:
    """Compile the checker of every action of ``versions`` now (startup), not at a first CALL."""
    for version in versions:
        for action in actions(version):
            checker(version, action, "request")
            checker(version, action, "response")


def enum_values(version: str, schema_name: str, definition: str) -> tuple[str, ...]:
    """The values of an enumeration in an official schema, e.g.
    ``enum_values("2.1", "TriggerMessageRequest", "MessageTriggerEnumType")``."""
    return tuple(_load(version, schema_name)["definitions"][definition]["enum"])


def classify(exc: fastjsonschema.JsonSchemaValueException) -> SchemaViolation:
    rule = exc.rule or ""
    path = ".".join(str(p) for p in (exc.path or [])[1:]) or "payload"
    code = _CODE_BY_RULE.get(rule, ErrorCode.FORMAT_VIOLATION)
    if rule == "type" and path == "payload":
        code = ErrorCode.FORMAT_VIOLATION
    message = exc.message.replace("data.", "").replace("data ", "payload ")
    return SchemaViolation(code, message, path)


def validate(version: str, action: str, kind: str, payload: Any) -> None:
    """Raise :class:`SchemaViolation` when ``payload`` breaks the official schema."""
    if checker(version, action, kind)(payload):
        return
    try:
        validator(version, action, kind)(payload)
    except fastjsonschema.JsonSchemaValueException as exc:
        raise classify(exc) from None
