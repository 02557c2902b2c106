"""A known replay, built with the real alert contract (detections.alerts), for the report tests.

Deterministic: every count the tests assert on is computed from what this module generates.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from temporal_siem.detections.alerts import RuleMeta, correlation_alert, rule_alert

RULES = (
    RuleMeta(id="0b5c1a9e-0001-4a7e-9b1e-000000000001", title="Temporal Cloud API key created for a service account", level="medium",
             tags=("attack.persistence", "attack.t1098.001"), source="temporal_cloud/api_key_created.yml"),
    RuleMeta(id="0b5c1a9e-0002-4a7e-9b1e-000000000002", title="Namespace deleted", level="high",
             tags=("attack.impact", "attack.t1485"), source="temporal_cloud/namespace_deleted.yml"),
    RuleMeta(id="0b5c1a9e-0003-4a7e-9b1e-000000000003", title="KMS key scheduled for deletion", level="critical",
             tags=("attack.impact", "attack.t1485"), source="aws/kms_key_deletion.yml"),
    RuleMeta(id="0b5c1a9e-0004-4a7e-9b1e-000000000004", title="Okta sign-in from new country", level="low",
             tags=("attack.initial_access", "attack.t1078.004"), source="okta/new_country.yml"),
    RuleMeta(id="0b5c1a9e-0005-4a7e-9b1e-000000000005", title="Temporal server request denied", level="informational",
             source="temporal_server/denied.yml"),
)
CORRELATION = RuleMeta(id="0b5c1a9e-00c0-4a7e-9b1e-0000000000c0", title="Burst of API key creations by one user", level="high",
                       tags=("attack.persistence",), source="correlations/api_key_burst.yml")
HOSTILE_USER = '<img src=x onerror="window.__pwned=1">'


@dataclass
class Replay:
    alerts: list[dict[str, Any]] = field(default_factory=list)
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    run: dict[str, Any] = field(default_factory=dict)
    detector_stats: dict[str, Any] = field(default_factory=dict)


def event(i: int, when: datetime, rnd: random.Random, user: str | None = None) -> dict[str, Any]:
    return {
        "@timestamp": when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "event.id": f"evt-{i:08d}",
        "event.kind": "event",
        "event.action": rnd.choice(["CreateApiKey", "DeleteNamespace", "ScheduleKeyDeletion", "user.session.start"]),
        "event.outcome": "success",
        "event.dataset": "temporal_cloud.audit",
        "user.name": user or f"user{rnd.randrange(40)}@example.com",
        "source.ip": f"203.0.113.{rnd.randrange(1, 60)}",
        "temporal.namespace": f"payments-{rnd.randrange(6)}.a1b2c",
        "temporal.api_key.id": f"key-{rnd.randrange(20)}",
        "message": "x" * rnd.randrange(20, 200),
    }


def build(rule_alerts: int = 240, correlations: int = 6, seed: int = 7, hostile: bool = True) -> Replay:
    """``rule_alerts`` single-event alerts (cycling through RULES) and ``correlations`` correlation alerts of 5 events each."""
    rnd = random.Random(seed)
    start = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
    replay = Replay()
    for i in range(rule_alerts):
        when = start + timedelta(seconds=i * 37)
        ev = event(i, when, rnd, HOSTILE_USER if hostile and i == 3 else None)
        replay.alerts.append(rule_alert(RULES[i % len(RULES)], ev))
    first_correlation = ""
    for c in range(correlations):
        ids = []
        for k in range(5):
            i = 1_000_000 + c * 10 + k
            ev = event(i, start + timedelta(minutes=30 * c, seconds=k * 20), rnd, user=f"burst{c}@example.com")
            replay.events[ev["event.id"]] = ev
            ids.append(ev["event.id"])
        last = replay.events[ids[-1]]
        # The last correlation also names the first one's alert, as a correlation over a correlation does.
        chained = [first_correlation] if c == correlations - 1 and c > 0 else []
        replay.alerts.append(correlation_alert(
            CORRELATION, timestamp=last["@timestamp"], event_ids=[*ids, "evt-gone", *chained], event_count=6 + len(chained),
            group_by={"user.name": f"burst{c}@example.com"}, window_start=replay.events[ids[0]]["@timestamp"],
            window_end=last["@timestamp"], correlation_type="event_count", referenced_rules=[RULES[0].id], value=6))
        if c == 0:
            first_correlation = replay.alerts[-1]["alert.id"]
    replay.run = {"records_read": rule_alerts * 10 + 3, "records_parsed": rule_alerts * 10, "events": rule_alerts * 10,
                  "dead_lettered": 3, "dead_lettered_by_reason": {"invalid_json": 2, "unknown_format": 1},
                  "alerts": len(replay.alerts), "elapsed_seconds": 1.5, "events_per_second": rule_alerts * 10 / 1.5}
    replay.detector_stats = {
        "rules": {
            **{r.id: {"title": r.title, "level": r.level, "routed": 100, "evaluated": 90, "matched": 50, "missing_fields": [], "source": r.source}
               for r in RULES},
            "never-routed-rule": {"title": "Vault root token created", "level": "high", "routed": 0, "evaluated": 0, "matched": 0,
                                  "missing_fields": ["hashicorp_vault.auth.policies"], "source": "vault/root_token.yml"},
        },
        "load_errors": [{"file": "broken/rule.yml", "error": "detection: condition references unknown selection 'sel2'"}],
    }
    return replay
