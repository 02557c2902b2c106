"""Parser throughput per format: every ``samples/<format>`` file replayed many times through ``ParserRouter``.

    .venv/bin/python bench/parse_bench.py [--seconds 2] [--formats a,b] [--forced] [--cpu N] [--json]

Records are framed once (file reading and gzip are not what is measured), then parsed in a loop for about
``--seconds`` per format, on one core (pinned with sched_setaffinity where available). ``auto`` detection
is what a mixed Kafka topic pays; ``--forced`` names the format, as a per-format topic would. Prints events/s
and records/s per format and the process's peak RSS. A benchmark, not a test: nothing here asserts a speed.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from temporal_siem.ingest.replay import ReplaySource
from temporal_siem.kernel.records import RawRecord
from temporal_siem.parsers.registry import PARSERS
from temporal_siem.parsers.router import ParserRouter

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def framed_records(folder: Path) -> list[RawRecord]:
    source = ReplaySource([str(folder)], batch_size=10_000)
    return [record for batch in source.batches() for record in batch]


def measure(format_name: str, records: list[RawRecord], seconds: float, forced: bool) -> dict[str, Any]:
    router = ParserRouter(format_name if forced else "auto")
    for record in records:  # warm-up: imports, regex compilation, caches
        router.parse(record)
    events = dead = rounds = 0
    started = time.perf_counter()
    deadline = started + seconds
    while True:
        for record in records:
            result = router.parse(record)
            events += len(result.events)
            dead += len(result.dead)
        rounds += 1
        if time.perf_counter() >= deadline:
            break
    elapsed = time.perf_counter() - started
    return {"format": format_name, "records": len(records) * rounds, "events": events, "dead": dead, "seconds": round(elapsed, 3),
            "events_per_s": round(events / elapsed), "records_per_s": round(len(records) * rounds / elapsed)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=2.0, help="parse time per format")
    parser.add_argument("--formats", default="", help="comma-separated; default: every registered format with samples")
    parser.add_argument("--forced", action="store_true", help="force the format instead of auto-detection")
    parser.add_argument("--cpu", type=int, default=None, help="pin to this CPU (default: the first allowed one)")
    parser.add_argument("--json", action="store_true", help="one JSON object per format instead of a table")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        allowed = sorted(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {args.cpu if args.cpu is not None else allowed[0]})
    wanted = [f for f in args.formats.split(",") if f] or sorted(name for name in PARSERS if (SAMPLES / name).is_dir())
    rows = []
    for name in wanted:
        records = framed_records(SAMPLES / name)
        if not records:
            continue
        rows.append(measure(name, records, args.seconds, args.forced))
    if args.json:
        import orjson

        for row in rows:
            print(orjson.dumps(row | {"peak_rss_mb": round(peak_rss_mb(), 1)}).decode())
        return
    print(f"{'format':<22}{'events/s':>12}{'records/s':>12}{'events':>10}{'dead':>6}")
    for row in rows:
        print(f"{row['format']:<22}{row['events_per_s']:>12,}{row['records_per_s']:>12,}{row['events']:>10,}{row['dead']:>6}")
    print(f"peak RSS {peak_rss_mb():.1f} MB ({'forced format' if args.forced else 'auto-detection'}, one core)")


if __name__ == "__main__":
    main()
