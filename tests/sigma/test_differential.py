"""The candidate index may only over-approximate: indexed matching must equal a full scan of the lane."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from temporal_siem.detections.sigma.ruleset import Ruleset
from tests.sigma.generators import rule_events, windows_events


def _dataset(ruleset: Ruleset, index: int) -> str | None:
    datasets = ruleset.rules[index].datasets
    if not datasets:
        return None
    pattern = datasets[0]
    return pattern[:-1] + "login" if pattern.endswith("*") else pattern


def _compare(ruleset: Ruleset, events: list[dict[str, Any]]) -> int:
    """Asserts identical matches; returns how many (event, rule) matches were seen."""
    total = 0
    for event in events:
        indexed = ruleset.match_indices(event)
        full = ruleset.match_indices(event, full_scan=True)
        assert indexed == full, (event, [ruleset.rules[i].id for i in set(full) ^ set(indexed)])
        total += len(full)
    return total


def _targeted(ruleset: Ruleset, indices: list[int], seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    events: list[dict[str, Any]] = []
    for i in indices:
        rule = ruleset.rules[i].rule
        assert rule is not None
        events.extend(rule_events(rule, rng, _dataset(ruleset, i)))
    return events


def test_sample_indexed_equals_full_scan(sample_ruleset: Ruleset) -> None:
    assert len(sample_ruleset.rules) == 23 and not sample_ruleset.errors
    events = _targeted(sample_ruleset, list(range(len(sample_ruleset.rules))), seed=1) * 1
    events += windows_events(200, seed=3)
    assert _compare(sample_ruleset, events) > 10  # the generator really hits rules


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1))
def test_sample_generated_events(sample_ruleset: Ruleset, seed: int) -> None:
    rng = random.Random(seed)
    indices = [rng.randrange(len(sample_ruleset.rules)) for _ in range(3)]
    _compare(sample_ruleset, _targeted(sample_ruleset, indices, seed))


@pytest.mark.slow
def test_corpus_indexed_equals_full_scan(corpus_ruleset: Ruleset) -> None:
    rng = random.Random(11)
    sample = rng.sample(range(len(corpus_ruleset.rules)), min(400, len(corpus_ruleset.rules)))
    events = _targeted(corpus_ruleset, sample, seed=5) + windows_events(150, seed=9)
    matches = _compare(corpus_ruleset, events)
    assert matches > 200


def test_corpus_compiles_everything_pysigma_parses(corpus_ruleset: Ruleset) -> None:
    assert len(corpus_ruleset.rules) > 3000
    assert corpus_ruleset.errors == []


def test_rule_pack_on_parsed_samples_indexed_equals_full_scan() -> None:
    from tests.sigma.test_pipelines import parsed

    ruleset = Ruleset.from_paths([], builtin_rules=True)
    events = parsed("samples")
    assert len(events) > 100
    assert _compare(ruleset, events) > 10
