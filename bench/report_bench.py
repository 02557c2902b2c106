"""How the HTML report scales: file size and time until the page is interactive in headless Chromium.

    .venv/bin/python bench/report_bench.py [--alerts 100000]

Prints, for a small run (1,000 alerts, the peer in this invocation) and the big one: alerts, render time in
Python, file size, time from navigation to the table being ready in Chromium, and the
big/small ratios. Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402

from temporal_siem.report import write_report  # noqa: E402
from tests.report import synthetic  # noqa: E402
from tests.report.conftest import CHROME_FLAGS  # noqa: E402


def measure(driver: webdriver.Chrome, alerts: int, folder: Path) -> dict[str, float]:
    replay = synthetic.build(rule_alerts=alerts, correlations=max(10, alerts // 500))
    path = folder / f"report-{alerts}.html"
    started = time.perf_counter()
    size = write_report(path, replay.alerts, replay.run, replay.detector_stats, replay.events, ["bench/"])
    render = time.perf_counter() - started
    started = time.perf_counter()
    driver.get(path.as_uri())
    while driver.execute_script("return document.body && document.body.dataset.reportReady") not in ("1", "error"):
        time.sleep(0.02)
    ready = time.perf_counter() - started
    return {"alerts": len(replay.alerts), "render_s": render, "bytes": size, "ready_s": ready}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=100_000)
    args = parser.parse_args()
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    folder = Path(tempfile.mkdtemp(prefix="tsiem-report-bench-"))
    options.add_argument(f"--user-data-dir={folder / 'profile'}")
    driver = webdriver.Chrome(service=Service(shutil.which("chromedriver") or "chromedriver"), options=options)
    try:
        small = measure(driver, 1_000, folder)
        big = measure(driver, args.alerts, folder)
    finally:
        driver.quit()
        shutil.rmtree(folder, ignore_errors=True)
    for label, row in (("peer: 1k alerts", small), (f"{args.alerts // 1000}k alerts", big)):
        print(f"{label:>16}: {row['alerts']:>7,} alerts  render {row['render_s']:6.2f} s  file {row['bytes'] / 1e6:6.2f} MB  "
              f"ready in Chromium {row['ready_s']:6.2f} s")
    print(f"{'ratio big/small':>16}: alerts x{big['alerts'] / small['alerts']:.0f}  file x{big['bytes'] / small['bytes']:.1f}  "
          f"ready x{big['ready_s'] / max(small['ready_s'], 1e-3):.1f}")


if __name__ == "__main__":
    main()
