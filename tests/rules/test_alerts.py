from __future__ import annotations

from temporal_siem.detections.alerts import RuleMeta, correlation_alert, rule_alert
from temporal_siem.kernel.flatten import unflatten
from temporal_siem.kernel.schema import Alert

RULE = RuleMeta(id="5f0e8a52-0000-4000-8000-000000000001", title="Test rule", description="d", level="high",
                tags=("attack.credential_access", "attack.t1552.004"))
EVENT = {"@timestamp": "2025-01-01T00:00:00.000000Z", "event.id": "abc", "event.kind": "event", "event.dataset": "okta.system",
         "user.name": "alice", "source.ip": "192.0.2.1"}


def test_rule_alert_contract_and_determinism():
    alert = rule_alert(RULE, EVENT)
    assert alert["event.kind"] == "alert" and alert["event.severity"] == 73
    assert alert["rule.id"] == RULE.id and alert["rule.name"] == "Test rule"
    assert alert["alert.type"] == "rule" and alert["alert.source_event_ids"] == ["abc"]
    assert alert["user.name"] == "alice" and alert["@timestamp"] == EVENT["@timestamp"]
    assert alert["threat.technique.id"] == ["T1552.004"]
    assert rule_alert(RULE, dict(EVENT))["alert.id"] == alert["alert.id"]
    assert rule_alert(RULE, {**EVENT, "event.id": "other"})["alert.id"] != alert["alert.id"]
    Alert.model_validate(unflatten(alert))


def test_correlation_alert_contract():
    alert = correlation_alert(RULE, timestamp="2025-01-01T00:05:00.000000Z", event_ids=[str(i) for i in range(500)],
                              event_count=500, group_by={"user.name": "alice"}, window_start="2025-01-01T00:00:00.000000Z",
                              window_end="2025-01-01T00:05:00.000000Z", correlation_type="event_count", referenced_rules=["r1"])
    assert alert["alert.type"] == "correlation"
    assert len(alert["alert.source_event_ids"]) == 100 and alert["alert.source_event_count"] == 500
    assert alert["user.name"] == "alice"
    Alert.model_validate(unflatten(alert))


def test_rule_alert_tolerates_non_string_keys_from_library_callers():
    alert = rule_alert(RULE, {**EVENT, 7: "x"})
    assert alert["7"] == "x" and alert["rule.id"] == RULE.id
