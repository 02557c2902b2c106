"""Our matches beside rsigma's, event by event, on events built from every rule of a SigmaHQ folder.

    python bench/peer_differential.py SIGMA_CHECKOUT/rules [--per-rule 3] [--seed 11] [--json FILE]

Not a speed bench: a semantic cross-check against a second, independent Sigma engine (rsigma, in Rust; on PATH
through ``cargo install rsigma@0.23.0 --locked``). Each rule gets ``--per-rule`` events from the test generator
(``tests/sigma/generators.py``: likely hits with random case, wildcards filled, then near misses with a prefix,
a suffix or one character changed), plus Windows-shaped background events. Each event carries its number
(``_n``); rsigma echoes it (``--include-event``), we run ``Ruleset.match_indices`` on the same dict.

Compared per (event, rule), only for rules our routing admits for that event (rsigma evaluates every rule on
every event; a Security-log rule on a Sysmon event is not a disagreement). Each disagreement is printed with the
rule file and one example event, to be read against the Sigma specification: which engine is right is a
judgement, so the script reports and does not fail. Known differences, each a reading of the specification
(docs/engine.md, "Semantics"):

* keyword lists with ``|all``: we search the whole event, so the keywords may sit in different values (what the
  Splunk and Elasticsearch backends' full-text queries do); rsigma matches them in fewer places;
* ``fieldref`` between two list values: we match when any member equals any member;
* ``not`` over a list value: the selection it negates matched if any member matched, so ``not`` holds only when
  no member matches (Malicious PE Execution by Microsoft Visual Studio Debugger: rsigma matched an event whose
  ``Image`` list holds an excluded path);
* rules where the two answers differ and the specification gives ours (each example checked by hand when this
  script was written, rsigma 0.23.0): ``windash`` with an em dash or a horizontal bar (the modifier's list has the en dash, em dash
  and horizontal bar), ``base64offset`` values found in another case (every Sigma string matches without case),
  an ``endswith`` holding a ``*`` (Notepad Password Files Discovery: rsigma matched none of the events tried,
  ``notepad.exe C:\\Users\\x\\password.txt`` from explorer.exe included), ``?`` at the end of an ``endswith``
  (Weak Encryption Enabled and Kerberoast, where rsigma matched), ``\\.`` in a pattern (a literal backslash and
  dot: Potential Suspicious PowerShell Module File Created).
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from temporal_siem.detections.sigma.loader import rule_files  # noqa: E402
from temporal_siem.detections.sigma.ruleset import Ruleset  # noqa: E402
from tests.sigma.generators import rule_events, windows_events  # noqa: E402


def build_events(ruleset: Ruleset, per_rule: int, seed: int) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    events: list[dict[str, Any]] = []
    for rule in ruleset.rules:
        if rule.rule is not None:
            events.extend(rule_events(rule.rule, rng, count=per_rule))
    events += windows_events(1000, seed=seed)
    for n, event in enumerate(events):
        event["_n"] = n
    return events


def peer_matches(peer: str, rules: Path, events_file: Path) -> dict[int, set[str]]:
    proc = subprocess.run([peer, "engine", "eval", "-r", str(rules), "--include-event", "--output-format", "ndjson"],
                          stdin=events_file.open("rb"), capture_output=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"rsigma exited {proc.returncode}: {proc.stderr.decode(errors='replace')[-2000:]}")
    found: dict[int, set[str]] = collections.defaultdict(set)
    for line in proc.stdout.splitlines():
        if not line.startswith(b"{"):
            continue
        match = orjson.loads(line)
        event = match.get("event") or {}
        rule_id = match.get("rule_id") or match.get("id")
        if "_n" in event and rule_id:
            found[int(event["_n"])].add(str(rule_id))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("rules", type=Path, help="a rule folder (e.g. SIGMA_CHECKOUT/rules)")
    parser.add_argument("--per-rule", type=int, default=3)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--json", type=Path, help="write every disagreement with its example event here")
    args = parser.parse_args()
    peer = shutil.which("rsigma")
    if peer is None:
        raise SystemExit("rsigma is not on PATH (cargo install rsigma@0.23.0 --locked)")
    ruleset = Ruleset.from_paths(rule_files([args.rules]), builtin_rules=False)
    events = build_events(ruleset, args.per_rule, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        events_file = Path(tmp) / "events.jsonl"
        events_file.write_bytes(b"".join(orjson.dumps(e, default=str) + b"\n" for e in events))
        theirs = peer_matches(peer, args.rules, events_file)
    by_id = {str(rule.id): rule for rule in ruleset.rules}
    lanes: dict[int, set[str]] = {}
    disagreements: collections.Counter[tuple[str, str]] = collections.Counter()
    examples: dict[tuple[str, str], dict[str, Any]] = {}
    ours_total = theirs_total = 0
    for event in events:
        lane = ruleset.lane_for(ruleset.view(event))
        admitted = lanes.get(lane.key)
        if admitted is None:
            admitted = lanes[lane.key] = {str(ruleset.rules[i].id) for i in lane.rules}
        ours = {str(ruleset.rules[i].id) for i in ruleset.match_indices(event)}
        peer_set = theirs.get(event["_n"], set()) & admitted
        ours_total += len(ours)
        theirs_total += len(peer_set)
        for side, rule_ids in (("ours only", ours - peer_set), ("rsigma only", peer_set - ours)):
            for rule_id in rule_ids:
                disagreements[(side, rule_id)] += 1
                examples.setdefault((side, rule_id), event)
    print(f"{len(ruleset.rules)} rules ({len(ruleset.errors)} not loaded by us), {len(events):,} events; "
          f"matches: ours {ours_total:,}, rsigma {theirs_total:,} (rules our routing admits for the event)")
    print(f"(event, rule) disagreements: {sum(disagreements.values())} over {len(disagreements)} rules")
    report = []
    for (side, rule_id), count in disagreements.most_common():
        rule = by_id.get(rule_id)
        source = rule.meta.source if rule is not None else ""
        report.append({"side": side, "events": count, "rule_id": rule_id, "title": rule.meta.title if rule else "",
                       "file": source, "example": examples[(side, rule_id)]})
        example = json.dumps(examples[(side, rule_id)], default=str)
        print(f"  {side:11s} {count:4d}  {(rule.meta.title if rule else rule_id)[:60]}  ({Path(source).name})\n"
              f"              e.g. {example[:160]}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str))


if __name__ == "__main__":
    main()
