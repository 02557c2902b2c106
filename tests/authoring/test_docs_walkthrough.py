"""docs/rule-authoring.md's worked example reproduces: its files, written out, give the outputs the page shows."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

from temporal_siem.cli import EXIT_OK, EXIT_RULES, main
from tests.conftest import ROOT

DOC = (ROOT / "docs" / "rule-authoring.md").read_text(encoding="utf-8")


def _block_after(marker: str) -> str:
    """The first fenced block after ``marker`` in the page, dedented."""
    rest = DOC[DOC.index(marker):]
    found = re.search(r"```[a-z]*\n(.*?)```", rest, re.S)
    assert found is not None, marker
    return textwrap.dedent(found.group(1))


def _shown_output(command: str) -> list[str]:
    """The lines the page shows after ``$ command`` (up to the next prompt or the end of the block)."""
    rest = DOC[DOC.index(f"$ {command}\n") + len(command) + 3:]
    lines = []
    for line in rest.split("```", 1)[0].splitlines():
        if line.strip().startswith("$ "):
            break
        lines.append(line.strip())
    return [line for line in lines if line]


@pytest.fixture
def workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    rules = tmp_path / "my-rules"
    rules.mkdir()
    (rules / "temporal_cloud_connectivity_rule_deleted.yml").write_text(
        _block_after("`my-rules/temporal_cloud_connectivity_rule_deleted.yml`:"))
    (rules / "temporal_cloud_connectivity_rule_deleted.tests.yml").write_text(
        _block_after("`my-rules/temporal_cloud_connectivity_rule_deleted.tests.yml`:"))
    return rules


def test_new_rule_validates_and_its_tests_pass(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "validate", "my-rules"]) == EXIT_OK
    assert capsys.readouterr().out.splitlines() == _shown_output("temporal-siem rules validate my-rules")[:1]
    assert main(["rules", "test", "my-rules"]) == EXIT_OK
    assert [line.strip() for line in capsys.readouterr().out.splitlines()] == _shown_output("temporal-siem rules test my-rules")


def test_the_typo_is_caught_as_shown(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rule = workspace / "temporal_cloud_connectivity_rule_deleted.yml"
    rule.write_text(rule.read_text().replace("temporal.operation:", "temporal.opration:"))
    assert main(["rules", "validate", "my-rules"]) == EXIT_RULES
    shown = DOC[DOC.index("5. **A typo, caught.**"):DOC.index("6. **A failing test case.**")]
    expected = [line.strip() for line in shown.split("```")[1].splitlines() if line.strip() and not line.strip().startswith("$")]
    assert capsys.readouterr().out.splitlines() == expected


def test_the_failing_case_fails_as_shown(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tests = workspace / "temporal_cloud_connectivity_rule_deleted.tests.yml"
    case = textwrap.indent(_block_after("6. **A failing test case.**"), "  ")  # an item of the cases list
    tests.write_text(tests.read_text() + case)
    assert main(["rules", "test", "my-rules", "-q"]) == EXIT_RULES
    assert [line.strip() for line in capsys.readouterr().out.splitlines()] == _shown_output("temporal-siem rules test my-rules -q")


def test_the_correlation_validates_and_passes(workspace: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (workspace / "connectivity_rule_then_namespace_deleted.yml").write_text(
        _block_after("`my-rules/connectivity_rule_then_namespace_deleted.yml`:"))
    (workspace / "connectivity_rule_then_namespace_deleted.tests.yml").write_text(
        _block_after("`connectivity_rule_then_namespace_deleted.tests.yml`"))
    assert main(["rules", "validate", "my-rules"]) == EXIT_OK, capsys.readouterr().out
    assert main(["rules", "test", "my-rules"]) == EXIT_OK
    assert "5 passed, 0 failed" in capsys.readouterr().out
    assert main(["rules", "convert", "--target", "esql", "my-rules"]) == EXIT_RULES
    captured = capsys.readouterr()
    shown = _shown_output("temporal-siem rules convert --target esql my-rules")
    assert [line.strip() for line in (captured.out + captured.err).splitlines()] == shown
