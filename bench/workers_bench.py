"""``replay --workers N`` scaling: the same replay with 1 and N workers, wall time, interleaved runs.

    .venv/bin/python bench/workers_bench.py [--sigma SIGMA_CHECKOUT] [--events 200000] [--workers 2] [--repeat 3]

Workloads: ``windows`` = Windows/Sysmon-shaped events through SigmaHQ's process_creation rules (stateless:
every event can go to any worker; needs ``--sigma``), ``mixed`` = the generated mixed-format corpus
(bench/corpus.py) through the shipped pack, whose correlation rules and registries keep the events they can
read in the parent process. Prints events/s (wall), the scaling factor (wall with 1 / wall with N: the median
over back-to-back pairs of runs, and the ratio of the medians), CPU seconds (all processes) and the largest peak
RSS of any one process. The alerts of both runs are compared (same ids). Wall-clock scaling needs idle cores:
on a shared machine it is a lower bound.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def run(cmd: list[str], env: dict[str, str]) -> dict[str, float]:
    stats_file = Path(env["TSIEM_PARALLEL_STATS"])
    stats_file.unlink(missing_ok=True)
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) not in (0, 10):
        raise SystemExit(f"replay failed: {proc.stderr.read().decode()[-2000:] if proc.stderr else ''}")
    cpu = usage.ru_utime + usage.ru_stime
    result = {"wall": wall, "cpu": cpu, "rss": usage.ru_maxrss / 1024, "critical": cpu}
    if stats_file.exists():  # a parallel run: the longest chain of CPU work if every process had a core
        per = orjson.loads(stats_file.read_bytes())
        result["critical"] = max(per["parent_cpu"], per["before_fork_cpu"] + max(per["workers_cpu"] or [0.0]))
    return result


def alert_ids(path: Path) -> set[str]:
    return {orjson.loads(line)["alert"]["id"] for line in path.read_bytes().splitlines()}


def same_alerts(first: Path, second: Path) -> bool:
    """Compared in a child process: Linux carries a process's peak RSS into the children it starts (the
    pre-exec image counts), so reading 200k alerts here inflated every later run's "peak RSS" (252 MB
    reported for a replay whose own peak is 113 MB)."""
    return subprocess.run([sys.executable, __file__, "--same-alerts", str(first), str(second)]).returncode == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sigma", help="SigmaHQ checkout (the windows workload)")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--write", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--same-alerts", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.same_alerts:
        raise SystemExit(0 if alert_ids(Path(args.same_alerts[0])) == alert_ids(Path(args.same_alerts[1])) else 1)
    if args.write:
        kind, path = args.write
        if kind == "windows":
            from tests.sigma.generators import windows_events

            Path(path).write_bytes(b"\n".join(orjson.dumps(e) for e in windows_events(args.events)) + b"\n")
        else:
            from bench.corpus import generate

            Path(path).write_bytes(b"\n".join(generate(args.events, 7)) + b"\n")
        return
    from bench.peer_bench import rule_sets

    ours = str(Path(sys.executable).with_name("temporal-siem"))
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        env = dict(os.environ, TSIEM_CACHE_DIR=str(tmp / "cache"), TSIEM_PARALLEL_STATS=str(tmp / "parallel.json"))
        workloads: dict[str, tuple[Path, list[str]]] = {}
        # corpora written by a child process: this one stays small, so the children's peak RSS is their own
        if args.sigma:
            events = tmp / "windows.ndjson"
            subprocess.run([sys.executable, __file__, "--write", "windows", str(events), "--events", str(args.events)], check=True)
            folder = rule_sets(Path(args.sigma), ["pc"], tmp)["pc"]
            workloads["windows"] = (events, ["--no-builtin-rules", "--rules", str(folder)])
        mixed = tmp / "mixed.jsonl"
        subprocess.run([sys.executable, __file__, "--write", "mixed", str(mixed), "--events", str(args.events)], check=True)
        workloads["mixed"] = (mixed, [])
        for name, (events, rules) in workloads.items():
            runs: dict[int, list[dict[str, float]]] = {1: [], args.workers: []}
            for n in runs:  # warm the ruleset cache
                run([ours, "replay", str(events), *rules, "--workers", str(n), "--quiet", "--alerts",
                     str(tmp / f"a{n}.jsonl"), "--dead-letter", str(tmp / "dead.jsonl")], env)
            same = same_alerts(tmp / "a1.jsonl", tmp / f"a{args.workers}.jsonl")
            for _ in range(args.repeat):
                for n in runs:
                    runs[n].append(run([ours, "replay", str(events), *rules, "--workers", str(n), "--quiet", "--alerts",
                                        str(tmp / f"a{n}.jsonl"), "--dead-letter", str(tmp / "dead.jsonl")], env))
            print(f"{name}: {args.events:,} events; alerts identical with 1 and {args.workers} workers: {same}; "
                  f"load average {os.getloadavg()[0]:.1f} (wall ratios need idle cores)")
            walls = {n: statistics.median(r["wall"] for r in rs) for n, rs in runs.items()}
            for n, rs in runs.items():
                print(f"  workers {n}: {args.events / walls[n]:>9,.0f} events/s wall ({walls[n]:.2f} s), "
                      f"CPU {statistics.median(r['cpu'] for r in rs):.2f} s, largest process peak RSS {max(r['rss'] for r in rs):.0f} MB")
            critical = {n: statistics.median(r["critical"] for r in rs) for n, rs in runs.items()}
            cpu = {n: statistics.median(r["cpu"] for r in rs) for n, rs in runs.items()}
            print(f"  total CPU with {args.workers} workers vs 1: {100 * (cpu[args.workers] / cpu[1] - 1):+.0f} % "
                  f"(the work parallelism adds: what caps wall-clock scaling when every core is busy)")
            # Each 1-worker run and the N-worker run right after it form a pair: the machine's speed drifts (a
            # shared VM: the same one-process replay took 19.5 s, then 24.7 s), and a ratio within a pair cancels
            # most of that drift where a ratio of medians over all runs does not.
            pairs = sorted(a["wall"] / b["wall"] for a, b in zip(runs[1], runs[args.workers], strict=True))
            print(f"  scaling per pair of runs (1 then {args.workers} workers, back to back): median "
                  f"{statistics.median(pairs):.2f}x (all: {', '.join(f'{p:.2f}' for p in pairs)})")
            print(f"  scaling {args.workers} workers / 1: {walls[1] / walls[args.workers]:.2f}x wall (shared machine); "
                  f"{critical[1] / critical[args.workers]:.2f}x by CPU critical path (one process: {critical[1]:.2f} s; "
                  f"{args.workers} workers: longest of parent and parent-before-fork + slowest worker, {critical[args.workers]:.2f} s)")


if __name__ == "__main__":
    main()
