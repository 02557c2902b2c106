"""temporal-siem beside rsigma on the same events and rules, whole process (rule load included), per core.

    .venv/bin/python bench/peer_bench.py SIGMA_CHECKOUT [--events 200000] [--repeat 3] [--sets 50,pc]

Issue 19's table: 200k Windows/Sysmon-shaped events (``tests/sigma/generators.windows_events``, seeded),
all made Sysmon process-creation events (EventID 1: both engines then evaluate every process_creation rule
on every event; rsigma without routing would run them on network and registry events too, which we prune
by logsource), as NDJSON, through

* ``temporal-siem replay FILE --no-builtin-rules --rules DIR --workers 1 --quiet --summary-json OUT`` (the
  compiled-ruleset cache warm, as on any start after the first; ``--cold`` also times a cold cache;
  ``--write-alerts`` adds ``--alerts FILE``: rsigma prints a small match record, we would write the whole
  alert document), and
* ``rsigma engine eval -r DIR -q`` reading the same file on stdin, when ``rsigma`` is on PATH
  (``cargo install rsigma@0.23.0 --locked``).

Rule sets: ``50`` = the first 50 files of ``rules/windows/process_creation``; ``pc`` = every
``process_creation`` folder of ``rules`` and ``rules-threat-hunting``. Runs alternate (us, peer, us, peer...)
so load on the shared machine hits both alike; each figure is the median of ``--repeat`` runs. "Per core" is
events per CPU second of the child process (user + system, all its threads), so a multi-threaded peer is
not flattered by a second core. Per-rule match counts of both engines are compared and any difference printed.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def rule_sets(corpus: Path, names: list[str], tmp: Path) -> dict[str, Path]:
    """Each set as a directory of symlinks (both engines take a directory)."""
    out = {}
    pc_dirs = [corpus / "rules" / os_name / "process_creation" for os_name in ("windows", "linux", "macos")]
    pc_dirs += sorted((corpus / "rules-threat-hunting").glob("*/process_creation"))
    for name in names:
        if name == "pc":
            files = [f for d in pc_dirs if d.is_dir() for f in sorted(d.glob("*.yml"))]
        elif name.isdigit():
            files = sorted((corpus / "rules" / "windows" / "process_creation").glob("*.yml"))[:int(name)]
        else:
            raise SystemExit(f"unknown rule set {name!r}")
        folder = tmp / f"rules-{name}"
        folder.mkdir()
        for n, path in enumerate(files):
            (folder / f"{n:05d}-{path.name}").symlink_to(path.resolve())
        out[name] = folder
    return out


def process_creation_events(count: int) -> list[dict[str, Any]]:
    from tests.sigma.generators import windows_events

    events = windows_events(count)
    for event in events:
        event.update({"EventID": 1, "Channel": "Microsoft-Windows-Sysmon/Operational", "Provider_Name": "Microsoft-Windows-Sysmon"})
    return events


def timed(cmd: list[str], stdin: Path | None, stdout: Path, env: dict[str, str]) -> dict[str, float]:
    """Wall and CPU seconds (user + sys of the child and everything it waited for), peak RSS in MB."""
    with open(stdout, "wb") as out, (open(stdin, "rb") if stdin else open(os.devnull, "rb")) as inp:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=inp, stdout=out, stderr=subprocess.PIPE, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    code = os.waitstatus_to_exitcode(status)
    if code not in (0, 10):
        raise SystemExit(f"{cmd[0]} exited {code}: {stderr[-2000:]}")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "rss": usage.ru_maxrss / 1024}


def ours_counts(summary: Path) -> collections.Counter[str]:
    return collections.Counter(orjson.loads(summary.read_bytes())["alerts_by_rule"])


def peer_counts(output: Path) -> collections.Counter[str]:
    """rsigma prints one JSON object per match; the rule id is under ``rule_id`` (or ``id``)."""
    counts: collections.Counter[str] = collections.Counter()
    with open(output, "rb") as handle:
        for line in handle:
            line = line.strip()
            if not line.startswith(b"{"):
                continue
            match: dict[str, Any] = orjson.loads(line)
            rule_id = match.get("rule_id") or match.get("id") or (match.get("rule") or {}).get("id") or match.get("rule_title")
            counts[str(rule_id)] += 1
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--sets", default="50,pc")
    parser.add_argument("--cold", action="store_true", help="also time us with an empty ruleset cache")
    parser.add_argument("--write-alerts", action="store_true",
                        help="also write our alert documents (event + rule metadata, ~3 KB each) to a file")
    parser.add_argument("--keep", metavar="DIR", help="keep the events and outputs in DIR")
    parser.add_argument("--write-events", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write_events:
        Path(args.write_events).write_bytes(b"\n".join(orjson.dumps(e) for e in process_creation_events(args.events)) + b"\n")
        return
    peer = shutil.which("rsigma")
    ours = str(Path(sys.executable).with_name("temporal-siem"))
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(args.keep) if args.keep else Path(tmp_name)
        tmp.mkdir(parents=True, exist_ok=True)
        events = tmp / "events.ndjson"
        # written by a child process: this one stays small, so the children's peak RSS is their own
        subprocess.run([sys.executable, __file__, "--write-events", str(events), "--events", str(args.events), "x"], check=True)
        sets = rule_sets(Path(args.corpus), args.sets.split(","), Path(tempfile.mkdtemp(dir=tmp)))
        cache = tmp / "cache"
        env = dict(os.environ, TSIEM_CACHE_DIR=str(cache))
        print(f"{args.events:,} events ({events.stat().st_size / 1e6:.0f} MB); peer: {peer or 'rsigma not on PATH'}")
        for name, folder in sets.items():
            count = len(list(folder.iterdir()))
            our_cmd = [ours, "replay", str(events), "--no-builtin-rules", "--rules", str(folder), "--workers", "1",
                       "--quiet", "--summary-json", str(tmp / "summary.json"), "--dead-letter", str(tmp / "dead.jsonl")]
            if args.write_alerts:
                our_cmd += ["--alerts", str(tmp / "ours.jsonl")]
            peer_cmd = [peer, "engine", "eval", "-r", str(folder), "-q"] if peer else None
            with open(events, "rb") as handle:  # a few lines: this process must stay small (children inherit its RSS);
                # more than one, so the batch secret scan's database is in the cache too (a batch of one never needs it),
                # and enough for a lane to turn a field's memo off, so the database of its batch scan is cached too
                (tmp / "one.ndjson").write_bytes(b"".join(handle.readline() for _ in range(2000)))
            timed([*our_cmd[:2], str(tmp / "one.ndjson"), *our_cmd[3:]], None, tmp / "ours.out", env)  # warm the cache
            runs: dict[str, list[dict[str, float]]] = {"ours": [], "ours cold": [], "rsigma": []}
            for _ in range(args.repeat):
                runs["ours"].append(timed(our_cmd, None, tmp / "ours.out", env))
                if args.cold:
                    shutil.rmtree(cache, ignore_errors=True)
                    runs["ours cold"].append(timed(our_cmd, None, tmp / "ours.out", env))
                if peer_cmd:
                    runs["rsigma"].append(timed(peer_cmd, events, tmp / "peer.jsonl", env))
            print(f"\nrule set {name}: {count} rule files")
            rates = {}
            for label, results in runs.items():
                if not results:
                    continue
                cpu = statistics.median(r["cpu"] for r in results)
                wall = statistics.median(r["wall"] for r in results)
                rates[label] = args.events / cpu
                print(f"  {label:10s} {rates[label]:>9,.0f} events/s per core (CPU {cpu:.2f} s; wall {wall:.2f} s; "
                      f"peak RSS {max(r['rss'] for r in results):.0f} MB)")
            mine = ours_counts(tmp / "summary.json")
            print(f"  ours: {sum(mine.values()):,} alerts from {len(mine)} rules")
            if "rsigma" in rates:
                print(f"  ratio ours/rsigma: {rates['ours'] / rates['rsigma']:.2f}x")
                theirs = peer_counts(tmp / "peer.jsonl")
                print(f"  rsigma: {sum(theirs.values()):,} matches from {len(theirs)} rules")
                differ = {k for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k)}
                print("  per-rule match counts identical" if not differ else
                      f"  per-rule match counts differ on {len(differ)} rules, e.g. "
                      + ", ".join(f"{k}: ours {mine.get(k, 0)} rsigma {theirs.get(k, 0)}" for k in sorted(differ)[:5]))


if __name__ == "__main__":
    main()
