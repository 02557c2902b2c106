"""``Enricher.deferrable``: an enricher that says so depends on each event alone and adds only ``writes``, so the
detector may enrich an event after matching, and only if it matched (``SigmaDetector.accepts_deferred``). Held
to ``enrich`` here along the enrichment corpus, hostile variants included: enriching a batch gives each event what
enriching it alone gives, after any other events in any order, and adds no key outside ``writes``."""

from __future__ import annotations

import copy
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from temporal_siem.detections.enrichment import build_enrichers
from temporal_siem.detections.enrichment.base import Enricher
from tests.rules.test_enrichment_state_gate import EVENTS, ODD

#: The enrichment corpus plus events the clock-skew and certificate enrichers change (the corpus's are old records
#: stamped by us, which the clock-skew enricher leaves alone, and carry no certificate).
CORPUS = [*EVENTS,
          {"@timestamp": "2026-01-01T00:00:00.000000Z", "event.created": "2026-01-01T00:00:07.500000Z", "event.dataset": "json"},
          {"@timestamp": "2026-01-01T00:00:00Z", "event.created": "2025-12-31T23:59:00Z", "user.email": "A@Example.com"},
          {"@timestamp": "2026-01-01T00:00:00.000000Z", "tls.client.x509.not_after": "2026-01-31T00:00:00Z",
           "tls.server.x509.not_after": ["2026-03-01T00:00:00Z", "2026-01-11T00:00:00Z"]}]


def _deferrable() -> list[type[Enricher]]:
    return [type(e) for e in build_enrichers() if type(e).deferrable]


def test_the_stateless_enrichers_are_deferrable_and_the_registries_are_not() -> None:
    names = {cls.__name__ for cls in _deferrable()}
    assert names == {"ClockSkew", "CertificateExpiry", "IdentityKeys"}
    for cls in _deferrable():
        assert cls.writes, cls.__name__
    assert {cls.__name__: cls.written for cls in _deferrable()} == {"ClockSkew": "number", "CertificateExpiry": "number",
                                                                    "IdentityKeys": "folded"}


def _check_written(cls: type[Enricher], before: dict[str, Any], value: Any) -> None:
    """``Enricher.written``: what keyword rules may meet in the fields it adds (``SigmaDetector.accepts_deferred``)."""
    if cls.written == "number":
        assert isinstance(value, int | float) and not isinstance(value, bool), (cls.__name__, value)
    elif cls.written == "folded":
        texts = [v for v in before.values() if isinstance(v, str)]
        texts += [m for v in before.values() if isinstance(v, list) for m in v if isinstance(m, str)]
        assert isinstance(value, str) and value in {t.strip().lower() for t in texts}, (cls.__name__, value)
    else:
        assert cls.written == "text", cls.__name__


def _alone(cls: type[Enricher], event: dict[str, Any]) -> dict[str, Any]:
    alone = copy.deepcopy(event)
    cls().enrich([alone])
    return alone


def test_a_batch_gives_each_event_what_it_gets_alone_and_only_its_writes() -> None:
    """The corpus through one instance, in order then shuffled after a warm-up: each event as enriching it alone
    with a fresh instance gives, and no key but ``writes`` added or changed. The corpus has events each
    enricher changes (else this would hold for an enricher that does nothing)."""
    for cls in _deferrable():
        enricher = cls()
        batch = copy.deepcopy(CORPUS)
        enricher.enrich(batch)
        order = list(range(len(CORPUS)))
        random.Random(7).shuffle(order)
        shuffled = [copy.deepcopy(CORPUS[i]) for i in order]
        enricher.enrich(shuffled)
        changed = 0
        for before, after in zip(CORPUS, batch, strict=True):
            assert after == _alone(cls, before), cls.__name__
            touched = {k for k in after if k not in before or after[k] != before[k]}
            assert touched <= cls.writes, (cls.__name__, touched)
            for key in touched:
                _check_written(cls, before, after[key])
            assert set(before) <= set(after)
            changed += bool(touched)
        for i, event in zip(order, shuffled, strict=True):
            assert event == batch[i], cls.__name__
        assert changed, cls.__name__


@settings(max_examples=200, deadline=None)
@given(index=st.integers(0, len(CORPUS) - 1), others=st.lists(st.integers(0, len(CORPUS) - 1), max_size=5),
       odd=st.dictionaries(st.sampled_from(["@timestamp", "event.created", "event.ingested", "user.email", "user.name",
                                            "user.target.email", "tls.client.x509.not_after", "event.dataset"]), ODD, max_size=3))
def test_a_hostile_event_gets_the_same_alone_or_in_a_batch(index: int, others: list[int], odd: dict[str, Any]) -> None:
    event = {**copy.deepcopy(CORPUS[index]), **odd}
    for cls in _deferrable():
        batch = [copy.deepcopy(CORPUS[i]) for i in others] + [copy.deepcopy(event)]
        cls().enrich(batch)
        assert batch[-1] == _alone(cls, event), cls.__name__
        touched = {k for k in batch[-1] if k not in event or batch[-1][k] != event[k]}
        assert touched <= cls.writes
        for key in touched:
            _check_written(cls, event, batch[-1][key])
