"""Hostile events never crash the engine, and whatever state they leave behind survives snapshot/restore."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.correlation.harness import Spec, engine_for, ts

scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**80), 2**80), st.floats(allow_nan=True, allow_infinity=True),
                    st.text(max_size=12), st.sampled_from(["\udcff", "\x00", "a" * 300, "1e400", "-0"]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=3), inner, max_size=2)),
                      max_leaves=6)
stamps = st.one_of(st.integers(0, 600).map(ts), values, st.sampled_from(["9999-12-31T23:59:59Z", "0001-01-01T00:00:00+05:00",
                                                                           "2026-03-01T12:00:00.123456789Z", "2026-13-01T00:00:00Z"]))
events = st.fixed_dictionaries({"@timestamp": stamps, "event.id": values, "host": values, "user": values, "val": values, "src": values})
kinds = st.sampled_from([
    Spec("event_count", bounds={"gte": 2}, group_by=["host"]),
    Spec("value_count", bounds={"gte": 2}, group_by=["host", "user"], value_field="val"),
    Spec("value_percentile", bounds={"lt": 5}, group_by=["user"], value_field="val", percentile=90),
    Spec("value_sum", bounds={"gt": 1, "lte": 10}, group_by=[], value_field="val"),
    Spec("temporal_ordered", refs=2, bounds={"gte": 2}, group_by=["ip"], aliases={"ip": {"r0": "src", "r1": "host"}}),
])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(spec=kinds, batch=st.lists(st.tuples(events, st.sets(st.sampled_from(["r0", "r1", "nope"]))), max_size=25),
       cut=st.integers(0, 25), lateness=st.sampled_from([0, 30, -1]))
def test_hostile_events_never_crash_and_state_round_trips(spec: Spec, batch: list[tuple[dict[str, Any], set[str]]],
                                                          cut: int, lateness: int) -> None:
    engine = engine_for(spec, allowed_lateness_seconds=lateness, max_groups=5, max_events_per_group=4, max_pending_events=8)
    for event, refs in batch[:cut]:
        for alert in engine.observe(event, refs):
            assert alert["alert.type"] == "correlation"
    restored = engine_for(spec, allowed_lateness_seconds=lateness, max_groups=5, max_events_per_group=4, max_pending_events=8)
    restored.restore(engine.snapshot())
    assert restored.stats()["groups"] == engine.stats()["groups"]
    assert restored.stats()["pending"] == engine.stats()["pending"]
    for event, refs in batch[cut:]:
        restored.observe(event, refs)
    restored.finish()
    for item in restored.take_rejected():
        item.to_dead_letter().as_dict()
    assert restored.stats()["groups"] == 0 and restored.stats()["pending"] == 0
