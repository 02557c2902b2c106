"""Aggregation and embedding: the numbers the page shows, and hostile alerts that must not break it."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from temporal_siem.detections.alerts import RuleMeta, correlation_alert, rule_alert
from temporal_siem.report import render_html
from temporal_siem.report.model import MAX_BUCKETS, build_health, build_model, entities_of, parse_time
from temporal_siem.report.payload import build_payload, decode_payload, encode_payload, event_of_alert, payload_event
from tests.report import synthetic


def _blob(html: str) -> dict[str, Any]:
    match = re.search(r'<script type="application/octet-stream" id="report-data">([^<]*)</script>', html)
    assert match is not None
    return decode_payload(match.group(1))


def test_model_counts_match_the_alerts() -> None:
    replay = synthetic.build()
    model = build_model(replay.alerts, replay.run, replay.detector_stats)
    assert model.alerts_total == 246
    assert model.by_level == Counter(a["alert.level"] for a in replay.alerts)
    assert {r.id: r.count for r in model.rules} == Counter(a["rule.id"] for a in replay.alerts)
    kms = next(r for r in model.rules if r.id == synthetic.RULES[2].id)
    assert kms.level == "critical" and kms.attack == ["attack.impact", "attack.t1485"]
    assert sum(sum(v) for v in model.timeline.series.values()) == 246 and model.timeline.untimed == 0
    assert model.timeline.buckets <= MAX_BUCKETS
    users = Counter(v for a in replay.alerts for k, v in entities_of(a) if k == "user")
    assert model.entities["user"][0] == users.most_common(1)[0]
    assert len(model.correlations) == 6


def test_entities_prefer_the_first_present_field_and_collect_every_key() -> None:
    alert = {"user.name": "alice", "user.email": "alice@example.com", "client.ip": "192.0.2.1",
             "temporal.key.id": "alias/payload", "temporal.api_key.id": ["k1", "k2"], "temporal.namespace": ""}
    assert entities_of(alert) == [("user", "alice"), ("source.ip", "192.0.2.1"), ("key", "alias/payload"), ("key", "k1"), ("key", "k2")]


def test_correlation_group_by_names_the_entity() -> None:
    rule = RuleMeta(id="c", title="c", level="high")
    alert = correlation_alert(rule, timestamp="2026-01-01T00:00:00Z", event_ids=["a", "b"], event_count=2,
                              group_by={"temporal.user_key": "frank@example.com", "client.ip": "192.0.2.9", "odd": "x"},
                              window_start="s", window_end="e", correlation_type="temporal_ordered", referenced_rules=[],
                              context={"user.name": "Frank"})
    assert entities_of(alert) == [("user", "frank@example.com"), ("source.ip", "192.0.2.9")]


def test_timestamps_in_every_form_the_parsers_emit() -> None:
    assert parse_time("2026-03-01T08:00:00Z") == parse_time("2026-03-01T08:00:00.000000000Z") == parse_time("2026-03-01T10:00:00+02:00")
    assert parse_time("2026-03-01T08:00:00.123456789Z") is not None
    assert parse_time("not a time") is None and parse_time(12) is None and parse_time("") is None


def test_timeline_spanning_decades_stays_bounded() -> None:
    rule = RuleMeta(id="r", title="r")
    alerts = [rule_alert(rule, {"event.id": str(i), "@timestamp": ts}) for i, ts in enumerate(["1970-01-01T00:00:00Z", "2026-01-01T00:00:00Z", "bogus"])]
    model = build_model(alerts)
    assert model.timeline.buckets <= MAX_BUCKETS and model.timeline.untimed == 1
    assert sum(sum(v) for v in model.timeline.series.values()) == 2


def test_health_reports_never_routed_missing_fields_and_load_errors() -> None:
    health = build_health(synthetic.build().detector_stats)
    assert health.reported
    assert [r.id for r in health.never_routed] == ["never-routed-rule"]
    assert health.with_missing_fields[0].missing_fields == ["hashicorp_vault.auth.policies"]
    assert health.load_errors == [("broken/rule.yml", "detection: condition references unknown selection 'sel2'")]


def test_health_tolerates_absent_or_malformed_stats() -> None:
    assert not build_health(None).reported
    assert not build_health({}).reported
    odd = build_health({"rules": {"x": "not a dict", "y": {"routed": "many", "missing_fields": "nope"}}, "load_errors": ["boom"]})
    assert odd.reported and len(odd.rules) == 2 and odd.load_errors == [("", "boom")]
    assert odd.never_routed == []
    html = render_html([], {}, {"rules": 5})
    assert "The detector reported no rule statistics" in html


def test_payload_round_trip_dedupes_events_and_links_correlation_evidence() -> None:
    replay = synthetic.build()
    rule = synthetic.RULES[0]
    shared = {"event.id": "same-event", "@timestamp": "2026-03-01T08:00:00Z", "user.name": "bob"}
    alerts = [*replay.alerts, rule_alert(rule, shared), rule_alert(synthetic.RULES[1], shared)]
    payload = decode_payload(encode_payload(build_payload(alerts, replay.events)))
    columns = payload["a"]
    assert len(columns["t"]) == len(alerts)
    assert columns["ev"][-1] == columns["ev"][-2] >= 0
    event = payload_event(payload, columns["ev"][-1])
    assert event == {"event.id": "same-event", "@timestamp": "2026-03-01T08:00:00Z", "user.name": "bob"}
    correlation = columns["m"][columns["c"].index(1)]
    assert correlation["n"] == 6 and correlation["src"][-1] == "evt-gone"
    assert all(isinstance(s, int) for s in correlation["src"][:5])
    assert payload_event(payload, correlation["src"][0])["user.name"] == "burst0@example.com"
    first_rule_alert = columns["c"].index(0)
    assert payload_event(payload, columns["ev"][first_rule_alert]) == event_of_alert(replay.alerts[first_rule_alert])


def test_embedded_events_are_capped_and_values_clipped() -> None:
    rule = RuleMeta(id="r", title="r")
    alerts = [rule_alert(rule, {"event.id": str(i), "message": "y" * 10_000}) for i in range(30)]
    payload = build_payload(alerts, max_events=10)
    assert len(payload["evs"]) == 10 and payload["caps"]["events_not_embedded"] == 20
    assert payload["a"]["ev"][10:] == [-1] * 20
    assert len(payload_event(payload, 0)["message"]) < 2_100
    assert len(payload["shapes"]) == 1 and len(payload["vals"]) == 10 + 1  # ten ids, one (clipped) message


_hostile = st.sampled_from(["</script><script>window.__pwned=1</script>", '"><img src=x onerror=alert(1)>', "\ud800", "critical", "correlation"])
_scalar = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=30), _hostile)
_value = st.one_of(_scalar, st.lists(_scalar, max_size=4), st.dictionaries(st.text(max_size=8), _scalar, max_size=3))
_keys = st.sampled_from(["@timestamp", "rule.id", "rule.name", "alert.level", "alert.type", "alert.id", "user.name", "source.ip", "tags",
                         "temporal.namespace", "temporal.key.id", "alert.source_event_ids", "alert.group_by", "alert.window", "event.id",
                         "alert.source_event_count"]) | st.text(max_size=12)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.dictionaries(_keys, _value, max_size=10), max_size=8), st.one_of(st.none(), st.dictionaries(st.text(max_size=6), _value)))
def test_any_alert_shape_renders_and_round_trips(alerts: list[dict[str, Any]], stats: dict[str, Any] | None) -> None:
    html = render_html(alerts, {"records_read": "x"}, stats, {"e": {"k": "\ud800"}})
    html.encode("utf-8", "replace")
    assert len(_blob(html)["a"]["t"]) == len(alerts)
    assert html.count("<script") == 3 and html.count("<img") == 0


def test_one_stray_old_event_does_not_stretch_the_timeline() -> None:
    from temporal_siem.report.model import build_timeline

    alerts = [{"@timestamp": f"2025-10-01T10:{m:02d}:00Z", "alert.level": "high"} for m in range(60)]
    alerts.append({"@timestamp": "2021-05-01T00:00:00Z", "alert.level": "low"})
    times = [parse_time(a["@timestamp"]) for a in alerts]
    timeline = build_timeline(alerts, times)
    assert timeline.step <= 60  # minutes, not 30-day buckets
    assert timeline.before == 1 and timeline.after == 0
    assert sum(sum(v) for v in timeline.series.values()) == 60


def test_evenly_spread_alerts_are_all_drawn() -> None:
    from temporal_siem.report.model import build_timeline

    alerts = [{"@timestamp": f"2025-10-{d:02d}T10:00:00Z", "alert.level": "high"} for d in range(1, 29)]
    timeline = build_timeline(alerts, [parse_time(a["@timestamp"]) for a in alerts])
    assert timeline.before == timeline.after == 0
    assert sum(sum(v) for v in timeline.series.values()) == 28


def test_users_merge_by_identity_unless_ambiguous() -> None:
    from temporal_siem.report.model import build_entities

    alerts = [{"user.name": "mallory"}, {"user.email": "mallory@example.com"}, {"user.name": "Mallory@Example.com"},
              {"user.name": "bob"}, {"user.email": "bob@a.example"}, {"user.email": "bob@b.example"}]
    users = dict(build_entities(alerts)["user"])
    assert users["mallory@example.com"] == 3 and "mallory" not in users
    assert users["bob"] == 1  # two addresses share the local part: no guess


def test_rules_to_look_at_skip_matching_rules_with_alternative_fields() -> None:
    health = build_health({"rules": {
        "works": {"routed": 10, "matched": 3, "missing_fields": ["user.email"]},
        "broken": {"routed": 10, "matched": 0, "missing_fields": ["usr.name"]},
        "unrouted": {"routed": 0, "matched": 0, "missing_fields": []},
    }})
    assert {r.id for r in health.to_look_at} == {"broken", "unrouted"}


def test_rules_sorted_by_severity_then_count() -> None:
    from temporal_siem.report.model import build_rules

    alerts = [{"rule.id": "noise", "alert.level": "informational"}] * 50 + [{"rule.id": "crit", "alert.level": "critical"}]
    assert [r.id for r in build_rules(alerts)] == ["crit", "noise"]


def test_load_errors_are_announced_at_the_top() -> None:
    from temporal_siem.report.render import render_html

    html = render_html([], {}, {"rules": {}, "load_errors": [{"file": "rules/bad.yml:3", "error": "boom"}]})
    assert html.index('id="load-error-banner"') < html.index('id="summary-cards"')
    assert "rules/bad.yml:3" in html
