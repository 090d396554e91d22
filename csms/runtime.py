"""Process runtime: event loop choice and graceful shutdown on SIGINT / SIGTERM."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable
from typing import Any


def run(main: Callable[[asyncio.Event], Awaitable[Any]]) -> Any:
    """Run ``main(stop_event)`` on uvloop when available; signals set ``stop_event``."""

    async def _wrapper() -> Any:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await main(stop)

    try:
        import uvloop

        return uvloop.run(_wrapper())
    except ImportError:
        return asyncio.run(_wrapper())
