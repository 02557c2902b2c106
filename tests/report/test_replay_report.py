"""``temporal-siem replay --report``: the report agrees with the run it describes; correlation evidence is retained, bounded."""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import pytest

from temporal_siem.commands import replay
from temporal_siem.detections.alerts import RuleMeta, correlation_alert
from temporal_siem.detections.base import Detector
from temporal_siem.report import EventRecorder
from temporal_siem.report.payload import decode_payload
from tests.conftest import SAMPLES


def run_replay(*argv: str) -> int:
    """Only the replay command: its behaviour, not the other subcommands', is under test here."""
    parser = argparse.ArgumentParser()
    replay.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["replay", *argv])
    code: int = args.handler(args)
    return code


def _embedded(html: str) -> dict[str, Any]:
    match = re.search(r'id="report-data">([^<]*)</script>', html)
    assert match is not None
    return decode_payload(match.group(1))


def test_report_of_the_samples_matches_the_run(tmp_path: Path) -> None:
    report, summary, alerts_file = tmp_path / "r.html", tmp_path / "s.json", tmp_path / "a.jsonl"
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"not closed": \n', encoding="utf-8")
    code = run_replay(str(SAMPLES), str(broken), "--report", str(report), "--summary-json", str(summary), "--alerts", str(alerts_file),
                      "--dead-letter", str(tmp_path / "dl.jsonl"), "--quiet")
    assert code == 0
    stats = json.loads(summary.read_text())
    html = report.read_text(encoding="utf-8")
    data = _embedded(html)
    alerts = [json.loads(line) for line in alerts_file.read_text().splitlines()]
    assert stats["alerts"] == len(alerts) == len(data["a"]["t"]) > 0
    assert sorted(data["a"]["id"]) == sorted(a["alert"]["id"] for a in alerts)
    assert f'data-metric="alerts"><div class="value">{stats["alerts"]:,}<' in html
    assert f'data-metric="records"><div class="value">{stats["records_read"]:,}<' in html
    assert stats["dead_lettered"] >= 1
    for reason in stats["dead_lettered_by_reason"]:
        assert f"<code>{reason}</code>" in html
    counts = [int(n) for n in re.findall(r'<td class="num" data-count="(\d+)">', html)]
    assert sum(counts) == stats["alerts"]
    assert 'id="health-never-routed"' in html and "rule files failed to load" in html


def test_unwritable_report_is_a_clear_failure(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "no-such-dir" / "r.html"
    code = run_replay(str(SAMPLES / "okta"), "--report", str(target), "--dead-letter", str(tmp_path / "dl.jsonl"), "--quiet")
    assert code == 1 and not target.exists()
    assert "cannot write the report" in " ".join(capsys.readouterr().err.split())


class CorrelateEveryBatch(Detector):
    """Raises one correlation alert per batch naming every event of that batch and the first event ever seen."""

    rule = RuleMeta(id="corr", title="every batch", level="high")

    def __init__(self) -> None:
        self.first: str | None = None

    def process(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        ids = [str(e["event.id"]) for e in events]
        self.first = self.first or ids[0]
        return [correlation_alert(self.rule, timestamp=events[-1]["@timestamp"], event_ids=[self.first, *ids], event_count=len(ids) + 1,
                                  group_by={"user.name": "u"}, window_start=events[0]["@timestamp"], window_end=events[-1]["@timestamp"],
                                  correlation_type="event_count", referenced_rules=[])]

    def stats(self) -> dict[str, Any]:
        return {"rules": {"corr": {"title": "every batch", "routed": 1}}}


def _batch(start: int, size: int) -> list[dict[str, Any]]:
    return [{"event.id": f"e{i}", "@timestamp": "2026-01-01T00:00:00Z", "user.name": "u"} for i in range(start, start + size)]


def test_recorder_keeps_recent_evidence_and_stays_bounded() -> None:
    recorder = EventRecorder(CorrelateEveryBatch(), recent=10, retained=15)
    first = recorder.process(_batch(0, 5))
    assert first[0]["alert.type"] == "correlation"
    assert set(recorder.retained) == {f"e{i}" for i in range(5)}
    recorder.process(_batch(5, 8))  # e0 is now older than the 10 most recent events
    assert set(recorder.retained) == {f"e{i}" for i in range(13)}
    assert recorder.not_retained == 0  # e0 was already retained
    recorder.process(_batch(13, 8))
    assert len(recorder.retained) == 15 and recorder.not_retained == 6
    assert recorder.stats() == {"rules": {"corr": {"title": "every batch", "routed": 1}}}
    assert recorder.finish() == []


def test_recorder_ignores_rule_alerts_and_events_without_ids() -> None:
    class RuleOnly(Detector):
        def process(self, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [{"alert.type": "rule", "alert.source_event_ids": ["x"]}]

    recorder = EventRecorder(RuleOnly())
    recorder.process([{"@timestamp": "t"}, {"event.id": "x"}])
    assert recorder.retained == {} and recorder.not_retained == 0
