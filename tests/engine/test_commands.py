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
