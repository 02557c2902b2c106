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
    """Events stored by shape: each distinct key list once, each distinct value once, an event as
    ``[shape, value index...]``. Replays repeat shapes and values (datasets, actions, user agents, geo) far
    beyond gzip's 32 KB window, so this is what keeps 50,000 events a few MB. Shapes are cached per source
    key order, so the per-event work is one tuple, one lookup and one intern per value."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.index: dict[str, int] = {}
        self.rows: list[list[int]] = []
        self.shapes: list[list[str]] = []
        self.values: list[Any] = []
        self._shapes: dict[tuple[tuple[str, ...], bool], tuple[int, list[str]]] = {}
        self._shape_ids: dict[tuple[str, ...], int] = {}
        self._values: dict[Any, int] = {}
        self.dropped = 0

    def _intern(self, value: Any) -> int:
        kind = type(value)
        if kind is str and len(value) <= MAX_VALUE_CHARS:
            key: Any = value
        elif kind is int or kind is bool or value is None:
            key = (kind, value)
        elif kind is list and len(value) <= MAX_LIST_ITEMS and all(type(v) is str and len(v) <= MAX_VALUE_CHARS for v in value):
            key = (list, *value)
        else:
            value = _clip(value)
            if isinstance(value, str):
                key = value
            elif isinstance(value, (list, dict)):
                key = (type(value), repr(value))
            else:
                key = (type(value), value)
        found = self._values.get(key)
        if found is None:
            found = self._values[key] = len(self.values)
            self.values.append(value)
        return found

    def _shape(self, document: dict[str, Any], from_alert: bool) -> tuple[int, list[str]]:
        source_keys = tuple(document)
        cached = self._shapes.get((source_keys, from_alert))
        if cached is None:
            if from_alert:
                kept = tuple(k for k in source_keys if k not in _ALERT_ONLY_KEYS and not k.startswith(_ALERT_ONLY_PREFIXES))
            else:
                kept = tuple(k for k in source_keys if k != "event.original")
            shape = self._shape_ids.get(kept)
            if shape is None:
                shape = self._shape_ids[kept] = len(self.shapes)
                self.shapes.append(list(kept))
            cached = self._shapes[(source_keys, from_alert)] = (shape, list(kept))
        return cached

    def add(self, key: str, document: dict[str, Any], from_alert: bool) -> int:
        """Index of the event behind ``document`` (a rule alert, or a retained event), or -1 past the cap."""
        found = self.index.get(key)
        if found is not None:
            return found
        if len(self.rows) >= self.limit:
            self.dropped += 1
            return -1
        shape, keys = self._shape(document, from_alert)
        intern = self._intern
        self.rows.append([shape, *[intern(document[k]) for k in keys]])
        self.index[key] = len(self.rows) - 1
        return len(self.rows) - 1


def payload_event(payload: dict[str, Any], index: int) -> dict[str, Any]:
    """Event ``index`` of a decoded payload as a dict (what the page's script rebuilds the same way)."""
    row = payload["evs"][index]
    return dict(zip(payload["shapes"][row[0]], (payload["vals"][v] for v in row[1:]), strict=True))


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
    columns: dict[str, list[Any]] = {"t": [], "r": [], "l": [], "c": [], "e": [], "id": [], "ev": [], "m": [], "ac": [], "o": [], "ns": []}
    for alert in alerts:
        rule_id = text(alert.get("rule.id"))
        if rule_id not in rule_index:
            rule_index[rule_id] = len(rules)
            rules.append([rule_id, text(alert.get("rule.name")) or rule_id, text(alert.get("rule.description"), 1000)])
        is_correlation = alert.get("alert.type") == "correlation"
        alert_id = text(alert.get("alert.id"), 100)
        columns["t"].append(text(alert.get("@timestamp"), 64))
        columns["r"].append(rule_index[rule_id])
        columns["l"].append(level_index[level_of(alert)])
        columns["c"].append(1 if is_correlation else 0)
        columns["e"].append([[kind_index[k], v] for k, v in entities_of(alert)])
        columns["id"].append(alert_id)
        columns["ac"].append(text(alert.get("event.action"), 200))
        columns["o"].append(text(alert.get("event.outcome"), 40))
        columns["ns"].append(text(alert.get("temporal.namespace"), 200))
        if is_correlation:
            columns["ev"].append(-1)
            columns["m"].append(_correlation_meta(alert, retained, table))
        else:
            key = text(alert.get("event.id"), 200) or f"alert:{alert_id}"
            columns["ev"].append(table.add(key, alert, True))
            columns["m"].append(0)
    return {
        "levels": levels, "kinds": kinds, "rules": rules, "a": columns,
        "shapes": table.shapes, "vals": table.values, "evs": table.rows,
        "caps": {"max_events": max_events, "events_not_embedded": table.dropped},
    }


def _correlation_meta(alert: dict[str, Any], retained: dict[str, dict[str, Any]], table: _EventTable) -> dict[str, Any]:
    ids = alert.get("alert.source_event_ids")
    ids = ids if isinstance(ids, list) else []
    sources: list[Any] = []
    for event_id in ids[:MAX_SOURCE_EVENTS]:
        key = text(event_id, 200)
        event = retained.get(key)
        sources.append(table.add(key, event, False) if event is not None else key)
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
