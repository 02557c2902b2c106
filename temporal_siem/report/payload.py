"""The compact copy of the alerts embedded for the client-side table.

Columnar (one array per attribute, rules and levels as indexes) and deduplicated (alerts raised on the
same event share one copy of it), then gzip + base64: 50,000 alerts with their events stay a few MB and
the browser inflates them with its built-in DecompressionStream, so the page needs no network and no
library. Caps keep a pathological replay from producing an unopenable file.
"""

from __future__ import annotations

import base64
import gzip
import json
import math
from typing import Any

import orjson

from temporal_siem.report.model import ENTITY_FIELDS, LEVELS, OTHER_LEVEL, entities_of, level_of, text

MAX_EMBEDDED_EVENTS = 60_000
MAX_VALUE_CHARS = 2_000
MAX_LIST_ITEMS = 50
MAX_SOURCE_EVENTS = 100

# Alert fields that describe the rule or the alert, not the event: stripped to recover the event.
_ALERT_ONLY_PREFIXES = ("rule.", "alert.")
_ALERT_ONLY_KEYS = frozenset({"event.kind", "event.severity", "event.risk_score", "tags", "threat.technique.id", "threat.framework"})


def _clip(value: Any) -> Any:
    if isinstance(value, str):
        return value if len(value) <= MAX_VALUE_CHARS else value[:MAX_VALUE_CHARS] + f"… [{len(value) - MAX_VALUE_CHARS} more characters]"
    if isinstance(value, list):
        clipped = [_clip(v) for v in value[:MAX_LIST_ITEMS]]
        if len(value) > MAX_LIST_ITEMS:
            clipped.append(f"… [{len(value) - MAX_LIST_ITEMS} more items]")
        return clipped
    if isinstance(value, dict):
        return {text(k): _clip(v) for k, v in list(value.items())[:MAX_LIST_ITEMS]}
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN or Infinity
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return text(value, MAX_VALUE_CHARS)


def event_of_alert(alert: dict[str, Any]) -> dict[str, Any]:
    """The normalized triggering event a rule alert was built from."""
    return {k: _clip(v) for k, v in alert.items() if k not in _ALERT_ONLY_KEYS and not k.startswith(_ALERT_ONLY_PREFIXES)}


def clean_event(event: dict[str, Any]) -> dict[str, Any]:
    return {k: _clip(v) for k, v in event.items() if k != "event.original"}


class _EventTable:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.index: dict[str, int] = {}
        self.events: list[dict[str, Any]] = []
        self.dropped = 0

    def add(self, key: str, make: Any) -> int:
        found = self.index.get(key)
        if found is not None:
            return found
        if len(self.events) >= self.limit:
            self.dropped += 1
            return -1
        self.events.append(make())
        self.index[key] = len(self.events) - 1
        return len(self.events) - 1


def build_payload(alerts: list[dict[str, Any]], retained: dict[str, dict[str, Any]] | None = None,
                  max_events: int = MAX_EMBEDDED_EVENTS) -> dict[str, Any]:
    retained = retained or {}
    levels = [*LEVELS, OTHER_LEVEL]
    level_index = {lvl: i for i, lvl in enumerate(levels)}
    kinds = list(ENTITY_FIELDS)
    kind_index = {k: i for i, k in enumerate(kinds)}
    rules: list[list[str]] = []
    rule_index: dict[str, int] = {}
    table = _EventTable(max_events)
    columns: dict[str, list[Any]] = {"t": [], "r": [], "l": [], "c": [], "e": [], "id": [], "ev": [], "m": []}
    for alert in alerts:
        rule_id = text(alert.get("rule.id"))
        if rule_id not in rule_index:
            rule_index[rule_id] = len(rules)
            rules.append([rule_id, text(alert.get("rule.name")) or rule_id])
        is_correlation = alert.get("alert.type") == "correlation"
        alert_id = text(alert.get("alert.id"), 100)
        columns["t"].append(text(alert.get("@timestamp"), 64))
        columns["r"].append(rule_index[rule_id])
        columns["l"].append(level_index[level_of(alert)])
        columns["c"].append(1 if is_correlation else 0)
        columns["e"].append([[kind_index[k], v] for k, v in entities_of(alert)])
        columns["id"].append(alert_id)
        if is_correlation:
            columns["ev"].append(-1)
            columns["m"].append(_correlation_meta(alert, retained, table))
        else:
            key = text(alert.get("event.id"), 200) or f"alert:{alert_id}"
            columns["ev"].append(table.add(key, lambda a=alert: event_of_alert(a)))  # type: ignore[misc]
            columns["m"].append(0)
    return {
        "levels": levels, "kinds": kinds, "rules": rules, "a": columns, "ev": table.events,
        "caps": {"max_events": max_events, "events_not_embedded": table.dropped},
    }


def _correlation_meta(alert: dict[str, Any], retained: dict[str, dict[str, Any]], table: _EventTable) -> dict[str, Any]:
    ids = alert.get("alert.source_event_ids")
    ids = ids if isinstance(ids, list) else []
    sources: list[Any] = []
    for event_id in ids[:MAX_SOURCE_EVENTS]:
        key = text(event_id, 200)
        event = retained.get(key)
        sources.append(table.add(key, lambda e=event: clean_event(e)) if event is not None else key)  # type: ignore[misc]
    meta: dict[str, Any] = {
        "src": sources,
        "n": alert.get("alert.source_event_count") if isinstance(alert.get("alert.source_event_count"), int) else len(ids),
    }
    for key, short in (("alert.group_by", "g"), ("alert.window", "w"), ("alert.correlation_type", "ct"), ("alert.value", "v"),
                       ("alert.rules", "rr")):
        if key in alert:
            meta[short] = _clip(alert[key])
    return meta


def encode_payload(payload: dict[str, Any]) -> str:
    try:
        raw = orjson.dumps(payload, default=str, option=orjson.OPT_NON_STR_KEYS)
    except orjson.JSONEncodeError:
        # Lone surrogates (hostile or mis-decoded input) are not UTF-8: the standard library keeps them, encoding replaces them.
        raw = json.dumps(payload, default=str, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "replace")
    return base64.b64encode(gzip.compress(raw, compresslevel=6, mtime=0)).decode("ascii")


def decode_payload(blob: str) -> dict[str, Any]:
    """The inverse of :func:`encode_payload` (tests and tools read reports back with it)."""
    decoded: dict[str, Any] = orjson.loads(gzip.decompress(base64.b64decode(blob)))
    return decoded
