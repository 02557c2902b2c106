"""``json``: any JSON object, kept as it is, with flattened dotted field access.

So that any Sigma rule can run on any JSON log under its own field names. ``@timestamp`` is taken
from the usual time keys when one parses; the original keys are never renamed.
"""

from __future__ import annotations

from typing import Any

from temporal_siem.kernel.flatten import flatten_json
from temporal_siem.kernel.records import RecordError
from temporal_siem.parsers.base import Parser
from temporal_siem.parsers.common import event_id_from_raw, format_timestamp, parse_timestamp, redact

TIME_KEYS = ("@timestamp", "timestamp", "time", "ts", "eventTime", "published", "emit_time", "TimeCreated", "UtcTime", "date")


class JsonParser(Parser):
    name = "json"
    dataset = "json"

    def accepts(self, record: dict[str, Any]) -> bool:
        return isinstance(record, dict)

    def parse(self, record: dict[str, Any] | str, raw: bytes) -> list[dict[str, Any]]:
        if not isinstance(record, dict):
            raise RecordError("not a JSON object", type(record).__name__)
        event = flatten_json(redact(record))  # decoded from JSON by the router: every key is a str
        for key in TIME_KEYS:
            value = event.get(key)
            if value is None:  # parse_timestamp(None) is None; most records lack most of these keys
                continue
            dt = parse_timestamp(value)
            if dt is not None:
                event["@timestamp"] = format_timestamp(dt)
                break
        event.setdefault("event.id", event_id_from_raw(raw))
        event.setdefault("event.kind", "event")
        event.setdefault("event.dataset", self.dataset)
        return [event]
