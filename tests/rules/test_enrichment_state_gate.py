"""A stateful enricher's ``reads_state`` is a true gate: on an event it says no to, ``enrich`` changes neither
the event nor the enricher's state.

Why it matters: ``replay --workers`` enriches and matches the events no gate claims in worker processes, which
hold no enricher state, and sends only the claimed ones to the parent. An event ``reads_state`` wrongly
refuses would be enriched without the state there, and its alerts would differ from one process's.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.corpus import generate
from temporal_siem.detections.enrichment.base import Enricher
from temporal_siem.detections.factory import build_detector
from temporal_siem.kernel.records import Origin, RawRecord
from temporal_siem.parallel import is_stateful_enricher
from temporal_siem.parsers.router import ParserRouter
from tests.rules.test_workload_sessions import HUMAN, assume


def _stateful() -> list[Enricher]:
    detector = build_detector([], builtin_rules=True, options={"correlation": {"allowed_lateness_seconds": -1}})
    return [enricher for enricher in detector.enrichers if is_stateful_enricher(enricher)]


def _events(n: int, seed: int) -> list[dict[str, Any]]:
    router = ParserRouter()
    events: list[dict[str, Any]] = []
    for line_no, line in enumerate(generate(n, seed=seed), 1):
        events.extend(router.parse(RawRecord(line, Origin("corpus", line=line_no))).events)
    return events


# The corpus's only AssumeRole record is made by an assumed-role session: these are made by people and a web identity.
EVENTS = [*_events(1500, seed=3), assume("AssumeRole", HUMAN, "s1", "2025-07-01T11:00:00Z"),
          assume("AssumeRoleWithSAML", HUMAN, "s2", "2025-07-01T11:05:00Z", role="admin"),
          assume("AssumeRoleWithWebIdentity", {"type": "WebIdentityUser", "identityProvider": "oidc.example"}, "s3",
                 "2025-07-01T11:10:00Z")]


def _state(enricher: Enricher) -> tuple[bytes, Any]:
    return enricher.snapshot(), enricher.stats()


def test_the_gates_narrow_the_registries_datasets() -> None:
    """Every stateful built-in enricher narrows the default, and the corpus has events on both sides of each."""
    enrichers = _stateful()
    assert {type(e).__name__ for e in enrichers} >= {"ApiKeyRegistry", "ClientCaRegistry", "RoleRegistry", "WorkloadSessions"}
    for enricher in enrichers:
        assert type(enricher).reads_state is not Enricher.reads_state, type(enricher).__name__
        claimed = sum(enricher.reads_state(event) for event in EVENTS)
        assert 0 < claimed < len(EVENTS), type(enricher).__name__


def test_an_event_a_gate_refuses_changes_nothing_along_a_corpus() -> None:
    """The corpus in order (so the registries hold what they learned): each refused event leaves the event and
    the state as they were; each claimed one is enriched as usual."""
    enrichers = _stateful()
    refused = 0
    for event in copy.deepcopy(EVENTS):
        for enricher in enrichers:
            if enricher.reads_state(event):
                enricher.enrich([event])
                continue
            refused += 1
            before, state = dict(event), _state(enricher)
            enricher.enrich([event])
            assert event == before, type(enricher).__name__
            assert _state(enricher) == state, type(enricher).__name__
    assert refused > len(EVENTS)


ODD = st.one_of(st.none(), st.just(""), st.just("  "), st.text(max_size=12), st.integers(), st.lists(st.text(max_size=8), max_size=3),
                st.just("AssumedRole"), st.just("AssumeRole"), st.just("temporal_cloud.audit"), st.just("aws.cloudtrail"),
                st.just("failure"), st.just("success"))


@pytest.fixture(scope="module")
def warmed() -> list[Enricher]:
    enrichers = _stateful()
    for event in copy.deepcopy(EVENTS):
        for enricher in enrichers:
            enricher.enrich([event])
    return enrichers


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(index=st.integers(0, len(EVENTS) - 1), drop=st.lists(st.integers(0, 80), max_size=6),
       odd=st.dictionaries(st.sampled_from(["event.dataset", "event.outcome", "temporal.namespace", "temporal.target.id",
                                            "temporal.api_key.id", "temporal_cloud.principal.api_key_id", "user.changes.roles",
                                            "aws.cloudtrail.userIdentity.type", "aws.cloudtrail.eventName",
                                            "temporal.client_ca_fingerprints", "temporal.certificates.sha256",
                                            "temporal.client_ca_digest", "user.target.email", "@timestamp"]), ODD, max_size=4))
def test_a_refused_hostile_event_changes_nothing(warmed: list[Enricher], index: int, drop: list[int], odd: dict[str, Any]) -> None:
    """Corpus events with fields dropped and odd values in the fields the gates read."""
    event = copy.deepcopy(EVENTS[index])
    keys = list(event)
    for position in drop:
        if keys:
            event.pop(keys[position % len(keys)], None)
    for name, value in odd.items():
        if value is None:
            event.pop(name, None)
        else:
            event[name] = value
    for enricher in warmed:
        if enricher.reads_state(event):
            continue
        before, state = copy.deepcopy(event), _state(enricher)
        enricher.enrich([event])
        assert event == before, type(enricher).__name__
        assert _state(enricher) == state, type(enricher).__name__
