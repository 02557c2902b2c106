"""``replay --workers`` sends the parent only event times for events that matched nothing a correlation listens
to, parsed by the worker and merged per run (app/parallel.py ``_ObservationRecorder``, ``_merge_times``); the
parent applies them with ``CorrelationEngine.observe_time``. That must do what observing each event did:
same alerts, same counters, same latest time, also with unparseable and future timestamps and with the
memory bound forcing early applies."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from temporal_siem.parallel import OBSERVE, TIME, _merge_times, _ObservationRecorder
from tests.correlation.harness import Ev, Spec, engine_for, summaries, ts

STAMPS = st.one_of(st.integers(0, 120).map(lambda s: ("ok", float(s))), st.just(("bad", 0.0)), st.just(("future", 0.0)))


def _flat(kind: str, t: float, n: int, host: str) -> dict[str, Any]:
    stamp = {"ok": ts(t), "bad": "not a time", "future": "2999-01-01T00:00:00Z"}[kind]
    return {"@timestamp": stamp, "event.id": f"e{n}", "host": host}


@settings(max_examples=150, deadline=None)
@given(stream=st.lists(st.tuples(STAMPS, st.booleans(), st.sampled_from(["a", "b"])), max_size=60),
       max_pending=st.sampled_from([2, 5, 1_000_000]))
def test_merged_event_times_do_what_each_event_did(stream: list[tuple[tuple[str, float], bool, str]], max_pending: int) -> None:
    spec = Spec("event_count", timespan=10, bounds={"gte": 2})
    options = {"allowed_lateness_seconds": -1, "max_pending_events": max_pending}
    one, parallel = engine_for(spec, **options), engine_for(spec, **options)
    refs = Ev(0, "x", frozenset({0})).refs()
    recorder = _ObservationRecorder(parallel)
    assert recorder.merge_times

    expected: list[dict[str, Any]] = []
    for n, ((kind, t), matched, host) in enumerate(stream):
        event = _flat(kind, t, n, host)
        expected.extend(one.observe(dict(event), refs if matched else ()))
        recorder.observe(dict(event), refs if matched else ())
    expected.extend(one.finish())

    items = _merge_times(recorder.items)
    assert sum(1 for item in items if item[0] == TIME) <= sum(1 for _, matched, _ in stream if not matched)
    got: list[dict[str, Any]] = []
    for item in items:
        if item[0] == TIME:
            got.extend(parallel.observe_time(item[1], item[2]))
        else:
            assert item[0] == OBSERVE
            got.extend(parallel.observe(item[1], item[2]))
    got.extend(parallel.finish())

    assert summaries(got) == summaries(expected)
    assert parallel.stats() == one.stats()
    assert parallel.max_seen == one.max_seen


def test_a_run_of_unmatched_events_is_one_item_with_its_latest_usable_time() -> None:
    engine = engine_for(Spec("event_count"), allowed_lateness_seconds=-1)
    recorder = _ObservationRecorder(engine)
    for n, stamp in enumerate([ts(5), ts(9), "not a time", ts(7), "2999-01-01T00:00:00Z"]):
        recorder.observe({"@timestamp": stamp, "event.id": f"e{n}"}, ())
    assert len(recorder.items) == 5
    [(kind, latest, count)] = _merge_times(recorder.items)
    assert (kind, count) == (TIME, 5)
    assert latest == _ObservationRecorder(engine)._usable_time(ts(9))


def test_runs_are_kept_apart_with_a_bounded_lateness() -> None:
    """With a lateness, each event may close windows as it comes: the recorder does not ask for merging."""
    assert not _ObservationRecorder(engine_for(Spec("event_count"), allowed_lateness_seconds=5)).merge_times
