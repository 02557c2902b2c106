"""Builds correlation rules the way the engine does (YAML -> pySigma -> CorrelationEngine) and runs streams.

``Spec`` is a small description of one correlation rule over base rules ``r0..rN``; ``to_yaml`` renders
the Sigma documents, so every test goes through pySigma's parser and ``prepare_correlation_dict``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import yaml
from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule

from temporal_siem.detections.correlation import CorrelationEngine, prepare_correlation_dict

BASE = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
RULE_ID = "c0000000-0000-4000-8000-000000000001"


def ts(seconds: float) -> str:
    return (BASE + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Spec:
    kind: str
    refs: int = 1  # base rules r0..r{refs-1}
    timespan: int = 10  # seconds
    bounds: dict[str, int] = field(default_factory=lambda: {"gte": 2})
    group_by: list[str] = field(default_factory=lambda: ["host"])
    value_field: str | None = None  # value_* condition field
    percentile: int | None = None
    aliases: dict[str, dict[str, str]] = field(default_factory=dict)  # alias -> {rule name: field}
    expression: str | None = None  # extended temporal condition
    generate: bool = False

    def documents(self) -> list[dict[str, Any]]:
        docs: list[dict[str, Any]] = [
            {"title": f"base {i}", "name": f"r{i}", "id": f"b0000000-0000-4000-8000-00000000000{i}",
             "logsource": {"product": "test"}, "detection": {"sel": {"rule": i}, "condition": "sel"}}
            for i in range(self.refs)
        ]
        correlation: dict[str, Any] = {"type": self.kind, "rules": [f"r{i}" for i in range(self.refs)],
                                       "timespan": f"{self.timespan}s"}
        if self.group_by:
            correlation["group-by"] = list(self.group_by)
        if self.expression is not None:
            correlation["condition"] = self.expression
        else:
            condition: dict[str, Any] = dict(self.bounds)
            if self.value_field:
                condition["field"] = self.value_field
            if self.percentile is not None:
                condition["percentile"] = self.percentile
            correlation["condition"] = condition
        if self.aliases:
            correlation["aliases"] = self.aliases
        if self.generate:
            correlation["generate"] = True
        docs.append({"title": "correlation under test", "id": RULE_ID, "name": "corr", "level": "high",
                     "correlation": correlation})
        return docs


def correlation_rules(documents: list[dict[str, Any]]) -> list[SigmaCorrelationRule]:
    collection = SigmaCollection.from_dicts([prepare_correlation_dict(doc) for doc in documents])
    collection.resolve_rule_references()
    return [rule for rule in collection.rules if isinstance(rule, SigmaCorrelationRule)]


def rules_from_yaml(text: str) -> list[SigmaCorrelationRule]:
    return correlation_rules(list(yaml.safe_load_all(text)))


def engine_for(spec: Spec | list[dict[str, Any]], **options: Any) -> CorrelationEngine:
    documents = spec.documents() if isinstance(spec, Spec) else spec
    opts = {"allowed_lateness_seconds": 0, "max_groups": 1_000_000, "max_events_per_group": 100_000,
            "max_alert_event_ids": 1000, **options}
    return CorrelationEngine.from_rules(correlation_rules(documents), {}, opts)


@dataclass(frozen=True)
class Ev:
    """A test event: second offset, id, the base rules it matched, and its fields."""

    t: float
    id: str
    rules: frozenset[int]
    fields: tuple[tuple[str, Any], ...] = ()

    def flat(self) -> dict[str, Any]:
        return {"@timestamp": ts(self.t), "event.id": self.id, **dict(self.fields)}

    def refs(self) -> set[str]:
        return {f"r{i}" for i in self.rules} | {f"b0000000-0000-4000-8000-00000000000{i}" for i in self.rules}


def run(engine: CorrelationEngine, events: list[Ev], finish: bool = True) -> list[dict[str, Any]]:
    alerts: list[dict[str, Any]] = []
    for event in events:
        alerts.extend(engine.observe(event.flat(), event.refs()))
    if finish:
        alerts.extend(engine.finish())
    return alerts


def summary(alert: dict[str, Any]) -> tuple[Any, ...]:
    """What must agree between two runs: rule, group, window, last time, ids, count, value."""
    return (alert["rule.id"], tuple(sorted(alert["alert.group_by"].items())), alert["alert.window"]["start"],
            alert["@timestamp"], tuple(alert["alert.source_event_ids"]), alert["alert.source_event_count"],
            round(float(alert["alert.value"]), 6))


def summaries(alerts: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return sorted(summary(alert) for alert in alerts)
