"""End to end through build_detector: rule files on disk -> detector -> alerts and rule health."""

from __future__ import annotations

from pathlib import Path

from temporal_siem.detections.factory import build_detector

RULE = """
title: Namespace deleted
id: 6f1c0a52-0b0e-4d7a-9d5e-3f3f4b1c2a10
status: test
logsource: {product: temporal, service: audit}
detection:
  selection:
    event.action: DeleteNamespace
    event.outcome: success
  condition: selection
level: high
tags: [attack.impact, attack.t1485]
"""

GENERIC = """
title: Generic JSON rule
id: 0d6c1b8e-7f7e-4f57-8a43-2b8e0b0a4c11
logsource: {product: custom}
detection:
  selection:
    msg|contains: hello
  condition: selection
level: low
"""


def _rules(tmp_path: Path) -> Path:
    (tmp_path / "a.yml").write_text(RULE)
    (tmp_path / "b.yml").write_text(GENERIC)
    (tmp_path / "broken.yml").write_text("title: [unclosed\n")
    return tmp_path


def test_rule_alert_and_routing(tmp_path: Path) -> None:
    detector = build_detector([str(_rules(tmp_path))], builtin_rules=False)
    events = [
        {"event.id": "1", "event.dataset": "temporal_cloud.audit", "event.action": "DeleteNamespace", "event.outcome": "success"},
        {"event.id": "2", "event.dataset": "temporal_cloud.audit", "event.action": "DeleteNamespace", "event.outcome": "failure"},
        # routed away: the audit rule never sees an okta event, the generic rule never sees an audit event
        {"event.id": "3", "event.dataset": "okta.system", "event.action": "DeleteNamespace", "event.outcome": "success"},
        {"event.id": "4", "event.dataset": "temporal_cloud.audit", "msg": "hello"},
        {"event.id": "5", "event.dataset": "json", "msg": "say HELLO"},
    ]
    alerts = detector.process(events)
    assert [(a["rule.name"], a["alert.source_event_ids"]) for a in alerts] == [
        ("Namespace deleted", ["1"]), ("Generic JSON rule", ["5"])]
    assert alerts[0]["event.severity"] > alerts[1]["event.severity"]
    assert alerts[0]["threat.technique.id"] == ["T1485"]
    stats = detector.stats()
    audit = stats["rules"]["6f1c0a52-0b0e-4d7a-9d5e-3f3f4b1c2a10"]
    assert audit["routed"] == 3 and audit["matched"] == 1 and audit["evaluated"] >= 1
    generic = stats["rules"]["0d6c1b8e-7f7e-4f57-8a43-2b8e0b0a4c11"]
    assert generic["routed"] == 1 and generic["matched"] == 1
    assert [e["file"].endswith("broken.yml") for e in stats["load_errors"]] == [True]
    assert "invalid YAML" in stats["load_errors"][0]["error"]
    detector.process(events[:2])  # counts add up over batches
    assert detector.stats()["rules"]["6f1c0a52-0b0e-4d7a-9d5e-3f3f4b1c2a10"]["routed"] == 5
    assert detector.stats()["rules"]["0d6c1b8e-7f7e-4f57-8a43-2b8e0b0a4c11"]["routed"] == 1


def test_missing_fields_reported(tmp_path: Path) -> None:
    detector = build_detector([str(_rules(tmp_path))], builtin_rules=False)
    detector.process([{"event.dataset": "temporal_cloud.audit", "event.action": "CreateNamespace"}])
    audit = detector.stats()["rules"]["6f1c0a52-0b0e-4d7a-9d5e-3f3f4b1c2a10"]
    assert audit["missing_fields"] == ["event.outcome"]


CORRELATION = """
title: Failed login
id: 3e0b5f7e-7d1e-4a43-9a55-0e8d0d1f2a01
name: failed_login
logsource: {product: okta}
detection:
  selection:
    event.action: user.session.start
    event.outcome: failure
  condition: selection
level: low
---
title: Many failed logins for one user
id: 3e0b5f7e-7d1e-4a43-9a55-0e8d0d1f2a02
correlation:
  type: event_count
  rules: [failed_login]
  group-by: [user.name]
  timespan: 5m
  condition: {gte: 3}
level: high
"""


def test_correlation_end_to_end(tmp_path: Path) -> None:
    (tmp_path / "corr.yml").write_text(CORRELATION)
    detector = build_detector([str(tmp_path)], builtin_rules=False)
    events = [
        {"@timestamp": f"2026-01-01T00:00:0{i}Z", "event.id": str(i), "event.dataset": "okta.system",
         "event.action": "user.session.start", "event.outcome": "failure", "user.name": "alice"}
        for i in range(4)
    ]
    events.append({"@timestamp": "2026-01-01T00:00:05Z", "event.id": "x", "event.dataset": "okta.system",
                   "event.action": "user.session.start", "event.outcome": "failure", "user.name": "bob"})
    alerts = detector.process(events) + detector.finish()
    by_type = sorted((a["alert.type"], a["rule.name"]) for a in alerts)
    # generate: false (the default): the base rule feeds the correlation and raises nothing itself
    assert by_type == [("correlation", "Many failed logins for one user")]
    assert alerts[-1]["alert.group_by"] == {"user.name": "alice"}
    assert detector.stats()["rules"]["3e0b5f7e-7d1e-4a43-9a55-0e8d0d1f2a01"]["matched"] == 5
    restored = build_detector([str(tmp_path)], builtin_rules=False)
    restored.restore(detector.snapshot())


def test_metrics_and_enrichment_state(tmp_path: Path) -> None:
    from prometheus_client import REGISTRY

    detector = build_detector([str(_rules(tmp_path))], builtin_rules=False)
    rule_id = "6f1c0a52-0b0e-4d7a-9d5e-3f3f4b1c2a10"
    before = REGISTRY.get_sample_value("tsiem_rule_matches_total", {"rule_id": rule_id}) or 0.0
    detector.process([{"event.id": "9", "event.dataset": "temporal_cloud.audit", "event.action": "DeleteNamespace",
                       "event.outcome": "success"}])
    assert REGISTRY.get_sample_value("tsiem_rule_matches_total", {"rule_id": rule_id}) == before + 1
    assert (REGISTRY.get_sample_value("tsiem_rule_evaluations_total", {"rule_id": rule_id}) or 0) >= 1
    # the snapshot carries the enrichers' state and restores into a fresh detector
    state = detector.snapshot()
    fresh = build_detector([str(tmp_path)], builtin_rules=False)
    fresh.restore(state)
    assert fresh.snapshot() == state


def test_a_failing_enricher_does_not_stop_detection(tmp_path: Path) -> None:
    class Broken:
        name = "broken"

        def enrich(self, events: list[dict[str, object]]) -> None:
            raise RuntimeError("bug in an enricher")

    detector = build_detector([str(_rules(tmp_path))], builtin_rules=False)
    detector.enrichers = [Broken()]  # type: ignore[attr-defined]
    alerts = detector.process([{"event.id": "1", "event.dataset": "temporal_cloud.audit", "event.action": "DeleteNamespace",
                                "event.outcome": "success"}])
    assert len(alerts) == 1
    assert detector.stats()["enrichment_errors"] == 1
