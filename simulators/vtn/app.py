"""An OpenADR 3.0.1 VTN simulator: the parts of the REST API a VEN uses, in memory.

Paths, field names and status codes follow the specification's OpenAPI document
(``oadr3.0.1.yaml``), served under any base path (the VEN is given the full base URL):

==============================================  ==========================================
``POST /auth/token``                            OAuth2 client credentials (form body) ->
                                                ``{access_token, token_type, expires_in}``;
                                                400 ``invalid_request`` /
                                                ``unsupported_grant_type``, 401
                                                ``invalid_client``
``GET|POST /programs``, ``/programs/{id}``      programs (business logic writes)
``GET|POST /events``, ``/events/{id}``          events; ``GET`` filters ``programID``,
                                                ``targetType`` + ``targetValues``, ``skip``,
                                                ``limit`` (at most 50)
``GET|POST /reports``, ``/reports/{id}``        reports (VENs write); filters ``programID``,
                                                ``eventID``, ``clientName``
``GET|POST /subscriptions``, ``/{id}``          webhook subscriptions
``GET|POST /vens``, ``/vens/{id}``              VENs; ``venName`` unique (409)
``/vens/{id}/resources[/{resourceID}]``         a VEN's resources; ``resourceName`` unique
                                                per VEN (409)
==============================================  ==========================================

Creation answers 201, reads, updates and deletes 200 (a delete returns the deleted object),
an unknown id 404, a missing or unknown bearer token 403, a write outside the client's role
403, a body that does not match the schema 400 - all as ``problem`` objects
(``{type, title, status, detail}``; ``detail`` names the field). Clients are ``ven`` or
``bl`` (business logic): only ``bl`` writes programs and events.

Every create, update or delete notifies the subscriptions whose ``objectOperations`` match
(object type and operation) and whose ``programID`` matches the object's (a program's own
``id``): ``POST callbackUrl`` with ``{objectType, operation, object}`` and
``Authorization: Bearer <bearerToken>``. Deliveries are fire-and-forget with a short timeout
(a VEN that cannot be reached catches up by polling); :attr:`VtnState.deliveries` records each
attempt.

Run it standalone: ``python -m simulators.vtn --port 8081 --client ven-1:secret:ven
--client bl:secret:bl``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import secrets
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import parse_qs

import httpx
import structlog
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError

from csms.grid.openadr3.models import Event, Program, Report, Resource, Subscription, Ven

log = structlog.get_logger("simulators.vtn")

Role = Literal["ven", "bl"]
MAX_LIMIT = 50


@dataclass
class Delivery:
    url: str
    object_type: str
    operation: str
    object_id: str | None
    status: int | None
    error: str | None = None


@dataclass
class VtnState:
    """Everything the VTN holds; survives a server restart (the same object is served again)."""

    clients: dict[str, tuple[str, Role]] = field(default_factory=dict)
    """client_id -> (client_secret, role)."""
    token_ttl_s: int = 3600
    tokens: dict[str, tuple[str, Role]] = field(default_factory=dict)
    objects: dict[str, dict[str, dict[str, Any]]] = field(
        default_factory=lambda: {k: {} for k in ("programs", "events", "reports", "subscriptions", "vens")}
    )
    resources: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    deliveries: list[Delivery] = field(default_factory=list)
    requests: list[tuple[str, str, int]] = field(default_factory=list)
    """(method, path, status) of every request, for tests."""
    notify_timeout_s: float = 2.0
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def new_id(self, kind: str) -> str:
        return f"{kind}-{next(self._ids)}"

    def add_client(self, client_id: str, secret: str, role: Role = "ven") -> None:
        self.clients[client_id] = (secret, role)

    def reports_for(self, event_id: str) -> list[dict[str, Any]]:
        return [r for r in self.objects["reports"].values() if r.get("eventID") == event_id]


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def problem(status: int, title: str, detail: str) -> JSONResponse:
    return JSONResponse(
        {"type": "about:blank", "title": title, "status": status, "detail": detail},
        status_code=status,
        media_type="application/json",
    )


class _Refused(Exception):
    def __init__(self, status: int, title: str, detail: str) -> None:
        super().__init__(detail)
        self.response = problem(status, title, detail)


def _validation_detail(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:3]:
        loc = ""
        for p in err["loc"]:
            loc += f"[{p}]" if isinstance(p, int) else (f".{p}" if loc else str(p))
        parts.append(f"{loc}: {err['msg']}")
    return "; ".join(parts)


def create_app(state: VtnState | None = None, *, clock: Callable[[], str] = _now) -> FastAPI:
    """The VTN as an ASGI app over ``state`` (a fresh one if not given)."""
    st = state or VtnState()
    app = FastAPI(title="OpenADR 3.0.1 VTN simulator", version="3.0.1", docs_url=None, redoc_url=None)
    app.state.vtn = st
    background: set[asyncio.Task[Any]] = set()

    @app.middleware("http")
    async def record(request: Request, call_next: Any) -> Any:
        response = await call_next(request)
        st.requests.append((request.method, request.url.path, response.status_code))
        return response

    def auth(request: Request, *, write: str | None = None) -> tuple[str, Role]:
        header = request.headers.get("authorization", "")
        token = header[7:].strip() if header.lower().startswith("bearer ") else ""
        who = st.tokens.get(token)
        if who is None:
            raise _Refused(403, "Forbidden", "missing or unknown bearer token (POST /auth/token first)")
        if write is not None and who[1] != "bl" and write in ("programs", "events"):
            raise _Refused(403, "Forbidden", f"client {who[0]!r} (role {who[1]}) may not write {write}")
        if write is not None and who[1] == "bl" and write == "reports":
            raise _Refused(403, "Forbidden", "only VENs write reports")
        return who

    async def body_of(request: Request, model: type[BaseModel]) -> dict[str, Any]:
        try:
            raw = await request.json()
        except ValueError:
            raise _Refused(400, "Bad Request", "body is not JSON") from None
        if not isinstance(raw, dict):
            raise _Refused(400, "Bad Request", "body must be a JSON object")
        try:
            obj = model.model_validate(raw)
        except ValidationError as exc:
            raise _Refused(400, "Bad Request", _validation_detail(exc)) from None
        return obj.model_dump(mode="json", exclude_none=True)

    def notify(object_type: str, operation: str, obj: dict[str, Any]) -> None:
        program_id = obj.get("id") if object_type == "PROGRAM" else obj.get("programID")
        for sub in list(st.objects["subscriptions"].values()):
            if sub.get("programID") != program_id:
                continue
            for op in sub.get("objectOperations", []):
                if object_type in op.get("objects", []) and operation in op.get("operations", []):
                    coro = _deliver(op["callbackUrl"], op.get("bearerToken"), object_type, operation, obj)
                    t = asyncio.create_task(coro)
                    background.add(t)
                    t.add_done_callback(background.discard)

    async def _deliver(url: str, token: str | None, object_type: str, operation: str, obj: dict[str, Any]) -> None:
        doc = {"objectType": object_type, "operation": operation, "object": obj}
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        rec = Delivery(url, object_type, operation, obj.get("id"), None)
        try:
            async with httpx.AsyncClient(timeout=st.notify_timeout_s) as client:
                resp = await client.post(url, json=doc, headers=headers)
            rec.status = resp.status_code
        except httpx.HTTPError as exc:
            rec.error = f"{type(exc).__name__}: {exc}"
            log.info("VTN notification not delivered", url=url, error=rec.error)
        st.deliveries.append(rec)

    @app.exception_handler(_Refused)
    async def refused(_: Request, exc: _Refused) -> JSONResponse:
        return exc.response

    # ------------------------------------------------------------------ auth
    @app.post("/auth/token")
    async def token(request: Request) -> JSONResponse:
        # application/x-www-form-urlencoded (RFC 6749 4.4.2), parsed here: no multipart library needed
        form = {k: v[0] for k, v in parse_qs((await request.body()).decode("utf-8", "replace")).items()}
        grant, cid, secret = form.get("grant_type"), form.get("client_id"), form.get("client_secret")
        if not cid or not secret or not grant:
            given = (("grant_type", grant), ("client_id", cid), ("client_secret", secret))
            missing = next(k for k, v in given if not v)
            return JSONResponse(
                {"error": "invalid_request", "error_description": f"Request was missing the '{missing}' parameter."},
                status_code=400,
            )
        if grant != "client_credentials":
            return JSONResponse(
                {"error": "unsupported_grant_type", "error_description": f"grant_type {grant!r} is not supported"},
                status_code=400,
            )
        known = st.clients.get(str(cid))
        if known is None or not secrets.compare_digest(known[0], str(secret)):
            return JSONResponse(
                {"error": "invalid_client", "error_description": "unknown client_id or wrong client_secret"},
                status_code=401,
            )
        access = secrets.token_urlsafe(24)
        st.tokens[access] = (str(cid), known[1])
        return JSONResponse({"access_token": access, "token_type": "Bearer", "expires_in": st.token_ttl_s})

    # ------------------------------------------------------------------ generic collections
    def collection(name: str, model: type[BaseModel], object_type: str, filters: tuple[str, ...]) -> None:
        store = st.objects[name]
        prefix = name[:-1]

        @app.get(f"/{name}", name=f"search_{name}")
        async def search(request: Request) -> JSONResponse:
            auth(request)
            q = request.query_params
            items = list(store.values())
            for key in filters:
                if q.get(key) is not None:
                    items = [o for o in items if str(o.get(key)) == q[key]]
            target_type = q.get("targetType")
            values = q.getlist("targetValues")
            if target_type:
                items = [o for o in items if _targeted(o, target_type, values)]
            try:
                skip = int(q.get("skip", 0))
                limit = int(q.get("limit", MAX_LIMIT))
            except ValueError:
                return problem(400, "Bad Request", "skip and limit must be integers")
            if skip < 0 or not 0 <= limit <= MAX_LIMIT:
                return problem(400, "Bad Request", f"skip must be >= 0 and limit 0..{MAX_LIMIT}")
            return JSONResponse(items[skip : skip + limit])

        @app.post(f"/{name}", status_code=201, name=f"create_{prefix}")
        async def create(request: Request) -> JSONResponse:
            who = auth(request, write=name)
            obj = await body_of(request, model)
            if name == "vens" and any(v["venName"] == obj["venName"] for v in store.values()):
                return problem(409, "Conflict", f"venName {obj['venName']!r} already exists")
            if name == "programs" and any(p["programName"] == obj["programName"] for p in store.values()):
                return problem(409, "Conflict", f"programName {obj['programName']!r} already exists")
            now = clock()
            obj.update(id=st.new_id(prefix), createdDateTime=now, modificationDateTime=now, objectType=object_type)
            if name == "vens":
                obj.pop("resources", None)
                st.resources[obj["id"]] = {}
            store[obj["id"]] = obj
            log.debug("VTN created", kind=prefix, id=obj["id"], client=who[0])
            notify(object_type, "POST", obj)
            return JSONResponse(obj, status_code=201)

        @app.get(f"/{name}/{{object_id}}", name=f"get_{prefix}")
        async def read(object_id: str, request: Request) -> JSONResponse:
            auth(request)
            obj = store.get(object_id)
            if obj is None:
                return problem(404, "Not Found", f"no {prefix} with id {object_id!r}")
            return JSONResponse(obj)

        @app.put(f"/{name}/{{object_id}}", name=f"update_{prefix}")
        async def update(object_id: str, request: Request) -> JSONResponse:
            auth(request, write=name)
            old = store.get(object_id)
            if old is None:
                return problem(404, "Not Found", f"no {prefix} with id {object_id!r}")
            obj = await body_of(request, model)
            obj.update(
                id=object_id,
                createdDateTime=old["createdDateTime"],
                modificationDateTime=clock(),
                objectType=object_type,
            )
            if name == "vens":
                obj.pop("resources", None)
            store[object_id] = obj
            notify(object_type, "PUT", obj)
            return JSONResponse(obj)

        @app.delete(f"/{name}/{{object_id}}", name=f"delete_{prefix}")
        async def delete(object_id: str, request: Request) -> JSONResponse:
            auth(request, write=name)
            obj = store.pop(object_id, None)
            if obj is None:
                return problem(404, "Not Found", f"no {prefix} with id {object_id!r}")
            if name == "vens":
                st.resources.pop(object_id, None)
            notify(object_type, "DELETE", obj)
            return JSONResponse(obj)

    collection("programs", Program, "PROGRAM", ("programName",))
    collection("events", Event, "EVENT", ("programID",))
    collection("reports", Report, "REPORT", ("programID", "eventID", "clientName"))
    collection("subscriptions", Subscription, "SUBSCRIPTION", ("programID", "clientName"))
    collection("vens", Ven, "VEN", ("venName",))

    # ------------------------------------------------------------------ resources of a VEN
    def ven_resources(ven_id: str) -> dict[str, dict[str, Any]]:
        if ven_id not in st.objects["vens"]:
            raise _Refused(404, "Not Found", f"no ven with id {ven_id!r}")
        return st.resources.setdefault(ven_id, {})

    @app.get("/vens/{ven_id}/resources")
    async def search_resources(ven_id: str, request: Request) -> JSONResponse:
        auth(request)
        items = list(ven_resources(ven_id).values())
        name = request.query_params.get("resourceName")
        return JSONResponse([r for r in items if name is None or r["resourceName"] == name])

    @app.post("/vens/{ven_id}/resources", status_code=201)
    async def create_resource(ven_id: str, request: Request) -> JSONResponse:
        auth(request, write="vens")
        res = ven_resources(ven_id)
        obj = await body_of(request, Resource)
        if any(r["resourceName"] == obj["resourceName"] for r in res.values()):
            return problem(409, "Conflict", f"resourceName {obj['resourceName']!r} already exists for ven {ven_id}")
        now = clock()
        obj.update(id=st.new_id("resource"), venID=ven_id, createdDateTime=now, modificationDateTime=now)
        obj["objectType"] = "RESOURCE"
        res[obj["id"]] = obj
        return JSONResponse(obj, status_code=201)

    @app.get("/vens/{ven_id}/resources/{resource_id}")
    async def read_resource(ven_id: str, resource_id: str, request: Request) -> JSONResponse:
        auth(request)
        obj = ven_resources(ven_id).get(resource_id)
        if obj is None:
            return problem(404, "Not Found", f"no resource with id {resource_id!r}")
        return JSONResponse(obj)

    @app.put("/vens/{ven_id}/resources/{resource_id}")
    async def update_resource(ven_id: str, resource_id: str, request: Request) -> JSONResponse:
        auth(request, write="vens")
        res = ven_resources(ven_id)
        old = res.get(resource_id)
        if old is None:
            return problem(404, "Not Found", f"no resource with id {resource_id!r}")
        obj = await body_of(request, Resource)
        obj.update(id=resource_id, venID=ven_id, createdDateTime=old["createdDateTime"], modificationDateTime=clock())
        obj["objectType"] = "RESOURCE"
        res[resource_id] = obj
        return JSONResponse(obj)

    @app.delete("/vens/{ven_id}/resources/{resource_id}")
    async def delete_resource(ven_id: str, resource_id: str, request: Request) -> JSONResponse:
        auth(request, write="vens")
        obj = ven_resources(ven_id).pop(resource_id, None)
        if obj is None:
            return problem(404, "Not Found", f"no resource with id {resource_id!r}")
        return JSONResponse(obj)

    return app


def _targeted(obj: dict[str, Any], target_type: str, values: list[str]) -> bool:
    """An object with no targets is for everyone; else one of its targets of ``target_type``
    must share a value with ``values``."""
    targets = obj.get("targets") or []
    if not targets:
        return True
    for t in targets:
        if t.get("type") == target_type and (not values or set(map(str, t.get("values", []))) & set(values)):
            return True
    return False


class VtnServer:
    """The VTN served by uvicorn on 127.0.0.1 in the running event loop; ``stop()`` then
    ``start()`` brings it back on the same port with the same state (a VTN outage)."""

    def __init__(
        self, state: VtnState | None = None, *, host: str = "127.0.0.1", port: int = 0, app: Any = None
    ) -> None:
        self.state = state or VtnState()
        self.app = app  # another ASGI app to serve instead (e.g. a webhook receiver in a test)
        self.host, self.port = host, port
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        self.port = sock.getsockname()[1]
        app = self.app if self.app is not None else create_app(self.state)
        config = uvicorn.Config(app, log_level="warning", lifespan="off", access_log=False)
        server = uvicorn.Server(config)
        server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._server = server
        self._task = asyncio.create_task(server.serve(sockets=[sock]), name="vtn")
        while not server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)
        log.info("VTN simulator listening", url=self.url)

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._server = self._task = None
        log.info("VTN simulator stopped", url=self.url)

    async def __aenter__(self) -> VtnServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
