"""Issue 16, item 3: every rule the user named either runs or stops the run (replay and run exit 3 with
file:line and the reason), unless --allow-rule-errors, and then the summary, --summary-json and the log say it."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from temporal_siem.cli import EXIT_ALERT, EXIT_RULES, main
from tests.authoring.conftest import GOOD_RULE, SELECTION_LINE

BAD_MODIFIER = GOOD_RULE.replace("temporal.operation:", "temporal.operation|contain:")
DELETE_NAMESPACE = ('{"operation": "DeleteNamespaceAPI", "status": "OK", "version": 2, "log_id": "11111111-2222-4333-8444-555555555555", '
                    '"emit_time": "2025-06-12T10:07:00Z", "principal": {"type": "user", "name": "alice@example.com"}}\n')


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    path = tmp_path / "audit.jsonl"
    path.write_text(DELETE_NAMESPACE)
    return path


def test_a_rule_that_does_not_load_stops_the_replay(rule_dir: Path, log_file: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    (rule_dir / "rule.yml").write_text(BAD_MODIFIER)
    summary = tmp_path / "summary.json"
    code = main(["replay", str(log_file), "--rules", str(rule_dir), "--fail-on-alert", "low",
                 "--summary-json", str(summary), "--dead-letter", str(tmp_path / "dl.jsonl")])
    assert code == EXIT_RULES  # before: 0, and --fail-on-alert passed CI while the rule never ran
    err = capsys.readouterr().err
    assert f"rule.yml:{SELECTION_LINE}" in err and "Unknown modifier 'contain'" in err and "--allow-rule-errors" in err


def test_a_missing_rule_directory_stops_the_replay(log_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["replay", str(log_file), "--rules", str(tmp_path / "no-such-dir"), "--quiet"])
    assert code == EXIT_RULES
    assert "no-such-dir: no such rule directory or file" in capsys.readouterr().err


def test_allow_rule_errors_runs_and_says_so_everywhere(rule_dir: Path, log_file: Path, tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    (rule_dir / "rule.yml").write_text(BAD_MODIFIER)
    summary = tmp_path / "summary.json"
    with caplog.at_level(logging.WARNING, logger="temporal_siem"):
        code = main(["replay", str(log_file), "--rules", str(rule_dir), "--allow-rule-errors", "--fail-on-alert", "high",
                     "--summary-json", str(summary), "--dead-letter", str(tmp_path / "dl.jsonl")])
    assert code == EXIT_ALERT  # the shipped pack still ran and raised its namespace-deletion alert
    doc = json.loads(summary.read_text())
    assert [e["line"] for e in doc["rule_load_errors"]] == [SELECTION_LINE]
    assert doc["rule_load_errors"][0]["file"].endswith("rule.yml")
    err = capsys.readouterr().err
    assert "rules that did not load" in err
    assert any("rule failed to load" in r.getMessage() and "rule.yml" in r.getMessage() for r in caplog.records)


def test_config_can_allow_rule_errors(rule_dir: Path, log_file: Path, tmp_path: Path) -> None:
    (rule_dir / "rule.yml").write_text(BAD_MODIFIER)
    config = tmp_path / "config.yml"
    config.write_text(f"detection:\n  rules: [{json.dumps(str(rule_dir))}]\n  allow_rule_errors: true\n")
    assert main(["replay", str(log_file), "--config", str(config), "--quiet", "--dead-letter", str(tmp_path / "dl.jsonl")]) == 0


def test_the_daemon_does_not_start_with_a_rule_that_does_not_load(rule_dir: Path, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """`run` stops before it talks to Kafka; each error is logged with file:line."""
    (rule_dir / "rule.yml").write_text(BAD_MODIFIER)
    config = tmp_path / "config.yml"
    config.write_text(f"detection:\n  rules: [{json.dumps(str(rule_dir))}]\nmetrics:\n  enabled: false\n"
                      "ingest:\n  kafka:\n    bootstrap_servers: ['127.0.0.1:1']\n    topics: [{name: t}]\n")
    # A subprocess with a timeout: a daemon that starts anyway would wait for the (absent) broker forever.
    result = subprocess.run([sys.executable, "-m", "temporal_siem", "run", "--config", str(config), "--log-format", "text"],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == EXIT_RULES, result.stderr[-2000:]
    assert f"rule.yml:{SELECTION_LINE}" in result.stderr and "--allow-rule-errors" in result.stderr


def _daemon_settings(rule_dir: Path, **detection: Any) -> Any:
    """The daemon's settings with ``rule_dir`` as its rules (and ``detection`` options), one topic, no broker."""
    from temporal_siem.kernel.config import Settings

    return Settings.model_validate({"detection": {"rules": [str(rule_dir)], **detection},
                                    "ingest": {"kafka": {"topics": [{"name": "t"}]}}})


def test_the_daemon_starts_with_allowed_rule_errors(rule_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    from temporal_siem.daemon import Daemon

    (rule_dir / "rule.yml").write_text(BAD_MODIFIER)
    with caplog.at_level(logging.WARNING, logger="temporal_siem.daemon"):
        daemon = Daemon(_daemon_settings(rule_dir, allow_rule_errors=True))
    assert daemon.ruleset.errors and len(daemon.ruleset.rules) > 40
    assert any("rule failed to load" in r.getMessage() for r in caplog.records)


PLACEHOLDER = GOOD_RULE.replace("temporal.operation: DeleteNamespace", "temporal.principal.name|expand: '%admin_users%'")


def test_a_rule_that_loads_with_a_warning_says_so_in_the_replay(rule_dir: Path, log_file: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """A rule that loads but cannot match as written (an unresolved ``|expand`` placeholder matches nothing) runs,
    and the replay says so on stderr with its file, not only in ``rules list``: before, it ran silent."""
    (rule_dir / "rule.yml").write_text(PLACEHOLDER)
    code = main(["replay", str(log_file), "--rules", str(rule_dir), "--no-builtin-rules", "--quiet",
                 "--dead-letter", str(tmp_path / "dl.jsonl")])
    assert code == 0
    err = capsys.readouterr().err
    assert "1 rule(s) loaded with warnings" in err
    assert "rule.yml" in err and "unresolved placeholder" in err and "%admin_users%" in err


def test_replay_lists_a_few_rule_warnings_and_counts_the_rest(rule_dir: Path, log_file: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    for n in range(12):
        text = PLACEHOLDER.replace("7d1e0f3a-6c1b-4f0e-9a51-0d9b3c2a1f01", f"7d1e0f3a-6c1b-4f0e-9a51-0d9b3c2a1f{n:02d}")
        (rule_dir / f"rule{n:02d}.yml").write_text(text.replace("name: authoring_test_namespace_deleted\n", ""))
    (rule_dir / "rule.yml").unlink()
    assert main(["replay", str(log_file), "--rules", str(rule_dir), "--no-builtin-rules", "--quiet",
                 "--dead-letter", str(tmp_path / "dl.jsonl")]) == 0
    err = capsys.readouterr().err
    assert "12 rule(s) loaded with warnings" in err
    assert err.count("unresolved placeholder") == 5 and "7 more" in err and "rules list" in err


def test_the_daemon_logs_rule_warnings(rule_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    from temporal_siem.daemon import compile_rules

    (rule_dir / "rule.yml").write_text(PLACEHOLDER)
    with caplog.at_level(logging.WARNING, logger="temporal_siem.daemon"):
        ruleset = compile_rules(_daemon_settings(rule_dir, builtin_rules=False))
    assert len(ruleset.rules) == 1
    messages = [r.getMessage() for r in caplog.records]
    assert any("rule loaded with a warning" in m and "rule.yml" in m and "%admin_users%" in m for m in messages), messages


def test_a_warned_placeholder_behind_a_modifier_is_named_with_its_line(rule_dir: Path, log_file: Path, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """pySigma keeps no original text for a value a modifier rewrote (``|contains|expand``): the warning still names
    the placeholder, as the value now reads, and points at its line, not only at the rule's first line."""
    text = PLACEHOLDER.replace("temporal.principal.name|expand: '%admin_users%'",
                               "temporal.principal.name|contains|expand: '%admin_users%'")
    (rule_dir / "rule.yml").write_text(text)
    assert main(["replay", str(log_file), "--rules", str(rule_dir), "--no-builtin-rules", "--quiet",
                 "--dead-letter", str(tmp_path / "dl.jsonl")]) == 0
    err = capsys.readouterr().err
    assert f"rule.yml:{SELECTION_LINE}:" in err and "'*%admin_users%*'" in err


REFUSED_CORRELATION = """
title: Percentile past a hundred
id: 5b1f2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c01
correlation:
  type: value_percentile
  rules: [authoring_test_namespace_deleted]
  group-by: [user.name]
  timespan: 10m
  condition:
    field: temporal.namespace
    percentile: 150
    gte: 3
level: high
"""

CYCLE = "---".join(f"""
title: {title} of a cycle
id: 5b1f2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c0{n}
name: authoring_cycle_{me}
correlation:
  type: event_count
  rules: [authoring_cycle_{other}]
  group-by: [user.name]
  timespan: 10m
  condition: {{gte: 1}}
level: high
""" for n, title, me, other in ((2, "First", "one", "two"), (3, "Second", "two", "one")))


@pytest.mark.parametrize(("text", "reason", "key"), [
    (REFUSED_CORRELATION, "percentile 150 is outside 0..100", "correlation:"),
    (CYCLE, "reference each other in a cycle", "correlation:"),
])
def test_a_correlation_the_engine_refuses_stops_the_replay_with_file_and_line(
        rule_dir: Path, log_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, reason: str, key: str) -> None:
    """pySigma accepts these; the engine cannot evaluate them. Before, the replay died with a traceback when the
    detector was built; now it is a rule load error as any other: file:line, the reason, exit 3, and with
    --allow-rule-errors the run goes on without it."""
    (rule_dir / "corr.yml").write_text(text)
    line = next(n for n, row in enumerate(text.splitlines()) if row.startswith(key))  # the file starts with "\n"
    code = main(["replay", str(log_file), "--rules", str(rule_dir), "--quiet", "--dead-letter", str(tmp_path / "dl.jsonl")])
    assert code == EXIT_RULES
    err = capsys.readouterr().err
    assert f"corr.yml:{line + 1}" in err and reason in err and "Traceback" not in err
    summary = tmp_path / "summary.json"
    assert main(["replay", str(log_file), "--rules", str(rule_dir), "--quiet", "--allow-rule-errors",
                 "--summary-json", str(summary), "--dead-letter", str(tmp_path / "dl.jsonl")]) == 0
    assert any(reason in e["error"] for e in json.loads(summary.read_text())["rule_load_errors"])
    capsys.readouterr()
    assert main(["rules", "validate", str(rule_dir)]) == EXIT_RULES  # the check before shipping says it too
    out = capsys.readouterr().out
    assert f"corr.yml:{line + 1}: error:" in out and reason in out
