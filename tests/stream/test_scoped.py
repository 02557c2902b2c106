"""The scoped detection logic (replay's in-memory store) against the whole-stream detector replay has always used."""

from __future__ import annotations

import copy
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from temporal_siem.detections.factory import new_detector
from temporal_siem.detections.scoped import (
    ENTITY_DATASETS,
    STATEFUL_ENRICHERS,
    MemoryState,
    ScopedDetector,
    ScopedStage,
    ScopeMessage,
    ScopePlan,
    StatelessStage,
    enrichment_messages,
)
from temporal_siem.detections.sigma.ruleset import Ruleset
from temporal_siem.kernel.records import Origin, RawRecord
from temporal_siem.parsers.router import ParserRouter

ROOT = Path(__file__).resolve().parents[2]


def _ids(detector: Any, events: list[dict[str, Any]], batch: int = 50) -> set[str]:
    ids: set[str] = set()
    for start in range(0, len(events), batch):
        ids |= {a["alert.id"] for a in detector.process(copy.deepcopy(events[start:start + batch]))}
    return ids | {a["alert.id"] for a in detector.finish()}


@pytest.mark.parametrize("lateness", [300.0, -1.0], ids=["lateness-300s", "unbounded"])
def test_scoped_detector_raises_what_the_whole_stream_detector_raises(ruleset: Ruleset, sample_events: list[dict[str, Any]],
                                                                       lateness: float | None) -> None:
    options = {"correlation": {"allowed_lateness_seconds": lateness}}
    whole = _ids(new_detector(ruleset, options), sample_events)
    scoped = _ids(ScopedDetector(ruleset, options), sample_events)
    assert whole == scoped
    assert len(whole) > 100  # the samples raise rule alerts and correlations; an empty match proves nothing


def test_order_within_the_grace_does_not_change_the_alerts(ruleset: Ruleset, sample_events: list[dict[str, Any]]) -> None:
    """Events of one scope applied in event-time order: shuffled arrival (as members and partitions deliver) gives the
    same alert ids as sorted arrival."""
    ordered = sorted(sample_events, key=lambda e: str(e.get("@timestamp")))
    shuffled = ordered[:]
    random.Random(3).shuffle(shuffled)
    options = {"correlation": {"allowed_lateness_seconds": -1}}  # unbounded
    assert _ids(ScopedDetector(ruleset, options), ordered) == _ids(ScopedDetector(ruleset, options), shuffled)


def test_chained_correlations_share_one_scope(ruleset: Ruleset) -> None:
    plan = ScopePlan.build(ruleset, {})
    sso = next(c for c in plan.components if any(m.name == "sso_failure_burst_then_okta_success" for m in c.compiled))
    assert len(sso.compiled) >= 2  # the burst and the correlations that chain on it
    assert sso.keyed  # same group-by along the chain: one scope per user, not one for everybody


def test_one_message_per_scope_and_stateless_rules_before_the_hop(ruleset: Ruleset) -> None:
    router = ParserRouter()
    line = (ROOT / "samples" / "temporal_cloud_audit").glob("*.jsonl")
    stage = StatelessStage(ScopePlan.build(ruleset, {}))
    scoped = 0
    for path in line:
        for raw in path.read_bytes().splitlines():
            events = router.parse(RawRecord(raw, Origin("t"))).events
            _, messages = stage.process(events)
            keys = [m.key for m in messages]
            assert len(keys) == len(set(keys))  # one message per scope, however many rules feed it
            scoped += len(messages)
    assert scoped > 0


def test_late_events_are_counted_and_dead_lettered_not_applied(ruleset: Ruleset) -> None:
    plan = ScopePlan.build(ruleset, {})
    stage = ScopedStage(plan)
    store = MemoryState()
    meta = stage.meta(store)
    stage.advance(store, meta, 2_000_000_000 * 1_000_000)
    key = "c|" + plan.components[0].name + "|[\"x\"]"
    result = stage.observe(store, meta, ScopeMessage(key, {"@timestamp": "2020-01-01T00:00:00Z", "event.id": "late"}, 1_577_836_800_000_000,
                                                     [next(iter(plan.components[0].refs))]))
    assert stage.late == 1
    assert [d.reason for d in result.dead] == ["scope_late_event"]
    assert store.get(key) is None


CA_CHAIN = """
title: CA change
id: 5e3bd9b6-0d65-4f1c-9c39-3d27d6f0a001
name: ca_change
logsource: {product: temporal, service: audit}
detection:
  selection: {temporal.client_ca_changed: true}
  condition: selection
level: low
---
title: Two CA changes in an hour
id: 5e3bd9b6-0d65-4f1c-9c39-3d27d6f0a002
correlation:
  type: event_count
  rules: [ca_change]
  group-by: [temporal.namespace]
  timespan: 1h
  condition: {gte: 2}
level: high
"""


def test_a_correlation_over_a_remembering_rule_is_fed_from_the_registry_scope() -> None:
    """The CA-changed rule can only run where the namespace's registry lives; its matches are forwarded to the
    correlation's scope (a second hop) and still count there."""
    ruleset = Ruleset.from_yaml(CA_CHAIN)
    events = [{"@timestamp": f"2025-01-01T10:{m:02d}:00Z", "event.id": f"ca{m}", "event.dataset": "temporal_cloud.audit",
               "temporal.operation": "UpdateNamespace", "temporal.namespace": "payments",
               "temporal.client_ca_fingerprints": [f"fp{m}"]} for m in (0, 10, 20)]
    options = {"correlation": {"allowed_lateness_seconds": 300.0}}
    whole = {a["rule.name"] for a in new_detector(ruleset, options).process(copy.deepcopy(events))}
    scoped = ScopedDetector(ruleset, options)
    got = [a["rule.name"] for a in scoped.process(copy.deepcopy(events)) + scoped.finish()]
    assert "Two CA changes in an hour" in got
    assert set(got) >= whole


def test_the_open_groups_gauge_follows_the_scopes_not_the_restores(ruleset: Ruleset, sample_events: list[dict[str, Any]]) -> None:
    """Each scope's engine is restored per event: the gauge must count its groups once, not once per restore."""
    from temporal_siem.kernel.metrics import CORRELATION_GROUPS

    before = CORRELATION_GROUPS._value.get()
    detector = ScopedDetector(ruleset, {"correlation": {"allowed_lateness_seconds": 0}})
    for event in sorted(copy.deepcopy(sample_events), key=lambda e: str(e.get("@timestamp"))):
        detector.process([event])
    open_groups = 0
    for key, state in detector.store.data.items():
        if key.startswith("c|") and state.get("c"):
            engine = detector.plan.engine(detector.scoped.components[key.split("|")[1]])
            engine.restore(state["c"].encode())
            open_groups += engine._group_count
            CORRELATION_GROUPS.dec(engine._group_count)  # this check's own restore
    assert open_groups > 0
    assert CORRELATION_GROUPS._value.get() - before == open_groups


DATASETS = [None, "temporal_cloud.audit", "aws.cloudtrail", "okta.system", "windows.sysmon", "", "AWS.CloudTrail", ["aws.cloudtrail"], 7]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_the_dataset_gate_of_registry_scopes_loses_no_entity(sample_events: list[dict[str, Any]], data: st.DataObject) -> None:
    """``enrichment_messages`` skips the four ``entities`` calls for a dataset outside ``ENTITY_DATASETS``: for any
    sample event under any dataset (its own, another, a hostile one), the messages are what the calls give."""
    event = dict(data.draw(st.sampled_from(sample_events)))
    choice = data.draw(st.sampled_from(["own", "absent", *range(len(DATASETS))]))
    if choice == "absent":
        event.pop("event.dataset", None)
    elif choice != "own":
        event["event.dataset"] = DATASETS[int(choice)]
    expected = [f"e|{spec.name}|{entity}" for spec in STATEFUL_ENRICHERS for entity in spec.entities(event)]
    assert [m.key for m in enrichment_messages(event, 1)] == expected
    if expected and isinstance(event.get("event.dataset"), str):
        assert ENTITY_DATASETS is None or event["event.dataset"] in ENTITY_DATASETS


def test_registry_scopes_come_from_the_entity_datasets_in_the_samples(sample_events: list[dict[str, Any]]) -> None:
    """Not vacuous: the samples do touch registry scopes, and only from events of those datasets."""
    assert {None, "temporal_cloud.audit", "aws.cloudtrail"} == ENTITY_DATASETS, "what the four registries declare today"
    touched = {e.get("event.dataset") for e in sample_events if enrichment_messages(e, 1)}
    assert ENTITY_DATASETS is not None and touched and touched <= ENTITY_DATASETS
