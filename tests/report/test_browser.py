"""The report in a real headless Chromium: loads offline without console errors, shows the right counts, filters."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from temporal_siem.report import write_report
from temporal_siem.report.model import entities_of
from tests.report import synthetic
from tests.report.conftest import open_report


@pytest.fixture(scope="module")
def known(tmp_path_factory: pytest.TempPathFactory) -> tuple[synthetic.Replay, Path]:
    replay = synthetic.build()
    path = tmp_path_factory.mktemp("report") / "report.html"
    write_report(path, replay.alerts, replay.run, replay.detector_stats, replay.events, ["samples/"])
    return replay, path


@pytest.fixture(scope="module")
def page(browser: Any, known: tuple[synthetic.Replay, Path]) -> Any:
    _, path = known
    assert open_report(browser, path) == "1"
    return browser


def _status(driver: Any) -> tuple[int, str]:
    element = driver.find_element(By.ID, "alerts-status")
    return int(element.get_attribute("data-matching")), element.text


def _rows(driver: Any) -> list[list[str]]:
    return [[td.text for td in tr.find_elements(By.TAG_NAME, "td")] for tr in driver.find_elements(By.CSS_SELECTOR, "#alerts-table tbody tr")]


def _click(driver: Any, element: Any) -> None:
    """Scroll to the middle first: the sticky header would otherwise take the click."""
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", element)
    element.click()


def _reset(driver: Any) -> None:
    _click(driver, driver.find_element(By.ID, "filter-clear"))


def test_loads_without_console_errors_or_network(page: Any, known: tuple[synthetic.Replay, Path], artifacts: Path) -> None:
    errors = [entry for entry in page.get_log("browser") if entry["level"] in ("SEVERE", "WARNING")]
    assert errors == []
    # Nothing was fetched: the only resource is the page itself.
    resources = page.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert resources == []
    assert page.execute_script("return window.__pwned") is None
    page.save_screenshot(str(artifacts / "report.png"))


def test_summary_and_charts_have_the_replay_counts(page: Any, known: tuple[synthetic.Replay, Path]) -> None:
    replay, _ = known
    alerts = page.find_element(By.CSS_SELECTOR, '.card[data-metric="alerts"] .value').text
    assert alerts == f"{len(replay.alerts):,}"
    read = page.find_element(By.CSS_SELECTOR, '.card[data-metric="records"] .value').text
    assert read == f"{replay.run['records_read']:,}"
    chart = page.find_element(By.ID, "timeline-chart")
    assert int(chart.get_attribute("data-total")) == len(replay.alerts)
    bars = page.find_elements(By.CSS_SELECTOR, "#timeline-chart rect.bar")
    per_level: Counter[str] = Counter()
    for bar in bars:
        per_level[bar.get_attribute("data-level")] += int(bar.get_attribute("data-count"))
    assert per_level == Counter(a["alert.level"] for a in replay.alerts)
    by_rule = Counter(a["rule.id"] for a in replay.alerts)
    rows = page.find_elements(By.CSS_SELECTOR, "#rules-table tbody tr")
    assert {r.get_attribute("data-rule-id"): int(r.find_element(By.CSS_SELECTOR, "td[data-count]").get_attribute("data-count")) for r in rows} == by_rule
    kms = page.find_element(By.CSS_SELECTOR, f'#rules-table tr[data-rule-id="{synthetic.RULES[2].id}"]').text
    assert "attack.t1485" in kms and "critical" in kms


def test_correlations_show_contributing_events(page: Any, known: tuple[synthetic.Replay, Path]) -> None:
    blocks = page.find_elements(By.CSS_SELECTOR, "details.correlation")
    assert len(blocks) == 6
    _click(page, blocks[0].find_element(By.TAG_NAME, "summary"))
    rows = blocks[0].find_elements(By.CSS_SELECTOR, "table.contributing tbody tr")
    assert len(rows) == 6
    assert sum("not retained" in r.text for r in rows) == 1
    assert "burst0@example.com" in rows[0].text
    last = blocks[-1]
    _click(page, last.find_element(By.TAG_NAME, "summary"))
    assert "“Burst of API key creations by one user” (a referenced correlation)" in last.text


def test_table_paginates(page: Any, known: tuple[synthetic.Replay, Path]) -> None:
    replay, _ = known
    _reset(page)
    matching, text = _status(page)
    assert matching == len(replay.alerts) and text.startswith("Showing 1\u201350 of 246")
    assert len(_rows(page)) == 50
    timestamps = [r[0] for r in _rows(page)]
    assert timestamps == sorted(timestamps) == sorted(a["@timestamp"] for a in replay.alerts)[:50]
    for _ in range(4):
        _click(page, page.find_element(By.ID, "page-next"))
    assert len(_rows(page)) == len(replay.alerts) - 200
    assert page.find_element(By.ID, "page-next").get_attribute("disabled") == "true"


def test_filters_by_rule_severity_type_and_entity(page: Any, known: tuple[synthetic.Replay, Path]) -> None:
    replay, _ = known
    _reset(page)
    rule = synthetic.RULES[2]
    select = Select(page.find_element(By.ID, "filter-rule"))
    select.select_by_visible_text(f"{rule.title} ({sum(a['rule.id'] == rule.id for a in replay.alerts)})")
    assert _status(page)[0] == sum(a["rule.id"] == rule.id for a in replay.alerts)
    assert {r[2] for r in _rows(page)} == {rule.title}

    _reset(page)
    Select(page.find_element(By.ID, "filter-level")).select_by_value("1")  # high
    assert _status(page)[0] == sum(a["alert.level"] == "high" for a in replay.alerts)
    Select(page.find_element(By.ID, "filter-type")).select_by_value("1")
    assert _status(page)[0] == 6
    assert {r[3] for r in _rows(page)} == {"correlation"}

    _reset(page)
    user = "user13@example.com"
    page.find_element(By.ID, "filter-entity").send_keys(user)
    expected = sum(any(value == user for _, value in entities_of(a)) for a in replay.alerts)
    assert expected > 0
    page.implicitly_wait(0)
    for _ in range(40):
        if _status(page)[0] == expected:
            break
        page.execute_script("return new Promise(r => setTimeout(r, 50))")
    assert _status(page)[0] == expected
    assert all(user in r[7] for r in _rows(page))


def test_entity_link_filters_and_row_shows_event(page: Any, known: tuple[synthetic.Replay, Path]) -> None:
    replay, _ = known
    _reset(page)
    link = page.find_element(By.CSS_SELECTOR, '.entities table[data-entity-kind="namespace"] a.entity-link')
    namespace = link.get_attribute("data-entity")
    page.execute_script("arguments[0].click()", link)
    assert _status(page)[0] == sum(a.get("temporal.namespace") == namespace for a in replay.alerts)
    _click(page, page.find_element(By.CSS_SELECTOR, "#alerts-table tbody tr"))
    detail = page.find_element(By.ID, "alert-detail")
    event = json.loads(detail.find_element(By.TAG_NAME, "pre").text)
    assert event["temporal.namespace"] == namespace
    assert "rule.id" not in event and "alert.id" not in event
    assert event["event.id"].startswith("evt-")


def test_hostile_text_is_shown_not_run(page: Any, known: tuple[synthetic.Replay, Path]) -> None:
    _reset(page)
    page.find_element(By.ID, "filter-entity").send_keys("onerror")
    for _ in range(40):
        if _status(page)[0] == 1:
            break
        page.execute_script("return new Promise(r => setTimeout(r, 50))")
    rows = _rows(page)
    assert len(rows) == 1 and synthetic.HOSTILE_USER in rows[0][7]
    assert page.find_elements(By.CSS_SELECTOR, "#alerts-table img, .entities img") == []
    assert page.execute_script("return window.__pwned") is None


def test_correlation_detail_lists_retained_events(page: Any) -> None:
    _reset(page)
    Select(page.find_element(By.ID, "filter-type")).select_by_value("1")
    _click(page, page.find_element(By.CSS_SELECTOR, "#alerts-table tbody tr"))
    detail = page.find_element(By.ID, "alert-detail").text
    assert "Contributing events (5 of 6 retained)" in detail
    assert "evt-gone (not retained by the replay)" in detail


def test_rows_open_from_the_keyboard(page: Any) -> None:
    from selenium.webdriver.common.keys import Keys

    _reset(page)
    page.execute_script("document.getElementById('alert-detail').hidden = true")
    row = page.find_elements(By.CSS_SELECTOR, "#alerts-table tbody tr")[2]
    page.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].focus()", row)
    row.send_keys(Keys.ENTER)
    detail = page.find_element(By.ID, "alert-detail")
    assert detail.is_displayed() and row.find_elements(By.TAG_NAME, "td")[2].text in detail.text


def test_brushing_the_timeline_narrows_the_table(page: Any, known: tuple[synthetic.Replay, Path]) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    from temporal_siem.report.model import parse_time

    replay, _ = known
    _reset(page)
    chart = page.find_element(By.ID, "timeline-chart")
    page.execute_script("arguments[0].scrollIntoView({block: 'center'})", chart)
    width = chart.size["width"]
    # Drag over the left half of the plot: the table keeps exactly the alerts of the buckets under the brush.
    ActionChains(page).move_to_element_with_offset(chart, -width // 2 + 5, 0).click_and_hold() \
        .move_by_offset(width // 2, 0).release().perform()
    chip = page.find_element(By.ID, "filter-time")
    assert chip.is_displayed() and "time" in chip.text
    start, step, buckets = (float(chart.get_attribute(n)) for n in ("data-start", "data-step", "data-buckets"))
    left, plot_w = (float(chart.get_attribute(n)) for n in ("data-left", "data-plot-width"))
    brush = page.find_element(By.ID, "timeline-brush")
    lo = float(brush.get_attribute("x"))
    hi = lo + float(brush.get_attribute("width"))
    first = int((lo - left) / plot_w * buckets)
    last = -int(-(hi - left) / plot_w * buckets // 1)
    t0, t1 = start + first * step, start + last * step
    expected = sum(1 for a in replay.alerts if (t := parse_time(a.get("@timestamp"))) is not None and t0 <= t < t1)
    matching = _status(page)[0]
    assert 0 < matching < len(replay.alerts)
    assert matching == expected
    _reset(page)
    assert page.find_element(By.ID, "filter-time").is_displayed() is False
    assert _status(page)[0] == len(replay.alerts)


def test_user_click_drills_down_and_export_has_the_filtered_rows(page: Any) -> None:
    _reset(page)
    link = page.find_element(By.CSS_SELECTOR, '.entities table[data-entity-kind="user"] a.entity-link')
    user = link.get_attribute("data-entity")
    page.execute_script("arguments[0].click()", link)
    matching = _status(page)[0]
    assert matching > 0 and all(user.lower() in r[7].lower() for r in _rows(page))
    times = [r[0] for r in _rows(page)]
    assert times == sorted(times)  # the entity's alerts in time order
    # The export builds the file from the filtered rows only (checked on the generated text, not a download dialog).
    csv_text = page.execute_script(
        "var rows = []; var orig = URL.createObjectURL; var blob = null;"
        "URL.createObjectURL = function (b) { blob = b; return orig.call(URL, b); };"
        "document.getElementById('export-csv').click(); URL.createObjectURL = orig;"
        "return blob.text();")
    lines = csv_text.strip().split("\r\n")
    assert lines[0].startswith("@timestamp,alert.id,level,rule.id")
    assert len(lines) - 1 == matching
    assert page.find_element(By.TAG_NAME, "body").get_attribute("data-last-export-rows") == str(matching)


def test_attack_matrix_and_severity_order(page: Any, known: tuple[synthetic.Replay, Path]) -> None:
    replay, _ = known
    levels = [r.find_element(By.CSS_SELECTOR, ".badge").text for r in page.find_elements(By.CSS_SELECTOR, "#rules-table tbody tr")]
    rank = {"critical": 0, "high": 1, "medium": 2, "low": 3, "informational": 4}
    assert [rank.get(lv, 5) for lv in levels] == sorted(rank.get(lv, 5) for lv in levels)
    cells = page.find_elements(By.CSS_SELECTOR, "#attack-matrix li[data-technique]")
    assert cells
    techniques = {c.get_attribute("data-technique") for c in cells}
    tagged = {t.split(".", 1)[1].upper() for a in replay.alerts for t in a.get("tags") or [] if t.lower().startswith("attack.t")}
    assert tagged and tagged <= techniques
