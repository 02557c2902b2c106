"""Correlation semantics, case by case, through the YAML -> pySigma -> engine path (docs/correlation.md)."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import REGISTRY

from temporal_siem.detections.correlation import CorrelationEngine, CorrelationRuleError
from temporal_siem.detections.correlation.compiled import prepare_correlation_dict
from tests.correlation.harness import RULE_ID, Ev, Spec, engine_for, rules_from_yaml, run, ts


def ev(t: float, i: Any, rules: tuple[int, ...] = (0,), **fields: Any) -> Ev:
    return Ev(t, f"e{i}", frozenset(rules), tuple(sorted({"host": "h1", **fields}.items())))


def fire_count(spec: Spec, events: list[Ev], **options: Any) -> int:
    return len(run(engine_for(spec, **options), events))


# --- windows ------------------------------------------------------------------------------------
def test_event_count_window_edge_is_inclusive() -> None:
    spec = Spec("event_count", timespan=10, bounds={"gte": 2})
    assert fire_count(spec, [ev(0, 1), ev(10, 2)]) == 1
    assert fire_count(spec, [ev(0, 1), ev(10.001, 2)]) == 0


def test_close_window_edge_is_inclusive() -> None:
    spec = Spec("event_count", timespan=10, bounds={"eq": 2})
    alerts = run(engine_for(spec), [ev(0, 1), ev(10, 2), ev(10.5, 3)])
    assert len(alerts) == 1 and alerts[0]["alert.source_event_ids"] == ["e1", "e2"]
    assert alerts[0]["alert.window"] == {"start": "2026-03-01T12:00:00.000Z", "end": "2026-03-01T12:00:10.000Z"}
    assert alerts[0]["@timestamp"] == "2026-03-01T12:00:10.000Z"


def test_sliding_window_catches_a_burst_across_anchors() -> None:
    # 0 | 9, 11, 12: a window anchored at the first event would miss it; [9, 19] holds three.
    spec = Spec("event_count", timespan=10, bounds={"gte": 3})
    alerts = run(engine_for(spec), [ev(0, 0), ev(9, 1), ev(11, 2), ev(12, 3)])
    assert [a["alert.source_event_ids"] for a in alerts] == [["e1", "e2", "e3"]]


def test_long_burst_raises_one_alert_per_window_not_per_event() -> None:
    spec = Spec("event_count", timespan=10, bounds={"gte": 3})
    alerts = run(engine_for(spec), [ev(t, t) for t in range(100)])
    assert 8 <= len(alerts) <= 10
    starts = [a["alert.window"]["start"] for a in alerts]
    assert len(set(starts)) == len(starts)


# --- every operator -------------------------------------------------------------------------------
@pytest.mark.parametrize(("bounds", "fires_for"), [
    ({"gt": 2}, {3, 4}), ({"gte": 2}, {2, 3, 4}), ({"lt": 2}, {1}), ({"lte": 2}, {1, 2}),
    ({"eq": 3}, {3}), ({"neq": 3}, {1, 2, 4}), ({"gt": 1, "lte": 3}, {2, 3}), ({"gte": 2, "lt": 4}, {2, 3}),
])
def test_condition_operators(bounds: dict[str, int], fires_for: set[int]) -> None:
    spec = Spec("event_count", timespan=10, bounds=bounds)
    for n in range(1, 5):
        alerts = run(engine_for(spec), [ev(i, i) for i in range(n)])
        # Lower bounds fire early on a prefix; window-close conditions see all n events.
        assert bool(alerts) == (n in fires_for or (all(op in ("gt", "gte") for op in bounds) and n >= min(fires_for))), (bounds, n)


def test_range_condition_needs_prepare_and_keeps_both_bounds() -> None:
    spec = Spec("event_count", timespan=10, bounds={"gt": 1, "lte": 3})
    prepared = prepare_correlation_dict(spec.documents()[-1])
    assert prepared["correlation"]["condition"] == {"gt": 1}
    assert prepared["correlation"]["tsiem_condition"] == {"gt": 1, "lte": 3}
    four = run(engine_for(spec), [ev(i, i) for i in range(4)])
    assert four == []  # 4 events: gt 1 holds, lte 3 does not


# --- types ----------------------------------------------------------------------------------------
def test_value_count_counts_distinct_values_and_list_elements() -> None:
    spec = Spec("value_count", timespan=60, bounds={"gte": 3}, value_field="user.name")
    alerts = run(engine_for(spec), [ev(0, 1, **{"user.name": "a"}), ev(1, 2, **{"user.name": "a"}),
                                   ev(2, 3), ev(3, 4, **{"user.name": ["b", "c"]})])
    assert len(alerts) == 1 and alerts[0]["alert.value"] == 3.0 and alerts[0]["alert.source_event_count"] == 4


def test_value_count_over_two_fields_counts_pairs() -> None:
    docs = Spec("value_count", timespan=60, bounds={"gte": 2}).documents()
    docs[-1]["correlation"]["condition"]["field"] = ["a", "b"]
    engine = engine_for(docs)
    assert run(engine, [ev(0, 1, a=1, b=1), ev(1, 2, a=1, b=1)]) == []
    assert len(run(engine_for(docs), [ev(0, 1, a=1, b=1), ev(1, 2, a=1, b=2)])) == 1


@pytest.mark.parametrize(("kind", "extra", "bounds", "value"), [
    ("value_sum", {}, {"gte": 10}, 10.0),
    ("value_avg", {}, {"gt": 3}, 3.5),
    ("value_median", {}, {"eq": 3}, 3.0),
    ("value_percentile", {"percentile": 75}, {"gte": 4}, 4.0),
    ("value_percentile", {"percentile": 100}, {"eq": 6}, 6.0),
    ("value_percentile", {"percentile": 0}, {"eq": 1}, 1.0),
])
def test_numeric_aggregates(kind: str, extra: dict[str, int], bounds: dict[str, int], value: float) -> None:
    spec = Spec(kind, timespan=60, bounds=bounds, value_field="bytes", **extra)  # type: ignore[arg-type]
    numbers = [1, "3", 4, 6, None, "n/a"] if kind != "value_sum" else [1, 2, 3, 4]
    events = [ev(i, i, **({"bytes": n} if n is not None else {})) for i, n in enumerate(numbers)]
    if kind == "value_median":
        events = [ev(i, i, bytes=n) for i, n in enumerate([5, 1, 3])]
    alerts = run(engine_for(spec), events)
    assert len(alerts) == 1, alerts
    assert alerts[0]["alert.value"] == pytest.approx(value)


def test_value_avg_without_numbers_never_fires() -> None:
    spec = Spec("value_avg", timespan=60, bounds={"lt": 100}, value_field="bytes")
    assert run(engine_for(spec), [ev(0, 1, bytes="x"), ev(1, 2)]) == []


def test_temporal_needs_every_rule_in_any_order() -> None:
    spec = Spec("temporal", refs=3, timespan=10, bounds={"gte": 3})
    assert fire_count(spec, [ev(0, 1, (2,)), ev(1, 2, (0,)), ev(2, 3, (1,))]) == 1
    assert fire_count(spec, [ev(0, 1, (2,)), ev(1, 2, (0,)), ev(2, 3, (0,))]) == 0
    assert fire_count(spec, [ev(0, 1, (2,)), ev(1, 2, (0,)), ev(12, 3, (1,))]) == 0


def test_temporal_default_condition_is_all_rules() -> None:
    docs = Spec("temporal", refs=2, timespan=10).documents()
    del docs[-1]["correlation"]["condition"]
    assert fire_count(docs, [ev(0, 1, (0,)), ev(1, 2, (0,))]) == 0  # type: ignore[arg-type]
    assert fire_count(docs, [ev(0, 1, (0,)), ev(1, 2, (1,))]) == 1  # type: ignore[arg-type]


def test_temporal_ordered_requires_the_order() -> None:
    spec = Spec("temporal_ordered", refs=2, timespan=10, bounds={"gte": 2})
    assert fire_count(spec, [ev(0, 1, (1,)), ev(1, 2, (0,))]) == 0
    assert fire_count(spec, [ev(0, 1, (1,)), ev(1, 2, (0,)), ev(2, 3, (1,))]) == 1
    # One event matching both rules cannot play both roles.
    assert fire_count(spec, [ev(0, 1, (0, 1))]) == 0


def test_temporal_extended_condition_with_not_decides_at_close() -> None:
    spec = Spec("temporal", refs=2, timespan=10, expression="r0 and not r1")
    engine = engine_for(spec)
    assert engine.observe(ev(0, 1, (0,)).flat(), ev(0, 1, (0,)).refs()) == []
    assert engine.advance(ts(10)) == []  # the window [0, 10] is still open at its edge
    assert len(engine.advance(ts(10.001))) == 1  # closed: it had r0 only
    assert fire_count(spec, [ev(0, 1, (0,)), ev(5, 2, (1,))]) == 0


def test_temporal_extended_condition_without_not_fires_early() -> None:
    spec = Spec("temporal", refs=3, timespan=10, expression="r0 and (r1 or r2)")
    engine = engine_for(spec)
    engine.observe(ev(0, 1, (0,)).flat(), ev(0, 1, (0,)).refs())
    engine.observe(ev(1, 2, (2,)).flat(), ev(1, 2, (2,)).refs())
    assert len(engine.observe(ev(2, 3, (0,)).flat(), {"r0"})) == 1  # watermark passed t=1


# --- group-by, aliases ----------------------------------------------------------------------------
def test_events_missing_a_group_by_field_are_not_correlated() -> None:
    spec = Spec("event_count", timespan=10, bounds={"gte": 2}, group_by=["user.name"])
    engine = engine_for(spec)
    events = [Ev(0, "a", frozenset({0}), (("user.name", "bob"),)), Ev(1, "b", frozenset({0}), ()),
              Ev(2, "c", frozenset({0}), (("user.name", None),)), Ev(3, "d", frozenset({0}), (("user.name", []),))]
    assert run(engine, events) == []
    assert engine.stats()["missing_group_by"] == 3
    # An empty string is a value.
    pair = [Ev(0, "a", frozenset({0}), (("user.name", ""),)), Ev(1, "b", frozenset({0}), (("user.name", ""),))]
    assert len(run(engine_for(spec), pair)) == 1


def test_groups_are_separate() -> None:
    spec = Spec("event_count", timespan=10, bounds={"gte": 2}, group_by=["host", "user"])
    alerts = run(engine_for(spec), [ev(0, 1, user="a"), ev(1, 2, user="b"), ev(2, 3, user="a")])
    assert [a["alert.group_by"] for a in alerts] == [{"host": "h1", "user": "a"}]
    assert alerts[0]["user"] == "a"


def test_aliases_join_different_fields() -> None:
    spec = Spec("temporal", refs=2, timespan=10, bounds={"gte": 2}, group_by=["internal_ip"],
                aliases={"internal_ip": {"r0": "destination.ip", "r1": "source.ip"}})
    same = [Ev(0, "x", frozenset({0}), (("destination.ip", "10.0.0.1"),)), Ev(1, "y", frozenset({1}), (("source.ip", "10.0.0.1"),))]
    other = [Ev(0, "x", frozenset({0}), (("destination.ip", "10.0.0.1"),)), Ev(1, "y", frozenset({1}), (("source.ip", "10.0.0.2"),))]
    alerts = run(engine_for(spec), same)
    assert len(alerts) == 1 and alerts[0]["alert.group_by"] == {"internal_ip": "10.0.0.1"}
    assert run(engine_for(spec), other) == []


# --- chaining and generate ------------------------------------------------------------------------
CHAIN = """
title: Correlation - Multiple Failed Logins Followed by Successful Login
id: b180ead8-d58f-40b2-ae54-c8940995b9b6
correlation:
    type: temporal_ordered
    rules: [multiple_failed_login, successful_login]
    group-by: [user.name]
    timespan: 10m
level: high
---
title: Multiple failed logons
id: a8418a5a-5fc4-46b5-b23b-6c73beb19d41
name: multiple_failed_login
correlation:
    type: event_count
    rules: [failed_login]
    group-by: [user.name]
    timespan: 10m
    condition: {gte: 3}
---
title: Single failed login
id: 53ba33fd-3a50-4468-a5ef-c583635cfa92
name: failed_login
logsource: {product: test}
detection: {sel: {event.outcome: failure}, condition: sel}
---
title: Successful login
id: 4d0a2c83-c62c-4ed4-b475-c7e23a9269b8
name: successful_login
logsource: {product: test}
detection: {sel: {event.outcome: success}, condition: sel}
"""


def chain_engine(text: str = CHAIN) -> CorrelationEngine:
    return CorrelationEngine.from_rules(rules_from_yaml(text), {}, {"allowed_lateness_seconds": 0})


def login(engine: CorrelationEngine, t: float, i: int, outcome: str, user: str = "bob") -> list[dict[str, Any]]:
    ref = "failed_login" if outcome == "failure" else "successful_login"
    return engine.observe({"@timestamp": ts(t), "event.id": f"l{i}", "user.name": user, "event.outcome": outcome}, {ref})


def test_chained_correlation_fires_and_inner_one_stays_quiet() -> None:
    engine = chain_engine()
    alerts = []
    for i in range(3):
        alerts += login(engine, i * 10, i, "failure")
    alerts += login(engine, 60, 9, "success")
    alerts += engine.finish()
    assert [a["rule.id"] for a in alerts] == ["b180ead8-d58f-40b2-ae54-c8940995b9b6"]
    assert alerts[0]["alert.group_by"] == {"user.name": "bob"} and alerts[0]["alert.value"] == 2.0
    assert "l9" in alerts[0]["alert.source_event_ids"]
    assert engine.stats()["chained_alerts"] == 1
    assert engine.suppressed_refs() >= {"failed_login", "successful_login", "multiple_failed_login"}


def test_chained_correlation_needs_the_order_and_the_group() -> None:
    engine = chain_engine()
    alerts = login(engine, 0, 0, "success")
    for i in range(3):
        alerts += login(engine, 10 + i, i + 1, "failure")
    alerts += login(engine, 20, 8, "success", user="eve")
    assert alerts + engine.finish() == []


def test_generate_true_outputs_the_inner_correlation_too() -> None:
    text = CHAIN.replace("    timespan: 10m\nlevel: high", "    timespan: 10m\n    generate: true\nlevel: high", 1)
    engine = chain_engine(text)
    alerts = []
    for i in range(3):
        alerts += login(engine, i, i, "failure")
    alerts += login(engine, 5, 9, "success") + engine.finish()
    assert sorted(a["rule.id"] for a in alerts) == ["a8418a5a-5fc4-46b5-b23b-6c73beb19d41", "b180ead8-d58f-40b2-ae54-c8940995b9b6"]
    assert "multiple_failed_login" not in engine.suppressed_refs() and "failed_login" in engine.suppressed_refs()


def test_cycle_is_a_load_error() -> None:
    text = """
title: a
name: ca
correlation: {type: event_count, rules: [cb], group-by: [x], timespan: 1m, condition: {gte: 1}}
---
title: b
name: cb
correlation: {type: event_count, rules: [ca], group-by: [x], timespan: 1m, condition: {gte: 1}}
"""
    with pytest.raises(CorrelationRuleError, match="cycle"):
        CorrelationEngine.from_rules(rules_from_yaml(text), {}, {})


# --- event time, lateness, hostile input ----------------------------------------------------------
def test_late_event_is_rejected_with_reason_and_counted() -> None:
    spec = Spec("event_count", timespan=60, bounds={"gte": 2})
    engine = engine_for(spec, allowed_lateness_seconds=5)
    run(engine, [ev(100, 1)], finish=False)
    late = ev(90, 2)
    late_before = REGISTRY.get_sample_value("tsiem_late_events_total") or 0.0
    assert engine.observe(late.flat(), late.refs()) == []
    assert REGISTRY.get_sample_value("tsiem_late_events_total") == late_before + 1
    rejected = engine.take_rejected()
    assert [(r.reason, r.event["event.id"], r.rules) for r in rejected] == [("correlation_late_event", "e2", [RULE_ID])]
    assert "watermark" in rejected[0].detail
    dead = rejected[0].to_dead_letter().as_dict()
    assert dead["reason"] == "correlation_late_event" and dead["stage"] == "correlation" and '"e2"' in dead["raw"]
    assert engine.stats()["late_events"] == 1 and engine.take_rejected() == []
    # Within the lateness it still counts.
    ok = ev(96, 3)
    engine.observe(ok.flat(), ok.refs())
    assert len(engine.finish()) == 1


def test_undrained_rejections_are_capped() -> None:
    engine = engine_for(Spec("event_count", timespan=10, bounds={"gte": 2}), max_rejected_events=3)
    for i in range(10):
        engine.observe({"@timestamp": "not a time", "event.id": str(i), "host": "h"}, {"r0"})
    assert len(engine.take_rejected()) == 3 and engine.stats()["rejected_overflow"] == 7


def test_unmatched_events_move_time_but_are_never_rejected() -> None:
    spec = Spec("event_count", timespan=10, bounds={"lt": 5})
    engine = engine_for(spec)
    engine.observe(ev(0, 1).flat(), {"r0"})
    assert len(engine.observe({"@timestamp": ts(50)}, set())) == 1  # closes [0, 10]
    assert engine.observe({"@timestamp": ts(1)}, set()) == [] and engine.take_rejected() == []


@pytest.mark.parametrize(("stamp", "reason"), [
    (None, "correlation_bad_timestamp"), ("yesterday", "correlation_bad_timestamp"), (True, "correlation_bad_timestamp"),
    (["2026-01-01T00:00:00Z"], "correlation_bad_timestamp"), ("9999-12-31T23:59:59Z", "correlation_future_timestamp"),
])
def test_unusable_timestamps_are_rejected_without_moving_time(stamp: Any, reason: str) -> None:
    engine = engine_for(Spec("event_count", timespan=10, bounds={"gte": 2}))
    assert engine.observe({"@timestamp": stamp, "event.id": "x", "host": "h"}, {"r0"}) == []
    assert [r.reason for r in engine.take_rejected()] == [reason]
    alerts = run(engine, [ev(0, 1), ev(1, 2)])
    assert len(alerts) == 1  # time was not pushed to the year 9999


def test_timestamp_before_year_one_is_late_not_a_crash() -> None:
    engine = engine_for(Spec("event_count", timespan=10, bounds={"gte": 2}))
    run(engine, [ev(0, 1)], finish=False)
    engine.observe({"@timestamp": "0001-01-01T00:00:00+01:00", "event.id": "old", "host": "h1"}, {"r0"})
    assert [r.reason for r in engine.take_rejected()] == ["correlation_late_event"]


def test_epoch_seconds_timestamps_are_accepted() -> None:
    engine = engine_for(Spec("event_count", timespan=10, bounds={"gte": 2}))
    for i, stamp in enumerate((1_700_000_000, 1_700_000_005.5)):
        engine.observe({"@timestamp": stamp, "event.id": str(i), "host": "h"}, {"r0"})
    assert [a["@timestamp"] for a in engine.finish()] == ["2023-11-14T22:13:25.500Z"]


def test_hostile_group_values_survive_snapshot() -> None:
    spec = Spec("value_count", timespan=10, bounds={"gte": 3}, value_field="v")
    engine = engine_for(spec, allowed_lateness_seconds=100)
    weird = [{"a": [1, {"b": 2}]}, 10**40, float("nan"), "\udcff", [1, [2, [3]]]]
    for i, value in enumerate(weird):
        engine.observe({"@timestamp": ts(i), "event.id": str(i), "host": value, "v": value}, {"r0"})
    restored = engine_for(spec, allowed_lateness_seconds=100)
    restored.restore(engine.snapshot())
    assert restored.stats()["pending"] == len(weird)
    restored.finish()


def test_duplicate_event_ids_are_counted_once() -> None:
    spec = Spec("event_count", timespan=10, bounds={"gte": 2})
    engine = engine_for(spec)
    assert run(engine, [ev(0, 1), ev(0, 1), ev(1, 1)]) == []
    assert engine.stats()["duplicates"] == 2
    close = Spec("event_count", timespan=10, bounds={"eq": 1})
    assert len(run(engine_for(close), [ev(0, 1), ev(2, 1)])) == 1


def test_events_without_id_are_deduplicated_by_content() -> None:
    engine = engine_for(Spec("event_count", timespan=10, bounds={"gte": 2}))
    event = {"@timestamp": ts(0), "host": "h"}
    engine.observe(event, {"r0"})
    engine.observe(dict(event), {"r0"})
    assert engine.finish() == [] and engine.stats()["duplicates"] == 1


# --- alert content ---------------------------------------------------------------------------------
def test_alert_ids_are_capped_with_full_count_and_alert_id_is_stable() -> None:
    spec = Spec("event_count", timespan=100, bounds={"gte": 30})
    events = [ev(i, i) for i in range(30)]
    first = run(engine_for(spec, max_alert_event_ids=5), events)
    second = run(engine_for(spec, max_alert_event_ids=5), list(reversed(events)) and events)
    assert first[0]["alert.source_event_ids"] == [f"e{i}" for i in range(5)]
    assert first[0]["alert.source_event_count"] == 30
    assert first[0]["alert.id"] == second[0]["alert.id"]
    assert first[0]["alert.type"] == "correlation" and first[0]["alert.correlation_type"] == "event_count"
    assert first[0]["alert.rules"] == ["r0"] and first[0]["event.kind"] == "alert" and first[0]["alert.level"] == "high"


def test_unbounded_lateness_correlates_files_replayed_one_after_another() -> None:
    spec = Spec("temporal_ordered", refs=2, timespan=60, bounds={"gte": 2}, group_by=["user"])
    okta = [Ev(t, f"o{t}", frozenset({0}), (("user", "bob"),)) for t in (0, 500, 1000)]
    audit = [Ev(t + 30, f"a{t}", frozenset({1}), (("user", "bob"),)) for t in (0, 500, 1000)]
    sequential = run(engine_for(spec, allowed_lateness_seconds=-1), okta + audit)
    assert len(sequential) == 3
    bounded = engine_for(spec, allowed_lateness_seconds=60)
    assert len(run(bounded, okta + audit)) == 1 and bounded.stats()["late_events"] == 2


def test_pending_cap_forces_time_forward() -> None:
    spec = Spec("event_count", timespan=10, bounds={"gte": 2})
    engine = engine_for(spec, allowed_lateness_seconds=-1, max_pending_events=3)
    alerts = run(engine, [ev(i * 100, i) for i in range(10)] + [ev(905, 99)], finish=False)
    assert engine.stats()["pending"] <= 3 and engine.stats()["forced_advances"] > 0
    assert alerts + engine.finish() != []


# --- bounded state ----------------------------------------------------------------------------------
def test_group_cap_evicts_the_oldest_window(caplog: pytest.LogCaptureFixture) -> None:
    spec = Spec("event_count", timespan=100, bounds={"gte": 2}, group_by=["user"])
    engine = engine_for(spec, max_groups=2)
    evictions_before = REGISTRY.get_sample_value("tsiem_correlation_evictions_total") or 0.0
    events = [Ev(0, "1", frozenset({0}), (("user", "old"),)), Ev(1, "2", frozenset({0}), (("user", "mid"),)),
              Ev(2, "3", frozenset({0}), (("user", "new"),)),
              Ev(3, "4", frozenset({0}), (("user", "old"),)), Ev(4, "5", frozenset({0}), (("user", "new"),))]
    alerts = run(engine, events)
    assert [a["alert.group_by"]["user"] for a in alerts] == ["new"]
    evicted = engine.stats()["evicted_groups"]
    assert evicted >= 1
    assert REGISTRY.get_sample_value("tsiem_correlation_evictions_total") == evictions_before + evicted
    assert any("max_groups=2" in record.getMessage() for record in caplog.records if record.levelname == "WARNING")
    groups_gauge = REGISTRY.get_sample_value("tsiem_correlation_groups")
    other = engine_for(spec)
    run(other, events[:2], finish=False)
    other.stats()
    assert REGISTRY.get_sample_value("tsiem_correlation_groups") == groups_gauge + other.stats()["groups"]  # summed over engines


def test_events_per_group_cap_keeps_memory_bounded() -> None:
    spec = Spec("event_count", timespan=1000, bounds={"gte": 500})
    engine = engine_for(spec, max_events_per_group=50)
    assert run(engine, [ev(i, i) for i in range(200)]) == []
    assert engine.stats()["dropped_events"] == 150


def test_groups_are_dropped_once_time_passes_them() -> None:
    spec = Spec("event_count", timespan=10, bounds={"gte": 5}, group_by=["user"])
    engine = engine_for(spec)
    run(engine, [Ev(i, str(i), frozenset({0}), (("user", f"u{i}"),)) for i in range(100)], finish=False)
    assert engine.stats()["groups"] <= 12


def test_chained_alert_cites_the_inner_events_and_lists_inner_alerts_apart() -> None:
    """Issue 14 class 1: the outer alert's source_event_ids are event ids only (the burst's events, flattened from
    the inner alert), with the full count; the inner alert's id goes to alert.related_alert_ids."""
    engine = chain_engine()
    alerts = []
    for i in range(3):
        alerts += login(engine, i * 10, i, "failure")
    alerts += login(engine, 60, 9, "success")
    alerts += engine.finish()
    (alert,) = alerts
    assert alert["alert.source_event_ids"] == ["l0", "l1", "l2", "l9"]
    assert alert["alert.source_event_count"] == 4
    (related,) = alert["alert.related_alert_ids"]
    assert len(related) == 32 and related not in alert["alert.source_event_ids"]


def test_chained_evidence_survives_a_snapshot() -> None:
    engine = chain_engine()
    for i in range(3):
        login(engine, i * 10, i, "failure")
    login(engine, 40, 5, "failure")  # moves the watermark: the inner alert fires and waits in the outer window
    restored = chain_engine()
    restored.restore(engine.snapshot())
    alerts = login(restored, 60, 9, "success") + restored.finish()
    (alert,) = alerts
    assert alert["alert.source_event_ids"][:3] == ["l0", "l1", "l2"] and "l9" in alert["alert.source_event_ids"]
    assert len(alert["alert.related_alert_ids"]) == 1


def test_then_evidence_is_the_matched_chain_only() -> None:
    """Issue 14 class 2: a success buffered before the burst is no evidence of "burst then success"."""
    engine = chain_engine()
    alerts = login(engine, 0, 100, "success")
    for i in range(3):
        alerts += login(engine, 10 + i * 10, i, "failure")
    alerts += login(engine, 60, 9, "success") + engine.finish()
    (alert,) = alerts
    assert "l100" not in alert["alert.source_event_ids"]
    assert alert["alert.source_event_ids"] == ["l0", "l1", "l2", "l9"]


def test_then_quiet_period_starts_at_the_chain_not_the_first_buffered_event() -> None:
    """After "A then B" fired, a new A then B later in the same timespan is a new finding, not absorbed."""
    spec_text = """
title: a then b
id: 0f0e0d0c-0b0a-4909-8807-060504030201
correlation: {type: temporal_ordered, rules: [rule_a, rule_b], group-by: [user.name], timespan: 10m}
level: high
---
title: A
name: rule_a
logsource: {product: test}
detection: {sel: {event.action: a}, condition: sel}
---
title: B
name: rule_b
logsource: {product: test}
detection: {sel: {event.action: b}, condition: sel}
"""
    engine = CorrelationEngine.from_rules(rules_from_yaml(spec_text), {}, {"allowed_lateness_seconds": 0})

    def step(t: float, i: int, ref: str) -> list[dict[str, Any]]:
        return engine.observe({"@timestamp": ts(t), "event.id": f"x{i}", "user.name": "bob"}, {ref})

    alerts = step(0, 0, "rule_b") + step(100, 1, "rule_a") + step(110, 2, "rule_b")
    alerts += step(200, 3, "rule_a") + step(210, 4, "rule_b") + engine.finish()
    assert [a["alert.source_event_ids"] for a in alerts] == [["x1", "x2"], ["x3", "x4"]]
