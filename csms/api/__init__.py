"""The operator HTTP API (FastAPI), served by the running CSMS in its own event loop.

``create_app`` builds the app; ``ApiServer`` serves it as a part of :class:`csms.service.Service`.
Imported lazily so the CLI does not pay for FastAPI when it only issues tokens.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ApiServer", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from .app import create_app

        return create_app
    if name == "ApiServer":
        from .server import ApiServer

        return ApiServer
    raise AttributeError(name)
