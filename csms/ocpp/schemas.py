"""Compiled validators for the official OCA JSON schemas shipped in the ``ocpp`` package.

Schemas are compiled with ``fastjsonschema`` on first use of an action and cached per
process, so 10,000 connections share one validator per (version, action, direction).

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

The OCA schemas leave ``date-time`` formats unchecked by most validators; fastjsonschema
checks them, so a timestamp without an offset is a PropertyConstraintViolation.
"""

from __future__ import annotations

import ast
import functools
import json
import re
from collections.abc import Callable
from importlib import resources
from typing import Any

import fastjsonschema

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
def validator(version: str, action: str, kind: str) -> Callable[[Any], Any]:
    """Compiled validator for ``<action>Request`` (kind="request") or ``Response``."""
    suffix = "Request" if kind == "request" else "Response"
    # use_default=False: validation must never write schema defaults into the payload
    schema = _load(version, f"{action}{suffix}")
    try:
        return _compile_fast(schema)
    except Exception:  # a fastjsonschema whose code we do not recognise: use it as it is
        return fastjsonschema.compile(schema, use_default=False)


# fastjsonschema's generated code spends most of a MeterValues validation on two things that do
# not affect the outcome: string enums checked as a chain of ``isinstance(x, str) and x == 'A'
# or ...`` (25 comparisons for a measurand), and array item paths built for every item with
# ``"...[{i}]".format(**locals())`` (a dict of all locals per item), although they are only read
# when an error is raised. _compile_fast rewrites just those two constructs, to a frozenset
# lookup and to ``"...[{}]".format(i)``; the checks, their order, the error messages, rules and
# paths stay those of fastjsonschema (tests/ocpp/test_schemas.py compares both on every schema).
_ENUM_CHAIN = re.compile(r"if not \(((?:isinstance\((\w+), str\) and \2 == '(?:[^'\\]|\\.)*'(?: or )?)+)\):")
_ENUM_VALUE = re.compile(r"== ('(?:[^'\\]|\\.)*')")
_LOCALS_FORMAT = re.compile(r'"((?:[^"\\]|\\.)*)"\.format\(\*\*locals\(\)\)')
_PLACEHOLDER = re.compile(r"\{([A-Za-z_]\w*)\}")


def optimized_code(code: str) -> tuple[str, dict[str, frozenset[str]]]:
    """``code`` from ``fastjsonschema.compile_to_code`` with the two rewrites above; returns the
    new code and the enum constants it refers to."""
    enums: dict[str, frozenset[str]] = {}

    def enum_set(m: re.Match[str]) -> str:
        var = m.group(2)
        values = frozenset(ast.literal_eval(v) for v in _ENUM_VALUE.findall(m.group(1)))
        name = f"_ENUM_{len(enums)}"
        enums[name] = values
        return f"if not (isinstance({var}, str) and {var} in {name}):"

    def positional(m: re.Match[str]) -> str:
        text = m.group(1)
        if "{{" in text or "}}" in text or text.count("{") != len(_PLACEHOLDER.findall(text)):
            return m.group(0)
        names = _PLACEHOLDER.findall(text)
        return '"' + _PLACEHOLDER.sub("{}", text) + '".format(' + ", ".join(names) + ")"

    code = _ENUM_CHAIN.sub(enum_set, code)
    code = _LOCALS_FORMAT.sub(positional, code)
    return code, enums


def _compile_fast(schema: dict[str, Any]) -> Callable[[Any], Any]:
    code, enums = optimized_code(fastjsonschema.compile_to_code(schema, use_default=False))
    namespace: dict[str, Any] = dict(enums)
    exec(compile(code, "<ocpp-schema>", "exec"), namespace)  # code generated from the official schemas
    return namespace["validate"]


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
    try:
        validator(version, action, kind)(payload)
    except fastjsonschema.JsonSchemaValueException as exc:
        raise classify(exc) from None
