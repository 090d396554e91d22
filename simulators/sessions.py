"""Replay of real Caltech ACN sessions onto simulated EVSEs (deterministic, documented mapping).

The ACN data (``simulators/data/acn-caltech/*.csv.gz``, shipped with the package) gives arrival, departure,
requested and delivered energy per session, but no car or SoC. The rules, all deterministic:

1. **Day mapping.** ``replay.date`` is a local (America/Los_Angeles) date of the data. Every
   session is shifted by whole local days so that this date falls on the local date of the clock
   epoch (wall-clock times of day are kept, DST handled in local time).
2. **Selection.** Sessions still connected at the epoch or arriving before the window end
   (``epoch + window_s``, default the next local midnight) are replayed; sessions that ended
   before the epoch are not.
3. **Car.** ``sha256(seed + ":" + session_id)`` taken as an integer, modulo 100, picks the car:
   0-34 ``nissan-leaf-40``, 35-69 ``nissan-leaf-62``, 70-79 ``mitsubishi-outlander-phev``,
   80-89 ``ford-f150-lightning``, 90-99 ``kia-ev9``.
4. **SoC.** Target SoC = ``replay.target_soc`` (default 80 %). Initial SoC at arrival =
   ``target - 100 * requested_kWh / capacity_kWh`` (the requested energy counted at the battery),
   clamped to ``[min_initial_soc, target]``. A session already in progress at the epoch is plugged
   in at the epoch with the energy it would have received before it at the garage's Level-2 rate
   (6.6 kW, capped at its real ``delivered_energy``) added, still capped at the target.
5. **Departure.** The car leaves at the real ``departure``; the departure time it announces
   (ISO 15118 ``departureTime``) is the driver's ``estimated_departure`` when that lies after the
   plug-in, else the real departure.
6. **EVSE.** Caltech ``station_id`` values present in the selection are sorted; the k-th one is
   mapped onto slot ``k mod n`` of the fleet's EVSEs (stations in file order, EVSE 1..N). If that
   slot is still occupied at the arrival, the next free slot (in slot order) is used; if none is
   free the session is skipped and counted.
"""

from __future__ import annotations

import csv
import functools
import gzip
import hashlib
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from .cars import CARS
from .config import ReplayConfig
from .model import SessionPlan

LOCAL_TZ = ZoneInfo("America/Los_Angeles")
LEVEL2_KW = 6.6
CAR_BUCKETS: tuple[tuple[int, str], ...] = (
    (35, "nissan-leaf-40"),
    (70, "nissan-leaf-62"),
    (80, "mitsubishi-outlander-phev"),
    (90, "ford-f150-lightning"),
    (100, "kia-ev9"),
)


@dataclass(frozen=True, slots=True)
class AcnSession:
    session_id: str
    station_id: str
    arrival: datetime
    departure: datetime
    requested_kwh: float
    delivered_kwh: float
    estimated_departure: datetime | None
    claimed: bool


@dataclass(frozen=True, slots=True)
class ReplayAssignment:
    station_id: str
    evse_id: int
    plan: SessionPlan
    source: AcnSession


@dataclass(slots=True)
class ReplayResult:
    assignments: list[ReplayAssignment]
    skipped: list[AcnSession]


#: The Caltech sessions shipped with the simulators (``simulators/data/acn-caltech``, CC BY 4.0,
#: see the README there); ``$CSMS_ACN_DATA`` points elsewhere.
BUNDLED_ACN_DATA = Path(__file__).resolve().parent / "data" / "acn-caltech"
ACN_DATA_DIR = Path(os.environ.get("CSMS_ACN_DATA") or BUNDLED_ACN_DATA)


def acn_path(name: str) -> Path:
    """``name`` as given if it exists, else looked up in :data:`ACN_DATA_DIR`."""
    path = Path(name)
    if path.exists():
        return path
    candidate = ACN_DATA_DIR / path.name
    if candidate.exists():
        return candidate
    raise FileNotFoundError(f"ACN data file {name!r} not found (looked in {ACN_DATA_DIR}; set CSMS_ACN_DATA)")


def _parse_time(text: str) -> datetime | None:
    text = text.strip()
    if not text:
        return None
    dt = datetime.fromisoformat(text)
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=LOCAL_TZ)
    return dt.astimezone(UTC)


@functools.cache
def load_acn(path: str) -> tuple[AcnSession, ...]:
    """Read one ACN CSV (gzip or plain)."""
    opener = gzip.open if path.endswith(".gz") else open
    out: list[AcnSession] = []
    with opener(path, "rt", encoding="utf-8", newline="") as fh:  # type: ignore[operator]
        for row in csv.DictReader(fh):
            arrival = _parse_time(row["arrival"])
            departure = _parse_time(row["departure"])
            if arrival is None or departure is None or departure <= arrival:
                continue
            out.append(
                AcnSession(
                    session_id=row["session_id"],
                    station_id=row["station_id"],
                    arrival=arrival,
                    departure=departure,
                    requested_kwh=float(row["requested_energy (kWh)"] or 0.0),
                    delivered_kwh=float(row["delivered_energy (kWh)"] or 0.0),
                    estimated_departure=_parse_time(row.get("estimated_departure", "")),
                    claimed=row.get("claimed", "").strip().lower() == "true",
                )
            )
    return tuple(out)


def car_for(session_id: str, seed: str = "acn") -> str:
    """Deterministic car model for a session (rule 3)."""
    bucket = int.from_bytes(hashlib.sha256(f"{seed}:{session_id}".encode()).digest()[:8], "big") % 100
    for upper, name in CAR_BUCKETS:
        if bucket < upper:
            return name
    return CAR_BUCKETS[-1][1]


def initial_soc(requested_kwh: float, capacity_kwh: float, target_soc: float, min_soc: float) -> float:
    """Rule 4: target minus the requested energy as a share of the battery, clamped."""
    soc = target_soc - 100.0 * requested_kwh / capacity_kwh
    return max(min(soc, target_soc), min(min_soc, target_soc))


def _shift(dt: datetime, days: int) -> datetime:
    local = dt.astimezone(LOCAL_TZ).replace(tzinfo=None) + timedelta(days=days)
    return local.replace(tzinfo=LOCAL_TZ).astimezone(UTC)


def build_replay(cfg: ReplayConfig, epoch: datetime, slots: list[tuple[str, int]]) -> ReplayResult:
    """Map the configured day of ACN sessions onto ``slots`` ((station id, evse id) in fleet order)."""
    if not slots:
        raise ValueError("replay needs at least one EVSE in the fleet")
    sessions = load_acn(str(acn_path(cfg.file)))
    data_day = datetime.fromisoformat(cfg.date).date()
    sim_day = epoch.astimezone(LOCAL_TZ).date()
    days = (sim_day - data_day).days
    if cfg.window_s is not None:
        window_end = epoch + timedelta(seconds=cfg.window_s)
    else:
        midnight = datetime.combine(sim_day + timedelta(days=1), datetime.min.time()).replace(tzinfo=LOCAL_TZ)
        window_end = midnight.astimezone(UTC)
    chosen: list[tuple[datetime, datetime, AcnSession]] = []
    lo, hi = data_day - timedelta(days=2), data_day + timedelta(days=1)
    for s in sessions:
        if not lo <= s.arrival.astimezone(LOCAL_TZ).date() <= hi:
            continue
        arrival, departure = _shift(s.arrival, days), _shift(s.departure, days)
        if departure <= epoch or arrival >= window_end:
            continue
        chosen.append((arrival, departure, s))
    chosen.sort(key=lambda c: (c[0], c[2].session_id))
    station_ids = sorted({c[2].station_id for c in chosen})
    home = {sid: k % len(slots) for k, sid in enumerate(station_ids)}
    busy_until = [epoch - timedelta(days=1)] * len(slots)
    assignments: list[ReplayAssignment] = []
    skipped: list[AcnSession] = []
    for arrival, departure, s in chosen:
        plug_in = max(arrival, epoch)
        slot = None
        for step in range(len(slots)):
            k = (home[s.station_id] + step) % len(slots)
            if busy_until[k] <= plug_in:
                slot = k
                break
        if slot is None:
            skipped.append(s)
            continue
        busy_until[slot] = departure
        car = car_for(s.session_id, cfg.seed)
        capacity = CARS[car].capacity_kwh
        soc = initial_soc(s.requested_kwh, capacity, cfg.target_soc, cfg.min_initial_soc)
        if arrival < epoch:
            hours = (epoch - arrival).total_seconds() / 3600.0
            done = min(s.delivered_kwh, LEVEL2_KW * hours)
            soc = min(cfg.target_soc, soc + 100.0 * done / capacity)
        planned = departure
        if s.estimated_departure is not None:
            est = _shift(s.estimated_departure, days)
            if est > plug_in:
                planned = est
        token = "ACN-" + hashlib.sha256(s.session_id.encode()).hexdigest()[:12].upper()
        station_id, evse_id = slots[slot]
        plan = SessionPlan(
            plug_in_t=plug_in.timestamp(),
            departure_t=departure.timestamp(),
            plan_departure_t=planned.timestamp(),
            car=car,
            initial_soc=round(soc, 3),
            target_soc=cfg.target_soc,
            id_token=token,
            session_id=s.session_id,
        )
        assignments.append(ReplayAssignment(station_id, evse_id, plan, s))
    return ReplayResult(assignments, skipped)
