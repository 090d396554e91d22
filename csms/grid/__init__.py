"""Grid-event intake: the canonical event model, the event book and the channels feeding it.

* :mod:`csms.grid.model` - :class:`GridEvent` and its validation (:class:`EventRejected`)
* :mod:`csms.grid.book` - :class:`EventBook`: revisions, cancellation, precedence, persistence
* :mod:`csms.grid.leap`, :mod:`csms.grid.openadr` - source formats mapped onto the model
* :mod:`csms.grid.intake` - format detection and one ``ingest()`` for every channel
* :mod:`csms.grid.mqtt` - :class:`~csms.grid.mqtt.MqttBridge` (events in, acks/status out)
* :mod:`csms.grid.webhook` - FastAPI ``router`` (``/grid/...``)
* :mod:`csms.grid.files` - JSON files; :mod:`csms.grid.cli` - ``csms event ...`` (``event_app``)

Only the model and the book are imported here; the channel modules pull in aiomqtt, FastAPI
or typer and are imported where they are used.
"""

from .book import EventBook, Resolution, Submission
from .model import EventRejected, GridEvent, Interval, UnknownEvent, validate_event

__all__ = [
    "EventBook",
    "EventRejected",
    "GridEvent",
    "Interval",
    "Resolution",
    "Submission",
    "UnknownEvent",
    "validate_event",
]
