"""``ecs``: records that are already ECS JSON (Beats/Elastic Agent output, our own event files).

Recognized by ``@timestamp`` plus ``event.*`` (nested or dotted), or by ``ecs.version``. Kept as they are,
flattened; validation is loose on purpose: a value outside ECS's allowed ``event.category``/``event.type``/
``event.outcome`` lists is kept (someone else's pipeline wrote it and a rule may still match on it), and
only what the hot path depends on is normalized:

* ``@timestamp`` re-rendered in our UTC µs form (unparseable → dead letter "no timestamp");
* ``event.category``/``event.type`` given as a single string become one-element lists;
* ``event.id`` and ``error.code`` become strings; missing ``event.id`` = sha256 of the record;
* an ``*.ip`` (source, destination, client, server, host) that is not an IP moves to ``*.address``.

Redacted: secret-named keys and token patterns (``parsers.common.redact``).
"""

from __future__ import annotations

from typing import Any

from parsers.base import Parser
from parsers.common import as_str, clean_ip, event_id_from_raw, format_timestamp, parse_timestamp, redact
from temporal_siem.flatten import flatten
from temporal_siem.records import RecordError

ENDPOINTS = ("source", "destination", "client", "server")


class EcsParser(Parser):
    name = "ecs"
    dataset = "ecs"

    def accepts(self, record: dict[str, Any]) -> bool:
        if "ecs.version" in record or isinstance(record.get("ecs"), dict):
            return True
        return "@timestamp" in record and (isinstance(record.get("event"), dict) or "event.kind" in record
                                           or "event.action" in record or "event.dataset" in record or "event.category" in record)

    def parse(self, record: dict[str, Any] | str, raw: bytes) -> list[dict[str, Any]]:
        if not isinstance(record, dict):
            raise RecordError("not a JSON object", "ECS records are JSON objects")
        event = flatten(redact(record))
        when = parse_timestamp(event.get("@timestamp"))
        if when is None:
            raise RecordError("no timestamp", f"@timestamp unparseable: {str(event.get('@timestamp'))[:80]}")
        event["@timestamp"] = format_timestamp(when)
        for key in ("event.category", "event.type"):
            value = event.get(key)
            if isinstance(value, str):
                event[key] = [value]
        event_id = as_str(event.get("event.id"))
        event["event.id"] = event_id or event_id_from_raw(raw)
        if "error.code" in event:
            code = as_str(event["error.code"])
            if code is None:
                event.pop("error.code")
            else:
                event["error.code"] = code
        for endpoint in ENDPOINTS:
            key = f"{endpoint}.ip"
            value = event.get(key)
            if value is None or isinstance(value, list):
                continue
            ip = clean_ip(value)
            if ip is None:
                event.pop(key)
                event.setdefault(f"{endpoint}.address", as_str(value))
            else:
                event[key] = ip
        event.setdefault("event.kind", "event")
        event.setdefault("event.dataset", self.dataset)
        return [event]
