"""Issue 16, items 1 and 2: a common mistake in a rule is a one-line error with file:line, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from temporal_siem.cli import EXIT_RULES, main
from tests.authoring.conftest import GOOD_RULE, SELECTION_LINE

DUPLICATE_KEY = GOOD_RULE.replace("    temporal.operation: DeleteNamespace\n",
                                  "    temporal.operation: DeleteNamespace\n    temporal.operation: CreateNamespace\n")
BAD_CONDITION = GOOD_RULE.replace("condition: selection", "condition: selection and and not selection")


@pytest.mark.parametrize("command", [["rules", "validate"], ["rules", "list", "--no-builtin-rules"], ["rules", "test"]])
def test_duplicate_key_is_an_error_with_its_line(rule_dir: Path, command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """Item 1: a zero-argument super() on a copied method crashed every command with a TypeError."""
    (rule_dir / "rule.yml").write_text(DUPLICATE_KEY)
    assert main([*command, str(rule_dir)]) == EXIT_RULES
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert f"rule.yml:{SELECTION_LINE + 1}" in text.replace("\n", "")
    assert "duplicate key 'temporal.operation'" in text


def test_duplicate_key_stops_a_replay(rule_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (rule_dir / "rule.yml").write_text(DUPLICATE_KEY)
    log = tmp_path / "empty.jsonl"
    log.write_text('{"message": "x"}\n')
    assert main(["replay", str(log), "--rules", str(rule_dir), "--quiet"]) == EXIT_RULES
    assert f"rule.yml:{SELECTION_LINE + 1}" in capsys.readouterr().err


def test_malformed_condition_is_a_validation_error_not_a_traceback(rule_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Item 2: `selection and and not filter` raised from inside a validator."""
    (rule_dir / "rule.yml").write_text(BAD_CONDITION)
    assert main(["rules", "validate", str(rule_dir)]) == EXIT_RULES
    out = capsys.readouterr().out
    condition_line = GOOD_RULE.splitlines().index("  condition: selection") + 1
    assert f"rule.yml:{condition_line}: error:" in out and "SigmaConditionError" in out
    assert "Traceback" not in out
    assert main(["rules", "test", str(rule_dir)]) == EXIT_RULES
    assert f"rule.yml:{condition_line}" in capsys.readouterr().out


def test_unknown_modifier_suggests_the_nearest(rule_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (rule_dir / "rule.yml").write_text(GOOD_RULE.replace("temporal.operation:", "temporal.operation|contain:"))
    assert main(["rules", "validate", str(rule_dir)]) == EXIT_RULES
    out = capsys.readouterr().out
    assert f"rule.yml:{SELECTION_LINE}: error:" in out and "did you mean 'contains'" in out
