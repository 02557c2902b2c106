from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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


def test_rule_fields_are_built_once_but_each_alert_owns_its_lists():
    """Alert fields come from a per-rule template (issue 19): mutating one alert must not leak into the next,
    and a rule with other metadata (a new RuleMeta) gets its own fields, not a stale template's."""
    first = rule_alert(RULE, EVENT)
    first["tags"].append("mutated")
    first["threat.technique.id"].append("T0000")
    first["rule.name"] = "changed"
    second = rule_alert(RULE, EVENT)
    assert second["tags"] == ["attack.credential_access", "attack.t1552.004"]
    assert second["threat.technique.id"] == ["T1552.004"] and second["rule.name"] == "Test rule"
    other = RuleMeta(id=RULE.id, title="Other title", level="low", tags=())
    third = rule_alert(other, EVENT)
    assert third["rule.name"] == "Other title" and third["tags"] == [] and "threat.technique.id" not in third
    assert third["event.severity"] != second["event.severity"]


@settings(max_examples=200, deadline=None)
@given(event=st.dictionaries(st.one_of(st.sampled_from(["rule.id", "alert.x", "event.original", "event.id", "user.name"]),
                                       st.text(max_size=12), st.integers()),
                             st.one_of(st.text(max_size=8), st.integers(), st.lists(st.text(max_size=3), max_size=2)),
                             max_size=8))
def test_rule_alert_copies_exactly_the_event_fields_it_should(event: dict) -> None:
    """The fast copy (text keys) and the converting copy (other keys) keep every field but rule.*, alert.* and
    event.original, keyed by its text."""
    alert = rule_alert(RULE, event)
    expected = {str(k): v for k, v in event.items() if not str(k).startswith(("rule.", "alert.", "event.original"))}
    for key, value in expected.items():
        if not key.startswith(("event.kind", "event.severity", "event.risk_score", "tags", "threat.")):
            assert alert[key] == value
    assert not any(k.startswith("alert.") and k not in {"alert.id", "alert.source_event_ids", "alert.source_event_count",
                                                        "alert.type", "alert.level"} for k in alert)
    assert alert["rule.id"] == RULE.id


_KEY_PARTS = st.sampled_from(["rule.", "alert.", "event.original", "event.", "\n", "x", "rule", ".", "user.name"])


@settings(max_examples=300, deadline=None)
@given(keys=st.lists(st.lists(_KEY_PARTS, min_size=1, max_size=4).map("".join), max_size=10, unique=True),
       shapes_max=st.sampled_from([1, 2, 4096]))
def test_event_fields_decided_by_key_shape_equal_a_per_key_filter(keys: list[str], shapes_max: int) -> None:
    """The alert's event fields are decided once per shape of keys (issue 19): on the first alert of a shape, from
    the cache after it, and after the bounded cache was cleared, they are a per-key filter's (keys with newlines
    or the prefixes mid-key neither drop a field nor let a reserved one through)."""
    from temporal_siem.detections import alerts

    event = {k: i for i, k in enumerate(keys)}
    expected = {k: v for k, v in event.items() if not k.startswith(("rule.", "alert.", "event.original"))}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(alerts, "_SHAPES_MAX", shapes_max)
        # A fresh cache: one an earlier example filled under a larger bound is only cleared on an insertion, so
        # with all its shapes already cached it could stay above this example's bound (a flaky failure, not a leak).
        patch.setattr(alerts, "_SHAPES", {})
        for _ in range(3):
            got = alerts._event_fields(event)
            assert got == expected and list(got) == list(expected)
            assert got is not event
            alerts._event_fields({"other": 1, "rule.x": 2})  # another shape in between (fills a small cache)
        assert len(alerts._SHAPES) <= max(shapes_max, 1)


def test_a_shape_with_huge_keys_is_decided_but_not_kept() -> None:
    """A hostile record's keys (here 300 KB of names) must not stay referenced by the shape cache."""
    from temporal_siem.detections import alerts

    event = {f"{'k' * 3000}{n}": n for n in range(100)} | {"rule.injected": 1}
    before = dict(alerts._SHAPES)
    got = alerts._event_fields(event)
    assert "rule.injected" not in got and len(got) == 100
    assert tuple(event) not in alerts._SHAPES and before == alerts._SHAPES
    small = {"a": 1, "alert.x": 2}
    assert alerts._event_fields(small) == {"a": 1} and tuple(small) in alerts._SHAPES
