"""Issue 16, item 7: each silent or crashing case in the list, one test each."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from temporal_siem.cli import EXIT_OK, EXIT_RULES, EXIT_USAGE, main

FILTER = """\
title: Our bot deletes namespaces
id: 9d8c7b6a-0000-4000-8000-0000000000aa
status: experimental
description: expected deletions
author: tests
date: 2026-11-29
logsource:
  product: temporal
  service: audit
filter:
  rules:
    - authoring_test_namespace_deleted_typo
  selection:
    user.name: platform-bot
  condition: not selection
"""
CASE = {"rule": "authoring_test_namespace_deleted", "name": "deleted", "expect": "match",
        "events": [{"event.dataset": "temporal_cloud.audit", "temporal.operation": "DeleteNamespace"}]}


def test_a_filter_naming_an_unknown_rule_is_an_error(rule_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    filters = tmp_path / "filters"
    filters.mkdir()
    (filters / "bot.yml").write_text(FILTER)
    log = tmp_path / "a.jsonl"
    log.write_text('{"message": "x"}\n')
    assert main(["replay", str(log), "--rules", str(rule_dir), "--filters", str(filters), "--quiet"]) == EXIT_RULES
    err = " ".join(capsys.readouterr().err.split())
    assert "bot.yml:12" in err and "names rule 'authoring_test_namespace_deleted_typo', which is not loaded" in err
    assert "did you mean 'authoring_test_namespace_deleted'" in err


def test_rules_test_says_why_nothing_ran(rule_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "test", str(rule_dir), "--no-builtin-rules"]) == EXIT_RULES
    out = capsys.readouterr().out
    assert "no test files under" in out and ".tests.json" in out
    (rule_dir / "rule.test.json").write_text(json.dumps({"cases": [CASE]}))  # misnamed: .test. not .tests.
    assert main(["rules", "test", str(rule_dir), "--no-builtin-rules"]) == EXIT_RULES
    out = capsys.readouterr().out
    assert "not read because of their names" in out and "rule.test.json" in out


def test_one_bad_case_does_not_hide_the_others(rule_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = dict(CASE, expect="maybe")
    unknown = dict(CASE, rule="authoring_test_namespace_delted")
    (rule_dir / "rule.tests.json").write_text(json.dumps({"cases": [bad, CASE, unknown]}))
    assert main(["rules", "test", str(rule_dir), "--no-builtin-rules"]) == EXIT_RULES
    out = capsys.readouterr().out
    assert "PASS" in out and "rule.tests.json#1" in out  # the good case still ran
    assert "rule.tests.json#0: 'expect' must be one of" in out
    assert "did you mean 'authoring_test_namespace_deleted'" in out
    assert "1 passed, 1 failed, 1 errors" in out


def test_yaml_test_cases_beside_the_rule(rule_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (rule_dir / "rule.tests.yml").write_text(
        "cases:\n"
        "  - rule: authoring_test_namespace_deleted\n    name: deleted\n    expect: match\n"
        "    events:\n      - {event.dataset: temporal_cloud.audit, temporal.operation: DeleteNamespace}\n"
        "  - rule: authoring_test_namespace_deleted\n    name: created\n    expect: no_match\n"
        "    events:\n      - {event.dataset: temporal_cloud.audit, temporal.operation: CreateNamespace}\n")
    assert main(["rules", "test", str(rule_dir), "--no-builtin-rules"]) == EXIT_OK
    assert "2 passed, 0 failed" in capsys.readouterr().out
    assert main(["rules", "validate", str(rule_dir)]) == EXIT_OK  # the test file is not loaded as a rule


def test_replay_of_a_missing_path_is_an_error_counted_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(tmp_path / "nope.jsonl"), "--quiet"]) == EXIT_USAGE
    assert "no such file or directory" in capsys.readouterr().err
    from temporal_siem.ingest.replay import ReplaySource

    source = ReplaySource([str(tmp_path / "nope.jsonl")])
    source.estimate_bytes()
    list(source.batches())
    assert [d.reason for d in source.take_dead_letters()] == ["file not found"]


def test_replay_of_an_empty_directory_warns(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["replay", str(empty), "--quiet"]) == EXIT_OK
    assert "no files to read" in capsys.readouterr().err


def test_gzip_on_stdin_is_read(tmp_path: Path) -> None:
    record = ('{"operation": "DeleteNamespaceAPI", "status": "OK", "version": 2, "log_id": "11111111-2222-4333-8444-555555555555", '
              '"emit_time": "2025-06-12T10:07:00Z", "principal": {"type": "user", "name": "alice@example.com"}}\n')
    summary = tmp_path / "s.json"
    result = subprocess.run([sys.executable, "-m", "temporal_siem", "replay", "-", "--quiet", "--summary-json", str(summary)],
                            input=gzip.compress(record.encode()), capture_output=True, cwd=tmp_path, timeout=120)
    assert result.returncode == 0, result.stderr.decode()
    doc = json.loads(summary.read_text())
    assert doc["events"] == 1 and doc["dead_lettered"] == 0


def test_unknown_log_level_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--log-level", "nosuch", "rules", "list"])
    assert exit_info.value.code == EXIT_USAGE
    assert "unknown log level 'nosuch'" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.startswith("temporal-siem 0.")

