"""Instructions per event of this build beside a baseline build, counted by Valgrind: an A/B that the machine's
load cannot move.

    .venv/bin/python bench/instructions_bench.py --baseline OTHER_CHECKOUT/.venv/bin/temporal-siem \\
        [--sigma SIGMA_CHECKOUT] [--events 20000] [--workloads windows50,mixed]

Why: on the shared 2-core build machine the CPU time of one run moves by up to 2x within minutes (rsigma alone
measured 112,000-213,000 events/s on the same run), so a 5-10 % change needs many interleaved pairs of the
time-based benches (``peer_bench.py``, ``e2e_bench.py``) and still reads as noise. The number of instructions a
run executes does not depend on the neighbours: two runs of the same build differ by well under 0.5 %.
It is a proxy, not a speed: it does not see cache misses or branch mispredictions, so a change that trades
instructions for memory traffic must still be confirmed by the time-based benches, and their events/s per core
stay the figures the targets are measured in.

Each workload is run as ``temporal-siem replay FILE --workers 1 --quiet`` under
``valgrind --tool=cachegrind --cache-sim=no`` (counting only), once on ``--events`` records and once on an empty
file; the difference divided by the events is the per-event figure, the empty run is the start-up (imports and
rule load, compiled-ruleset cache warm). ``PYTHONHASHSEED=0`` for both builds. Workloads:

* ``windows50``: Sysmon process-creation events (``peer_bench.py``'s, seeded) and the first 50 SigmaHQ
  process_creation rules (needs ``--sigma``): the parse path and little matching;
* ``windows_pc``: the same events and every process_creation rule of the corpus (1,433);
* ``mixed``: the generated mixed-format corpus (``bench/run.py --write-corpus``) with the shipped rule pack.

Valgrind runs a process ~50x slower: 20,000 events take about 40 s per run and workload. Both builds run at the
same time (two cores). Alerts per rule are compared and any difference printed.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

_REFS = re.compile(rb"I\s+refs:\s+([\d,]+)")


def instructions(cmd: list[str], env: dict[str, str]) -> int:
    """Instructions the command executed (user space, the whole process), by cachegrind without cache simulation."""
    proc = subprocess.run(["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null", *cmd],
                          env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    found = _REFS.search(proc.stderr)
    if proc.returncode not in (0, 10) or found is None:
        raise SystemExit(f"{cmd[0]} exited {proc.returncode} under valgrind: {proc.stderr.decode(errors='replace')[-2000:]}")
    return int(found.group(1).replace(b",", b""))


def workload_files(name: str, tmp: Path, events: int, sigma: Path | None) -> tuple[Path, list[str]]:
    """The input file and the rule options of a workload."""
    if name in ("windows50", "windows_pc"):
        if sigma is None:
            raise SystemExit(f"{name} needs --sigma SIGMA_CHECKOUT")
        from bench.peer_bench import process_creation_events, rule_sets

        set_name = "50" if name == "windows50" else "pc"
        rules = rule_sets(sigma, [set_name], tmp)[set_name]
        data = tmp / f"{name}.jsonl"
        with data.open("wb") as out:
            for event in process_creation_events(events):
                out.write(orjson.dumps(event) + b"\n")
        return data, ["--no-builtin-rules", "--rules", str(rules)]
    if name == "mixed":
        data = tmp / "mixed.jsonl"
        subprocess.run([sys.executable, str(ROOT / "bench" / "run.py"), "--events", str(events), "--seed", "7",
                        "--write-corpus", str(data)], check=True, stdout=subprocess.DEVNULL)
        return data, []
    raise SystemExit(f"unknown workload {name!r} (windows50, windows_pc, mixed)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", required=True, help="the temporal-siem executable to compare against")
    parser.add_argument("--sigma", type=Path, help="a SigmaHQ checkout (for the windows workloads)")
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--workloads", default="windows50,mixed")
    args = parser.parse_args()
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not on PATH (Debian: apt-get install valgrind)")
    builds = {"ours": str(Path(sys.executable).with_name("temporal-siem")), "baseline": args.baseline}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        empty = tmp / "empty.jsonl"
        empty.write_bytes(b"")
        for name in args.workloads.split(","):
            data, rule_args = workload_files(name, tmp, args.events, args.sigma)

            def run(label: str, path: Path, data_name: str = name, rule_args: list[str] = rule_args) -> tuple[int, dict[str, int]]:
                env = dict(os.environ, PYTHONHASHSEED="0", TSIEM_CACHE_DIR=str(tmp / f"cache-{label}"))
                summary = tmp / f"summary-{label}-{data_name}-{path.name}.json"
                cmd = [builds[label], "replay", str(path), "--workers", "1", "--quiet", *rule_args, "--summary-json", str(summary),
                       "--alerts", str(tmp / f"alerts-{label}.jsonl"), "--dead-letter", str(tmp / f"dead-{label}.jsonl")]
                subprocess.run(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)  # warm cache
                count = instructions(cmd, env)
                return count, orjson.loads(summary.read_bytes())["alerts_by_rule"]

            with ThreadPoolExecutor(2) as pool:
                full = dict(zip(builds, pool.map(lambda label, data=data: run(label, data), builds), strict=True))
                start = dict(zip(builds, pool.map(lambda label: run(label, empty), builds), strict=True))
            per_event = {label: (full[label][0] - start[label][0]) / args.events for label in builds}
            print(f"{name}: {args.events:,} events")
            for label in builds:
                print(f"  {label:9s} {per_event[label]:>11,.0f} instructions per event; start-up {start[label][0] / 1e9:.2f} G")
            print(f"  ratio baseline/ours per event: {per_event['baseline'] / per_event['ours']:.3f}x; "
                  f"start-up {start['baseline'][0] / start['ours'][0]:.3f}x")
            alerts = {label: full[label][1] for label in builds}
            print("  alerts per rule identical" if alerts["ours"] == alerts["baseline"] else
                  f"  ALERTS DIFFER: ours {sum(alerts['ours'].values())}, baseline {sum(alerts['baseline'].values())}")


if __name__ == "__main__":
    main()
