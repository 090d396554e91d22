"""A departure model for the demo and the replay tests, learned from the bundled Caltech ACN
sessions (``simulators/data/acn-caltech``) instead of a store's history: the 2019 months (the
benchmark's development part), leaving out the day being replayed."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

from csms.dispatch.departure import DepartureModel, SessionRecord

CALTECH_TZ = ZoneInfo("America/Los_Angeles")
#: The months the planner and the model were tuned on (``bench.planner``'s ``dev`` split).
DEV_FILES = ("2019-05-01_2019-08-31.csv.gz", "2019-09-01_2019-12-31.csv.gz")


def acn_departure_model(*, exclude: date | None = None, files: tuple[str, ...] = DEV_FILES) -> DepartureModel:
    """The Caltech garage's departure model (weekday and hour of arrival, local time), without
    the sessions that arrived on ``exclude`` (the replayed day)."""
    from simulators.sessions import acn_path, load_acn

    records = [
        SessionRecord(
            arrival=s.arrival,
            departure=s.departure,
            estimated_departure=s.estimated_departure,
            energy_kwh=s.delivered_kwh,
        )
        for name in files
        for s in load_acn(str(acn_path(name)))
        if exclude is None or s.arrival.astimezone(CALTECH_TZ).date() != exclude
    ]
    return DepartureModel.fit(records, CALTECH_TZ)


__all__ = ["CALTECH_TZ", "acn_departure_model"]
