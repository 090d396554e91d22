"""A grid export event over the real MQTT broker, end to end, with a broker restart mid-event.

The CSMS, the DispatchController and 10 Fermata-style simulated stations (OCPP 2.1 and 2.0.1,
real sockets, clock x100) run with the service's own MQTT part (:class:`csms.service.MqttIntake`:
the bridge on the controller's event book, publishing the controller's status and delivery) against
Mosquitto on 127.0.0.1:1883, on topics of their own. The test

* publishes the export event (40 kW, 16:00-16:45) on the event topic and sees the ack, the
  per-tick status (retained) and the per-5-minute delivery on a persistent subscription;
* stops the Mosquitto daemon for real at about 16:07 and starts it again 8 simulated minutes later;
  the dispatch keeps delivering meanwhile (the simulators' own energy registers, and the
  controller's ticks), and the bridge holds what it could not send (the newest status per event,
  every delivery message);
* publishes a revision (16:30-16:45 down to 20 kW) as soon as the broker listens again, before the
  bridge is back: the broker keeps it in the bridge's persistent session, the bridge reconnects and
  takes it, the schedules change and the final report lists the revision;
* checks that status and delivery publishing resumed, that no delivery interval was lost across the
  outage, and the final report's delivery.

Targets: the 10-car evening (``evening_fleet(10, seed=5)``) can hold 40 kW for the 45 minutes with
a wide margin (``test_e2e_dispatch`` holds the same fleet at 40 and 20 kW), so every 5-minute
interval is held to +-10 % of its target, the outage included: dispatch does not depend on the broker.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from csms.config import MqttSettings
from csms.demo.site import Site, evening_fleet, running_site
from csms.grid.mqtt import MqttBridge
from csms.service import MqttIntake
from tests.conftest import require_service, service_up
from tests.dispatch.test_e2e_dispatch import Truth, event, local, options
from tests.mqtt_support import (
    HOST,
    PORT,
    Collector,
    can_restart_broker,
    clear_retained,
    forget,
    publish,
    start_broker,
    stop_broker,
    until,
)

pytestmark = [pytest.mark.slow, pytest.mark.mqtt, pytest.mark.timeout(180)]

EVENT = "mq-evening"


class RegisterTruth(Truth):
    """:class:`Truth` read at the sampling instant: each power stage's registers are integrated up to
    its own last firmware wake-up (``stage.t``, up to a minute old at steady power), so they are
    extended at the present power to ``now``; over an 8-minute window the stale registers alone
    could be off by several percent."""

    async def _run(self) -> None:
        while True:
            now_t = self.site.clock.now().timestamp()
            net = 0.0
            for station in self.site.fleet:
                for evse in station.evses.values():
                    st = evse.stage
                    net += st.export_wh - st.import_wh - st.power_w * max(0.0, now_t - st.t) / 3600.0
            self.t.append(now_t)
            self.net_wh.append(net)
            await self.site.clock.sleep(self.every_s)


@contextlib.asynccontextmanager
async def mqtt_part(site: Site, prefix: str) -> AsyncIterator[MqttBridge]:
    """The service's MQTT part (as ``csms serve`` with ``[mqtt] enabled = true`` runs it) on the
    site's controller, with this test's topics; stopped, its session dropped and its retained
    messages cleared afterwards."""
    site.service.settings.mqtt = MqttSettings(
        enabled=True, host=HOST, port=PORT, event_topic=f"{prefix}/events", status_topic=f"{prefix}/status"
    )
    intake = MqttIntake(site.service, site.controller)
    await intake.start()
    bridge: MqttBridge = intake.bridge
    # The reconnect back-off is wall time (0.5 s doubling up to 30 s); at x100 a 30 s wait would be 50
    # simulated minutes, so it is capped at 1 s here (100 simulated s, still above the production cap).
    bridge.max_backoff_s = 1.0
    try:
        assert await bridge.wait_connected(15), f"bridge did not connect: {bridge.stats.last_error}"
        assert site.controller.publisher is bridge
        yield bridge
    finally:
        await intake.stop()


async def test_export_event_over_mqtt_survives_a_broker_restart(tmp_path: Path) -> None:
    require_service("Mosquitto", HOST, PORT)
    if not await can_restart_broker():
        pytest.skip("Mosquitto does not run as a local daemon here: cannot restart it")
    prefix = f"csms-test/{uuid.uuid4().hex[:12]}"
    events_topic, status = f"{prefix}/events", f"{prefix}/status"
    sub_id = f"{prefix.replace('/', '-')}-sub"
    bridge_id = ""
    fleet = evening_fleet(10, epoch=local(15, 40), seed=5, event_start=local(16), tx_interval_s=60)
    try:
        async with (
            running_site(fleet, tmp_path, epoch=local(15, 40), speed=100, options=options()) as site,
            mqtt_part(site, prefix) as bridge,
            Collector(f"{status}/#", sub_id, persistent=True, reconnect=True) as sub,
        ):
            bridge_id = bridge.client_id
            ctl = site.controller
            truth = RegisterTruth(site, every_s=5.0)
            await site.clock.sleep_until(local(15, 50))

            # ---- the event arrives over MQTT
            await publish(events_topic, event(EVENT, local(16), [(0.5, 40.0), (0.25, 40.0)]))
            ack = await sub.wait(f"{status}/{EVENT}/ack", 10)
            assert ack["accepted"] and ack["outcome"] == "submitted" and ack["revision"] == 0, ack
            assert site.book.get(EVENT).source == "mqtt"
            # the first 5-minute delivery goes out at the first tick after 16:06:30
            first = await sub.wait(f"{status}/{EVENT}/delivery", 15)
            assert datetime.fromisoformat(first["start"]) == local(16) and first["target_kw"] == 40.0, first
            st = sub.on(f"{status}/{EVENT}/status")
            assert len(st) >= 5 and st[-1]["state"] == "dispatching" and st[-1]["revision"] == 0, st[-1:]

            # ---- the broker goes away for real
            t_down = site.clock.now()
            wall_down = time.monotonic()
            await stop_broker()
            seen_before = len(sub.messages)
            await until(lambda: not bridge.connected, 10, "the bridge noticing the outage")
            await site.clock.sleep_until(t_down + timedelta(minutes=8))
            # dispatch went on: the controller ticked and commanded; what it published is held
            ticks_out = [s for s in ctl.runs[EVENT].samples if s.at > t_down]
            assert len(ticks_out) >= 6, len(ticks_out)
            held = bridge.pending
            assert held >= 2, held  # the newest status + the delivery of 16:05-16:10
            assert len(sub.messages) == seen_before  # nothing came through (the broker was down)
            mid_outage_kw = [round(s.delivered_kw, 1) for s in ticks_out if s.delivered_kw is not None]

            at = local(16, 35)

            def commanded_kw() -> float:
                return sum(-(c.power_at(at) or 0.0) for c in ctl.commanded.values()) / 1000.0

            before_kw = commanded_kw()
            assert before_kw == pytest.approx(40.0, rel=0.02), before_kw
            sent = ctl.commands_sent

            # ---- the broker is back; a revision is published before the bridge reconnects
            await start_broker()
            t_up = site.clock.now()
            wall_up = time.monotonic()
            revision = event(EVENT, local(16), [(0.5, 40.0), (0.25, 20.0)], revision=1)
            await publish(events_topic, revision)  # queued by the broker in the bridge's persistent session
            assert await bridge.wait_connected(30), f"bridge did not reconnect: {bridge.stats.last_error}"
            wall_reconnected = time.monotonic()
            t_reconnected = site.clock.now()
            assert bridge.stats.connects >= 2

            # the revision is taken and applied: acked, re-planned, schedules at 16:35 changed
            revised = await until(
                lambda: [a for a in sub.on(f"{status}/{EVENT}/ack") if a.get("revision") == 1], 15, "revision ack"
            )
            assert revised[0]["accepted"] and revised[0]["outcome"] == "revised", revised
            await until(lambda: ctl.runs[EVENT].replan_reasons.get("revision"), 10, "the revision's re-plan")
            assert site.clock.now() < local(16, 28), "the revision came too late to check its schedules"
            # (the re-plan's commands go out in parallel and are recorded as each station accepts)
            await until(lambda: abs(commanded_kw() - 20.0) <= 0.4, 10, "the revised schedules accepted")
            after_kw = commanded_kw()
            assert ctl.commands_sent > sent

            # publishing resumed: the held status and deliveries, then fresh ticks at revision 1
            def fresh_status() -> list[Any]:
                return [
                    s
                    for s in sub.on(f"{status}/{EVENT}/status")
                    if s.get("revision") == 1 and datetime.fromisoformat(s["at"]) > t_reconnected
                ]

            await until(fresh_status, 15, "a status at revision 1 after the reconnect")
            await until(lambda: bridge.pending == 0, 10, "the bridge's outbox drained")

            await until(lambda: EVENT in ctl.finished, 60, "the final report")
            await truth.stop()
            report = ctl.finished[EVENT]
            await sub.wait(f"{status}/{EVENT}/status", 10)
            await until(lambda: sub.on(f"{status}/{EVENT}/status")[-1].get("state") == "final", 10, "final status")
            statuses = sub.on(f"{status}/{EVENT}/status")
            deliveries = sub.on(f"{status}/{EVENT}/delivery")
            # live or queued after the restart (a re-subscription also replays the retained ones: skipped)
            after_restart = [m for m, w in zip(sub.messages, sub.received_at, strict=True) if w >= wall_up and not m[2]]
            outage_truth_kw = truth.mean_kw(t_down, t_up)
            truth_iv = [truth.mean_kw(a, a + timedelta(minutes=5)) for a in [local(16, m) for m in range(0, 45, 5)]]
    finally:
        if not service_up(HOST, PORT):
            await start_broker()
        for cid in (sub_id, bridge_id):
            if cid:
                await forget(cid)
        await clear_retained(prefix)

    s = report["summary"]
    intervals = report["intervals"]
    by_start = {datetime.fromisoformat(d["start"]): d for d in deliveries}  # at least once: duplicates possible
    assert len(intervals) == 9 and s["intervals_complete"] == 9, intervals
    print(
        "mqtt event:",
        {k: s.get(k) for k in ("delivery_ratio", "intervals_within_10pct", "nae", "mean_delivered_kw")},
        f"outage {t_down.astimezone(UTC):%H:%M:%S}-{t_up.astimezone(UTC):%H:%M:%S} UTC "
        f"({wall_up - wall_down:.1f} s wall), bridge back {wall_reconnected - wall_up:.1f} s after the restart "
        f"({(t_reconnected - t_up).total_seconds():.0f} simulated s)",
        f"truth during outage {outage_truth_kw:.1f} kW, controller ticks {mid_outage_kw}",
        f"commanded for 16:35 {before_kw:.1f} -> {after_kw:.1f} kW",
        f"held {held} messages; received {len(statuses)} status / {len(deliveries)} delivery "
        f"({len(after_restart)} messages after the restart), connects {bridge.stats.connects}",
        [
            (i["start"][11:16], i["target_kw"], i["delivered_kw"], round(t, 2))
            for i, t in zip(intervals, truth_iv, strict=True)
        ],
    )
    # no 5-minute delivery lost across the outage, targets as revised
    starts = [datetime.fromisoformat(i["start"]) for i in intervals]
    assert sorted(by_start) == starts, sorted(by_start)  # none lost
    assert [by_start[a]["target_kw"] for a in starts] == [40.0] * 6 + [20.0] * 3
    # what was held through the outage went out first after the reconnect: the newest status
    # (one per event, not one per tick) and the delivery of 16:05-16:10, completed during the outage
    status_after = [b for t, b, _ in after_restart if t.endswith(f"/{EVENT}/status")]
    assert datetime.fromisoformat(status_after[0]["at"]) >= ticks_out[-1].at, (status_after[0], ticks_out[-1])
    held_delivery = next(b for t, b, _ in after_restart if t.endswith(f"/{EVENT}/delivery"))
    assert datetime.fromisoformat(held_delivery["start"]) == local(16, 5), held_delivery
    # status: retained, revision 0 then 1, final with the summary
    assert {x["revision"] for x in statuses if "revision" in x} == {0, 1}
    assert statuses[-1]["state"] == "final" and statuses[-1]["summary"]["intervals_complete"] == 9
    # the report lists the revision
    assert [r["revision"] for r in report["revisions"]] == [1]
    assert report["revisions"][0]["targets_kw"] == [40.0, 20.0]
    # delivery during the outage (the simulators' registers) and every interval within +-10 %
    assert outage_truth_kw == pytest.approx(40.0, rel=0.10)
    assert all(i["within_10pct"] for i in intervals), [(i["start"], i["delivered_kw"]) for i in intervals]
    # what the CSMS metered is what the simulated chargers did, interval by interval
    assert [i["delivered_kw"] for i in intervals] == pytest.approx(truth_iv, abs=0.5)
    assert s["delivery_ratio"] == pytest.approx(1.0, abs=0.05)
    assert report["driver_guarantees"]["violations"] == []
