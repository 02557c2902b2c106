"""Issue 16 conveniences: explain on raw records / FILE:LINE, `rules test --new-case`, JUnit XML, validate's
exclusions and --fail-on, and `rules watch`."""

from __future__ import annotations

import json
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml

from temporal_siem.cli import EXIT_OK, EXIT_RULES, main
from tests.authoring.conftest import GOOD_RULE

CREATE = ('{"operation": "CreateNamespaceAPI", "status": "OK", "version": 2, "log_id": "x1", "emit_time": "2025-06-12T10:07:00Z", '
          '"principal": {"type": "user", "name": "a@example.com"}}')
DELETE = CREATE.replace("CreateNamespaceAPI", "DeleteNamespaceAPI").replace('"x1"', '"x2"')


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "audit.jsonl"
    path.write_text(f"{CREATE}\n{DELETE}\n")
    return path


def test_explain_a_raw_record_at_file_line(rule_dir: Path, log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "explain", "authoring_test_namespace_deleted", f"{log}:2", "--rules", str(rule_dir)]) == EXIT_OK
    assert "event MATCHES" in capsys.readouterr().out
    assert main(["rules", "explain", "authoring_test_namespace_deleted", f"{log}:1", "--rules", str(rule_dir)]) == 1
    assert '[ ] temporal.operation: "DeleteNamespace"   event: "CreateNamespace"' in capsys.readouterr().out
    assert main(["rules", "explain", "authoring_test_namespace_deleted", str(log), "--rules", str(rule_dir)]) == 1  # first record


def test_explain_a_text_log_line(capsys: pytest.CaptureFixture[str]) -> None:
    """A Temporal server console line (not JSON) goes through the parsers like in a replay."""
    line = ('2025-03-04T10:30:05.250+0100\tERROR\tauthorization/interceptor.go:149\tAuthorization error\t'
            '{"service": "frontend", "error": "token contains an invalid number of segments"}')
    assert main(["rules", "explain", "temporal_server_authorization_error", line, "--json"]) == EXIT_OK
    doc = json.loads(capsys.readouterr().out)
    assert doc["event_dataset"] == "temporal.server" and doc["matched"] is True


def test_new_case_from_a_record(rule_dir: Path, log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "test", str(rule_dir), "--new-case", f"{log}:2"]) == EXIT_OK
    assert main(["rules", "test", str(rule_dir), "--new-case", f"{log}:1", "--name", "near miss: created"]) == EXIT_OK
    cases = yaml.safe_load((rule_dir / "rule.tests.yml").read_text())["cases"]
    assert [(c["expect"], c["records"][0]["operation"]) for c in cases] == [("match", "DeleteNamespaceAPI"),
                                                                          ("no_match", "CreateNamespaceAPI")]
    assert "2 passed, 0 failed" in capsys.readouterr().out
    # an expectation that does not hold yet (a rule still to write) is a failing case
    assert main(["rules", "test", str(rule_dir), "--new-case", f"{log}:1", "--expect", "match"]) == EXIT_RULES


def test_junit_from_test_and_validate(rule_dir: Path, log: Path, tmp_path: Path) -> None:
    main(["rules", "test", str(rule_dir), "--new-case", f"{log}:1", "--expect", "match", "--junit", str(tmp_path / "t.xml")])
    suite = ET.parse(tmp_path / "t.xml").getroot().find("testsuite")
    assert suite is not None and suite.get("tests") == "1" and suite.get("failures") == "1"
    (rule_dir / "typo.yml").write_text(GOOD_RULE.replace("temporal.operation", "temporal.opration").replace("7d1e0f3a", "8d1e0f3a")
                                       .replace("name: authoring_test_namespace_deleted", "name: typo_rule").replace("Authoring Test", "Typo"))
    assert main(["rules", "validate", str(rule_dir), "--junit", str(tmp_path / "v.xml")]) == EXIT_RULES
    cases = {c.get("name", "").rsplit("/", 1)[-1]: c for c in ET.parse(tmp_path / "v.xml").getroot().iter("testcase")}
    assert cases["rule.yml"].find("failure") is None
    failure = cases["typo.yml"].find("failure")
    assert failure is not None and "did you mean 'temporal.operation'" in (failure.text or "")


def test_validate_exclusions_and_fail_on(rule_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (rule_dir / "rule.yml").write_text(GOOD_RULE.replace("temporal.operation:", "temporal_cloud.some_future_key:"))
    assert main(["rules", "validate", str(rule_dir)]) == EXIT_OK  # one warning
    assert main(["rules", "validate", str(rule_dir), "--fail-on", "warning"]) == EXIT_RULES
    exclusions = tmp_path / "exclusions.yml"
    exclusions.write_text("exclusions:\n  7d1e0f3a-6c1b-4f0e-9a51-0d9b3c2a1f01: [field]\n")  # by id, while lines show the name
    capsys.readouterr()
    assert main(["rules", "validate", str(rule_dir), "--fail-on", "warning", "--exclusions", str(exclusions)]) == EXIT_OK
    assert "0 errors, 0 warnings" in capsys.readouterr().out


def test_sigmahq_validators_run(rule_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (rule_dir / "rule.yml").write_text(GOOD_RULE.replace("status: experimental\n", "status: experimental\n").replace(
        "description: A namespace was deleted (a rule written for the authoring tests).\n", "description: short\n"))
    main(["rules", "validate", str(rule_dir), "--json"])
    checks = {p["check"] for p in json.loads(capsys.readouterr().out)["problems"]}
    assert any(c.startswith("sigmahq_") for c in checks), checks


def test_watch_revalidates_on_save(rule_dir: Path, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from temporal_siem.commands import rules_watch

    first_done = threading.Event()
    real_check = rules_watch.check_once

    def check(*args: Any) -> int:
        code = real_check(*args)
        first_done.set()
        return code

    def save_a_typo() -> None:
        # After the first check has finished (a cold first check can take longer than any fixed sleep).
        first_done.wait(60)
        time.sleep(0.3)
        (rule_dir / "rule.yml").write_text(GOOD_RULE.replace("temporal.operation", "temporal.opration"))

    monkeypatch.setattr(rules_watch, "check_once", check)
    threading.Thread(target=save_a_typo, daemon=True).start()
    runs = rules_watch.watch([str(rule_dir)], interval=0.2, max_runs=2, builtin_rules=True)
    out = capsys.readouterr().out
    assert runs == [EXIT_OK, EXIT_RULES]  # clean (no test files: validation only), then the typo
    assert "did you mean 'temporal.operation'" in out


def test_watch_sees_a_save_made_while_it_was_checking(rule_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A save that lands while a check runs (after it read the files) is checked next, not missed until the
    following save: the watcher notes the files' state before it checks, not after."""
    from temporal_siem.commands import rules_watch

    real_check = rules_watch.check_once
    calls: list[int] = []

    def check(*args: Any) -> int:
        code = real_check(*args)
        if not calls:
            (rule_dir / "rule.yml").write_text(GOOD_RULE.replace("temporal.operation", "temporal.opration"))
        calls.append(code)
        return code

    monkeypatch.setattr(rules_watch, "check_once", check)
    result: list[list[int]] = []
    worker = threading.Thread(target=lambda: result.append(rules_watch.watch([str(rule_dir)], interval=0.1, max_runs=2)),
                              daemon=True)
    worker.start()
    worker.join(30)
    assert result == [[EXIT_OK, EXIT_RULES]], f"the save made during the first check was not checked: {calls}"
