"""Issue 16, item 5: field typos under open objects and vendor namespaces were accepted, errors had no line and
no suggestion, and ``temporal.target.expiry_time`` was in neither the schema nor the docs. Validation now uses
the schema and a per-dataset catalog generated from samples/ through the parsers (checked current here)."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from temporal_siem.cli import EXIT_OK, EXIT_RULES, EXIT_USAGE, main
from temporal_siem.commands.rules_fields import _catalog_path, build_catalog
from temporal_siem.kernel.schema import field_reference
from tests.authoring.conftest import GOOD_RULE, SELECTION_LINE
from tests.conftest import ROOT, SAMPLES


def test_the_catalog_is_what_the_parsers_produce_from_the_samples() -> None:
    """Regenerate with: temporal-siem rules fields --generate samples/ > detections/pipelines/field_catalog.json"""
    on_disk = orjson.loads(_catalog_path().read_bytes())
    assert on_disk == build_catalog([str(SAMPLES)]), "regenerate detections/pipelines/field_catalog.json (see the docstring)"
    assert "temporal.target.expiry_time" in on_disk["temporal_cloud.audit"]


def test_expiry_time_is_in_the_schema_and_its_docs() -> None:
    assert "temporal.target.expiry_time" in {name for name, _, _ in field_reference()}
    assert "`temporal.target.expiry_time`" in (ROOT / "docs" / "schema.md").read_text(encoding="utf-8")


@pytest.mark.parametrize(("written", "suggestion"), [
    ("temporal.target.expiry_tme", "temporal.target.expiry_time"),  # under an open object
    ("temporal_cloud.statuss", "temporal_cloud.status"),            # vendor namespace
    ("temporal.opration", "temporal.operation"),                    # our own names
])
def test_typos_are_errors_with_line_and_suggestion(rule_dir: Path, written: str, suggestion: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    (rule_dir / "rule.yml").write_text(GOOD_RULE.replace("temporal.operation:", f"{written}:"))
    assert main(["rules", "validate", str(rule_dir)]) == EXIT_RULES
    out = capsys.readouterr().out
    assert f"rule.yml:{SELECTION_LINE}: error: authoring_test_namespace_deleted: field '{written}'" in out
    assert f"did you mean '{suggestion}'?" in out


def test_known_fields_and_vendor_spellings_pass(rule_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    body = ("    temporal.target.expiry_time|exists: true\n    temporal_cloud.status: OK\n"
            "    temporal_cloud.rawDetails.spec.expiryTime|exists: true\n")  # samples have it in snake_case only
    (rule_dir / "rule.yml").write_text(GOOD_RULE.replace("    temporal.operation: DeleteNamespace\n", body))
    assert main(["rules", "validate", str(rule_dir)]) == EXIT_OK, capsys.readouterr().out


def test_an_unseen_vendor_key_is_a_warning(rule_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (rule_dir / "rule.yml").write_text(GOOD_RULE.replace("temporal.operation:", "temporal_cloud.some_future_key:"))
    assert main(["rules", "validate", str(rule_dir), "--format", "json"]) == EXIT_OK
    doc = json.loads(capsys.readouterr().out)
    assert [p["severity"] for p in doc["problems"] if p["check"] == "field"] == ["warning"]


def test_rules_fields_lists_a_dataset(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "fields", "temporal_cloud.audit"]) == EXIT_OK
    out = capsys.readouterr().out
    assert out.startswith("temporal_cloud.audit (") and "  temporal.target.expiry_time\n" in out
    assert main(["rules", "fields", "google_workspace.*", "--json"]) == EXIT_OK
    assert set(json.loads(capsys.readouterr().out)) >= {"google_workspace.login", "google_workspace.saml"}
    assert main(["rules", "fields", "temporal_cloud.audi"]) == EXIT_USAGE
    assert "did you mean 'temporal_cloud.audit'" in capsys.readouterr().err
