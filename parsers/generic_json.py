"""``json``: any JSON object, kept as it is, with flattened dotted field access.

So that any Sigma rule can run on any JSON log under its own field names. ``@timestamp`` is taken
from the usual time keys when one parses; the original keys are never renamed.
"""

from __future__ import annotations

from typing import Any

from temporal_siem.kernel.flatten import flatten_json, flatten_owned
from temporal_siem.kernel.records import PENDING, RecordError
from temporal_siem.parsers.base import Parser
from temporal_siem.parsers.common import event_id_from_raw, redact, timestamp_or_none

TIME_KEYS = ("@timestamp", "timestamp", "time", "ts", "eventTime", "published", "emit_time", "TimeCreated", "UtcTime", "date",
             # Windows events exported as evtx JSON (evtx_dump, both attribute spellings; other converters)
             "Event.System.TimeCreated.#attributes.SystemTime", "Event.System.TimeCreated_attributes.SystemTime",
             "Event.System.TimeCreated.SystemTime")
_TIME_KEY_SET = frozenset(TIME_KEYS)


class JsonParser(Parser):
    name = "json"
    dataset = "json"

    def accepts(self, record: dict[str, Any]) -> bool:
        return isinstance(record, dict)

    def parse(self, record: dict[str, Any] | str, raw: bytes) -> list[dict[str, Any]]:
        if not isinstance(record, dict):
            raise RecordError("not a JSON object", type(record).__name__)
        return [self.complete(flatten_json(redact(record)), raw)]  # decoded from JSON by the router: every key is a str

    def parse_clean(self, record: dict[str, Any], raw: bytes, defer: bool = False) -> dict[str, Any]:
        """The event of a record just decoded from ``raw`` that holds nothing secret-shaped (``scan_record(raw)``
        is 0, so :func:`redact` would return it as is) and that nothing else holds: :meth:`parse`'s event,
        built in ``record`` itself when it is flat (the router's plain-JSON path, most Windows and plain logs).

        A record whose bytes hold no ``{`` after the first and no ``[`` is flat as decoded (a nested object or a
        list needs one outside a string): two byte searches in C instead of a type test of every value (~0.25 us
        less on a Sysmon event). Any other record is checked value by value, as before.

        ``defer``: ``@timestamp`` and ``event.id`` are left :data:`PENDING` where they go, for :meth:`finish`
        (``ParserRouter.defer_completion`` says when and why), unless the record has an ``event.id`` of its own:
        an event is pending exactly when its ``event.id`` is :data:`PENDING`."""
        event = record if raw.find(b"{", 1) < 0 and b"[" not in raw else flatten_owned(record)
        if not defer or "event.id" in event:  # a pending event is one whose event.id is PENDING: this one is done now
            return self.complete(event, raw)
        if "@timestamp" not in event and not event.keys().isdisjoint(_TIME_KEY_SET):
            event["@timestamp"] = PENDING  # kept if a time key parses, removed if none does (finish)
        event["event.id"] = PENDING
        event.setdefault("event.kind", "event")
        event.setdefault("event.dataset", self.dataset)
        return event

    def finish(self, event: dict[str, Any], raw: bytes) -> None:
        """What :meth:`complete` gives, in place, for an event :meth:`parse_clean` left pending: the same values
        in the same key order (the placeholders held the places; a ``@timestamp`` no time key fills is removed,
        so the keys after it stay in order)."""
        present = event.keys() & _TIME_KEY_SET
        placeholder = event.get("@timestamp") is PENDING
        if placeholder:
            present.discard("@timestamp")
        text = _event_time(event, present)
        if text is not None:
            event["@timestamp"] = text
        elif placeholder:
            del event["@timestamp"]
        if event.get("event.id") is PENDING:
            event["event.id"] = event_id_from_raw(raw)

    def complete(self, event: dict[str, Any], raw: bytes) -> dict[str, Any]:
        """``@timestamp`` from the usual time keys, ``event.id`` from the record bytes, kind and dataset."""
        text = _event_time(event, event.keys() & _TIME_KEY_SET)  # most records hold one of these keys, or none: one C pass
        if text is not None:
            event["@timestamp"] = text
        event.setdefault("event.id", event_id_from_raw(raw))
        event.setdefault("event.kind", "event")
        event.setdefault("event.dataset", self.dataset)
        return event


def _event_time(event: dict[str, Any], present: set[str]) -> str | None:
    """The ``@timestamp`` text of the first time key of ``present`` (in :data:`TIME_KEYS`'s order) that parses."""
    for key in TIME_KEYS if len(present) > 1 else present:  # several: the first in TIME_KEYS's order that parses
        if key not in present:
            continue
        value = event[key]
        if value is None:  # parse_timestamp(None) is None
            continue
        text = timestamp_or_none(value)
        if text is not None:
            return text
    return None
