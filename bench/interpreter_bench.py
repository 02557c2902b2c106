"""This checkout's venv beside another venv of the same code (another interpreter), in A/B pairs.

    .venv/bin/python bench/interpreter_bench.py --baseline OTHER_VENV SIGMA_CHECKOUT [--pairs 5] [--events 100000]

Why pairs: the interpreter is the only difference, and on a shared or throttled machine the speed of the
machine itself drifts by more than that difference over minutes. Each pair runs both venvs back to back (the
order alternates) and is compared on its own; the median pair is the figure. Workloads, each a fresh
``temporal-siem replay --workers 1`` process (start-up and rule load included):

* ``start``: an empty file through the shipped pack (imports, the warm compiled-ruleset cache),
* ``50``: Sysmon process-creation events (bench/peer_bench.py's) through the first 50 SigmaHQ
  ``process_creation`` rules: parsing-bound,
* ``pc``: the same events through every ``process_creation`` rule (1,433): matching-bound,
* ``mixed``: the generated mixed-format corpus (bench/corpus.py, a third of ``--events``) through the shipped
  pack, alerts written.

Prints CPU seconds (user + system of the child), events per CPU second and peak RSS of each side, and the
baseline/ours ratio of every pair. Make the other venv with ``make venv VENV=OTHER_VENV PYTHON=/path/to/python3``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.peer_bench import rule_sets, timed  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sigma", help="SigmaHQ checkout")
    parser.add_argument("--baseline", required=True, help="the other virtual env (its bin/temporal-siem is run)")
    parser.add_argument("--pairs", type=int, default=5)
    parser.add_argument("--events", type=int, default=100_000)
    args = parser.parse_args()
    ours = str(Path(sys.executable).with_name("temporal-siem"))
    other = str(Path(args.baseline) / "bin" / "temporal-siem")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        events, mixed, empty = tmp / "sysmon.jsonl", tmp / "mixed.jsonl", tmp / "empty.jsonl"
        empty.write_bytes(b"")
        subprocess.run([sys.executable, str(ROOT / "bench" / "peer_bench.py"), "--write-events", str(events),
                        "--events", str(args.events), "x"], check=True)
        subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--events", str(args.events // 3),
                        "--write-corpus", str(mixed)], check=True)
        with mixed.open("rb") as handle:
            mixed_records = sum(1 for _ in handle)
        folders = rule_sets(Path(args.sigma), ["50", "pc"], tmp)
        quiet = ["--workers", "1", "--quiet"]
        workloads = {
            "start": (0, ["replay", str(empty), *quiet, "--alerts", str(tmp / "a.jsonl")]),
            "50": (args.events, ["replay", str(events), "--no-builtin-rules", "--rules", str(folders["50"]), *quiet,
                                 "--summary-json", str(tmp / "s.json")]),
            "pc": (args.events, ["replay", str(events), "--no-builtin-rules", "--rules", str(folders["pc"]), *quiet,
                                 "--summary-json", str(tmp / "s.json")]),
            "mixed": (mixed_records, ["replay", str(mixed), *quiet, "--alerts", str(tmp / "a.jsonl")]),
        }
        env = dict(os.environ)  # the user's caches (compiled rule sets, Hyperscan databases): warm for both sides
        for name, (count, command) in workloads.items():
            mine: list[dict[str, float]] = []
            theirs: list[dict[str, float]] = []
            for pair in range(args.pairs):
                order = [(ours, mine), (other, theirs)]
                for exe, results in order if pair % 2 == 0 else reversed(order):
                    results.append(timed([exe, *command], None, tmp / "out.txt", env))
            ratios = sorted(t["cpu"] / m["cpu"] for m, t in zip(mine, theirs, strict=True))
            for label, results in (("ours", mine), ("baseline", theirs)):
                cpu = statistics.median(r["cpu"] for r in results)
                rate = f"{count / cpu:,.0f} events/s per core, " if count else ""
                print(f"{name:6} {label:8} {rate}CPU {cpu:.2f} s (median of {args.pairs}), "
                      f"peak RSS {max(r['rss'] for r in results):.0f} MB")
            print(f"{name:6} baseline/ours CPU per pair: {', '.join(f'{r:.2f}' for r in ratios)}; "
                  f"median {statistics.median(ratios):.2f}x", flush=True)


if __name__ == "__main__":
    main()
