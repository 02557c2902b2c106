"""Every sample file of every registered format matches its golden output."""

from __future__ import annotations

import pytest

from temporal_siem.parsers.registry import PARSERS
from tests.parsers.golden_harness import SAMPLES, check_golden, sample_files

FORMATS = sorted(name for name in PARSERS if (SAMPLES / name).is_dir())
CASES = [pytest.param(path, id=f"{fmt}/{path.name}") for fmt in FORMATS for path in sample_files(fmt)]


@pytest.mark.parametrize("sample", CASES)
def test_golden(sample):
    check_golden(sample)


def test_every_parser_ships_samples():
    missing = [name for name in PARSERS if not (SAMPLES / name).is_dir()]
    assert not missing, f"formats without samples/<format>/: {missing}"
