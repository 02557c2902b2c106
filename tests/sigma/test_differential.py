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
    """Asserts identical matches, event by event and over the whole list as the detector selects candidates
    (``match_many``: each lane's events in one batch); returns how many (event, rule) matches were seen."""
    total = 0
    fulls = []
    for event in events:
        indexed = ruleset.match_indices(event)
        full = ruleset.match_indices(event, full_scan=True)
        assert indexed == full, (event, [ruleset.rules[i].id for i in set(full) ^ set(indexed)])
        total += len(full)
        fulls.append(full)
    for event, batched, full in zip(events, ruleset.match_many(events), fulls, strict=True):
        assert batched == full, (event, [ruleset.rules[i].id for i in set(full) ^ set(batched)])
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


@pytest.fixture(scope="module")
def gated_ruleset() -> Ruleset:
    """The sample rules with up to three witness clauses per rule (the shipped setting keeps one): the gate
    logic of the index (a rule is a candidate only when every clause had a hit) must stay sound."""
    from pathlib import Path

    from temporal_siem.detections.sigma import witness

    saved = witness.MAX_CLAUSES
    witness.MAX_CLAUSES = 3
    try:
        ruleset = Ruleset.from_paths([Path(__file__).parent / "data" / "sigmahq"], builtin_rules=False)
    finally:
        witness.MAX_CLAUSES = saved
    assert any(r.witnesses is not None and len(r.witnesses) > 1 for r in ruleset.rules)
    return ruleset


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1))
def test_gated_clauses_indexed_equals_full_scan(gated_ruleset: Ruleset, seed: int) -> None:
    rng = random.Random(seed)
    indices = [rng.randrange(len(gated_ruleset.rules)) for _ in range(3)]
    events = _targeted(gated_ruleset, indices, seed)
    # needles moved to another field: a hit counts only for the field that asked for it, never the other way
    for event in list(events):
        keys = [k for k, v in event.items() if isinstance(v, str) and k != "event.dataset"]
        if len(keys) >= 2:
            a, b = rng.sample(keys, 2)
            swapped = dict(event)
            swapped[a], swapped[b] = event[b], event[a]
            events.append(swapped)
    _compare(gated_ruleset, events + windows_events(20, seed=seed % 1000))


def test_needle_in_another_field_does_not_admit(tmp_path: Any) -> None:
    """Field attribution: the Image needle found in CommandLine admits nothing; found in Image it does."""
    (tmp_path / "r.yml").write_text(
        "title: t\nid: 5b1c2d3e-0000-4000-8000-000000000001\nlogsource: {product: windows, category: process_creation}\n"
        "detection:\n  sel: {Image|endswith: '\\\\certutil.exe'}\n  condition: sel\n")
    ruleset = Ruleset.from_paths([tmp_path / "r.yml"], builtin_rules=False)
    assert ruleset.candidates({"Image": "C:\\x\\cmd.exe", "CommandLine": "cmd /c C:\\x\\certutil.exe"}) == set()
    assert ruleset.candidates({"Image": "C:\\x\\CERTUTIL.EXE", "CommandLine": "x"}) == {0}


def test_a_regex_whose_only_literal_is_one_character_is_indexed_by_it(tmp_path: Any) -> None:
    """SigmaHQ's PowerShell token obfuscation regex ``\\w+`(?:\\w+|-|.)`[\\w+|\\s]`` has one required literal, a
    backtick: it is the rule's needle (issue 19: it was evaluated on every process_creation event), and an event
    with a backtick still reaches and matches it."""
    (tmp_path / "r.yml").write_text(
        "title: t\nid: 5b1c2d3e-0000-4000-8000-000000000002\nlogsource: {product: windows, category: process_creation}\n"
        "detection:\n  sel: {CommandLine|re: '\\w+`(?:\\w+|-|.)`[\\w+|\\s]'}\n  condition: sel\n")
    ruleset = Ruleset.from_paths([tmp_path / "r.yml"], builtin_rules=False)
    assert ruleset.candidates({"Image": "C:\\x\\powershell.exe", "CommandLine": "powershell -c Get-Process"}) == set()
    hit = {"Image": "C:\\x\\powershell.exe", "CommandLine": "powershell i`nv`oke x"}
    assert ruleset.candidates(hit) == {0} and ruleset.match_indices(hit) == [0]
