"""Fixtures for the rule-authoring tests (issue 16): a small valid rule a test can break one way at a time."""

from __future__ import annotations

from pathlib import Path

import pytest

GOOD_RULE = """\
title: Authoring Test Namespace Deleted
id: 7d1e0f3a-6c1b-4f0e-9a51-0d9b3c2a1f01
name: authoring_test_namespace_deleted
status: experimental
description: A namespace was deleted (a rule written for the authoring tests).
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
SELECTION_LINE = 18  # line of "temporal.operation: DeleteNamespace" in GOOD_RULE


@pytest.fixture
def rule_dir(tmp_path: Path) -> Path:
    """A directory holding GOOD_RULE as rule.yml (tests overwrite it with a broken variant)."""
    folder = tmp_path / "my-rules"
    folder.mkdir()
    (folder / "rule.yml").write_text(GOOD_RULE)
    return folder
