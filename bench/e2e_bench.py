"""Mixed formats end to end, whole process, per core, beside a baseline build in the same invocation.

    .venv/bin/python bench/e2e_bench.py --baseline OTHER_CHECKOUT/.venv/bin/temporal-siem [--events 100000] [--repeat 3]

The generated mixed-format corpus (``bench/corpus.py``: every format, envelopes, text lines) goes through
``temporal-siem replay FILE --workers 1 --quiet --alerts FILE`` with the shipped rule pack (correlations and
enrichers included) and its compiled-ruleset cache warm, once with this checkout and once with ``--baseline``
(e.g. the ``temporal-siem`` of a checkout of the previous commit), alternating, so load on a shared machine hits
both alike. Events per CPU second of each child (user + system; process start and rule load included), the ratio,
peak RSS, and whether both raised the same alerts per rule. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]


def timed(cmd: list[str], env: dict[str, str]) -> dict[str, float]:
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 10):
        raise SystemExit(f"{cmd[0]} exited {code}: {proc.stderr.read().decode(errors='replace')[-2000:] if proc.stderr else ''}")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss": usage.ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", required=True, help="the temporal-siem executable to compare against")
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    ours = str(Path(sys.executable).with_name("temporal-siem"))
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        corpus = tmp / "corpus.jsonl"
        subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--events", str(args.events), "--seed", str(args.seed),
                        "--write-corpus", str(corpus)], check=True)
        # Counted a megabyte at a time: Linux carries this process's peak RSS into the children it starts, so
        # reading the corpus whole here showed ~200 MB as every replay's peak (bench/workers_bench.py, same cause).
        with corpus.open("rb") as handle:
            lines = sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b""))
        print(f"corpus: {lines:,} mixed-format records, {corpus.stat().st_size / 1e6:.0f} MB")
        builds = {"ours": ours, "baseline": args.baseline}
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in builds}
        counts: dict[str, Counter[str]] = {}
        events: dict[str, int] = {}
        for label, exe in builds.items():  # warm each build's ruleset cache (separate directories)
            env = dict(os.environ, TSIEM_CACHE_DIR=str(tmp / f"cache-{label}"))
            timed([exe, "replay", str(corpus), "--workers", "1", "--quiet", "--alerts", str(tmp / "warm.jsonl")], env)
        for _ in range(args.repeat):
            for label, exe in builds.items():
                env = dict(os.environ, TSIEM_CACHE_DIR=str(tmp / f"cache-{label}"))
                summary = tmp / f"summary-{label}.json"
                runs[label].append(timed([exe, "replay", str(corpus), "--workers", "1", "--quiet", "--summary-json", str(summary),
                                          "--alerts", str(tmp / f"alerts-{label}.jsonl"),
                                          "--dead-letter", str(tmp / f"dead-{label}.jsonl")], env))
                doc = orjson.loads(summary.read_bytes())
                counts[label] = Counter(doc["alerts_by_rule"])
                events[label] = doc["events"]
        rates = {}
        for label, results in runs.items():
            cpu = statistics.median(r["cpu"] for r in results)
            rates[label] = events[label] / cpu
            print(f"  {label:9s} {rates[label]:>9,.0f} events/s per core ({events[label]:,} events; CPU {cpu:.2f} s; "
                  f"wall {statistics.median(r['wall'] for r in results):.2f} s; peak RSS {max(r['rss'] for r in results):.0f} MB)")
        print(f"  ratio ours/baseline: {rates['ours'] / rates['baseline']:.2f}x")
        same = counts["ours"] == counts["baseline"] and events["ours"] == events["baseline"]
        print(f"  {sum(counts['ours'].values()):,} alerts; " + ("events and per-rule alert counts identical" if same else
              f"DIFFERENT: baseline {sum(counts['baseline'].values()):,} alerts, {events['baseline']:,} events"))


if __name__ == "__main__":
    main()
