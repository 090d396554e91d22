"""What an intake channel returns: the events accepted and the ones refused, with why."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .book import Submission
from .model import EventRejected


@dataclass(frozen=True)
class Rejection:
    """One refused event: ``event_id`` when the document named a usable id."""

    event_id: str | None
    error: EventRejected

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.event_id, **self.error.to_dict()}


@dataclass
class IntakeResult:
    accepted: list[Submission] = field(default_factory=list)
    rejected: list[Rejection] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def extend(self, other: IntakeResult) -> None:
        self.accepted += other.accepted
        self.rejected += other.rejected
        self.notes += other.notes

    @property
    def ok(self) -> bool:
        return not self.rejected

    def to_dict(self) -> dict[str, Any]:
        return {
            "accepted": [{"outcome": s.outcome, "event": s.event.to_json()} for s in self.accepted],
            "rejected": [r.to_dict() for r in self.rejected],
            "notes": list(self.notes),
        }
