"""Shared rulesets for the engine tests.

The bundled SigmaHQ sample (tests/sigma/data/sigmahq, DRL 1.1, see NOTICE.md) always runs. Set
``TSIEM_SIGMA_CORPUS`` to a SigmaHQ checkout to run the whole-corpus tests too (compiled once per session).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from temporal_siem.detections.sigma.ruleset import Ruleset

SAMPLE = Path(__file__).parent / "data" / "sigmahq"
CORPUS_FOLDERS = ("rules", "rules-emerging-threats", "rules-threat-hunting", "rules-compliance", "rules-placeholder")


def corpus_paths() -> list[Path]:
    root = os.environ.get("TSIEM_SIGMA_CORPUS")
    if not root:
        return []
    return [Path(root) / name for name in CORPUS_FOLDERS if (Path(root) / name).is_dir()]


@pytest.fixture(scope="session")
def sample_ruleset() -> Ruleset:
    return Ruleset.from_paths([SAMPLE], builtin_rules=False)


@pytest.fixture(scope="session")
def corpus_ruleset() -> Ruleset:
    paths = corpus_paths()
    if not paths:
        pytest.skip("set TSIEM_SIGMA_CORPUS to a SigmaHQ checkout to run the whole-corpus tests")
    return Ruleset.from_paths(paths, builtin_rules=False)
