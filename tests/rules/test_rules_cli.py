"""``temporal-siem rules validate|test|explain|convert``: exit codes and output a CI job can rely on."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from temporal_siem.cli import main
from temporal_siem.detections.sigma.loader import BUILTIN_RULES
from temporal_siem.exit_codes import EXIT_OK, EXIT_RULES, EXIT_USAGE

GOOD_RULE = """
title: Test Rule Namespace Deleted
id: 0b0c7a4e-2f59-4d35-9d39-3c0f2f0c1a01
name: test_rule_namespace_deleted
status: experimental
description: A namespace was deleted (a rule written for the CLI tests).
references:
  - https://docs.temporal.io/cloud/audit-logs
author: tests
date: 2026-11-29
tags:
  - attack.impact
  - attack.t1485
logsource:
  product: temporal
  service: audit
detection:
  selection:
    temporal.operation: DeleteNamespace
  condition: selection
falsepositives:
  - Tests
level: high
"""
GOOD_TESTS = {
    "cases": [
        {"rule": "test_rule_namespace_deleted", "name": "deleted", "expect": "match",
         "records": [{"operation": "DeleteNamespaceAPI", "status": "OK", "version": 2, "log_id": "11111111-2222-4333-8444-555555555555",
                      "emit_time": "2025-06-12T10:07:00Z", "principal": {"type": "user", "name": "alice@example.com"}}]},
        {"rule": "test_rule_namespace_deleted", "name": "created", "expect": "no_match",
         "events": [{"event": {"dataset": "temporal_cloud.audit", "action": "CreateNamespaceAPI"}, "temporal": {"operation": "CreateNamespace"}}]},
    ]
}


@pytest.fixture
def pack(tmp_path: Path) -> Path:
    (tmp_path / "rule.yml").write_text(GOOD_RULE)
    (tmp_path / "rule.tests.json").write_text(json.dumps(GOOD_TESTS))
    return tmp_path


def test_validate_exit_codes(pack: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "validate", str(pack)]) == EXIT_OK
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "typo.yml").write_text(GOOD_RULE.replace("temporal.operation", "temporal.opration").replace("0b0c7a4e", "1b0c7a4e"))
    (bad / "dup.yml").write_text(GOOD_RULE.replace("test_rule_namespace_deleted", "dup_rule"))
    (bad / "broken.yml").write_text("title: [unclosed\n")
    capsys.readouterr()
    assert main(["rules", "validate", str(bad), str(pack)]) == EXIT_RULES
    out = capsys.readouterr().out
    assert "typo.yml:19: error: test_rule_namespace_deleted: field 'temporal.opration'" in out
    assert "duplicate id 0b0c7a4e-2f59-4d35-9d39-3c0f2f0c1a01" in out
    assert "broken.yml:2: error: -: invalid YAML" in out
    assert main(["rules", "validate", str(bad), "--json"]) == EXIT_RULES
    doc = json.loads(capsys.readouterr().out)
    assert doc["errors"] >= 2 and {p["check"] for p in doc["problems"]} >= {"field", "parse"}
    assert main(["rules", "validate", str(tmp_path / "missing")]) == EXIT_USAGE


def test_test_command_passes_and_fails_with_a_diff(pack: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "test", str(pack)]) == EXIT_OK
    assert "2 passed, 0 failed" in capsys.readouterr().out
    flipped = json.loads(json.dumps(GOOD_TESTS))
    flipped["cases"][1]["expect"] = "match"
    (pack / "rule.tests.json").write_text(json.dumps(flipped))
    assert main(["rules", "test", str(pack)]) == EXIT_RULES
    out = capsys.readouterr().out
    assert "FAIL" in out and "- expected an alert from test_rule_namespace_deleted" in out
    assert '[ ] temporal.operation: "DeleteNamespace"   event: "CreateNamespace"' in out
    (pack / "rule.tests.json").write_text('{"cases": [{"rule": "x", "expect": "maybe", "events": [{}]}]}')
    assert main(["rules", "test", str(pack), "--json"]) == EXIT_RULES
    assert "'expect' must be one of" in json.loads(capsys.readouterr().out)["problems"][0]


def test_explain_exit_codes(pack: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    event = tmp_path / "event.json"
    event.write_text(json.dumps({"event.dataset": "temporal_cloud.audit", "temporal.operation": "deletenamespace"}))
    assert main(["rules", "explain", str(pack / "rule.yml"), str(event)]) == EXIT_OK
    assert "event MATCHES" in capsys.readouterr().out
    other = '{"event": {"dataset": "okta.system"}, "temporal": {"operation": "DeleteNamespace"}}'
    assert main(["rules", "explain", "test_rule_namespace_deleted", other, "--rules", str(pack), "--json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert doc["routed"] is False and doc["matched"] is False
    assert main(["rules", "explain", "no-such-rule", str(event), "--rules", str(pack)]) == EXIT_USAGE
    assert main(["rules", "explain", "test_rule_namespace_deleted", "{not json", "--rules", str(pack)]) == EXIT_USAGE


def test_convert_targets(pack: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "convert", "--target", "lucene", str(pack)]) == EXIT_OK
    out = capsys.readouterr().out
    assert "event.dataset:temporal_cloud.audit AND temporal.operation:DeleteNamespace" in out
    assert main(["rules", "convert", "--target", "splunk", str(pack), "--json"]) == EXIT_OK
    doc = json.loads(capsys.readouterr().out)
    assert doc[0]["error"] is None and 'temporal.operation="DeleteNamespace"' in doc[0]["queries"][0]
    assert main(["rules", "convert", "--target", "qradar", str(pack)]) == EXIT_USAGE


@pytest.mark.parametrize("target", ["lucene", "eql", "esql", "opensearch", "splunk"])
def test_every_shipped_single_event_rule_converts(target: str, capsys: pytest.CaptureFixture[str]) -> None:
    from temporal_siem.commands.rules_convert import convert

    results = convert([BUILTIN_RULES], target)
    # Backend limits, not rule problems: correlations on query languages without them, `|exists` in EQL.
    limits = ("correlation", "field exists expressions are not supported")
    failed = [(r.title, r.error) for r in results if r.error and not any(x in r.error.lower() for x in limits)]
    assert failed == []
    assert len([r for r in results if r.queries]) >= 45


def test_shipped_pack_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "validate"]) == EXIT_OK
    assert main(["rules", "test", "-q"]) == EXIT_OK
    assert ", 0 failed" in capsys.readouterr().out


def test_copy_of_the_pack_is_self_contained(tmp_path: Path) -> None:
    """Users copy the pack to extend it: the copy validates and tests on its own."""
    target = tmp_path / "rules"
    shutil.copytree(BUILTIN_RULES, target)
    assert main(["rules", "validate", str(target), "--no-builtin-rules"]) == EXIT_OK


def test_hostile_rule_and_test_files_give_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "binary.yml").write_bytes(bytes(range(256)))
    (tmp_path / "broken.yml").write_text("title: x\ndetection: [1,2\n")
    (tmp_path / "notjson.tests.json").write_bytes(b"\xff\xfe{")
    (tmp_path / "shape.tests.json").write_text('{"cases": [{"rule": "r", "expect": "match", "events": ["not an object"]}]}')
    for command in (["rules", "validate"], ["rules", "test"], ["rules", "convert", "--target", "esql"]):
        assert main([*command, str(tmp_path)]) == EXIT_RULES, command
        out = capsys.readouterr().out
        problem_lines = [line for line in out.splitlines() if "broken.yml" in line]
        assert problem_lines and all("detection: [1,2" in line for line in problem_lines if "not converted" in line or "error" in line)
    assert main(["rules", "explain", "some-rule", "[1, 2]"]) == EXIT_USAGE


def test_explain_a_correlation_shows_the_rules_fed_and_the_group(capsys: pytest.CaptureFixture[str]) -> None:
    okta = '{"event.dataset": "okta.system", "event.action": "user.lifecycle.deactivate", "event.outcome": "success", "user.target.email": "Carol@Example.com"}'
    assert main(["rules", "explain", "deprovisioned_user_active_in_temporal", okta, "--json"]) == EXIT_OK
    doc = json.loads(capsys.readouterr().out)
    fed = {part["rule"]: part for part in doc["rules"]}
    assert fed["okta_user_deprovisioned"]["explanation"]["matched"] is True
    assert fed["okta_user_deprovisioned"]["group"] == {"deprovisioned_email": "carol@example.com"}
    assert fed["temporal_cloud_user_activity"]["explanation"]["matched"] is False
    unrelated = '{"event.dataset": "okta.system", "event.action": "user.session.start", "event.outcome": "success"}'
    assert main(["rules", "explain", "deprovisioned_user_active_in_temporal", unrelated]) == 1


def test_validate_reports_a_rule_that_cannot_match_as_written(pack: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An unresolved ``|expand`` placeholder matches nothing: replay, the daemon and ``rules list`` say so, and the
    command a CI runs before shipping a pack must too (it said nothing). A warning with the placeholder's line:
    the rule runs, and ``--fail-on warning`` makes it fail the pack."""
    (pack / "rule.yml").write_text(GOOD_RULE.replace("temporal.operation: DeleteNamespace",
                                                     "temporal.principal.name|expand: '%admin_users%'"))
    assert main(["rules", "validate", str(pack)]) == EXIT_OK
    out = capsys.readouterr().out
    line = next(n for n, text in enumerate(GOOD_RULE.splitlines(), start=1) if "DeleteNamespace" in text)
    assert f"rule.yml:{line}: warning: test_rule_namespace_deleted: unresolved placeholder" in out, out
    assert "'%admin_users%'" in out and "[unmatchable]" in out
    assert main(["rules", "validate", str(pack), "--fail-on", "warning"]) == EXIT_RULES


def test_validator_issues_name_what_they_found(pack: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A validator issue's own fields (the word of a title-case issue) are part of its line: two lowercase words
    gave two identical lines that did not say which word."""
    (pack / "rule.yml").write_text(GOOD_RULE.replace("title: Test Rule Namespace Deleted", "title: Test rule namespace Deleted"))
    assert main(["rules", "validate", str(pack)]) == EXIT_OK
    lines = [text for text in capsys.readouterr().out.splitlines() if "[sigmahq_title_case]" in text]
    assert len(lines) == 2, lines
    assert any("'rule'" in text for text in lines) and any("'namespace'" in text for text in lines), lines


WINDOWS_RULE = """
title: Test Whoami With All Groups
id: 0b0c7a4e-2f59-4d35-9d39-3c0f2f0c1a77
status: experimental
description: A Windows process-creation rule as SigmaHQ writes them (a rule written for the CLI tests).
references:
  - https://learn.microsoft.com/en-us/windows-server/administration/windows-commands/whoami
author: tests
date: 2026-12-07
tags:
  - attack.discovery
  - attack.t1033
logsource:
  category: process_creation
  product: windows
detection:
  selection:
    Image|endswith: '\\\\whoami.exe'
    CommandLine|contains: ' /all'
    OriginalFileName: whoami.exe
  condition: selection
falsepositives:
  - Administrators
level: medium
"""


def test_validate_accepts_a_windows_rule_the_event_tags_route(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """replay runs a Windows process_creation rule on Windows/Sysmon JSON through the event tags
    (detections/pipelines/logsources.yml), under the log's own field names: validate called its logsource
    "routed to no dataset" and each field "not in the schema", five errors for a rule that runs and matches.
    A logsource the tags do not know (a made-up category, a misspelt product) is still an error."""
    (tmp_path / "win.yml").write_text(WINDOWS_RULE)
    assert main(["rules", "validate", str(tmp_path), "--no-builtin-rules"]) == EXIT_OK, capsys.readouterr().out
    out = capsys.readouterr().out
    assert ": error:" not in out and "0 errors" in out, out
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps({"Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": 1, "Image": "C:\\Windows\\System32\\whoami.exe",
                                  "CommandLine": "whoami /all", "OriginalFileName": "whoami.exe", "UtcTime": "2026-12-07 10:00:00.000"}) + "\n")
    summary = tmp_path / "summary.json"
    main(["replay", str(events), "--rules", str(tmp_path), "--no-builtin-rules", "--workers", "1", "--quiet",
          "--summary-json", str(summary), "--dead-letter", str(tmp_path / "dead.jsonl")])
    assert json.loads(summary.read_text())["alerts"] == 1  # it does run and match
    for old, new in (("category: process_creation", "category: process_creatoin"), ("product: windows", "product: windowz")):
        (tmp_path / "win.yml").write_text(WINDOWS_RULE.replace(old, new))
        assert main(["rules", "validate", str(tmp_path / "win.yml"), "--no-builtin-rules"]) == EXIT_RULES
        assert "the engine routes no dataset to it" in capsys.readouterr().out


def test_validate_warns_of_a_windows_service_no_tag_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """SigmaHQ names dozens of Windows services the event tags do not (windefend, bits-client...): such a rule runs
    on every event no dataset or tag claims, which validate says as a warning, not as an unknown logsource."""
    rule = WINDOWS_RULE.replace("  category: process_creation\n", "  service: windefend\n")
    (tmp_path / "svc.yml").write_text(rule)
    assert main(["rules", "validate", str(tmp_path), "--no-builtin-rules"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "svc.yml:13: warning:" in out and "no event tag names it" in out and ": error:" not in out, out
    assert main(["rules", "validate", str(tmp_path), "--no-builtin-rules", "--fail-on", "warning"]) == EXIT_RULES


def test_validate_a_foreign_logsource_is_a_warning_and_a_near_miss_of_ours_an_error(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A SigmaHQ Linux rule runs on every event no dataset or tag claims (plain JSON, as rsigma runs it), under
    the log's own field names: validate said "unknown logsource" and "not in the schema" for each field (624
    errors on SigmaHQ's rules/linux). Now it is one warning and no field check. A product or service close to one
    we route (a typo in a pack rule) stays an error, with the name meant."""
    linux = (WINDOWS_RULE.replace("product: windows", "product: linux")
             .replace("Image|endswith: '\\\\\\\\whoami.exe'", "Image|endswith: '/whoami'"))
    (tmp_path / "linux.yml").write_text(linux)
    assert main(["rules", "validate", str(tmp_path), "--no-builtin-rules"]) == EXIT_OK, capsys.readouterr().out
    out = capsys.readouterr().out
    assert "linux.yml:13: warning:" in out and "no dataset or tag routes" in out and ": error:" not in out, out
    (tmp_path / "linux.yml").unlink()
    for old, new, meant in (("product: temporal", "product: temporl", "temporal"), ("service: audit", "service: audti", "audit")):
        (tmp_path / "typo.yml").write_text(GOOD_RULE.replace(old, new))
        assert main(["rules", "validate", str(tmp_path), "--no-builtin-rules"]) == EXIT_RULES
        out = capsys.readouterr().out
        assert "the engine routes no dataset to it" in out and f"did you mean '{meant}'" in out, out


def test_validate_a_windows_category_no_tag_has_is_a_warning_unless_a_near_miss(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "rename.yml").write_text(WINDOWS_RULE.replace("category: process_creation", "category: file_rename"))
    assert main(["rules", "validate", str(tmp_path), "--no-builtin-rules"]) == EXIT_OK
    out = capsys.readouterr().out
    assert "no event tag puts events in this category" in out and ": error:" not in out, out
    (tmp_path / "rename.yml").write_text(WINDOWS_RULE.replace("category: process_creation", "category: proces_creation"))
    assert main(["rules", "validate", str(tmp_path), "--no-builtin-rules"]) == EXIT_RULES
    assert "did you mean 'process_creation'" in capsys.readouterr().out
