"""Hypothesis: the streaming engine equals the brute-force reference on generated rules and streams,
in order, out of order within the allowed lateness, and across a snapshot/restore cut."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.correlation.harness import Ev, Spec, engine_for, run, summaries
from tests.correlation.reference import reference_alerts

KINDS = ["event_count", "value_count", "temporal", "temporal_ordered", "value_sum", "value_avg",
         "value_percentile", "value_median"]
OPS = ["gt", "gte", "lt", "lte", "eq", "neq"]


@st.composite
def specs(draw: st.DrawFn) -> Spec:
    kind = draw(st.sampled_from(KINDS))
    refs = draw(st.integers(1, 3)) if kind in ("temporal", "temporal_ordered", "event_count") else draw(st.integers(1, 2))
    if draw(st.booleans()):  # lower bounds only: the sliding-window path
        ops = [draw(st.sampled_from(["gt", "gte"]))]
        bounds = {ops[0]: draw(st.integers(0, 4))}
    else:
        ops = draw(st.lists(st.sampled_from(OPS), min_size=1, max_size=2, unique=True))
        bounds = {op: draw(st.integers(0, 6)) for op in ops}
    group_by = draw(st.sampled_from([[], ["host"], ["host", "user"], ["ip"]]))
    aliases: dict[str, dict[str, str]] = {}
    if group_by == ["ip"] and refs > 1:
        aliases = {"ip": {"r0": "src", "r1": "dst"}}  # r2 (if any) falls back to the field "ip"
    field = "val" if kind not in ("event_count", "temporal", "temporal_ordered") else None
    percentile = draw(st.integers(0, 100)) if kind == "value_percentile" else None
    expression = None
    if kind in ("temporal", "temporal_ordered") and refs > 1 and draw(st.integers(0, 3)) == 0:
        expression = draw(st.sampled_from(EXPRESSIONS[refs]))  # pySigma wants every rule named in it
    return Spec(kind=kind, refs=refs, timespan=draw(st.integers(1, 8)), bounds=bounds, group_by=group_by,
                value_field=field, percentile=percentile, aliases=aliases, expression=expression)


EXPRESSIONS = {
    2: ["r0 and r1", "r0 or r1", "r0 and not r1", "not r0 and r1", "not (r0 and r1)"],
    3: ["r0 and (r1 or r2)", "r0 or r1 or r2", "(r0 or r1) and not r2", "r0 and r1 and r2"],
}


@st.composite
def streams(draw: st.DrawFn, refs: int = 3) -> list[Ev]:
    count = draw(st.integers(0, 40))
    events = []
    t = 0.0
    for index in range(count):
        t += draw(st.sampled_from([0, 0, 0.5, 1, 1, 2, 3, 5, 9]))
        rules = draw(st.sets(st.integers(0, refs - 1), min_size=1, max_size=2))
        fields: dict[str, Any] = {}
        for name, choices in (("host", ["a", "b"]), ("user", ["u", "v", None]), ("ip", ["1", "2"]),
                              ("src", ["1", "2", None]), ("dst", ["1", "2"]), ("val", [0, 1, 2, 3, 7, -2, "x", "4", None])):
            value = draw(st.sampled_from(choices))
            if value is not None:
                fields[name] = value
        if draw(st.integers(0, 9)) == 0:
            fields.pop("host", None)  # group-by field missing
        events.append(Ev(t, f"e{index:03d}", frozenset(rules), tuple(sorted(fields.items()))))
    return events


def arrival(events: list[Ev], delays: list[float]) -> list[Ev]:
    """Reorder by time + delay: every event still arrives within the allowed lateness (max delay)."""
    keyed = [(event.t + delays[i % len(delays)], i, event) for i, event in enumerate(events)] if delays else []
    return [event for _, _, event in sorted(keyed)] if delays else list(events)


SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@SETTINGS
@given(spec=specs(), events=streams())
def test_in_order_stream_equals_reference(spec: Spec, events: list[Ev]) -> None:
    assert summaries(run(engine_for(spec), events)) == reference_alerts(spec, events)


@SETTINGS
@given(spec=specs(), events=streams(), delays=st.lists(st.sampled_from([0, 0.5, 1, 2, 4]), min_size=1, max_size=7))
def test_out_of_order_within_lateness_equals_reference(spec: Spec, events: list[Ev], delays: list[float]) -> None:
    engine = engine_for(spec, allowed_lateness_seconds=4)
    alerts = run(engine, arrival(events, delays))
    assert engine.stats()["late_events"] == 0
    assert summaries(alerts) == reference_alerts(spec, events)


@SETTINGS
@given(spec=specs(), events=streams(), cut=st.integers(0, 40), redelivered=st.integers(0, 5),
       lateness=st.sampled_from([0, 3]))
def test_restart_from_snapshot_equals_one_run(spec: Spec, events: list[Ev], cut: int, redelivered: int,
                                              lateness: int) -> None:
    """Snapshot after ``cut`` events; the restarted engine also gets the last ``redelivered`` ones again
    (at-least-once: the snapshot was written but the source position not yet committed)."""
    whole = run(engine_for(spec, allowed_lateness_seconds=lateness), events)
    first = engine_for(spec, allowed_lateness_seconds=lateness)
    alerts = run(first, events[:cut], finish=False)
    second = engine_for(spec, allowed_lateness_seconds=lateness)
    second.restore(first.snapshot())
    alerts += run(second, events[max(0, cut - redelivered):])
    assert summaries(alerts) == summaries(whole)
