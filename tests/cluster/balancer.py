"""A TCP load balancer for the tests, as HAProxy in ``mode tcp`` would be in front of the nodes:
each new connection goes to the next live backend (round robin, skipping ones that refuse), and
a backend's connections end when it dies - so stations reconnect through it to another node."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable, Sequence


class Balancer:
    def __init__(self, backends: Callable[[], Sequence[int]]) -> None:
        self.backends = backends
        self.port: int | None = None
        self._server: asyncio.Server | None = None
        self._turn = itertools.count()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        ports = list(self.backends())
        start = next(self._turn)
        for i in range(len(ports)):
            port = ports[(start + i) % len(ports)]
            try:
                up_reader, up_writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                continue
            await self._splice(reader, writer, up_reader, up_writer)
            return
        writer.close()

    async def _splice(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
    ) -> None:
        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (OSError, asyncio.CancelledError):
                pass
            finally:
                with contextlib.suppress(Exception):
                    dst.close()

        tasks = [asyncio.create_task(pipe(reader, up_writer)), asyncio.create_task(pipe(up_reader, writer))]
        for t in tasks:
            self._tasks.add(t)
            t.add_done_callback(self._tasks.discard)
        # either side ending ends both
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for t in tasks:
            t.cancel()
        with contextlib.suppress(Exception):
            writer.close()
            up_writer.close()
