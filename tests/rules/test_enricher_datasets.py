"""``Enricher.datasets``: an enricher that declares the datasets it works on is handed only a batch's events of
them (or skipped when the batch has none). Two things must hold: the declaration is true (``enrich`` changes no
event and no state outside it, along a corpus and on hostile variants), and the detector's alerts and enriched
events are those of handing every enricher the whole batch (mixed batches, batches of one dataset, events
without one, a dataset value that cannot be a key)."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from temporal_siem.detections.enrichment.base import Enricher
from temporal_siem.detections.factory import build_detector
from tests.rules.test_enrichment_state_gate import EVENTS, ODD

OPTIONS = {"correlation": {"allowed_lateness_seconds": -1}}


def _declaring(detector: Any) -> list[Enricher]:
    return [enricher for enricher in detector.enrichers if enricher.datasets is not None]


def _state(enricher: Enricher) -> tuple[bytes, Any]:
    return enricher.snapshot(), enricher.stats()


def test_the_registries_declare_their_datasets() -> None:
    names = {type(e).__name__ for e in _declaring(build_detector([], options=OPTIONS))}
    assert names >= {"ApiKeyRegistry", "ClientCaRegistry", "RoleRegistry", "WorkloadSessions"}


def test_an_event_outside_the_declared_datasets_changes_nothing() -> None:
    """Along the corpus in order (the registries learn as they go): every event of another dataset is left as
    it was, and so is the enricher's state; the corpus has events on both sides of every declaration."""
    enrichers = _declaring(build_detector([], options=OPTIONS))
    outside = {type(e).__name__: 0 for e in enrichers}
    inside = dict(outside)
    for event in copy.deepcopy(EVENTS):
        for enricher in enrichers:
            assert enricher.datasets is not None
            name = type(enricher).__name__
            if event.get("event.dataset") in enricher.datasets:
                inside[name] += 1
                enricher.enrich([event])
                continue
            outside[name] += 1
            before, state = copy.deepcopy(event), _state(enricher)
            enricher.enrich([event])
            assert event == before, name
            assert _state(enricher) == state, name
    assert all(outside.values()) and all(inside.values()), (outside, inside)


@settings(max_examples=200, deadline=None)
@given(index=st.integers(0, len(EVENTS) - 1),
       odd=st.dictionaries(st.sampled_from(["event.outcome", "temporal.namespace", "temporal.target.id", "temporal.api_key.id",
                                            "user.changes.roles", "aws.cloudtrail.userIdentity.type", "aws.cloudtrail.eventName",
                                            "temporal.client_ca_fingerprints", "@timestamp"]), ODD, max_size=4),
       dataset=st.sampled_from(["okta.system", "json", "temporal.server", "aws.kms", "Temporal_Cloud.Audit", "aws.cloudtrail ", ""]))
def test_a_hostile_event_of_another_dataset_changes_nothing(index: int, odd: dict[str, Any], dataset: str) -> None:
    enrichers = _declaring(build_detector([], options=OPTIONS))
    for event in copy.deepcopy(EVENTS[:300]):  # some state to read
        for enricher in enrichers:
            enricher.enrich([event])
    event = copy.deepcopy(EVENTS[index])
    event.update({k: v for k, v in odd.items() if v is not None})
    event["event.dataset"] = dataset
    for enricher in enrichers:
        before, state = copy.deepcopy(event), _state(enricher)
        enricher.enrich([event])
        assert event == before and _state(enricher) == state, type(enricher).__name__


def _batches(seed: int) -> list[list[dict[str, Any]]]:
    rng = random.Random(seed)
    events = copy.deepcopy(EVENTS)
    for event in rng.sample(events, 40):
        event.pop("event.dataset", None)  # events without a dataset: None is declared by the audit registries
    audit = [e for e in events if e.get("event.dataset") == "temporal_cloud.audit"]
    trail = [e for e in events if e.get("event.dataset") == "aws.cloudtrail"]
    batches = [events[i:i + rng.randint(1, 200)] for i in range(0, len(events), 150)]
    batches += [audit, trail, audit[:10] + trail[:10], [dict(events[0], **{"event.dataset": ["a", "list"]}), *audit[:20]]]
    return batches


def test_alerts_and_events_equal_handing_every_enricher_the_whole_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TSIEM_CLOCK_SKEW_REFERENCE", "created")  # no wall clock: both detectors see the same
    for seed in (1, 2):
        grouped = build_detector([], options=OPTIONS)
        whole = build_detector([], options=OPTIONS)
        for enricher in whole.enrichers:
            enricher.datasets = None  # type: ignore[misc]  # this instance: every batch whole, as before the groups
        alerts_grouped: list[Any] = []
        alerts_whole: list[Any] = []
        for batch in _batches(seed):
            mine, theirs = copy.deepcopy(batch), copy.deepcopy(batch)
            alerts_grouped.extend(grouped.process(mine))
            alerts_whole.extend(whole.process(theirs))
            assert mine == theirs
        alerts_grouped.extend(grouped.finish())
        alerts_whole.extend(whole.finish())
        assert alerts_grouped == alerts_whole
        assert len(alerts_grouped) > 10
        assert grouped.enrichment_errors == whole.enrichment_errors == 0
