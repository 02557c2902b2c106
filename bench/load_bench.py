"""Rule load time: cold (no cache), warm (compiled-ruleset cache) and the cache-less path, each in a fresh process.

    .venv/bin/python bench/load_bench.py SIGMA_CHECKOUT [--repeat 3]

Targets (issue 19): the whole corpus cold < 2 s, warm < 0.5 s. Prints CPU seconds of the child (the machine
is shared, so wall time is noisy) and wall seconds; each figure is the median of ``--repeat`` runs.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS_FOLDERS = ("rules", "rules-emerging-threats", "rules-threat-hunting", "rules-compliance", "rules-placeholder")

CHILD = r"""
import json, os, resource, sys, time
t0 = time.perf_counter(); c0 = time.process_time()
from temporal_siem.detections.sigma.cache import default_cache
from temporal_siem.detections.sigma.ruleset import Ruleset
t_import = time.process_time() - c0
paths = json.loads(sys.argv[1])
cache = default_cache()
c1 = time.process_time(); w1 = time.perf_counter()
rs = Ruleset.from_paths(paths, builtin_rules=False, cache=cache)
print(json.dumps({"cpu": time.process_time() - c1, "wall": time.perf_counter() - w1, "import_cpu": t_import,
                  "rules": len(rs.rules), "errors": len(rs.errors), "state": cache.last if cache else "off",
                  "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "digest": __import__("hashlib").sha256("".join(r.id + r.source_code for r in rs.rules).encode()).hexdigest()}))
"""


def child(paths: list[str], cache_dir: str) -> dict:
    env = {"TSIEM_CACHE_DIR": cache_dir, "PATH": "/usr/bin:/bin"}
    out = subprocess.run([sys.executable, "-c", CHILD, json.dumps(paths)], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    paths = [str(Path(args.corpus) / f) for f in CORPUS_FOLDERS if (Path(args.corpus) / f).is_dir()]
    results: dict[str, list[dict]] = {"no cache": [], "cold": [], "warm": []}
    for _ in range(args.repeat):  # interleaved, so load on the shared machine hits all three alike
        results["no cache"].append(child(paths, "off"))
        with tempfile.TemporaryDirectory() as tmp:
            results["cold"].append(child(paths, tmp))
            results["warm"].append(child(paths, tmp))
    digests = {r["digest"] for rs in results.values() for r in rs}
    for label, runs in results.items():
        print(f"{label:9s} {runs[0]['rules']} rules, {runs[0]['errors']} errors: "
              f"CPU {statistics.median(r['cpu'] for r in runs):.2f} s, wall {statistics.median(r['wall'] for r in runs):.2f} s "
              f"(cache {','.join(sorted({r['state'] for r in runs}))}; import {statistics.median(r['import_cpu'] for r in runs):.2f} s CPU; "
              f"peak RSS {max(r['rss'] for r in runs):.0f} MB)")
    print("same rules and generated code in every run" if len(digests) == 1 else f"MISMATCH: {len(digests)} different rule sets")


if __name__ == "__main__":
    main()
