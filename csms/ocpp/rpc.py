"""OCPP-J RPC endpoint: one per WebSocket connection, on either side (CSMS or station).

It owns what the ``ocpp`` package's ``ChargePoint`` gets wrong (see
``shared/reference/ocpp.md``):

- inbound CALLs to ``async`` handlers run in their own task, so the receive loop is never
  blocked and a handler may await a call to the same peer; a plain (synchronous) handler
  cannot wait for anything, so it is answered inline, without the cost of a task;
- inbound CALLs are handled one at a time, in order (OCPP-J: one outstanding CALL per
  direction). A CALL that arrives while the peer's previous one is still being handled is
  answered RpcFrameworkError without being processed, or, with ``pipeline`` > 0, waits behind
  it (at most ``pipeline`` of them) and is answered in order. A repeat of the message id in
  flight is answered once; an identical repeat of one of the last few answered CALLs (a
  retransmission) gets the same answer again without being processed twice;
- a CALLRESULT / CALLERROR / CALLRESULTERROR is never answered with a CALLERROR: one that
  matches no outstanding CALL, or cannot be read, is logged and dropped; a malformed one for
  our outstanding CALL fails that call at once (and on 2.1 a malformed CALLRESULT is answered
  with CALLRESULTERROR);
- at most one outbound CALL is outstanding; further calls queue in FIFO order, each with a
  response timeout, and a timeout never blocks the next call;
- responses are matched by message id; a CALLERROR reply raises
  :class:`~csms.ocpp.errors.CallErrorReceived` at the caller;
- every payload in and out is validated with the compiled official schemas;
- malformed frames get the CALLERROR the specification names; unknown actions get
  NotImplemented, known actions without a handler NotSupported, handler crashes
  InternalError with nothing internal on the wire.

The endpoint does no socket I/O itself: the connection layer calls :meth:`feed` with each
received text message and gives it an async ``send`` callable.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import itertools
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import orjson
import structlog

from . import schemas
from .errors import (
    CallError,
    CallErrorReceived,
    CallTimeout,
    ConnectionLost,
    ErrorCode,
    InvalidPayload,
)
from .frames import (
    Call,
    CallErrorFrame,
    CallResult,
    FrameError,
    MessageType,
    Send,
    call_frame_utf8,
    error_frame_utf8,
    parse_frame,
    result_frame_utf8,
    send_frame_utf8,
)

log = structlog.get_logger("csms.rpc")

Handler = Callable[[Any, dict[str, Any]], Awaitable[dict[str, Any] | None] | dict[str, Any] | None]
"""``handler(context, payload) -> response payload`` (None only for SEND messages): an ``async``
function, or a plain function for handlers that never wait (answered inline)."""


def _pending(response: Any) -> bool:
    """True when a handler returned something to await (it is ``async``) rather than its answer."""
    return response is not None and type(response) is not dict


_async_handlers: dict[Any, bool] = {}


def _is_async(handler: Any) -> bool:
    """``async def`` handlers (cached per handler) run in a task from the start."""
    known = _async_handlers.get(handler)
    if known is None:
        known = _async_handlers[handler] = inspect.iscoroutinefunction(handler)
    return known


class RpcObserver(Protocol):
    """Hooks for metrics; every method must be cheap and never raise."""

    def frame(self, direction: str, text: str | bytes) -> None: ...

    """``text``: the received text, or the UTF-8 bytes of a frame we send."""

    def call_in(self, action: str) -> None: ...
    def call_out(self, action: str, seconds: float, outcome: str) -> None: ...
    def error_sent(self, code: str) -> None: ...


_ids = itertools.count(1)

REPLAY_WINDOW = 8
"""Answered CALLs remembered per connection, so that a retransmission is answered again
rather than processed twice."""


class RpcEndpoint:
    __slots__ = (
        "_answered",
        "_backlog",
        "_closed",
        "_lock",
        "_pending",
        "_seq",
        "_serving",
        "_tasks",
        "call_timeout",
        "context",
        "handlers",
        "identity",
        "inbound_guard",
        "observer",
        "outbound_guard",
        "pipeline",
        "queue_timeout",
        "send_text",
        "send_utf8",
        "validate",
        "version",
    )

    def __init__(
        self,
        *,
        version: str,
        send: Callable[[str], Awaitable[None]],
        handlers: Mapping[str, Handler],
        context: Any = None,
        identity: str = "",
        call_timeout: float = 30.0,
        queue_timeout: float | None = None,
        validate: bool = True,
        observer: RpcObserver | None = None,
        pipeline: int = 0,
        send_utf8: Callable[[bytes], Awaitable[None]] | None = None,
    ) -> None:
        if version not in schemas.VERSIONS:
            raise ValueError(f"unsupported OCPP version {version!r}")
        self.version = version
        self.send_text = send
        # ``send_utf8``: sends UTF-8 bytes as a text frame as they are (websockets:
        # ``partial(ws.send, text=True)``); without it each frame is decoded for ``send``
        self.send_utf8 = send_utf8
        self.handlers = handlers
        self.context = context
        self.identity = identity
        self.call_timeout = call_timeout
        self.queue_timeout = queue_timeout
        self.validate = validate
        self.observer = observer
        self.inbound_guard: Callable[[str], None] | None = None
        self.outbound_guard: Callable[[str], None] | None = None
        self._lock: asyncio.Lock | None = None
        self._pending: tuple[str, str, asyncio.Future[dict[str, Any]]] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._seq = next(_ids)
        self._closed: BaseException | None = None
        self.pipeline = pipeline
        self._serving: str | None = None  # message id of the peer's CALL being handled (async)
        self._backlog: collections.deque[tuple[Call, int]] | None = None  # CALLs waiting behind it
        self._answered: dict[str, tuple[int, bytes]] = {}  # id -> (hash of the CALL text, answer)

    # ------------------------------------------------------------------ inbound
    async def feed(self, text: str | bytes) -> None:
        """Process one received message. Returns quickly: async handlers run in tasks."""
        if self.observer is not None:
            self.observer.frame("in", text if isinstance(text, str) else text.decode(errors="replace"))
        try:
            frame = parse_frame(text, version=self.version)
        except FrameError as exc:
            await self._unreadable(exc)
            return
        kind = type(frame)
        if kind is Call:
            call: Call = frame  # type: ignore[assignment]
            key = hash(text)
            if self._serving is not None:
                answer = self._pipelined(call, key)
            else:
                seen = self._answered.get(call.message_id)
                if seen is not None and seen[0] == key:
                    log.info("retransmitted CALL answered again", station=self.identity, message_id=call.message_id)
                    answer = seen[1]
                else:
                    answer = self._start(call, key)
            if answer is not None:
                try:
                    await self._transmit(answer)
                except ConnectionLost:
                    pass  # the receive loop ends on its own
        elif kind is CallResult or kind is CallErrorFrame:
            self._resolve(frame)  # type: ignore[arg-type]
        elif kind is Send:
            task = asyncio.create_task(self._run_send(frame))  # type: ignore[arg-type]
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _start(self, call: Call, key: int) -> bytes | None:
        """Handle a CALL: the answer frame to send, or None when an async handler now runs in a
        task (which sends the answer itself)."""
        try:
            handler = self._admit(call)
            # an async handler may wait (even for a call to this station): it runs in its own
            # task; a plain one cannot, so it is answered right here
            response = None if _is_async(handler) else handler(self.context, call.payload)
        except CallError as exc:
            text = self._error_text(call.message_id, exc.code, exc.description, exc.details)
        except Exception:
            text = self._crashed(call)
        else:
            if _is_async(handler) or _pending(response):
                self._serving = call.message_id
                task = asyncio.create_task(self._finish_call(call, key, handler, response))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                return None
            text = self._answer(call, response)  # type: ignore[arg-type]
        self._remember(call.message_id, key, text)
        return text

    def _remember(self, message_id: str, key: int, text: bytes) -> None:
        answered = self._answered
        answered[message_id] = (key, text)
        if len(answered) > REPLAY_WINDOW:
            del answered[next(iter(answered))]

    def _pipelined(self, call: Call, key: int) -> bytes | None:
        """A CALL that arrived while the peer's previous CALL is still being handled."""
        mid = call.message_id
        backlog = self._backlog
        if mid == self._serving or (backlog is not None and any(c.message_id == mid for c, _ in backlog)):
            log.info("repeat of a CALL in flight: answered once", station=self.identity, message_id=mid)
            return None
        if self.pipeline > 0:
            if backlog is None:
                backlog = self._backlog = collections.deque()
            if len(backlog) < self.pipeline:
                backlog.append((call, key))
                return None
        log.warning(
            "CALL sent while another is outstanding: refused",
            station=self.identity,
            message_id=mid,
            action=call.action,
            outstanding=self._serving,
        )
        return self._error_text(
            mid,
            ErrorCode.RPC_FRAMEWORK_ERROR,
            f"CALL {self._serving!r} is still being processed; OCPP-J allows one outstanding CALL: "
            "send the next when it is answered",
        )

    async def _unreadable(self, exc: FrameError) -> None:
        """A frame that did not parse: the CALLERROR the spec names, or for a response frame
        no CALLERROR ever (the CALL it answers, if we can tell, fails at once)."""
        if exc.response is None:
            log.warning("bad frame", station=self.identity, code=str(exc.code), reason=exc.description)
            if exc.reply:
                await self._send_error(exc.message_id, exc.code, exc.description)
            return
        pending = self._pending
        if pending is None or pending[0] != exc.message_id or pending[2].done():
            log.warning(
                "unreadable response matches no outstanding call: dropped",
                station=self.identity,
                message_id=exc.message_id,
                reason=exc.description,
            )
            return
        _, action, fut = pending
        log.warning("unreadable response to our call", station=self.identity, action=action, reason=exc.description)
        fut.set_exception(InvalidPayload(action, exc.code, f"malformed response: {exc.description}"))
        if self.version == "2.1" and exc.response == MessageType.CALLRESULT:
            try:
                await self._send_error(exc.message_id, exc.code, exc.description, result_error=True)
            except ConnectionLost:
                pass

    def _resolve(self, frame: CallResult | CallErrorFrame) -> None:
        pending = self._pending
        if isinstance(frame, CallErrorFrame) and frame.result_error:
            log.warning(
                "peer could not process our CALLRESULT",
                station=self.identity,
                message_id=frame.message_id,
                code=frame.code,
                description=frame.description,
            )
            return
        if pending is None or pending[0] != frame.message_id:
            log.warning("response matches no outstanding call", station=self.identity, message_id=frame.message_id)
            return
        _, action, fut = pending
        if fut.done():
            return
        if isinstance(frame, CallResult):
            fut.set_result(frame.payload)
        else:
            fut.set_exception(CallErrorReceived(action, frame.code, frame.description, frame.details))

    def _admit(self, call: Call) -> Handler:
        """Checks before a handler runs; raises the CallError to answer with."""
        action = call.action
        if self.observer is not None:
            self.observer.call_in(action)
        if action not in schemas.actions(self.version):
            raise CallError(ErrorCode.NOT_IMPLEMENTED, f"action {action!r} is not defined in OCPP {self.version}")
        handler = self.handlers.get(action)
        if handler is None:
            raise CallError(ErrorCode.NOT_SUPPORTED, f"action {action} is not supported")
        if self.validate:
            self._check(action, "request", call.payload, inbound=True)
        if self.inbound_guard is not None:
            self.inbound_guard(action)
        return handler

    def _result(self, call: Call, response: dict[str, Any] | None) -> bytes:
        """The CALLRESULT frame for a handler's response, validated."""
        if response is None:
            response = {}
        if self.validate:
            try:
                self._check(call.action, "response", response, inbound=False)
            except InvalidPayload as exc:
                log.error(
                    "handler built an invalid response", station=self.identity, action=call.action, error=str(exc)
                )
                raise CallError(ErrorCode.INTERNAL_ERROR, f"internal error handling {call.action}") from None
        return result_frame_utf8(call.message_id, response)

    def _answer(self, call: Call, response: dict[str, Any] | None) -> bytes:
        try:
            return self._result(call, response)
        except CallError as exc:
            return self._error_text(call.message_id, exc.code, exc.description, exc.details)

    def _crashed(self, call: Call) -> bytes:
        log.exception("handler failed", station=self.identity, action=call.action)
        return self._error_text(call.message_id, ErrorCode.INTERNAL_ERROR, f"internal error handling {call.action}")

    async def _finish_call(self, call: Call, key: int, handler: Handler, pending: Any = None) -> None:
        """Await an async handler (``pending``: what a plain function handed back to await), send
        its answer, then serve the CALLs that waited behind it."""
        try:
            try:
                response = await (handler(self.context, call.payload) if pending is None else pending)
            except CallError as exc:
                text = self._error_text(call.message_id, exc.code, exc.description, exc.details)
            except Exception:
                text = self._crashed(call)
            else:
                text = self._answer(call, response)
            self._remember(call.message_id, key, text)
            await self._transmit(text)
            # the CALLs that waited behind it, in order; each holds the line while it is served
            backlog = self._backlog
            while backlog:
                queued, queued_key = backlog.popleft()
                self._serving = queued.message_id
                text = self._start(queued, queued_key)
                if text is None:
                    return  # an async handler: its own task carries on from here
                await self._transmit(text)
        except ConnectionLost:
            pass
        self._serving = None

    async def _run_send(self, msg: Send) -> None:
        """2.1 SEND (type 6): dispatched like a CALL but never answered."""
        handler = self.handlers.get(msg.action)
        if handler is None or msg.action not in schemas.actions(self.version):
            log.info("SEND for unhandled action ignored", station=self.identity, action=msg.action)
            return
        try:
            if self.validate:
                self._check(msg.action, "request", msg.payload, inbound=True)
            result = handler(self.context, msg.payload)
            if _pending(result):
                await result  # type: ignore[misc]
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("SEND message dropped", station=self.identity, action=msg.action, error=str(exc))

    def _check(self, action: str, kind: str, payload: dict[str, Any], *, inbound: bool) -> None:
        try:
            schemas.validate(self.version, action, kind, payload)
        except schemas.SchemaViolation as exc:
            if inbound:
                raise CallError(exc.code, f"{action}: {exc.message}"[:255], {"path": exc.path}) from None
            raise InvalidPayload(action, exc.code, exc.message, path=exc.path, request=kind == "request") from None

    # ------------------------------------------------------------------ outbound
    async def call(self, action: str, payload: dict[str, Any], *, timeout: float | None = None) -> dict[str, Any]:
        """Send a CALL and return the peer's CALLRESULT payload.

        Raises CallErrorReceived, CallTimeout, ConnectionLost, InvalidPayload (outbound
        payload or the peer's response breaks the schema) or NotAllowed (outbound guard).
        """
        if self._closed is not None:
            raise ConnectionLost(f"{self.identity}: connection closed")
        if self.validate:  # the one validation of an outbound request (the API relies on it)
            self._check(action, "request", payload, inbound=False)
        if self.outbound_guard is not None:
            self.outbound_guard(action)
        if self._lock is None:
            self._lock = asyncio.Lock()
        wait = self.queue_timeout
        try:
            if wait is None:
                await self._lock.acquire()
            else:
                async with asyncio.timeout(wait):
                    await self._lock.acquire()
        except TimeoutError:
            raise CallTimeout(action, wait or 0) from None
        timeout = self.call_timeout if timeout is None else timeout
        started = time.perf_counter()
        outcome = "ok"
        try:
            if self._closed is not None:
                raise ConnectionLost(f"{self.identity}: connection closed")
            self._seq += 1
            mid = f"{self._seq:x}-{id(self) & 0xFFFFFF:x}"
            fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
            self._pending = (mid, action, fut)
            try:
                frame = call_frame_utf8(mid, action, payload)
            except orjson.JSONEncodeError:
                outcome = "invalid"
                raise
            try:
                await self._transmit(frame)
            except ConnectionLost:
                if fut.done():  # close() failed it while the send waited: nobody else will look
                    fut.exception()
                raise
            try:
                async with asyncio.timeout(timeout):
                    response = await fut
            except TimeoutError:
                outcome = "timeout"
                raise CallTimeout(action, timeout) from None
            except CallErrorReceived as exc:
                outcome = exc.code
                raise
            except InvalidPayload:
                outcome = "invalid"
                raise
        except ConnectionLost:
            outcome = "closed"
            raise
        finally:
            self._pending = None
            self._lock.release()
            if self.observer is not None:
                self.observer.call_out(action, time.perf_counter() - started, outcome)
        if self.validate:
            try:
                self._check(action, "response", response, inbound=False)
            except InvalidPayload as exc:
                if self.version == "2.1":
                    await self._send_error(mid, exc.code, exc.message, result_error=True)
                raise
        return response

    async def send_message(self, action: str, payload: dict[str, Any]) -> None:
        """2.1 SEND (type 6): fire and forget; allowed while a CALL is outstanding."""
        if self.version != "2.1":
            raise ValueError("SEND messages exist only in OCPP 2.1")
        if self.validate:
            self._check(action, "request", payload, inbound=False)
        self._seq += 1
        await self._transmit(send_frame_utf8(f"s{self._seq:x}", action, payload))

    async def _send_error(
        self,
        message_id: str,
        code: ErrorCode | str,
        description: str,
        details: dict[str, Any] | None = None,
        *,
        result_error: bool = False,
    ) -> None:
        await self._transmit(self._error_text(message_id, code, description, details, result_error=result_error))

    def _error_text(
        self,
        message_id: str,
        code: ErrorCode | str,
        description: str,
        details: dict[str, Any] | None = None,
        *,
        result_error: bool = False,
    ) -> bytes:
        if self.observer is not None:
            self.observer.error_sent(str(code))
        return error_frame_utf8(message_id, str(code), description, details, result_error=result_error)

    async def _transmit(self, data: bytes) -> None:
        if self._closed is not None:
            raise ConnectionLost(f"{self.identity}: connection closed")
        if self.observer is not None:
            self.observer.frame("out", data)
        try:
            if self.send_utf8 is not None:
                await self.send_utf8(data)
            else:
                await self.send_text(data.decode())
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise ConnectionLost(f"{self.identity}: send failed: {exc}") from exc

    # ------------------------------------------------------------------ lifecycle
    @property
    def busy(self) -> bool:
        return self._pending is not None

    def close(self, reason: BaseException | None = None) -> None:
        """Fail the outstanding call and cancel running handlers (idempotent)."""
        if self._closed is not None:
            return
        self._closed = reason or ConnectionLost(f"{self.identity}: connection closed")
        if self._pending is not None and not self._pending[2].done():
            self._pending[2].set_exception(ConnectionLost(f"{self.identity}: connection closed"))
        for task in list(self._tasks):
            task.cancel()
