"""Issue 16, item 4: a rule whose id (or name) is a shipped rule's passed validate and test, then was dropped from
replay ("the first one is kept"). Now validate, test and replay all refuse it, naming both files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from temporal_siem.cli import EXIT_OK, EXIT_RULES, main
from temporal_siem.detections.sigma.loader import BUILTIN_RULES
from tests.authoring.conftest import GOOD_RULE

SHIPPED_ID = "108e57ac-9411-4224-94bc-50462bd0f0c0"  # access/temporal_cloud_audit_sink_changed.yml
SHIPPED_FILE = "temporal_cloud_audit_sink_changed.yml"
CLASH = GOOD_RULE.replace("7d1e0f3a-6c1b-4f0e-9a51-0d9b3c2a1f01", SHIPPED_ID)
ID_LINE = 2
CASES = {"cases": [{"rule": "authoring_test_namespace_deleted", "name": "deleted", "expect": "match",
                    "events": [{"event.dataset": "temporal_cloud.audit", "temporal.operation": "DeleteNamespace"}]}]}


@pytest.fixture
def clashing(rule_dir: Path) -> Path:
    (rule_dir / "rule.yml").write_text(CLASH)
    (rule_dir / "rule.tests.json").write_text(json.dumps(CASES))
    return rule_dir


def test_validate_names_both_files(clashing: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "validate", str(clashing)]) == EXIT_RULES
    out = capsys.readouterr().out
    assert f"rule.yml:{ID_LINE}: error:" in out and f"duplicate id {SHIPPED_ID}" in out and SHIPPED_FILE in out
    assert main(["rules", "validate", str(clashing), "--no-builtin-rules"]) == EXIT_OK  # replacing the pack: no clash


def test_test_names_both_files(clashing: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "test", str(clashing)]) == EXIT_RULES
    out = capsys.readouterr().out
    assert "1 passed, 0 failed, 1 errors" in out and SHIPPED_FILE in out and f"rule.yml:{ID_LINE}" in out


def test_replay_refuses_it_naming_both_files(clashing: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "a.jsonl"
    log.write_text('{"message": "hello"}\n')
    assert main(["replay", str(log), "--rules", str(clashing), "--quiet"]) == EXIT_RULES
    err = capsys.readouterr().err.replace("\n", "")
    assert f"rule.yml:{ID_LINE}" in err and f"duplicate rule id {SHIPPED_ID}" in err and SHIPPED_FILE in err


def test_a_copy_of_the_pack_replaces_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The shipped pack itself never clashes with itself; a copy clashes unless it replaces the pack."""
    copy = tmp_path / "rules"
    shutil.copytree(BUILTIN_RULES, copy)
    assert main(["rules", "validate"]) == EXIT_OK
    assert main(["rules", "validate", str(copy)]) == EXIT_RULES
    assert main(["rules", "validate", str(copy), "--no-builtin-rules"]) == EXIT_OK
