"""Issue 16, item 9: one meaning per option name. ``--format`` is the input parser, ``--json`` the report as JSON,
``--rules DIR`` adds to the shipped pack and ``--no-builtin-rules`` replaces it, in every command; old spellings
still work with a deprecation warning."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from temporal_siem.cli import EXIT_OK, EXIT_RULES, EXIT_USAGE, main

DELETE_NAMESPACE = ('{"operation": "DeleteNamespaceAPI", "status": "OK", "version": 2, "log_id": "11111111-2222-4333-8444-555555555555", '
                    '"emit_time": "2025-06-12T10:07:00Z", "principal": {"type": "user", "name": "alice@example.com"}}')
SHIPPED = "temporal_cloud_audit_sink_changed"


@pytest.mark.parametrize("command", [
    ["rules", "validate", "{dir}"], ["rules", "test", "{dir}"], ["rules", "list", "--rules", "{dir}"],
    ["rules", "convert", "--target", "esql", "{dir}"], ["rules", "fields", "okta.system"],
    ["rules", "explain", "authoring_test_namespace_deleted", "{event}", "--rules", "{dir}"],
])
def test_json_is_the_report_option_everywhere(command: list[str], rule_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (rule_dir / "rule.tests.json").write_text(json.dumps({"cases": [
        {"rule": "authoring_test_namespace_deleted", "name": "x", "expect": "match",
         "events": [{"event.dataset": "temporal_cloud.audit", "temporal.operation": "DeleteNamespace"}]}]}))
    args = [a.format(dir=rule_dir, event=DELETE_NAMESPACE) for a in command]
    assert main([*args, "--json"]) in (EXIT_OK, 1)
    json.loads(capsys.readouterr().out)


def test_old_output_spelling_still_works_with_a_warning(rule_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "validate", str(rule_dir), "--format", "json"]) == EXIT_OK
    captured = capsys.readouterr()
    assert json.loads(captured.out)["errors"] == 0 and "deprecated" in captured.err
    assert main(["schema", "--format", "markdown"]) == EXIT_OK
    captured = capsys.readouterr()
    assert captured.out.startswith("# ") and "deprecated" in captured.err


def test_format_is_the_input_parser_in_explain(capsys: pytest.CaptureFixture[str]) -> None:
    """explain routes a raw record through the parsers; --format forces one, as in replay."""
    assert main(["rules", "explain", "temporal_cloud_namespace_deleted", DELETE_NAMESPACE]) == EXIT_OK
    assert main(["rules", "explain", "temporal_cloud_namespace_deleted", DELETE_NAMESPACE, "--format", "temporal_cloud_audit"]) == EXIT_OK
    capsys.readouterr()
    assert main(["rules", "explain", "temporal_cloud_namespace_deleted", DELETE_NAMESPACE, "--format", "okta"]) == EXIT_USAGE
    assert "cannot read event" in capsys.readouterr().err


def test_rules_adds_to_the_shipped_pack_everywhere(rule_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    event = json.dumps({"event.dataset": "temporal_cloud.audit", "temporal.operation": "DeleteNamespace"})
    # explain: before, --rules replaced the pack, so a shipped rule was "no rule"
    assert main(["rules", "explain", SHIPPED, event, "--rules", str(rule_dir)]) == 1
    assert main(["rules", "explain", "authoring_test_namespace_deleted", event, "--rules", str(rule_dir)]) == EXIT_OK
    assert main(["rules", "explain", SHIPPED, event, "--rules", str(rule_dir), "--no-builtin-rules"]) == EXIT_USAGE
    capsys.readouterr()
    assert main(["rules", "list", "--rules", str(rule_dir), "--json"]) == EXIT_OK
    ids = {row["name"] for row in json.loads(capsys.readouterr().out)["rules"]}
    assert {SHIPPED, "authoring_test_namespace_deleted"} <= ids
    assert main(["rules", "list", "--rules", str(rule_dir), "--no-builtin-rules", "--json"]) == EXIT_OK
    assert {row["name"] for row in json.loads(capsys.readouterr().out)["rules"]} == {"authoring_test_namespace_deleted"}


def test_a_correlation_under_test_may_reference_a_shipped_rule(rule_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`rules test DIR` runs the shipped pack beside DIR (as replay does), so a new correlation over a shipped rule
    can be tested; with --no-builtin-rules the reference is unknown."""
    (rule_dir / "rule.yml").unlink()
    (rule_dir / "twice.yml").write_text(f"""\
title: Audit sink changed twice
id: 7d1e0f3a-6c1b-4f0e-9a51-0d9b3c2a1f02
name: authoring_sink_changed_twice
status: experimental
correlation:
  type: event_count
  rules:
    - {SHIPPED}
  group-by:
    - user.name
  timespan: 1h
  condition:
    gte: 2
level: high
""")
    record = {"operation": "UpdateAccountAPI", "status": "OK", "version": 2, "emit_time": "2025-09-01T12:00:00.000Z",
              "principal": {"type": "user", "id": "u1", "name": "alice@example.com"},
              "raw_details": {"spec": {"audit_log": {"enabled": False}}}}
    second = {**record, "emit_time": "2025-09-01T12:10:00.000Z"}
    (rule_dir / "twice.tests.yml").write_text(json.dumps({"cases": [
        {"rule": "authoring_sink_changed_twice", "name": "twice", "expect": "match",
         "records": [dict(record, log_id="a1"), dict(second, log_id="a2")]},
        {"rule": "authoring_sink_changed_twice", "name": "near miss: once", "expect": "no_match", "records": [dict(record, log_id="a3")]},
    ]}))  # JSON is YAML: a .tests.yml file may hold either
    assert main(["rules", "test", str(rule_dir)]) == EXIT_OK, capsys.readouterr().out
    assert "2 passed, 0 failed" in capsys.readouterr().out
    assert main(["rules", "test", str(rule_dir), "--no-builtin-rules"]) == EXIT_RULES
    assert main(["rules", "validate", str(rule_dir)]) == EXIT_OK, capsys.readouterr().out  # the reference resolves
    capsys.readouterr()
    assert main(["rules", "validate", str(rule_dir), "--no-builtin-rules"]) == EXIT_RULES
    assert "twice.yml:8: error: authoring_sink_changed_twice: references unknown rule" in capsys.readouterr().out
