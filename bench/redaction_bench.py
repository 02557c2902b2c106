"""What secret redaction costs the parse hot path: every ``samples/<format>`` record parsed three ways.

    .venv/bin/python bench/redaction_bench.py [--seconds 1] [--formats a,b]

* ``scan``  - as shipped: one Hyperscan pass over the raw bytes decides which checks a record needs;
* ``none``  - the peer with no redaction at all (the scan forced to "clean"): the floor;
* ``every`` - every check on every record (the scan forced to "both"), as before the scan existed.

Records are split into those the scan finds clean and those it does not, because the samples hold far more
secrets than production logs. Prints events/s per format and mode, the ratio ``scan / none`` (1.00 = free),
and the peak RSS. One core, CPU time. A benchmark, not a test: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from temporal_siem.ingest.replay import ReplaySource
from temporal_siem.kernel import secrets
from temporal_siem.kernel.records import RawRecord
from temporal_siem.parsers.router import ParserRouter

SAMPLES = Path(__file__).resolve().parents[1] / "samples"
REAL_SCAN = secrets.scan_record


def records_of(folder: Path) -> list[RawRecord]:
    source = ReplaySource([str(folder)], batch_size=10_000)
    return [record for batch in source.batches() for record in batch]


def events_per_second(records: list[RawRecord], seconds: float) -> float:
    router = ParserRouter()
    for record in records:
        router.parse(record)
    events = 0
    started = time.process_time()
    while time.process_time() - started < seconds:
        for record in records:
            events += len(router.parse(record).events)
    return events / (time.process_time() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--formats", default="")
    args = parser.parse_args()
    formats = args.formats.split(",") if args.formats else sorted(p.name for p in SAMPLES.iterdir() if p.is_dir())
    modes = {"scan": REAL_SCAN, "none": lambda data: 0, "every": lambda data: secrets.BOTH}
    print(f"{'format':<22}{'records':>9}  {'mode':<6}{'scan ev/s':>11}{'none ev/s':>11}{'every ev/s':>12}{'scan/none':>11}")
    for name in formats:
        every_record = records_of(SAMPLES / name)
        clean = [r for r in every_record if REAL_SCAN(r.data) == 0]
        dirty = [r for r in every_record if REAL_SCAN(r.data) != 0]
        for label, records in (("clean", clean), ("dirty", dirty)):
            if not records:
                continue
            rates = {}
            for mode, scan in modes.items():
                secrets.scan_record = scan  # type: ignore[assignment]
                try:
                    rates[mode] = events_per_second(records, args.seconds)
                finally:
                    secrets.scan_record = REAL_SCAN
            print(f"{name:<22}{len(records):>9}  {label:<6}{rates['scan']:>11,.0f}{rates['none']:>11,.0f}"
                  f"{rates['every']:>12,.0f}{rates['scan'] / rates['none']:>11.2f}")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f} MB (one core, CPU time)")


if __name__ == "__main__":
    main()
