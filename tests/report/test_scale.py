"""Scale: 50,000 alerts render to a bounded file that the browser still opens and filters (not timed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from temporal_siem.report import write_report
from tests.report import synthetic
from tests.report.conftest import open_report

ALERTS = 50_000
MAX_BYTES = 10_000_000


@pytest.fixture(scope="module")
def big_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[synthetic.Replay, Path, int]:
    replay = synthetic.build(rule_alerts=ALERTS, correlations=200)
    path = tmp_path_factory.mktemp("scale") / "report.html"
    size = write_report(path, replay.alerts, replay.run, replay.detector_stats, replay.events, ["big/"])
    return replay, path, size


def test_fifty_thousand_alerts_give_a_bounded_file(big_report: tuple[synthetic.Replay, Path, int]) -> None:
    replay, path, size = big_report
    assert len(replay.alerts) == ALERTS + 200
    assert path.stat().st_size == size
    assert 0 < size < MAX_BYTES, f"report is {size / 1e6:.1f} MB"


def test_fifty_thousand_alerts_open_and_filter(browser: Any, big_report: tuple[synthetic.Replay, Path, int]) -> None:
    replay, path, _ = big_report
    assert open_report(browser, path, timeout=120) == "1"
    status = browser.find_element(By.ID, "alerts-status")
    assert int(status.get_attribute("data-matching")) == len(replay.alerts)
    assert len(browser.find_elements(By.CSS_SELECTOR, "#alerts-table tbody tr")) == 50
    Select(browser.find_element(By.ID, "filter-level")).select_by_value("0")  # critical
    assert int(status.get_attribute("data-matching")) == sum(a["alert.level"] == "critical" for a in replay.alerts)
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
