"""Engine throughput on one core: events/s, candidate share (mean, p95), peak RSS and a profile.

    python bench/engine_bench.py corpus SIGMA_CHECKOUT [--events 100000] [--profile]
        (a) the whole SigmaHQ corpus on seeded Windows-shaped flat events (target >= 30,000 events/s)
    python bench/engine_bench.py pack [--events 100000] [--profile]
        (b) our rule pack (detections/rules) on the mixed events parsed from samples/ (target >= 100,000 events/s)
    python bench/engine_bench.py load SIGMA_CHECKOUT
        (c) load + compile time of the whole corpus (target < 10 s)
    python bench/engine_bench.py flat SIGMA_CHECKOUT [--events 50000] [--sizes 50,3000]
        (d) cost flat in rules: per-event matching cost with the first N rule files of the corpus, same events
            (target: 3,000 rules <= 2x 50 rules)

Rule loading is excluded from (a) and (b). Each throughput figure is the median of 3 runs over the same events.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from temporal_siem.detections.factory import new_detector  # noqa: E402
from temporal_siem.detections.sigma.ruleset import Ruleset  # noqa: E402

CORPUS_FOLDERS = ("rules", "rules-emerging-threats", "rules-threat-hunting", "rules-compliance", "rules-placeholder")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def corpus_paths(root: str) -> list[Path]:
    return [Path(root) / f for f in CORPUS_FOLDERS if (Path(root) / f).is_dir()]


def sample_events() -> list[dict[str, Any]]:
    """Our formats: every record under samples/ through the real parsers."""
    from temporal_siem.ingest.replay import ReplaySource
    from temporal_siem.parsers.router import ParserRouter

    router = ParserRouter("auto", 8 * 1024 * 1024)
    events: list[dict[str, Any]] = []
    for batch in ReplaySource([str(ROOT / "samples")], batch_size=1000).batches():
        for record in batch:
            events.extend(router.parse(record).events)
    return events


def run(ruleset: Ruleset, events: list[dict[str, Any]], profile: bool) -> None:
    detector = new_detector(ruleset)
    detector.process(events[:1000])  # build the lanes' indexes outside the timing
    timings = []
    for _ in range(3):
        detector = new_detector(ruleset)
        start = time.process_time()  # CPU time of this process: the machine is shared
        for offset in range(0, len(events), 1000):
            detector.process(events[offset:offset + 1000])
        timings.append(time.process_time() - start)
    elapsed = statistics.median(timings)
    bare_timings = []
    for _ in range(3):  # the detector without the enrichers (their cost is theirs: detections/enrichment)
        detector = new_detector(ruleset)
        detector.enrichers = []
        start = time.process_time()
        for offset in range(0, len(events), 1000):
            detector.process(events[offset:offset + 1000])
        bare_timings.append(time.process_time() - start)
    bare_elapsed = statistics.median(bare_timings)
    match_timings = []
    for _ in range(3):  # the matching stage alone: lane, candidates, compiled rules (no enrichment/alerts/correlation)
        start = time.process_time()
        for event in events:
            ruleset.match_indices(event)
        match_timings.append(time.process_time() - start)
    match_elapsed = statistics.median(match_timings)
    shares = sorted(len(ruleset.candidates(e)) / max(1, len(ruleset.rules)) for e in events[:20000])
    alerts = sum(r["matched"] for r in detector.stats()["rules"].values())
    print(f"rules            {len(ruleset.rules)} (load errors {len(ruleset.errors)})")
    print(f"events           {len(events)}")
    print(f"throughput       {len(events) / elapsed:,.0f} events/s on one core "
          f"(median of 3, CPU seconds: {', '.join(f'{t:.2f}' for t in timings)})")
    print(f"per event        {elapsed / len(events) * 1e6:.1f} us (detector: enrichment, matching, alerts, correlation)")
    print(f"no enrichers     {len(events) / bare_elapsed:,.0f} events/s (matching, alerts, correlation)")
    print(f"matching only    {len(events) / match_elapsed:,.0f} events/s ({match_elapsed / len(events) * 1e6:.1f} us/event)")
    print(f"candidate share  mean {statistics.fmean(shares):.3%}  p95 {shares[int(len(shares) * 0.95)]:.3%}")
    print(f"matches          {alerts}")
    for lane in ruleset.lanes:
        print(f"lane {lane.key}: {len(lane.rules)} rules, always {len(lane.index.always)}, witnesses {lane.index.witness_kinds}")
    print(f"peak RSS         {peak_rss_mb():.0f} MB")
    if profile:
        rule_costs(ruleset, events[:20000])
        profiler = cProfile.Profile()
        detector = new_detector(ruleset)
        profiler.enable()
        for offset in range(0, min(len(events), 30000), 1000):
            detector.process(events[offset:offset + 1000])
        profiler.disable()
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(15)
        print(out.getvalue())


def flat(corpus: str, sizes: list[int], count: int) -> None:
    """Per-event matching cost (lane, candidates, rule functions; no enrichment or alert documents) on the same
    seeded Windows events, in batches of 1,000 as the detector matches them, with N rule files: the first 50 of
    ``rules/windows/process_creation``, then the rest of the corpus in path order up to N. Median of 3, with the
    garbage collector set as a run sets it (``collector_for_run``): without it, collections of the 50,000 live
    events moved the 50-rule figure between 1.5 and 5.3 µs from run to run."""
    from temporal_siem.detections.sigma.loader import rule_files
    from tests.sigma.generators import windows_events

    first = rule_files([Path(corpus) / "rules" / "windows" / "process_creation"])[:50]
    files = first + [f for f in rule_files(corpus_paths(corpus)) if f not in set(first)]
    events = windows_events(count)
    costs = {size: _flat_cost(files[:size], events) for size in sizes}
    low, high = min(sizes), max(sizes)
    print(f"cost ratio {high} / {low} rules: {costs[high] / costs[low]:.2f}x (target <= 2x)")


def _flat_cost(files: list[Path], events: list[dict[str, Any]]) -> float:
    """One size of :func:`flat`: per-event matching cost in µs, and its line of output."""
    from temporal_siem.pipeline import collector_for_run

    ruleset = Ruleset.from_paths(files, builtin_rules=False)
    ruleset.match_many(events[:2000])  # build the lanes outside the timing
    timings = []
    matches = 0
    with collector_for_run():
        for _ in range(3):  # in batches of 1,000, as the detector selects candidates (one index call per lane)
            start = time.process_time()
            matches = sum(len(hits) for offset in range(0, len(events), 1000)
                          for hits in ruleset.match_many(events[offset:offset + 1000]))
            timings.append(time.process_time() - start)
    cost = statistics.median(timings) / len(events) * 1e6
    shares = [len(ruleset.candidates(e)) for e in events[:5000]]
    print(f"{len(ruleset.rules):5d} rules: {cost:6.1f} us/event matching, {matches / len(events):.2f} matches/event, "
          f"{statistics.fmean(shares):.1f} candidates/event")
    return cost


def rule_costs(ruleset: Ruleset, events: list[dict[str, Any]]) -> None:
    """Per-rule time (perf_counter_ns around each generated function), top 15: candidates for a better
    witness or a reordered predicate. Also the false-candidate ratio (evaluated but not matched)."""
    from temporal_siem.detections.sigma.values import EventFolds

    spent = [0] * len(ruleset.rules)
    calls = [0] * len(ruleset.rules)
    hits = [0] * len(ruleset.rules)
    functions = ruleset.functions
    clock = time.perf_counter_ns
    for original in events:
        event = ruleset.view(original)
        cache = EventFolds(event)
        for i in ruleset.lane_for(event).index.candidates(event, cache):
            start = clock()
            matched = functions[i](event, cache)
            spent[i] += clock() - start
            calls[i] += 1
            hits[i] += bool(matched)
    total_calls = sum(calls)
    print(f"false candidates {1 - sum(hits) / total_calls if total_calls else 0:.1%} of {total_calls} evaluations")
    print("top rules by evaluation time:")
    for i in sorted(range(len(spent)), key=spent.__getitem__, reverse=True)[:15]:
        rule = ruleset.rules[i]
        print(f"  {spent[i] / 1e6:8.1f} ms  {calls[i]:7} calls  {hits[i]:6} hits  {rule.meta.title[:70]}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("corpus", "pack", "load", "flat"))
    parser.add_argument("--sizes", default="50,3000", help="flat: rule counts to compare")
    parser.add_argument("corpus", nargs="?", help="SigmaHQ checkout (corpus, load)")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    if args.mode in ("corpus", "load", "flat") and not args.corpus:
        parser.error("give the SigmaHQ checkout")
    if args.mode == "load":
        start = time.perf_counter()
        ruleset = Ruleset.from_paths(corpus_paths(args.corpus), builtin_rules=False)
        print(f"load+compile     {time.perf_counter() - start:.2f} s for {len(ruleset.rules)} rules "
              f"({len(ruleset.errors)} errors), peak RSS {peak_rss_mb():.0f} MB")
        return
    if args.mode == "flat":
        flat(args.corpus, [int(n) for n in args.sizes.split(",")], args.events)
        return
    if args.mode == "corpus":
        from tests.sigma.generators import windows_events

        ruleset = Ruleset.from_paths(corpus_paths(args.corpus), builtin_rules=False)
        events = windows_events(args.events)
    else:
        ruleset = Ruleset.from_paths([], builtin_rules=True)
        base = sample_events()
        if not base:
            raise SystemExit("no events parsed from samples/")
        events = [dict(base[i % len(base)]) for i in range(args.events)]
    run(ruleset, events, args.profile)


if __name__ == "__main__":
    main()
