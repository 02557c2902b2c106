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
    # Alerts outside the drawn (busy) range: a few stray old or future events must not stretch the axis.
    before: int = 0
    after: int = 0

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

    @property
    def to_look_at(self) -> list[HealthRow]:
        """Rules that probably do not work: never routed, raising errors, or missing fields AND matching nothing.

        A rule that matched events is working even when some of its fields never appear: rules often name
        alternative spellings of one field (``user.name`` or ``user.email``) and only one is present."""
        return [r for r in self.rules if r.routed == 0 or r.errors or (r.missing_fields and not r.matched)]


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
    attack: dict[str, dict[str, int]]
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
    # Severity first: one critical finding must not sit below a thousand informational ones.
    return sorted(rows.values(), key=lambda r: (order.get(r.level, len(LEVELS)), -r.count, r.name))


OUTLIER_SHARE = 0.01  # at most this share of alerts may fall outside the drawn range on each side
OUTLIER_STRETCH = 10.0  # ... and only when they would stretch the axis this many times past the busy range


def busy_range(times: list[float]) -> tuple[float, float]:
    """The range the timeline draws: all alerts, unless up to 1 % at either end would stretch the axis more
    than tenfold (one 2021 event among 2025 alerts would otherwise make every bucket 30 days)."""
    ordered = sorted(times)
    low, high = ordered[0], ordered[-1]
    cut = int(len(ordered) * OUTLIER_SHARE)
    if cut == 0 and len(ordered) >= 20:
        cut = 1
    if cut:
        inner_low, inner_high = ordered[cut], ordered[-cut - 1]
        inner = max(inner_high - inner_low, 1.0)
        if (high - low) > OUTLIER_STRETCH * inner:
            lo_gap, hi_gap = inner_low - low, high - inner_high
            if lo_gap > inner:
                low = inner_low
            if hi_gap > inner:
                high = inner_high
    return low, high


def build_timeline(alerts: list[dict[str, Any]], times: list[float | None]) -> Timeline:
    timed = [t for t in times if t is not None]
    timeline = Timeline(untimed=len(times) - len(timed))
    if not timed:
        return timeline
    low, high = busy_range(timed)
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
        if moment < low:
            timeline.before += 1
            continue
        if moment > high:
            timeline.after += 1
            continue
        bucket = min(int((moment - start) // step), count - 1)
        series.setdefault(level_of(alert), [0] * count)[bucket] += 1
    timeline.step, timeline.start, timeline.series = step, start, series
    return timeline


def user_aliases(values: list[str]) -> dict[str, str]:
    """Bare user names that are the local part of exactly one e-mail address seen in the same alerts, mapped
    to that address ("mallory" -> "mallory@example.com"): one person, one row. Case-insensitive; a name
    shared by two addresses stays as it is (merging would be a guess)."""
    by_local: dict[str, set[str]] = {}
    for value in values:
        if "@" in value:
            by_local.setdefault(value.split("@", 1)[0].lower(), set()).add(value.lower())
    aliases: dict[str, str] = {}
    for value in values:
        if "@" not in value:
            emails = by_local.get(value.lower())
            if emails is not None and len(emails) == 1:
                aliases[value] = next(iter(emails))
        elif value != value.lower():
            aliases[value] = value.lower()
    return aliases


def build_entities(alerts: list[dict[str, Any]], top: int = TOP_ENTITIES) -> dict[str, list[tuple[str, int]]]:
    counters: dict[str, Counter[str]] = {kind: Counter() for kind in ENTITY_FIELDS}
    for alert in alerts:
        for kind, value in set(entities_of(alert)):
            counters[kind][value] += 1
    users = counters["user"]
    aliases = user_aliases(list(users))
    if aliases:
        merged: Counter[str] = Counter()
        for value, count in users.items():
            merged[aliases.get(value, value)] += count
        counters["user"] = merged
    return {kind: counter.most_common(top) for kind, counter in counters.items()}


TACTICS = ("reconnaissance", "resource_development", "initial_access", "execution", "persistence", "privilege_escalation",
           "defense_evasion", "credential_access", "discovery", "lateral_movement", "collection", "command_and_control",
           "exfiltration", "impact")


def build_attack(rules: list[RuleRow]) -> dict[str, dict[str, int]]:
    """ATT&CK matrix of the alerts: tactic -> technique -> alerts, from the rules' ``attack.*`` tags.

    A rule tagged with techniques but no tactic counts under "unmapped"; tactics keep ATT&CK's order."""
    matrix: dict[str, dict[str, int]] = {}
    for rule in rules:
        tags = [t.lower()[len("attack."):] for t in rule.attack]
        tactics = [t.replace("-", "_") for t in tags if t.replace("-", "_") in TACTICS]
        techniques = [t.upper() for t in tags if t[:1] == "t" and t[1:2].isdigit()]
        for tactic in tactics or ["unmapped"]:
            row = matrix.setdefault(tactic, {})
            for technique in techniques or ["(tactic only)"]:
                row[technique] = row.get(technique, 0) + rule.count
    order = {name: i for i, name in enumerate((*TACTICS, "unmapped"))}
    return {k: dict(sorted(v.items())) for k, v in sorted(matrix.items(), key=lambda kv: order.get(kv[0], len(order)))}


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
    rules = build_rules(alerts)
    return ReportModel(
        run=dict(run or {}),
        alerts_total=len(alerts),
        by_level=Counter(level_of(a) for a in alerts),
        by_type=Counter(text(a.get("alert.type")) or "rule" for a in alerts),
        rules=rules,
        timeline=build_timeline(alerts, times),
        entities=build_entities(alerts),
        correlations=[a for a in alerts if a.get("alert.type") == "correlation"],
        health=build_health(detector_stats),
        attack=build_attack(rules),
        inputs=list(inputs or []),
        generated=(now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M:%S UTC"),
    )
