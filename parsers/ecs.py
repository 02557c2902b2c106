"""``ecs``: records that are already ECS JSON (Beats/Elastic Agent output, our own event files).

Recognized by ``@timestamp`` plus ``event.*`` (nested or dotted), or by ``ecs.version``. Kept as they are,
flattened; validation is loose on purpose: a value outside ECS's allowed ``event.category``/``event.type``/
``event.outcome`` lists is kept (someone else's pipeline wrote it and a rule may still match on it), and
only what the hot path depends on is normalized:

* ``@timestamp`` re-rendered in our UTC µs form (unparseable → dead letter "no timestamp");
* ``event.category``/``event.type`` given as a single string become one-element lists;
* ``event.id`` and ``error.code`` become strings; missing ``event.id`` = sha256 of the record;
* an ``*.ip`` (source, destination, client, server, host) that is not an IP moves to ``*.address``.

Shipper envelopes: Filebeat / Elastic Agent / Logstash sending raw lines (to Kafka, typically) produce
``{"@timestamp", "message": "<the raw line>", "ecs", "agent", "host", "log.file.path", ...}`` with no parsed
``event.*``. Such a record is opened: the ``message`` (JSON or text) goes through the format chain, and the
shipper's ``host.*``, ``agent.*``, ``log.file.path``, ``log.offset``, ``cloud.*``, ``container.*`` and
``kubernetes.*`` fields are added to the inner events where those lack them. If no format claims the line, the
record is kept as ECS, as is.

Redacted: secret-named keys and token patterns (``parsers.common.redact``).
"""

from __future__ import annotations

from typing import Any

import orjson

from temporal_siem.kernel.flatten import flatten
from temporal_siem.kernel.records import RecordError
from temporal_siem.parsers.base import Parser
from temporal_siem.parsers.common import as_str, clean_ip, event_id_from_raw, format_timestamp, parse_timestamp, redact

ENDPOINTS = ("source", "destination", "client", "server")
# Fields a shipper adds around a raw line; anything else (a parsed event.action, user.*...) means already ECS.
SHIPPER_KEYS = frozenset({"@timestamp", "@metadata", "message", "ecs", "agent", "host", "log", "input", "fields", "tags", "cloud",
                          "container", "kubernetes", "data_stream", "event", "service", "fileset", "stream", "labels", "elastic_agent"})
SHIPPER_EVENT_KEYS = frozenset({"dataset", "module", "original", "created", "ingested", "timezone", "agent_id_status"})
SHIPPER_CONTEXT = ("host.", "agent.", "log.file.", "log.offset", "cloud.", "container.", "kubernetes.", "data_stream.")


class EcsParser(Parser):
    name = "ecs"
    dataset = "ecs"
    accept_keys = frozenset({"ecs.version", "ecs", "@timestamp"})  # accepts() says no without one

    def accepts(self, record: dict[str, Any]) -> bool:
        if "ecs.version" in record or isinstance(record.get("ecs"), dict):
            return True
        if isinstance(record.get("agent"), dict) and isinstance(record.get("message"), str) and "@timestamp" in record:
            return True  # a Beats/Agent event without the ecs block (older shippers, Logstash pass-through)
        return "@timestamp" in record and (isinstance(record.get("event"), dict) or "event.kind" in record
                                           or "event.action" in record or "event.dataset" in record or "event.category" in record)

    def parse(self, record: dict[str, Any] | str, raw: bytes) -> list[dict[str, Any]]:
        if not isinstance(record, dict):
            raise RecordError("not a JSON object", "ECS records are JSON objects")
        inner = self._shipped_line(record)
        if inner is not None:
            return inner
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

    def _shipped_line(self, record: dict[str, Any]) -> list[dict[str, Any]] | None:
        """The events of the raw line a shipper wrapped, or None when this is not such a wrapper."""
        message = record.get("message")
        if not isinstance(message, str) or not message.strip() or not set(record) <= SHIPPER_KEYS:
            return None
        shipped_event = record.get("event")
        if shipped_event is not None and not (isinstance(shipped_event, dict) and set(shipped_event) <= SHIPPER_EVENT_KEYS):
            return None
        parser, inner = _claim(message)
        if parser is None:
            return None
        try:
            events = parser.parse(inner, message.encode("utf-8", "replace"))
        except RecordError:
            return None  # the line looked like a format but is not one: keep the wrapper as ECS
        context = {k: v for k, v in flatten(redact(record)).items() if k.startswith(SHIPPER_CONTEXT)}
        for event in events:
            for key, value in context.items():
                event.setdefault(key, value)
        return events


def _claim(message: str) -> tuple[Any, Any]:
    """(parser, decoded record) for the first specific format that accepts the line; never ecs/json themselves."""
    from temporal_siem.parsers.registry import detection_chain

    text = message.strip()
    decoded: Any = text
    if text[:1] == "{":
        try:
            decoded = orjson.loads(text)
        except orjson.JSONDecodeError:
            decoded = text
    for parser in detection_chain():
        if parser.name in ("ecs", "json"):
            continue
        if isinstance(decoded, dict) and parser.accepts(decoded):
            return parser, decoded
        if isinstance(decoded, str) and parser.accepts_text(decoded):
            return parser, decoded
    return None, None
