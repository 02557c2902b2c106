"""The alert contract (docs/alerts.md): one flat document per alert, nested on output.

Stable on purpose: other tools read it. ``alert.id`` is deterministic so that a re-delivered batch
produces the same ids and downstream create-if-absent writes drop the duplicates.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from temporal_siem.kernel.levels import SEVERITY_BY_LEVEL

MAX_SOURCE_EVENT_IDS = 100

# Fields of a triggering event never copied into its alert (ours are set below; vendor blobs stay in the event).
_NOT_COPIED_PREFIXES = ("rule.", "alert.", "event.original")


@dataclass(slots=True, frozen=True)
class RuleMeta:
    """What an alert says about the rule that raised it."""

    id: str
    title: str
    description: str = ""
    level: str = "medium"
    tags: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    author: str = ""
    status: str = ""
    falsepositives: tuple[str, ...] = ()
    source: str = ""  # file the rule came from
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def severity(self) -> int:
        return SEVERITY_BY_LEVEL.get(self.level, SEVERITY_BY_LEVEL["medium"])


def alert_id(*parts: str) -> str:
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()[:32]


def _rule_fields(rule: RuleMeta, alert_type: str) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "event.kind": "alert",
        "event.severity": rule.severity,
        "event.risk_score": float(rule.severity),
        "rule.id": rule.id,
        "rule.name": rule.title,
        "rule.description": rule.description,
        "rule.ruleset": "sigma",
        "tags": list(rule.tags),
        "alert.type": alert_type,
        "alert.level": rule.level,
    }
    if rule.references:
        doc["rule.reference"] = rule.references[0]
    if rule.author:
        doc["rule.author"] = rule.author
    techniques = [t.split(".", 1)[1].upper() for t in rule.tags if t.lower().startswith("attack.t")]
    if techniques:
        doc["threat.technique.id"] = techniques
        doc["threat.framework"] = "MITRE ATT&CK"
    return doc


#: (id of a RuleMeta, alert type) -> (that RuleMeta, its rule fields). The RuleMeta is held so its id stays its own.
_RULE_FIELDS: dict[tuple[int, str], tuple[RuleMeta, dict[str, Any]]] = {}
_RULE_FIELDS_MAX = 65_536


def _rule_fields_template(rule: RuleMeta, alert_type: str) -> dict[str, Any]:
    """The rule's alert fields, built once per rule and shared: callers copy its lists (see ``_add_rule_fields``).

    A rule can raise an alert for every event (212,581 alerts for 200k events in the peer bench), and rebuilding
    them was a tenth of the run."""
    key = (id(rule), alert_type)
    hit = _RULE_FIELDS.get(key)
    if hit is None or hit[0] is not rule:
        if len(_RULE_FIELDS) >= _RULE_FIELDS_MAX:
            _RULE_FIELDS.clear()
        hit = (rule, _rule_fields(rule, alert_type))
        _RULE_FIELDS[key] = hit
    return hit[1]


def _add_rule_fields(doc: dict[str, Any], rule: RuleMeta, alert_type: str) -> None:
    template = _rule_fields_template(rule, alert_type)
    doc.update(template)
    doc["tags"] = template["tags"].copy()  # lists stay each alert's own: a sink or enricher may extend them
    techniques = template.get("threat.technique.id")
    if techniques is not None:
        doc["threat.technique.id"] = techniques.copy()


#: Key tuples of triggering events -> whether any key is one ``_NOT_COPIED_PREFIXES`` drops. A parser gives its
#: events few shapes (the same keys in the same order), so the decision is one tuple and one dict probe per alert
#: (0.30 us for a 20-key Windows event, where joining the keys and searching them was 0.84). Bounded in entries and
#: in what an entry holds alive (its key strings): a shape whose keys run past ``_SHAPE_TEXT_MAX`` characters in
#: all (a hostile record's) is decided afresh each time, and a stream of ever-new shapes clears the cache now and
#: then, costing a ``startswith`` pass per alert meanwhile. At most ~4096 x 4 KB of key text stays referenced.
_SHAPES: dict[tuple[Any, ...], bool] = {}
_SHAPES_MAX = 4096
_SHAPE_TEXT_MAX = 4096


def _event_fields(event: dict[str, Any]) -> dict[str, Any]:
    """The triggering event's fields an alert carries: all but ``_NOT_COPIED_PREFIXES`` (almost never any: a copy)."""
    keys = tuple(event)
    drops = _SHAPES.get(keys)
    if drops is None:
        if not all(key.__class__ is str for key in keys):  # a non-text key: the converting path, never cached
            return {str(k): v for k, v in event.items() if not str(k).startswith(_NOT_COPIED_PREFIXES)}
        drops = any(key.startswith(_NOT_COPIED_PREFIXES) for key in keys)
        if sum(map(len, keys)) <= _SHAPE_TEXT_MAX:
            if len(_SHAPES) >= _SHAPES_MAX:
                _SHAPES.clear()
            _SHAPES[keys] = drops
    if drops:
        return {k: v for k, v in event.items() if not k.startswith(_NOT_COPIED_PREFIXES)}
    return dict(event)


def rule_alert(rule: RuleMeta, event: dict[str, Any]) -> dict[str, Any]:
    """Alert for a single-event rule: the triggering event's normalized fields plus rule/alert fields."""
    event_id = str(event.get("event.id", ""))
    doc = _event_fields(event)
    _add_rule_fields(doc, rule, "rule")
    doc["alert.id"] = alert_id(rule.id, event_id)
    doc["alert.source_event_ids"] = [event_id]
    doc["alert.source_event_count"] = 1
    return doc


def correlation_alert(rule: RuleMeta, *, timestamp: str, event_ids: list[str], event_count: int,
                      group_by: dict[str, Any], window_start: str, window_end: str, correlation_type: str,
                      referenced_rules: list[str], value: float | None = None,
                      context: dict[str, Any] | None = None, related_alert_ids: list[str] | None = None) -> dict[str, Any]:
    """Alert for a correlation: @timestamp of the last event, group-by values, window bounds, capped ids."""
    group_text = "\x1e".join(f"{k}={group_by[k]!r}" for k in sorted(group_by))
    doc: dict[str, Any] = dict(context or {})
    _add_rule_fields(doc, rule, "correlation")
    doc["@timestamp"] = timestamp
    doc["alert.id"] = alert_id(rule.id, group_text, window_start)
    doc["alert.source_event_ids"] = event_ids[:MAX_SOURCE_EVENT_IDS]
    doc["alert.source_event_count"] = event_count
    doc["alert.group_by"] = dict(group_by)
    doc["alert.window"] = {"start": window_start, "end": window_end}
    doc["alert.correlation_type"] = correlation_type
    doc["alert.rules"] = list(referenced_rules)
    if related_alert_ids:
        # Alerts of the correlations this one is built on (chained correlations): their events are already in
        # alert.source_event_ids, which holds event ids only.
        doc["alert.related_alert_ids"] = list(related_alert_ids)
    if value is not None:
        doc["alert.value"] = value
    for key, val in group_by.items():
        doc.setdefault(key, val)
    return doc
