"""OCPP-J RPC error codes and the exception hierarchy (OCPP-J Part 4, section 4.3)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    FORMAT_VIOLATION = "FormatViolation"
    GENERIC_ERROR = "GenericError"
    INTERNAL_ERROR = "InternalError"
    MESSAGE_TYPE_NOT_SUPPORTED = "MessageTypeNotSupported"
    NOT_IMPLEMENTED = "NotImplemented"
    NOT_SUPPORTED = "NotSupported"
    OCCURRENCE_CONSTRAINT_VIOLATION = "OccurrenceConstraintViolation"
    PROPERTY_CONSTRAINT_VIOLATION = "PropertyConstraintViolation"
    PROTOCOL_ERROR = "ProtocolError"
    RPC_FRAMEWORK_ERROR = "RpcFrameworkError"
    SECURITY_ERROR = "SecurityError"
    TYPE_CONSTRAINT_VIOLATION = "TypeConstraintViolation"


class OcppError(Exception):
    """Base of every error this package raises."""


class CallError(OcppError):
    """An error to be answered with a CALLERROR (raised by handlers or the validator).

    ``description`` goes on the wire (truncated to 255 chars), so it must never carry
    internals such as tracebacks.
    """

    def __init__(self, code: ErrorCode, description: str = "", details: dict[str, Any] | None = None):
        super().__init__(f"{code}: {description}")
        self.code = ErrorCode(code)
        self.description = description[:255]
        self.details = details or {}


class CallErrorReceived(OcppError):
    """The peer answered our CALL with a CALLERROR; raised at the caller, never swallowed."""

    def __init__(self, action: str, code: str, description: str, details: dict[str, Any]):
        super().__init__(f"{action} -> CALLERROR {code}: {description}")
        self.action = action
        self.code = code
        self.description = description
        self.details = details


class CallTimeout(OcppError):
    """The peer did not answer our CALL within the timeout."""

    def __init__(self, action: str, timeout: float):
        super().__init__(f"{action}: no answer within {timeout:g} s")
        self.action = action
        self.timeout = timeout


class ConnectionLost(OcppError):
    """The connection closed before the CALL could be sent or answered."""


class InvalidPayload(OcppError):
    """A payload failed schema validation: our outbound request (``request=True``: our bug, or
    bad operator input; ``path`` names the field) or the peer's response."""

    def __init__(self, action: str, code: ErrorCode, message: str, *, path: str = "", request: bool = False):
        super().__init__(f"{action}: {code}: {message}")
        self.action = action
        self.code = code
        self.message = message
        self.path = path
        self.request = request


class NotAllowed(OcppError):
    """The station's state does not allow this call (e.g. a Pending station, B02.FR.xx)."""
