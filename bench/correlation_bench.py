"""Correlation state under load: distinct group keys held open at once, RSS and events/s.

    .venv/bin/python bench/correlation_bench.py                 # 1,000,000 groups (the acceptance bar: < 1 GB RSS)
    .venv/bin/python bench/correlation_bench.py --groups 100000 --snapshot

Every event matches the referenced rule and opens its own group (user.name), all inside one
timespan, so nothing expires: the peak is the cost of N open windows. A second pass revisits the
same groups (one event each) to fire alerts and measures the steady-state rate.
"""

from __future__ import annotations

import argparse
import gc
import resource
import time
from datetime import datetime, timedelta

from sigma.collection import SigmaCollection
from sigma.correlations import SigmaCorrelationRule

from temporal_siem.detections.correlation import CorrelationEngine

RULES = """
title: failed login
name: failed_login
logsource: {product: bench}
detection: {sel: {event.outcome: failure}, condition: sel}
---
title: many failed logins per user
id: 6a1c3f0e-0000-4000-8000-00000000be01
correlation:
  type: event_count
  rules: [failed_login]
  group-by: [user.name]
  timespan: 1d
  condition: {gte: 2}
"""


def rss_mb() -> float:
    """Peak resident set size of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def current_rss_mb() -> float:
    with open("/proc/self/statm", encoding="ascii") as handle:
        pages = int(handle.read().split()[1])
    return pages * resource.getpagesize() / 1024 / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--groups", type=int, default=1_000_000)
    parser.add_argument("--lateness", type=float, default=0.0, help="allowed_lateness_seconds")
    parser.add_argument("--snapshot", action="store_true", help="also time snapshot() and restore()")
    args = parser.parse_args()

    collection = SigmaCollection.from_yaml(RULES)
    collection.resolve_rule_references()
    rules = [r for r in collection.rules if isinstance(r, SigmaCorrelationRule)]
    engine = CorrelationEngine.from_rules(rules, {}, {"allowed_lateness_seconds": args.lateness,
                                                      "max_groups": args.groups + 10})
    base = datetime(2026, 1, 1)  # naive: isoformat() + "Z"
    step = 3600.0 / args.groups  # all groups inside one hour of a one-day timespan
    refs = {"failed_login"}
    gc.collect()
    before = current_rss_mb()

    def events(offset: float, prefix: str):  # type: ignore[no-untyped-def]
        for i in range(args.groups):
            stamp = (base + timedelta(seconds=offset + i * step)).isoformat(timespec="microseconds") + "Z"
            yield {"@timestamp": stamp, "event.id": f"{prefix}{i}", "user.name": f"user{i:07d}", "event.outcome": "failure"}

    started = time.perf_counter()
    for event in events(0, "a"):
        engine.observe(event, refs)
    open_seconds = time.perf_counter() - started
    groups = engine.stats()["groups"]
    gc.collect()
    held = current_rss_mb()
    print(f"open groups        {groups:>12,}")
    print(f"first pass         {args.groups / open_seconds:>12,.0f} events/s  ({open_seconds:.1f}s)")
    print(f"RSS now            {held:>12,.0f} MB  (state: {held - before:,.0f} MB, {(held - before) * 1e6 / max(groups, 1):,.0f} bytes/group)")

    if args.snapshot:
        started = time.perf_counter()
        state = engine.snapshot()
        dumped = time.perf_counter() - started
        started = time.perf_counter()
        fresh = CorrelationEngine.from_rules(rules, {}, {"allowed_lateness_seconds": args.lateness, "max_groups": args.groups + 10})
        fresh.restore(state)
        loaded = time.perf_counter() - started
        print(f"snapshot           {len(state) / 1e6:>12,.1f} MB  dump {dumped:.1f}s, restore {loaded:.1f}s ({fresh.stats()['groups']:,} groups)")
        del fresh, state
        gc.collect()

    started = time.perf_counter()
    fired = 0
    for event in events(3600.0, "b"):
        fired += len(engine.observe(event, refs))
    fired += len(engine.finish())
    second = time.perf_counter() - started
    print(f"second pass        {args.groups / second:>12,.0f} events/s  ({second:.1f}s, {fired:,} alerts)")
    print(f"peak RSS           {rss_mb():>12,.0f} MB")


if __name__ == "__main__":
    main()
