"""Serve the API with uvicorn inside the CSMS's event loop (a part of :class:`csms.service.Service`).

``uvicorn.Server.serve()`` runs as a task of the running loop; the listening socket is bound
here so port 0 works (``ApiServer.port`` is the bound port) and a busy port fails ``start()``
with a clear message. uvicorn's own signal handling is disabled: the CSMS runtime owns SIGINT /
SIGTERM and stops the API through :meth:`ApiServer.stop`.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Generator
from typing import Any

import structlog
import uvicorn

from csms.config import ApiSettings

from .app import create_app

log = structlog.get_logger("csms.api")


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:  # the CSMS runtime handles signals
        yield


class ApiServer:
    """``start()`` / ``stop()`` like every service part; ``port`` and ``url`` once started."""

    def __init__(self, service_or_central: Any, settings: ApiSettings | None = None) -> None:
        self.target = service_or_central
        central = getattr(service_or_central, "central", service_or_central)
        self.settings = settings or central.settings.api
        self.app = create_app(service_or_central)
        self.port: int | None = None
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._sock: socket.socket | None = None

    @property
    def url(self) -> str:
        host = self.settings.host
        if host in ("0.0.0.0", "", "::"):
            host = "127.0.0.1"
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    def _bind(self) -> socket.socket:
        host, port = self.settings.host, self.settings.port
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # proto=IPPROTO_TCP so asyncio sets TCP_NODELAY on accepted connections (without it every
        # response pays a 40 ms delayed-ACK stall: headers and body are separate writes)
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            sock.close()
            raise RuntimeError(f"HTTP API cannot listen on {host}:{port}: {exc.strerror or exc}") from None
        sock.listen(128)
        sock.setblocking(False)
        return sock

    async def start(self) -> None:
        self.app.state.event_book = self.app.state.ctx.event_book()
        self._sock = self._bind()
        self.port = self._sock.getsockname()[1]
        config = uvicorn.Config(
            self.app,
            lifespan="off",
            log_config=None,
            access_log=False,
            server_header=False,
            timeout_graceful_shutdown=5,
            timeout_keep_alive=5,
        )
        self._server = _Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[self._sock]), name="csms-api")
        while not self._server.started:
            if self._task.done():
                exc = self._task.exception() if not self._task.cancelled() else None
                raise RuntimeError(f"HTTP API failed to start: {exc!r}")
            await asyncio.sleep(0.01)
        log.info("http api listening", url=self.url, docs=f"{self.url}/docs")

    async def stop(self) -> None:
        server, task = self._server, self._task
        if server is None or task is None:
            return
        from csms.web import close_console

        await close_console(self.app)  # end the console's server-sent event streams first
        server.should_exit = True
        try:
            async with asyncio.timeout(8):
                await task
        except TimeoutError:
            server.force_exit = True
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        except (Exception, SystemExit):  # uvicorn calls sys.exit() on a few fatal paths
            log.exception("http api stopped with an error")
        finally:
            self._server = None
            self._task = None
            if self._sock is not None:
                self._sock.close()
                self._sock = None
        log.info("http api stopped")
