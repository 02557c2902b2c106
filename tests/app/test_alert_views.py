"""Replay's analyst options (issue 18): --min-level, --from/--to, --rule-filter, --alerts-format, and the
summary saying how many rules it did not list. Real subprocesses over samples/, compared with an unfiltered run."""

from __future__ import annotations

import csv
import fnmatch
from datetime import UTC, datetime

import orjson
import pytest

from temporal_siem.commands.alert_views import TIMELINE_COLUMNS, AlertFilter, csv_text
from temporal_siem.kernel.flatten import flatten
from temporal_siem.kernel.schema import SEVERITY_BY_LEVEL
from tests.app.test_cli import run
from tests.conftest import SAMPLES


@pytest.fixture(scope="module")
def everything(tmp_path_factory: pytest.TempPathFactory) -> list[dict]:
    path = tmp_path_factory.mktemp("all") / "alerts.jsonl"
    assert run("replay", str(SAMPLES), "--alerts", str(path), "--quiet").returncode == 0
    return [flatten(orjson.loads(line)) for line in path.read_bytes().splitlines()]


def _alerts(tmp_path, *options: str) -> list[dict]:
    path = tmp_path / "alerts.jsonl"
    result = run("replay", str(SAMPLES), "--alerts", str(path), "--quiet", *options)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    return [flatten(orjson.loads(line)) for line in path.read_bytes().splitlines()]


def test_min_level_keeps_exactly_the_alerts_at_or_above(tmp_path, everything) -> None:
    kept = _alerts(tmp_path, "--min-level", "high")
    expected = {a["alert.id"] for a in everything if a["event.severity"] >= SEVERITY_BY_LEVEL["high"]}
    assert expected and {a["alert.id"] for a in kept} == expected
    assert len(expected) < len(everything)


def test_rule_filter_by_tag_glob(tmp_path, everything) -> None:
    kept = _alerts(tmp_path, "--rule-filter", "attack.t1552*")
    expected = {a["alert.id"] for a in everything if any(fnmatch.fnmatchcase(t.lower(), "attack.t1552*") for t in a.get("tags") or [])}
    assert expected and {a["alert.id"] for a in kept} == expected


def test_time_range_filters_on_event_time(tmp_path, everything) -> None:
    start = "2025-07-01T00:00:00Z"
    kept = _alerts(tmp_path, "--from", start, "--min-level", "informational")
    bound = datetime(2025, 7, 1, tzinfo=UTC)
    assert kept
    for alert in kept:
        if alert.get("alert.type") != "correlation":
            assert datetime.fromisoformat(alert["@timestamp"].replace("Z", "+00:00")) >= bound
    single = {a["alert.id"] for a in everything if a.get("alert.type") != "correlation"
              and datetime.fromisoformat(a["@timestamp"].replace("Z", "+00:00")) >= bound}
    assert single <= {a["alert.id"] for a in kept}


def test_bad_time_is_a_usage_error(tmp_path) -> None:
    result = run("replay", str(SAMPLES), "--from", "yesterday-ish", "--quiet")
    assert result.returncode == 2
    assert b"--from/--to" in result.stderr


def test_timeline_csv_has_one_row_per_alert(tmp_path, everything) -> None:
    path = tmp_path / "timeline.csv"
    assert run("replay", str(SAMPLES), "--alerts", str(path), "--alerts-format", "timeline", "--quiet").returncode == 0
    rows = list(csv.reader(path.open(encoding="utf-8")))
    assert tuple(rows[0]) == TIMELINE_COLUMNS
    assert len(rows) - 1 == len(everything)
    assert {r[2] for r in rows[1:]} == {a["rule.name"] for a in everything}


def test_csv_cells_cannot_run_as_formulas() -> None:
    text = csv_text([{"rule.name": "=HYPERLINK(\"http://x\")", "user.name": "@evil", "alert.level": "high"}], "timeline")
    row = list(csv.reader(text.splitlines()))[1]
    assert row[2].startswith("'=") and row[3].startswith("'@")


def test_alert_filter_globs_match_ids_names_and_tags() -> None:
    wanted = AlertFilter(None, ["*mfa*"])
    assert wanted.keeps({"rule.name": "Okta MFA factor reset", "rule.id": "x"})
    assert not wanted.keeps({"rule.name": "Key deleted", "rule.id": "y", "tags": ["attack.impact"]})
    assert AlertFilter("critical").keeps({"event.severity": 99}) and not AlertFilter("critical").keeps({"event.severity": 21})


def test_summary_says_how_many_rules_it_did_not_list(tmp_path) -> None:
    result = run("replay", str(SAMPLES), "--alerts", str(tmp_path / "a.jsonl"))
    assert result.returncode == 0
    text = result.stderr.decode()
    assert "more rules" in text
