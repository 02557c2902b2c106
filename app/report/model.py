"""The report as data: everything the page shows, aggregated in Python so the browser only draws.

Aggregation happens once, here, over the alert list; the page embeds the aggregates (server-side SVG and
tables) plus one compressed, columnar copy of the alerts for the client-side table. Every field read from an
alert is treated as untrusted: it may be missing, of the wrong type, or hostile text.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

LEVELS = ("critical", "high", "medium", "low", "informational")
OTHER_LEVEL = "other"

# Entity kind -> the fields that name it, in preference order, and whether only the first present one counts.
ENTITY_FIELDS: dict[str, tuple[tuple[str, ...], bool]] = {
    # temporal.user_key: the enrichment's one spelling of a person across identity providers (lower-cased email).
    "user": (("temporal.user_key", "user.name", "user.email", "user.id", "temporal.principal.name"), True),
    "source.ip": (("source.ip", "client.ip"), True),
    "namespace": (("temporal.namespace",), True),
    "key": (("temporal.key.id", "temporal.key.arn", "temporal.api_key.id"), False),
}
TOP_ENTITIES = 15
MAX_ENTITY_TEXT = 200

# Bucket sizes for the timeline, smallest first; the first that gives at most MAX_BUCKETS buckets wins.
BUCKET_STEPS = (1, 5, 10, 30, 60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 604800, 2592000, 31536000)
MAX_BUCKETS = 96

_FRACTION = re.compile(r"(\.\d{6})\d+")


def level_of(alert: dict[str, Any]) -> str:
    level = alert.get("alert.level")
    return level if isinstance(level, str) and level in LEVELS else OTHER_LEVEL


def text(value: Any, limit: int = MAX_ENTITY_TEXT) -> str:
    """A short display string for any field value (lists joined)."""
    if value is None:
        return ""
    if isinstance(value, list):
        value = ", ".join(text(v, limit) for v in value)
    result = value if isinstance(value, str) else str(value)
    return result if len(result) <= limit else result[: limit - 1] + "…"


def parse_time(value: Any) -> float | None:
    """Epoch seconds of an ISO 8601 timestamp, or None when it is not one."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        try:
            moment = datetime.fromisoformat(_FRACTION.sub(r"\1", value.replace("Z", "+00:00")))
        except ValueError:
            return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        return moment.timestamp()
    except (OverflowError, OSError, ValueError):
        return None


def _group_kind(field_name: str) -> str | None:
    """Entity kind of a correlation group-by field outside ENTITY_FIELDS, from its name."""
    parts = field_name.lower().replace("_", ".").split(".")
    for kind, words in (("user", ("user", "principal", "actor")), ("source.ip", ("ip",)), ("namespace", ("namespace",)), ("key", ("key",))):
        if any(word in parts for word in words):
            return kind
    return None


def entities_of(alert: dict[str, Any]) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    group = alert.get("alert.group_by")
    if isinstance(group, dict):
        for name, value in group.items():
            kind = _group_kind(str(name))
            if kind is not None and value not in (None, "") and not isinstance(value, (dict, list)) and (kind, text(value)) not in found:
                found.append((kind, text(value)))
    from_group = {kind for kind, _ in found}
    for kind, (fields, first_only) in ENTITY_FIELDS.items():
        if first_only and kind in from_group:
            continue  # a correlation's group-by value names this entity already
        for name in fields:
            value = alert.get(name)
            if value is None or value == "" or value == []:
                continue
            values = value if isinstance(value, list) else [value]
            for item in values:
                if item is None or isinstance(item, (dict, list)) or item == "":
                    continue
                pair = (kind, text(item))
                if pair not in found:
                    found.append(pair)
            if first_only:
                break
    order = list(ENTITY_FIELDS)
    return sorted(found, key=lambda pair: order.index(pair[0]))


@dataclass(slots=True)
class RuleRow:
    id: str
    name: str
    level: str
    alert_type: str
    count: int = 0
    attack: list[str] = field(default_factory=list)
    other_tags: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Timeline:
    step: int = 0
    start: float = 0.0
    # level -> count per bucket
    series: dict[str, list[int]] = field(default_factory=dict)
    untimed: int = 0

    @property
    def buckets(self) -> int:
        return max((len(v) for v in self.series.values()), default=0)


@dataclass(slots=True)
class HealthRow:
    id: str
    title: str
    level: str
    routed: int | None
    evaluated: int | None
    matched: int | None
    missing_fields: list[str]
    source: str
    errors: int = 0
    warnings: list[str] = field(default_factory=list)


@dataclass(slots=True)
class RuleHealth:
    reported: bool = False
    rules: list[HealthRow] = field(default_factory=list)
    load_errors: list[tuple[str, str]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def never_routed(self) -> list[HealthRow]:
        return [r for r in self.rules if r.routed == 0]

    @property
    def with_missing_fields(self) -> list[HealthRow]:
        return [r for r in self.rules if r.missing_fields]

    @property
    def with_errors(self) -> list[HealthRow]:
        return [r for r in self.rules if r.errors]


@dataclass(slots=True)
class ReportModel:
    run: dict[str, Any]
    alerts_total: int
    by_level: Counter[str]
    by_type: Counter[str]
    rules: list[RuleRow]
    timeline: Timeline
    entities: dict[str, list[tuple[str, int]]]
    correlations: list[dict[str, Any]]
    health: RuleHealth
    inputs: list[str]
    generated: str


def build_rules(alerts: list[dict[str, Any]]) -> list[RuleRow]:
    rows: dict[str, RuleRow] = {}
    for alert in alerts:
        rule_id = text(alert.get("rule.id"))
        row = rows.get(rule_id)
        if row is None:
            tags = [text(t) for t in alert.get("tags") or [] if isinstance(t, str)] if isinstance(alert.get("tags"), list) else []
            row = rows[rule_id] = RuleRow(
                id=rule_id, name=text(alert.get("rule.name")) or rule_id, level=level_of(alert),
                alert_type=text(alert.get("alert.type")) or "rule",
                attack=[t for t in tags if t.lower().startswith("attack.")],
                other_tags=[t for t in tags if not t.lower().startswith("attack.")],
            )
        row.count += 1
    order = {lvl: i for i, lvl in enumerate(LEVELS)}
    return sorted(rows.values(), key=lambda r: (-r.count, order.get(r.level, len(LEVELS)), r.name))


def build_timeline(alerts: list[dict[str, Any]], times: list[float | None]) -> Timeline:
    timed = [t for t in times if t is not None]
    timeline = Timeline(untimed=len(times) - len(timed))
    if not timed:
        return timeline
    low, high = min(timed), max(timed)
    span = high - low
    step = next((s for s in BUCKET_STEPS if span / s < MAX_BUCKETS), 0)
    if step == 0:
        step = int(span / (MAX_BUCKETS - 1)) + 1
    start = low - (low % step)
    count = int((high - start) // step) + 1
    series: dict[str, list[int]] = {}
    for alert, moment in zip(alerts, times, strict=True):
        if moment is None:
            continue
        bucket = min(int((moment - start) // step), count - 1)
        series.setdefault(level_of(alert), [0] * count)[bucket] += 1
    timeline.step, timeline.start, timeline.series = step, start, series
    return timeline


def build_entities(alerts: list[dict[str, Any]], top: int = TOP_ENTITIES) -> dict[str, list[tuple[str, int]]]:
    counters: dict[str, Counter[str]] = {kind: Counter() for kind in ENTITY_FIELDS}
    for alert in alerts:
        for kind, value in entities_of(alert):
            counters[kind][value] += 1
    return {kind: counter.most_common(top) for kind, counter in counters.items()}


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def build_health(stats: dict[str, Any] | None) -> RuleHealth:
    """Rule health from Detector.stats(); any part may be absent while the engine evolves."""
    health = RuleHealth()
    if not isinstance(stats, dict) or not stats:
        return health
    rules = stats.get("rules")
    if isinstance(rules, dict):
        health.reported = True
        for rule_id, info in rules.items():
            info = info if isinstance(info, dict) else {}
            missing = info.get("missing_fields")
            warnings = info.get("warnings")
            health.rules.append(HealthRow(
                id=text(rule_id), title=text(info.get("title")) or text(rule_id), level=text(info.get("level")),
                routed=_int_or_none(info.get("routed")), evaluated=_int_or_none(info.get("evaluated")),
                matched=_int_or_none(info.get("matched")),
                missing_fields=[text(f) for f in missing] if isinstance(missing, list) else [],
                source=text(info.get("source"), 300), errors=_int_or_none(info.get("errors")) or 0,
                warnings=[text(w, 500) for w in warnings] if isinstance(warnings, list) else [],
            ))
        health.rules.sort(key=lambda r: (r.routed is None, r.routed or 0, r.title))
    errors = stats.get("load_errors")
    if isinstance(errors, list):
        health.reported = True
        for error in errors:
            if isinstance(error, dict):
                health.load_errors.append((text(error.get("file"), 300), text(error.get("error"), 2000)))
            else:
                health.load_errors.append(("", text(error, 2000)))
    health.extra = {k: v for k, v in stats.items() if k not in ("rules", "load_errors") and isinstance(v, (int, float, str))}
    return health


def build_model(alerts: list[dict[str, Any]], run: dict[str, Any] | None = None, detector_stats: dict[str, Any] | None = None,
                inputs: list[str] | None = None, now: datetime | None = None) -> ReportModel:
    times = [parse_time(a.get("@timestamp")) for a in alerts]
    return ReportModel(
        run=dict(run or {}),
        alerts_total=len(alerts),
        by_level=Counter(level_of(a) for a in alerts),
        by_type=Counter(text(a.get("alert.type")) or "rule" for a in alerts),
        rules=build_rules(alerts),
        timeline=build_timeline(alerts, times),
        entities=build_entities(alerts),
        correlations=[a for a in alerts if a.get("alert.type") == "correlation"],
        health=build_health(detector_stats),
        inputs=list(inputs or []),
        generated=(now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M:%S UTC"),
    )
