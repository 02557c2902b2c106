"""Correlation rules from YAML files through build_detector and the replay command (the real wiring)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from temporal_siem.detections.factory import build_detector

ROOT = Path(__file__).resolve().parents[2]

RULES = """
title: Brute force then success
id: 9a7e3c1d-0000-4000-8000-0000000000e1
correlation:
    type: temporal_ordered
    rules: [many_failed, login_ok]
    group-by: [user.name]
    timespan: 10m
level: high
---
title: Many failed logins
id: 9a7e3c1d-0000-4000-8000-0000000000e2
name: many_failed
correlation:
    type: event_count
    rules: [login_failed]
    group-by: [user.name]
    timespan: 5m
    condition: {gte: 3}
---
title: Login failed
id: 9a7e3c1d-0000-4000-8000-0000000000e3
name: login_failed
logsource: {product: test}
detection: {sel: {event.action: login, event.outcome: failure}, condition: sel}
level: low
---
title: Login ok
id: 9a7e3c1d-0000-4000-8000-0000000000e4
name: login_ok
logsource: {product: test}
detection: {sel: {event.action: login, event.outcome: success}, condition: sel}
level: low
"""
OUTER = "9a7e3c1d-0000-4000-8000-0000000000e1"


def login(minute: int, second: int, outcome: str, user: str = "bob", n: int = 0) -> dict[str, Any]:
    return {"@timestamp": f"2026-01-01T00:{minute:02d}:{second:02d}Z", "event.id": f"{outcome}-{user}-{minute}-{second}-{n}",
            "event.action": "login", "event.outcome": outcome, "user.name": user}


def stream() -> list[dict[str, Any]]:
    events = [login(1, i * 10, "failure") for i in range(3)]  # bob: 3 failures, then success
    events += [login(2, 0, "failure", "eve"), login(2, 5, "failure", "eve")]  # eve: only 2 failures
    events += [login(4, 0, "success"), login(4, 1, "success", "eve")]
    events += [login(30, 0, "success")]  # bob again, much later: no new sequence
    return events


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "rules"
    directory.mkdir()
    (directory / "brute.yml").write_text(RULES, encoding="utf-8")
    return directory


def detector(rules_dir: Path, lateness: float = 0) -> Any:
    return build_detector([str(rules_dir)], builtin_rules=False,
                          options={"correlation": {"allowed_lateness_seconds": lateness}})


def test_build_detector_runs_chained_correlation(rules_dir: Path) -> None:
    det = detector(rules_dir)
    assert det.stats()["load_errors"] == []
    alerts = det.process(stream()) + det.finish()
    assert [(a["rule.id"], a["alert.group_by"]) for a in alerts] == [(OUTER, {"user.name": "bob"})]
    assert alerts[0]["alert.type"] == "correlation" and alerts[0]["alert.level"] == "high"
    assert "success-bob-4-0-0" in alerts[0]["alert.source_event_ids"]
    assert det.stats()["correlation"]["chained_alerts"] == 1


def test_detector_snapshot_restore_mid_stream_equals_one_run(rules_dir: Path) -> None:
    events = stream()
    whole = detector(rules_dir, lateness=30)
    expected = whole.process(events) + whole.finish()
    first = detector(rules_dir, lateness=30)
    got = first.process(events[:4])
    state = first.snapshot()
    second = detector(rules_dir, lateness=30)
    second.restore(state)
    got += second.process(events[2:]) + second.finish()  # events 2-3 re-delivered (at-least-once)
    assert [a["alert.id"] for a in got] == [a["alert.id"] for a in expected] and len(expected) == 1


def write_jsonl(path: Path, events: list[dict[str, Any]]) -> None:
    path.write_bytes(b"".join(orjson.dumps(event) + b"\n" for event in events))


def replay(rules_dir: Path, files: list[Path], tmp_path: Path) -> list[dict[str, Any]]:
    out = tmp_path / "alerts.jsonl"
    out.unlink(missing_ok=True)
    result = subprocess.run([sys.executable, "-m", "temporal_siem", "replay", *map(str, files), "--format", "json",
                             "--rules", str(rules_dir), "--no-builtin-rules", "--quiet", "--alerts", str(out),
                             "--dead-letter", str(tmp_path / "dead.jsonl")],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return [orjson.loads(line) for line in out.read_bytes().splitlines() if line.strip()]


def test_replay_correlates_across_files_in_event_time(rules_dir: Path, tmp_path: Path) -> None:
    events = stream()
    failures = tmp_path / "idp.jsonl"
    successes = tmp_path / "audit.jsonl"
    write_jsonl(failures, [e for e in events if e["event.outcome"] == "failure"])
    write_jsonl(successes, [e for e in reversed(events) if e["event.outcome"] == "success"])  # unsorted file
    forward = replay(rules_dir, [failures, successes], tmp_path)
    backward = replay(rules_dir, [successes, failures], tmp_path)
    assert [a["rule"]["id"] for a in forward] == [OUTER]
    assert [a["alert"]["id"] for a in forward] == [a["alert"]["id"] for a in backward]


RANGE_RULES = """
title: Moderate failures
id: 9a7e3c1d-0000-4000-8000-0000000000f1
correlation:
    type: event_count
    rules: [login_failed]
    group-by: [user.name]
    timespan: 5m
    condition: {gt: 1, lte: 3}
---
title: Login failed
id: 9a7e3c1d-0000-4000-8000-0000000000f3
name: login_failed
logsource: {product: test}
detection: {sel: {event.outcome: failure}, condition: sel}
"""


def test_range_condition_through_build_detector(tmp_path: Path) -> None:
    (tmp_path / "range.yml").write_text(RANGE_RULES, encoding="utf-8")
    # bob's and eve's events interleave in time: a lateness of 0 would reject eve's first event as late.
    det = build_detector([str(tmp_path)], builtin_rules=False, options={"correlation": {"allowed_lateness_seconds": 60}})
    assert det.stats()["load_errors"] == []
    two = [login(1, i, "failure", "bob", i) for i in range(2)]
    four = [login(1, i, "failure", "eve", i) for i in range(4)]
    alerts = det.process(two + four) + det.finish()
    assert det.take_dead_letters() == []
    assert [a["alert.group_by"] for a in alerts] == [{"user.name": "bob"}]  # eve's 4 exceed lte: 3


def okta(minute: int, second: int, outcome: str, user: str, ip: str = "203.0.113.9") -> dict[str, Any]:
    return {"@timestamp": f"2026-05-01T10:{minute:02d}:{second:02d}Z", "event.id": f"okta-{user}-{outcome}-{minute}-{second}",
            "event.dataset": "okta.system", "event.kind": "event", "event.action": "user.session.start",
            "event.outcome": outcome, "user.name": user, "user.email": user, "temporal.user_key": user, "source.ip": ip}


def test_shipped_sso_burst_then_success_attack_and_near_miss() -> None:
    """The shipped rules (detections/rules/identity): five failures then a success from the burst's address fires
    (high, citing the failures and the success); four do not; a concurrent success from elsewhere does not complete
    the sequence (the user-only burst still raises its low alert)."""
    det = build_detector([], builtin_rules=True, options={"correlation": {"allowed_lateness_seconds": 300}})
    events = []
    for i in range(5):
        events.append(okta(0, i * 10, "failure", "alice@example.com"))
        events.append(okta(0, i * 10 + 2, "failure", "carol@example.com"))
        if i < 4:
            events.append(okta(0, i * 10 + 1, "failure", "bob@example.com"))
    events += [okta(5, 0, "success", "alice@example.com"), okta(5, 1, "success", "bob@example.com"),
               okta(5, 2, "success", "carol@example.com", ip="198.51.100.200")]
    alerts = [a for a in det.process(events) + det.finish() if a.get("alert.type") == "correlation"]
    high = [a for a in alerts if a["alert.level"] == "high"]
    assert [a["alert.group_by"] for a in high] == [{"temporal.user_key": "alice@example.com", "source.ip": "203.0.113.9"}]
    assert high[0]["alert.source_event_ids"] == [f"okta-alice@example.com-failure-0-{i * 10}" for i in range(5)] + [
        "okta-alice@example.com-success-5-0"]
    assert len(high[0]["alert.related_alert_ids"]) == 1
    low = sorted(a["alert.group_by"]["temporal.user_key"] for a in alerts if a["alert.level"] == "low")
    assert low == ["alice@example.com", "carol@example.com"]
    assert det.stats()["correlation"]["late_events"] == 0


def test_late_events_come_back_as_dead_letters(rules_dir: Path) -> None:
    det = detector(rules_dir, lateness=60)
    det.process([login(30, 0, "failure")])
    det.process([login(1, 0, "failure", n=1)])  # 29 minutes behind the watermark, lateness is 60 s
    dead = det.take_dead_letters()
    assert [d.reason for d in dead] == ["correlation_late_event"]
    assert dead[0].stage == "correlation" and b"failure-bob-1-0-1" in dead[0].raw
    assert det.take_dead_letters() == []
