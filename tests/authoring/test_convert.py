"""Issue 16, item 8: rules convert works offline, structured output is pure NDJSON, a partial failure exits
non-zero, and every difference in meaning from the engine is said per rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from temporal_siem.cli import EXIT_OK, EXIT_RULES, main
from temporal_siem.detections.sigma.loader import BUILTIN_RULES

SSO = str(BUILTIN_RULES / "identity" / "sso_failure_burst_then_success.yml")


@pytest.fixture(autouse=True)
def no_attack_download(monkeypatch: pytest.MonkeyPatch) -> None:
    """The machine may be online: fail the test if conversion tries to fetch ATT&CK data at all."""
    import sigma.data.mitre_attack as mitre

    def refuse() -> None:
        raise AssertionError("rules convert fetched MITRE ATT&CK data")

    monkeypatch.setattr(mitre, "_load_mitre_attack_data", refuse)


@pytest.mark.parametrize("target", ["lucene", "eql", "esql"])
def test_siem_rule_ndjson_is_offline_pure_ndjson_with_threat(target: str, rule_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "convert", "--target", target, "--output-format", "siem_rule_ndjson", str(rule_dir)]) == EXIT_OK
    captured = capsys.readouterr()
    docs = [json.loads(line) for line in captured.out.splitlines()]  # every line one JSON document
    assert len(docs) == 1
    threat = docs[0]["threat"]
    assert threat[0]["tactic"]["id"] == "TA0040" and threat[0]["technique"][0]["id"] == "T1485"
    assert "# Authoring Test Namespace Deleted" in captured.err


def test_kibana_ndjson_is_pure_ndjson(rule_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "convert", "--target", "lucene", "--output-format", "kibana_ndjson", str(rule_dir)]) == EXIT_OK
    lines = capsys.readouterr().out.splitlines()
    assert lines and all(json.loads(line)["type"] == "search" for line in lines)


def test_a_partial_failure_exits_non_zero(rule_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (rule_dir / "broken.yml").write_text("title: [unclosed\n")
    assert main(["rules", "convert", "--target", "esql", str(rule_dir)]) == EXIT_RULES
    assert main(["rules", "convert", "--target", "esql", str(rule_dir), "--skip-unsupported"]) == EXIT_RULES  # not a target limit
    (rule_dir / "broken.yml").unlink()
    assert main(["rules", "convert", "--target", "lucene", SSO]) == EXIT_RULES  # correlations: Lucene has none
    capsys.readouterr()
    assert main(["rules", "convert", "--target", "lucene", SSO, "--skip-unsupported"]) == EXIT_OK
    assert "# skipped (target limit)" in capsys.readouterr().out


def _notes(target: str, path: str, capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, list[str]]:
    main(["rules", "convert", "--target", target, path, "--format", "json", *extra])
    return {d["title"]: d["notes"] for d in json.loads(capsys.readouterr().out)}


@pytest.mark.parametrize(("target", "noted"), [("lucene", True), ("opensearch", True), ("esql", True), ("eql", False), ("splunk", False)])
def test_case_insensitive_equality_is_noted_where_the_target_differs(target: str, noted: bool, rule_dir: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    notes = _notes(target, str(rule_dir), capsys)["Authoring Test Namespace Deleted"]
    assert any("case-insensitive" in n for n in notes) == noted


@pytest.mark.parametrize("target", ["esql", "splunk"])
def test_sliding_windows_are_noted(target: str, capsys: pytest.CaptureFixture[str]) -> None:
    notes = _notes(target, SSO, capsys, "--skip-unsupported")
    burst = [n for title, ns in notes.items() if "Burst" in title and ns for n in ns]
    assert any("sliding" in n and "fixed" in n for n in burst)


def test_building_blocks_are_not_exported_as_alerts(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "convert", "--target", "lucene", "--output-format", "siem_rule_ndjson", SSO, "--skip-unsupported"]) == EXIT_OK
    docs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert docs and all(d.get("building_block_type") == "default" for d in docs)  # every base rule there only feeds correlations
    notes = _notes("esql", SSO, capsys, "--skip-unsupported")
    assert any("building block" in n for n in notes["Okta Sign-In or SSO Failure"])
    assert not any("building block" in n for n in _notes("esql", str(BUILTIN_RULES / "access"), capsys)[
        "Temporal Cloud Audit Log Sink Changed or Disabled"])

