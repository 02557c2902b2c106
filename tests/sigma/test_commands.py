"""``rules list`` and ``rules health`` through the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

RULE = """
title: Hello seen
id: 9d8b8c1e-2f0a-4a55-8c43-6a0f3b1d7e01
logsource: {product: custom}
detection:
  selection:
    msg|contains: hello
    never.present: x
  condition: selection or msg|contains
level: low
"""

GOOD = """
title: Hello seen
id: 9d8b8c1e-2f0a-4a55-8c43-6a0f3b1d7e02
logsource: {product: custom}
detection:
  selection:
    msg|contains: hello
  filter:
    never.present: x
  condition: selection and not filter
level: low
"""


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "temporal_siem", *args], capture_output=True, text=True, timeout=120)


def test_rules_list_reports_broken_files(tmp_path: Path) -> None:
    (tmp_path / "good.yml").write_text(GOOD)
    (tmp_path / "bad.yml").write_text(RULE)
    result = cli("rules", "list", "--no-builtin-rules", "--json", str(tmp_path))
    assert result.returncode == 3, result.stderr
    doc = json.loads(result.stdout)
    assert [r["id"] for r in doc["rules"]] == ["9d8b8c1e-2f0a-4a55-8c43-6a0f3b1d7e02"]
    assert doc["rules"][0]["route"].startswith("unrouted")
    assert len(doc["load_errors"]) == 1 and doc["load_errors"][0]["file"].endswith("bad.yml")


def test_rules_health_after_replay(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "good.yml").write_text(GOOD)
    log = tmp_path / "app.jsonl"
    log.write_text('{"time": "2026-01-01T00:00:00Z", "msg": "hello world"}\n{"time": "2026-01-01T00:00:01Z", "msg": "bye"}\n')
    result = cli("rules", "health", str(log), "--no-builtin-rules", "--rules", str(rules), "--json")
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)
    row = stats["rules"]["9d8b8c1e-2f0a-4a55-8c43-6a0f3b1d7e02"]
    assert (row["routed"], row["matched"]) == (2, 1)
    assert row["missing_fields"] == ["never.present"]
    table = cli("rules", "health", str(log), "--no-builtin-rules", "--rules", str(rules))
    assert table.returncode == 0 and "never.present" in table.stdout


def test_rules_health_coverage_lists_uncovered_end_actions(tmp_path: Path) -> None:
    """Issue 14 class 6: per dataset, the sensitive actions seen (or known) and which rules select them."""
    log = tmp_path / "vault.jsonl"
    request = {"time": "2025-08-12T09:00:00Z", "type": "request", "auth": {"display_name": "root"},
               "request": {"id": "r-1", "operation": "update", "mount_type": "transit", "path": "transit/keys/k/rotate"}}
    unknown = {"time": "2025-08-12T09:00:01Z", "type": "request", "auth": {"display_name": "root"},
               "request": {"id": "r-2", "operation": "delete", "mount_type": "", "path": "sys/policies/acl/temporal"}}
    log.write_text(json.dumps(request) + "\n" + json.dumps(unknown) + "\n")
    # A plain run first fills the compiled-ruleset cache: coverage must still see every rule's selections.
    assert cli("rules", "health", str(log), "--json").returncode == 0
    result = cli("rules", "health", str(log), "--coverage", "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["dataset"]: row for row in json.loads(result.stdout)["coverage"]}
    vault = rows["hashicorp_vault.audit"]
    assert "transit.rotate" in vault["actions_seen"] and "vault_transit_key_rotated" in vault["covered"]["transit.rotate"]
    assert "delete" in vault["actions_seen"] and "delete" in vault["uncovered"]  # a sys policy deletion no rule names
    assert "transit.key_delete" in vault["covered"]  # the end action has its rule now
    assert "DeleteKey" in rows["aws.cloudtrail"]["covered"]
    table = cli("rules", "health", str(log), "--coverage")
    assert table.returncode == 0 and "hashicorp_vault.audit" in table.stdout and "uncovered" in table.stdout.lower()
