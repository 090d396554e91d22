"""Every read resource of the API, filled by a station over a real socket (and, for grid
reports, by the store as dispatch fills it)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from csms.clock import to_rfc3339
from tests.api.support import Env, wait_for

T0 = datetime(2026, 6, 1, 16, 0, tzinfo=UTC)


def ts(minutes: float) -> str:
    return to_rfc3339(T0 + timedelta(minutes=minutes))


def meter(minutes: float, wh: float, kw: float) -> list[dict[str, Any]]:
    return [
        {
            "timestamp": ts(minutes),
            "sampledValue": [
                {"value": wh, "measurand": "Energy.Active.Import.Register", "unitOfMeasure": {"unit": "Wh"}},
                {"value": kw, "measurand": "Power.Active.Import", "unitOfMeasure": {"unit": "kW"}},
            ],
        }
    ]


async def run_transaction(station: Any, tx: str, *, end: bool) -> None:
    base = {"evse": {"id": 1, "connectorId": 1}, "transactionInfo": {"transactionId": tx}}
    await station.call(
        "TransactionEvent",
        {
            **base,
            "eventType": "Started",
            "timestamp": ts(0),
            "triggerReason": "CablePluggedIn",
            "seqNo": 0,
            "idToken": {"idToken": "TOKEN-1", "type": "Central"},
            "meterValue": meter(0, 0, 0),
        },
    )
    for i in range(1, 4):
        await station.call(
            "TransactionEvent",
            {
                **base,
                "eventType": "Updated",
                "timestamp": ts(i * 10),
                "triggerReason": "MeterValuePeriodic",
                "seqNo": i,
                "meterValue": meter(i * 10, i * 1000.0, 6.0),
            },
        )
    if end:
        await station.call(
            "TransactionEvent",
            {
                **base,
                "eventType": "Ended",
                "timestamp": ts(40),
                "triggerReason": "EVDeparted",
                "seqNo": 4,
                "transactionInfo": {"transactionId": tx, "stoppedReason": "EVDisconnected"},
                "meterValue": meter(40, 4000, 0),
            },
        )


async def test_stations_list_filters_and_pagination(env: Env) -> None:
    await env.connect("FE-0001")
    await env.connect("FE-0002", version="2.1")
    await wait_for(lambda: env.store.list_stations(connected=True))
    await wait_for(lambda: _count(env, connected=True, want=2))
    async with env.client("read") as c:
        page = (await c.get("/api/v1/stations")).json()
        assert [s["id"] for s in page["items"]] == ["FE-0001", "FE-0002", "FE-0003"]
        assert page["next_offset"] is None and page["limit"] == 100 and page["offset"] == 0
        first = page["items"][0]
        assert first["connected"] is True and first["boot_status"] == "Accepted" and first["model"] == "FE-20"
        assert first["vendor"] == "Fermata" and first["ocpp_version"] == "2.0.1" and first["connected_since"]
        assert "password_hash" not in first
        assert page["items"][2]["connected"] is False and page["items"][2]["boot_status"] is None

        p1 = (await c.get("/api/v1/stations", params={"limit": 2})).json()
        assert [s["id"] for s in p1["items"]] == ["FE-0001", "FE-0002"] and p1["next_offset"] == 2
        p2 = (await c.get("/api/v1/stations", params={"limit": 2, "offset": p1["next_offset"]})).json()
        assert [s["id"] for s in p2["items"]] == ["FE-0003"] and p2["next_offset"] is None

        on = (await c.get("/api/v1/stations", params={"connected": "true"})).json()["items"]
        assert [s["id"] for s in on] == ["FE-0001", "FE-0002"]
        off = (await c.get("/api/v1/stations", params={"connected": "false"})).json()["items"]
        assert [s["id"] for s in off] == ["FE-0003"]
        acc = (await c.get("/api/v1/stations", params={"status": "Accepted", "model": "FE-20"})).json()["items"]
        assert len(acc) == 2
        assert (await c.get("/api/v1/stations", params={"model": "nope"})).json()["items"] == []
        bad = await c.get("/api/v1/stations", params={"status": "Sleeping"})
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "validation_error"


async def _count(env: Env, *, connected: bool, want: int) -> bool:
    return len(await env.store.list_stations(connected=connected)) == want


async def test_station_detail_and_live_status(env: Env) -> None:
    station = await env.connect("FE-0001")
    await run_transaction(station, "TX-1", end=False)
    async with env.client("read") as c:
        d = (await c.get("/api/v1/stations/FE-0001")).json()
        assert d["id"] == "FE-0001" and d["connected"] and d["boot_policy"] == "accept"
        assert d["last_boot_at"] and d["registered_at"]
        assert d["live"]["boot"] == "Accepted" and d["live"]["ocpp_version"] == "2.0.1"
        evse = d["evses"][0]
        assert evse["evse_id"] == 1 and evse["transaction_id"] == "TX-1"
        assert evse["connectors"][0]["connector_id"] == 1
        assert evse["power_import_w"] == 6000.0
        live = (await c.get("/api/v1/stations/FE-0001/status")).json()
        assert live["connected"] and live["evses"][0]["transaction_id"] == "TX-1"
        assert live["evses"][0]["connectors"] == [{"connector_id": 1, "status": "Available", "updated_at": None}]
        off = (await c.get("/api/v1/stations/FE-0003/status")).json()
        assert off["connected"] is False and off["boot"] == "Unknown" and off["evses"] == []
        for path in ("/api/v1/stations/FE-9", "/api/v1/stations/FE-9/status", "/api/v1/stations/FE-9/frames"):
            r = await c.get(path)
            assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_station", path


async def test_transactions_and_meter_values(env: Env) -> None:
    station = await env.connect("FE-0001")
    await run_transaction(station, "TX-1", end=True)
    await run_transaction(station, "TX-2", end=False)
    await env.store.flush()
    async with env.client("read") as c:
        all_tx = (await c.get("/api/v1/stations/FE-0001/transactions")).json()["items"]
        assert {t["transaction_id"] for t in all_tx} == {"TX-1", "TX-2"}
        active = (await c.get("/api/v1/stations/FE-0001/transactions", params={"active": "true"})).json()["items"]
        assert [t["transaction_id"] for t in active] == ["TX-2"] and active[0]["active"] is True
        ended = (await c.get("/api/v1/transactions", params={"active": "false"})).json()["items"]
        assert [(t["transaction_id"], t["stopped_reason"]) for t in ended] == [("TX-1", "EVDisconnected")]
        one = (await c.get("/api/v1/stations/FE-0001/transactions/TX-1")).json()
        assert one["id_token"] == "TOKEN-1" and one["state"] == "Ended"
        assert [e["event_type"] for e in one["events"]] == ["Started", "Updated", "Updated", "Updated", "Ended"]
        missing = await c.get("/api/v1/stations/FE-0001/transactions/TX-404")
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"

        mv = (
            await c.get(
                "/api/v1/stations/FE-0001/meter-values",
                params={"transaction_id": "TX-1", "measurand": "Energy.Active.Import.Register"},
            )
        ).json()
        assert [m["value"] for m in mv["items"]] == [0, 1000, 2000, 3000, 4000]
        ranged = (
            await c.get(
                "/api/v1/stations/FE-0001/meter-values",
                params={
                    "start": ts(10),
                    "end": ts(30),
                    "transaction_id": "TX-1",
                    "measurand": "Power.Active.Import",
                },
            )
        ).json()["items"]
        assert [(m["timestamp"], m["value"], m["unit"]) for m in ranged] == [
            ("2026-06-01T16:10:00Z", 6000.0, "W"),
            ("2026-06-01T16:20:00Z", 6000.0, "W"),
        ]
        paged = (
            await c.get(
                "/api/v1/stations/FE-0001/meter-values",
                params={"transaction_id": "TX-1", "limit": 3, "offset": 3, "order": "desc"},
            )
        ).json()
        assert len(paged["items"]) == 3 and paged["next_offset"] == 6
        naive = await c.get("/api/v1/stations/FE-0001/meter-values", params={"start": "2026-06-01T16:00:00"})
        assert naive.status_code == 422 and "offset" in naive.json()["error"]["message"]


async def test_security_events_station_events_and_frames(env: Env) -> None:
    station = await env.connect("FE-0001")
    await station.call(
        "SecurityEventNotification", {"type": "FirmwareUpdated", "timestamp": ts(1), "techInfo": "2.4.1 -> 2.5.0"}
    )
    await station.call("SecurityEventNotification", {"type": "InvalidCsmsCertificate", "timestamp": ts(2)})
    await station.call("FirmwareStatusNotification", {"status": "Downloading", "requestId": 1})
    async with env.client("read") as c:
        sec = (await c.get("/api/v1/stations/FE-0001/security-events")).json()["items"]
        assert [e["type"] for e in sec] == ["InvalidCsmsCertificate", "FirmwareUpdated"]
        assert sec[1]["tech_info"] == "2.4.1 -> 2.5.0"
        glob = (await c.get("/api/v1/security-events", params={"limit": 1})).json()
        assert len(glob["items"]) == 1 and glob["next_offset"] == 1
        ev = (await c.get("/api/v1/stations/FE-0001/events")).json()["items"]
        assert ev[0]["kind"] == "FirmwareStatus" and ev[0]["payload"] == {"status": "Downloading", "requestId": 1}

        async def frames() -> Any:
            items = (await c.get("/api/v1/stations/FE-0001/frames")).json()["items"]
            return items if len(items) >= 10 else None

        items = await wait_for(frames)
        boot_call = next(f for f in items if f["action"] == "BootNotification" and f["message_type"] == "CALL")
        assert boot_call["direction"] == "in" and boot_call["payload"]["reason"] == "PowerUp"
        boot_result = next(f for f in items if f["message_id"] == boot_call["message_id"] and f["direction"] == "out")
        assert boot_result["message_type"] == "CALLRESULT" and boot_result["action"] == "BootNotification"
        assert boot_result["payload"]["status"] == "Accepted"
        ids = [f["id"] for f in items]
        assert ids == sorted(ids)
        # tail: only frames after a given id, oldest first
        page = (await c.get("/api/v1/stations/FE-0001/frames", params={"after_id": ids[-3]})).json()
        assert [f["id"] for f in page["items"]] == ids[-2:] and page["last_id"] == ids[-1]
        empty = (await c.get("/api/v1/stations/FE-0001/frames", params={"after_id": ids[-1]})).json()
        assert empty == {"items": [], "last_id": ids[-1]}
    # a CALLERROR shows up with its code
    await station.ws.send('[2,"bad-1","Heartbeat",{"extra":1}]')

    async def error_frame() -> Any:
        async with env.client("read") as c:
            items = (await c.get("/api/v1/stations/FE-0001/frames", params={"limit": 5})).json()["items"]
        return [f for f in items if f["message_type"] == "CALLERROR"]

    errs = await wait_for(error_frame)
    assert errs[0]["error_code"] == "FormatViolation" and errs[0]["action"] == "Heartbeat"


async def test_variables_from_a_base_report(env: Env) -> None:
    station = await env.connect("FE-0001")
    async with env.client() as c:
        r = await c.post("/api/v1/stations/FE-0001/commands/GetBaseReport", json={})
        assert r.status_code == 200 and r.json()["request"]["reportBase"] == "FullInventory"
    await station.settle()
    async with env.client("read") as c:
        rows = await wait_for(lambda: _get_json(c, "/api/v1/stations/FE-0001/variables"))
        by_name = {(v["component"], v["variable"]): v["value"] for v in rows}
        assert by_name[("OCPPCommCtrlr", "HeartbeatInterval")] == "300"
        only = (await c.get("/api/v1/stations/FE-0001/variables", params={"component": "Identity"})).json()
        assert [v["variable"] for v in only] == ["SerialNumber"]


async def _get_json(c: Any, path: str, **params: Any) -> Any:
    return (await c.get(path, params=params)).json()


async def test_profiles_record_and_predicted_composite(env: Env) -> None:
    await env.store.put_profile(
        "FE-0003",
        0,
        {
            "id": 5,
            "stackLevel": 0,
            "chargingProfilePurpose": "ChargingStationMaxProfile",
            "chargingProfileKind": "Relative",
            "chargingSchedule": [
                {"id": 1, "chargingRateUnit": "W", "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 22000}]}
            ],
        },
    )
    async with env.client("read") as c:
        rows = (await c.get("/api/v1/stations/FE-0003/profiles")).json()
        assert [(p["profile_id"], p["purpose"], p["source"]) for p in rows] == [
            (5, "ChargingStationMaxProfile", "csms")
        ]
        assert (await c.get("/api/v1/stations/FE-0003/profiles", params={"evse_id": 1})).json() == []
        comp = (
            await c.get("/api/v1/stations/FE-0003/composite-schedule", params={"evse_id": 1, "duration": 600})
        ).json()
        assert comp["duration"] == 600 and comp["charging_rate_unit"] == "W"
        assert comp["periods"][0]["start_period"] == 0 and comp["periods"][0]["limit"] == 22000


async def test_id_tokens_crud(env: Env) -> None:
    async with env.client() as c:
        r = await c.post(
            "/api/v1/id-tokens",
            json={
                "id_token": "04A2B3C4",
                "type": "ISO14443",
                "group_id": "fleet-a",
                "allowed_energy_transfer": ["DC_BPT"],
            },
        )
        assert r.status_code == 201, r.text
        assert r.json()["status"] == "Accepted" and r.json()["allowed_energy_transfer"] == ["DC_BPT"]
        dup = await c.post("/api/v1/id-tokens", json={"id_token": "04A2B3C4", "type": "ISO14443"})
        assert dup.status_code == 409 and dup.json()["error"]["code"] == "already_exists"
        r = await c.put(
            "/api/v1/id-tokens/ISO14443/04A2B3C4", json={"status": "Blocked", "expires_at": "2027-01-01T00:00:00+02:00"}
        )
        assert r.status_code == 200
        assert r.json()["status"] == "Blocked" and r.json()["expires_at"] == "2026-12-31T22:00:00Z"
        assert r.json()["group_id"] is None  # PUT replaces
        await c.put("/api/v1/id-tokens/Central/APP-77", json={})
        got = (await c.get("/api/v1/id-tokens/ISO14443/04A2B3C4")).json()
        assert got["status"] == "Blocked"
        listed = (await c.get("/api/v1/id-tokens")).json()["items"]
        assert [(t["id_token"], t["type"]) for t in listed] == [("04A2B3C4", "ISO14443"), ("APP-77", "Central")]
        blocked = (await c.get("/api/v1/id-tokens", params={"status": "Blocked"})).json()["items"]
        assert [t["id_token"] for t in blocked] == ["04A2B3C4"]
        assert (await c.delete("/api/v1/id-tokens/ISO14443/04A2B3C4")).status_code == 204
        gone = await c.get("/api/v1/id-tokens/ISO14443/04A2B3C4")
        assert gone.status_code == 404 and gone.json()["error"]["code"] == "not_found"
        assert (await c.delete("/api/v1/id-tokens/ISO14443/04A2B3C4")).status_code == 404
        bad = await c.put("/api/v1/id-tokens/Central/X", json={"status": "Maybe"})
        assert bad.status_code == 422
        naive = await c.put("/api/v1/id-tokens/Central/X", json={"expires_at": "2027-01-01T00:00:00"})
        assert naive.status_code == 422
    # the CSMS uses the list: an authorized TransactionEvent
    station = await env.connect("FE-0001")
    r2 = await station.call("Authorize", {"idToken": {"idToken": "APP-77", "type": "Central"}})
    assert r2["idTokenInfo"]["status"] == "Accepted"


async def test_grid_events_and_reports(env: Env, tmp_path: Any) -> None:
    await env.store.put_grid_event("evt-1", 1, "completed", {"id": "evt-1", "target_kw": 400})
    await env.store.put_grid_event("evt-2", 1, "pending", {"id": "evt-2", "target_kw": 100})
    png = tmp_path / "evt-1.png"
    png.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 16)
    report = {
        "event_id": "evt-1",
        "target_kwh": 2000,
        "delivered_kwh": 1950.5,
        "plot_path": str(png),
        "intervals": [
            {"start": "2026-06-01T16:00:00Z", "target_kw": 400, "delivered_kw": 395.2},
            {"start": "2026-06-01T16:15:00Z", "target_kw": 400, "delivered_kw": 401.0, "note": "re-planned"},
        ],
    }
    await env.store.put_event_report("evt-1", report)
    await env.store.put_event_report("evt-2", {"event_id": "evt-2", "delivered_kwh": 0})
    async with env.client("read") as c:
        events = (await c.get("/api/v1/grid/events")).json()["items"]
        assert {e["id"] for e in events} == {"evt-1", "evt-2"}
        pending = (await c.get("/api/v1/grid/events", params={"status": "pending"})).json()["items"]
        assert [e["id"] for e in pending] == ["evt-2"]
        assert (await c.get("/api/v1/grid/events/evt-1")).json()["payload"]["target_kw"] == 400
        assert (await c.get("/api/v1/grid/events/evt-9")).status_code == 404
        rep = (await c.get("/api/v1/grid/events/evt-1/report")).json()
        assert rep["event_id"] == "evt-1" and rep["report"]["delivered_kwh"] == 1950.5
        r = await c.get("/api/v1/grid/events/evt-1/report.csv")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(r.text)))
        assert [(x["start"], x["target_kw"], x["delivered_kw"]) for x in rows] == [
            ("2026-06-01T16:00:00Z", "400", "395.2"),
            ("2026-06-01T16:15:00Z", "400", "401.0"),
        ]
        r = await c.get("/api/v1/grid/events/evt-1/report.png")
        assert r.status_code == 200 and r.headers["content-type"] == "image/png"
        assert r.content.startswith(b"\x89PNG")
        r = await c.get("/api/v1/grid/events/evt-2/report.png")
        assert r.status_code == 404 and "no plot" in r.json()["error"]["message"]
        flat = await c.get("/api/v1/grid/events/evt-2/report.csv")
        assert list(csv.reader(io.StringIO(flat.text))) == [
            ["key", "value"],
            ["event_id", "evt-2"],
            ["delivered_kwh", "0"],
        ]
        r = await c.get("/api/v1/grid/events/evt-9/report")
        assert r.status_code == 404 and "unknown grid event" in r.json()["error"]["message"]


async def test_grid_webhook_router_is_mounted_with_auth(env: Env) -> None:
    if not env.service.api.app.state.grid_webhook:
        pytest.skip("csms.grid.webhook is not available")
    start = datetime.now(UTC) + timedelta(hours=1)
    event = {
        "id": "api-evt-1",
        "revision": 1,
        "direction": "export",
        "intervals": [{"start": start.isoformat(), "end": (start + timedelta(hours=2)).isoformat(), "target_kw": 50}],
    }
    async with env.client("read") as c:
        r = await c.post("/grid/events", json=event)
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
        assert (await c.get("/grid/events")).status_code == 200
    async with env.client(None) as c:
        assert (await c.get("/grid/events")).status_code == 401
    async with env.client() as c:
        r = await c.post("/grid/events", json=event)
        assert r.status_code in (200, 201), r.text
        listed = (await c.get("/grid/events")).json()
        assert "api-evt-1" in [e["id"] for e in listed["events"]]
        stored = (await c.get("/api/v1/grid/events/api-evt-1")).json()
        assert stored["id"] == "api-evt-1"


async def test_grid_webhook_refusal_is_a_json_422(env: Env) -> None:
    if not env.service.api.app.state.grid_webhook:
        pytest.skip("csms.grid.webhook is not available")
    async with env.client() as c:
        bad = await c.post("/grid/events", json={"id": "x"})
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_event"


async def test_errors_are_json_everywhere(env: Env) -> None:
    async with env.client("read") as c:
        r = await c.get("/api/v1/nothing-here")
        assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
        r = await c.delete("/api/v1/stations")
        assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"
        r = await c.get("/api/v1/stations", params={"limit": 5000})
        assert r.status_code == 422
        err = r.json()["error"]
        assert err["code"] == "validation_error" and err["details"]["errors"][0]["field"] == "query.limit"
        assert "query.limit" in err["message"]
    async with env.client() as c:
        r = await c.post(
            "/api/v1/stations/FE-0001/commands/Reset",
            content=b"{not json",
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 422 and r.json()["error"]["code"] == "validation_error"
