"""Hostile events and rule files never crash the engine, never stop the batch, never stall the load."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from temporal_siem.detections.factory import new_detector
from temporal_siem.detections.sigma.ruleset import Ruleset
from temporal_siem.detections.sigma.values import EventFolds

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
                    st.text(), st.binary(max_size=8))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)),
                      max_leaves=8)
FIELDS = ["Image", "CommandLine", "ParentImage", "User", "EventID", "Channel", "id.orig_h", "event.dataset", "cs-uri-query",
          "okta.eventType", "QueryName", "Hashes", "TargetFilename", "ScriptBlockText"]


@settings(max_examples=200, deadline=None)
@given(event=st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), values, max_size=10))
def test_any_event_is_survived(sample_ruleset: Ruleset, event: dict[str, Any]) -> None:
    detector = new_detector(sample_ruleset)
    detector.process([event, {"CommandLine": "ok"}])
    indexed = sample_ruleset.match_indices(event)
    assert indexed == sample_ruleset.match_indices(event, full_scan=True)


def test_specific_nasties(sample_ruleset: Ruleset) -> None:
    nasty = [
        {"CommandLine": "\ud800 lone surrogate", "Image": "\x00\x00"},
        {"CommandLine": "A" * 2_000_000},
        {"EventID": math.nan, "Channel": ["Security", None]},
        {"EventID": 10**30, "Channel": "Microsoft-Windows-Sysmon/Operational"},
        {"event.dataset": ["okta.system"], "okta.eventType": {"nested": "dict"}},
        {"event.dataset": {"weird": 1}},
        {"Image": b"bytes"},
    ]
    detector = new_detector(sample_ruleset)
    detector.process(nasty)
    stats = detector.stats()
    assert stats["events"] == len(nasty)
    assert EventFolds({"x": b"b"})["x"] is None


def test_catastrophic_regex_in_a_rule_does_not_stall() -> None:
    import time

    from temporal_siem.detections.sigma import SigmaEngine

    rule = """
title: careless regex
id: 3f2a9c1e-0000-4000-8000-00000000aa01
logsource: {product: test}
detection:
  sel:
    f|re: '^(a+)+$'
  condition: sel
"""
    engine = SigmaEngine.from_yaml(rule)
    start = time.perf_counter()
    assert not engine.match({"f": "a" * 5000 + "b"})
    assert engine.match({"f": "aaaa"})
    assert time.perf_counter() - start < 2.0


def test_hostile_rule_files(tmp_path: Path) -> None:
    from temporal_siem.detections.sigma.loader import load_rules

    lines = ['title: bomb', 'id: 3f2a9c1e-0000-4000-8000-00000000aa02', 'logsource: {product: test}', 'detection:',
             '  a: &a {f: ["x", "x", "x", "x", "x", "x", "x", "x", "x"]}']
    previous = "a"
    for name in "bcdefgh":
        lines.append(f"  {name}: &{name} [" + ", ".join([f"*{previous}"] * 9) + "]")
        previous = name
    lines.append("  condition: h")
    (tmp_path / "bomb.yml").write_text("\n".join(lines) + "\n")
    (tmp_path / "binary.yml").write_bytes(bytes(range(256)))
    (tmp_path / "list.yml").write_text("- just\n- a list\n")
    (tmp_path / "ok.yml").write_text(
        "title: ok\nid: 3f2a9c1e-0000-4000-8000-00000000aa03\nlogsource: {product: test}\n"
        "detection: {sel: {f: x}, condition: sel}\n")
    loaded = load_rules([tmp_path])
    assert [r.title for r in loaded.rules] == ["ok"]
    reasons = {Path(e.file).name: e.error for e in loaded.errors}
    assert "alias bomb" in reasons["bomb.yml"]
    assert set(reasons) == {"bomb.yml", "binary.yml", "list.yml"}
