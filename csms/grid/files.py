"""Load grid events from a JSON file: one document or a list of them.

Each document may be a canonical event, a ``{"cancel": "<id>"}``, a Leap notification or an
OpenADR 3 event (see :mod:`csms.grid.intake`). By default the file is all or nothing for
what can be checked up front: every canonical event is validated and checked against the
revision rules before the first is submitted, so a typo in the third event does not leave
the first two planned. (Leap and OpenADR documents are mapped and checked on submission.)
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
import structlog

from .book import EventBook
from .intake import detect_format, ingest
from .model import EventRejected
from .results import IntakeResult

log = structlog.get_logger("csms.grid.files")


def read_events_file(path: Path | str) -> list[Any]:
    """The documents in ``path`` (a list even for a single document)."""
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise EventRejected("file", f"cannot read {p}: {exc.strerror or exc}") from None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise EventRejected("file", f"{p} is not valid JSON: {exc}") from None
    return data if isinstance(data, list) else [data]


def precheck(book: EventBook, docs: list[Any], *, source: str = "file") -> None:
    """Raise :class:`EventRejected` (field prefixed with ``[index]`` when the file holds a list)
    for the first canonical document the book would refuse."""
    many = len(docs) > 1
    for i, doc in enumerate(docs):
        prefix = f"[{i}]" if many else ""
        if not isinstance(doc, dict):
            raise EventRejected(prefix or "event", f"must be a JSON object, not {type(doc).__name__}")
        if detect_format(doc) != "canonical":
            continue
        try:
            book.check(doc, source=source)
        except EventRejected as exc:
            field = f"{prefix}.{exc.field}" if prefix and exc.field else (prefix or exc.field)
            raise EventRejected(field, exc.reason) from None


async def load_file(
    book: EventBook, path: Path | str, *, source: str = "file", all_or_nothing: bool = True
) -> IntakeResult:
    """Submit every document of ``path``. With ``all_or_nothing`` (default) a refused canonical
    event raises :class:`EventRejected` before anything is submitted; otherwise refusals are
    collected in the result and the other documents still go in."""
    docs = await asyncio.to_thread(read_events_file, path)  # file I/O and parsing off the event loop
    if not docs:
        return IntakeResult(notes=[f"{path}: no events"])
    if all_or_nothing:
        precheck(book, docs, source=source)
    result = await ingest(book, docs if len(docs) > 1 else docs[0], source=source)
    log.info(
        "grid events loaded from file",
        path=str(path),
        accepted=len(result.accepted),
        rejected=len(result.rejected),
    )
    return result
