"""A simulation clock that follows the CSMS (OCPP ``ClockCtrlr.TimeSource`` = Heartbeat).

:class:`csms.clock.Clock` anchors simulated time at the wall instant it is created, so a CSMS and
a simulator in two processes, both with the same ``epoch`` and ``speed``, disagree by their start
delay times the speed (2 s apart at x300 is 10 simulated minutes). Like real firmware, the
simulator corrects its clock from ``currentTime`` in BootNotification and Heartbeat responses.

Only drifts between ``min_step_s`` (noise: network latency times speed) and ``max_step_s`` are
corrected; a larger difference means the two sides were given different epochs, which a clock
step cannot fix without moving every scripted session, so it is only logged.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog

from csms.clock import Clock

log = structlog.get_logger("simulators.clock")


class SyncedClock(Clock):
    def __init__(
        self,
        epoch: datetime | None = None,
        speed: float = 1.0,
        *,
        min_step_s: float | None = None,
        max_step_s: float = 3600.0,
    ) -> None:
        super().__init__(epoch, speed)
        self.offset = timedelta(0)
        self.min_step_s = min_step_s if min_step_s is not None else max(2.0, 0.05 * speed)
        self.max_step_s = max_step_s
        self.steps = 0
        self._warned = False

    def now(self) -> datetime:
        return super().now() + self.offset

    def observe(self, csms_time: datetime) -> float:
        """Take the CSMS's ``currentTime``; return the correction applied (simulated seconds)."""
        drift = (csms_time - self.now()).total_seconds()
        if abs(drift) < self.min_step_s:
            return 0.0
        if abs(drift) > self.max_step_s:
            if not self._warned:
                self._warned = True
                log.warning("CSMS clock far from the simulation clock: check epoch and speed on both sides",
                            drift_s=round(drift, 1))  # fmt: skip
            return 0.0
        self.offset += timedelta(seconds=drift)
        self.steps += 1
        log.info("simulation clock adjusted to the CSMS", step_s=round(drift, 3))
        return drift
