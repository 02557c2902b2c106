"""End-to-end replay benchmark: a generated mixed-format corpus through parsers and the shipped rules.

    .venv/bin/python bench/run.py [--events N] [--seed S] [--formats a,b] [--no-rules]

Prints events/s for parse only and for parse+detect, and the peak RSS. Runs in this one process on one
core; rule loading and corpus generation are excluded from the timings.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.corpus import generate
from temporal_siem.detections.factory import NullDetector, build_detector
from temporal_siem.ingest.replay import ReplaySource
from temporal_siem.parsers.router import ParserRouter
from temporal_siem.pipeline import Pipeline
from temporal_siem.sinks.file import FileSink


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--formats", default="")
    parser.add_argument("--no-rules", action="store_true")
    parser.add_argument("--write-corpus", metavar="FILE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write_corpus:
        lines = generate(args.events, args.seed, [f for f in args.formats.split(",") if f] or None)
        Path(args.write_corpus).write_bytes(b"\n".join(lines) + b"\n")
        return
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.jsonl"
        # A child process generates the corpus, so the peak RSS printed below is the pipeline's own.
        subprocess.run([sys.executable, __file__, "--events", str(args.events), "--seed", str(args.seed),
                        "--formats", args.formats, "--write-corpus", str(corpus)], check=True)
        size_mb = corpus.stat().st_size / 1e6
        print(f"corpus: {args.events:,} records, {size_mb:.1f} MB (seed {args.seed})")
        t0 = time.perf_counter()
        # As `temporal-siem replay` does: a finite replay keeps correlation state to the end (unbounded lateness),
        # since the generated corpus is not in time order.
        options = {"correlation": {"allowed_lateness_seconds": -1}}
        detector = NullDetector() if args.no_rules else build_detector([], builtin_rules=True, options=options)
        print(f"rules loaded and compiled in {time.perf_counter() - t0:.2f} s")
        for label, det in (("parse only", NullDetector()), ("parse + detect", detector)):
            alerts = FileSink(path=str(Path(tmp) / "alerts.jsonl"), append=False)
            stats = Pipeline(ReplaySource([str(corpus)], batch_size=2000), ParserRouter(), det, alert_sinks=[alerts],
                             dead_letter=FileSink(path=str(Path(tmp) / "dead.jsonl"), append=False)).run()
            print(f"{label:15s} {stats.events:>9,} events in {stats.elapsed:6.2f} s = {stats.events_per_second:>9,.0f} events/s;"
                  f" {stats.alerts:,} alerts; {sum(stats.dead_lettered.values()):,} dead-lettered")
    print(f"peak RSS: {peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
