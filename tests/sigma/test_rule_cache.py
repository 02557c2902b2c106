"""The compiled-ruleset cache: a warm load is the same ruleset as a cold one; anything stale, corrupt, forged
or from another engine version is rebuilt."""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import pytest

from temporal_siem.detections.factory import new_detector
from temporal_siem.detections.sigma import cache as cache_module
from temporal_siem.detections.sigma.cache import RuleCache
from temporal_siem.detections.sigma.ruleset import Ruleset
from tests.conftest import RULES, SAMPLES
from tests.sigma.generators import rule_events, windows_events

SIGMAHQ = Path(__file__).parent / "data" / "sigmahq"


def _fingerprint(ruleset: Ruleset) -> list[tuple]:
    return [(r.index, r.id, r.name, r.meta, r.source_code, r.fields, r.witnesses, r.datasets, r.generate, r.warnings,
             (r.logsource.category, r.logsource.product, r.logsource.service) if r.logsource else None, r.keywords)
            for r in ruleset.rules]


def _events(ruleset: Ruleset) -> list[dict]:
    rng = random.Random(3)
    events = windows_events(300)
    for rule in ruleset.rules[:400]:
        if rule.rule is not None:
            events.extend(rule_events(rule.rule, rng, count=2))
    return events


def _load(cache: RuleCache, roots: list[Path]) -> Ruleset:
    return Ruleset.from_paths(roots, builtin_rules=False, cache=cache)


CONSTANTS_RULE = """
title: Every kind of compiled constant
id: 6f1e8f0e-4c61-4d3c-9a55-7d7b1f0e2a01
logsource: {product: windows, category: process_creation}
detection:
  regex: {CommandLine|re: 'invoke-[a-z]+ -enc'}
  guarded: {CommandLine|re: '(a+)+x$'}
  many:
    CommandLine|contains: [mimikatz, sekurlsa, lsadump, kerberos, golden, silver, ptt, dcsync, vault]
  net: {DestinationIp|cidr: 10.0.0.0/8}
  images: {Image: ['C:\\a.exe', 'C:\\b.exe', 'C:\\c.exe']}
  wild: {ParentImage: 'C:\\*\\x?.exe'}
  condition: 1 of them
level: high
"""


def test_warm_load_is_the_cold_ruleset(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(SIGMAHQ, rules)
    (rules / "constants.yml").write_text(CONSTANTS_RULE)
    cache = RuleCache(tmp_path / "cache")
    cold = _load(cache, [rules])
    assert cache.last == "miss"
    warm = _load(cache, [rules])
    assert cache.last == "hit"
    assert len(cold.rules) > 20 and not cold.errors
    assert _fingerprint(warm) == _fingerprint(cold)
    assert [e.as_dict() for e in warm.errors] == [e.as_dict() for e in cold.errors]
    events = [*_events(cold), {"CommandLine": "x invoke-thing -enc AAA"}, {"CommandLine": "aaaax"}, {"CommandLine": "run LSADUMP::sam"},
                                {"DestinationIp": "10.2.3.4"}, {"Image": "c:\\b.exe"}, {"ParentImage": "C:\\dir\\xy.exe"}]
    hits = 0
    for event in events:
        expected = cold.match_indices(event)
        assert warm.match_indices(event) == expected
        assert warm.match_indices(event, full_scan=True) == expected
        hits += bool(expected)
    assert hits > 20  # the comparison saw matches, not only misses


def test_rules_with_correlations_alert_the_same_from_the_cache(tmp_path: Path) -> None:
    """The shipped pack holds correlation rules: their files load through pySigma, the rest from the cache."""
    from temporal_siem.ingest.replay import ReplaySource
    from temporal_siem.parsers.router import ParserRouter

    router = ParserRouter()
    events = [e for batch in ReplaySource([str(SAMPLES)]).batches() for record in batch for e in router.parse(record).events]
    cache = RuleCache(tmp_path / "cache")
    options = {"correlation": {"allowed_lateness_seconds": -1}}
    runs = []
    for expected_state in ("miss", "hit"):
        ruleset = _load(cache, [RULES])
        assert cache.last == expected_state
        assert ruleset.compiled_correlations
        detector = new_detector(ruleset, options)
        alerts = detector.process([dict(e) for e in events]) + detector.finish()
        runs.append((_fingerprint(ruleset), sorted(a["alert.id"] for a in alerts), list(ruleset.correlation_meta.items()),
                     [_plain_correlation(c) for c in ruleset.compiled_correlations]))
    assert runs[0] == runs[1]
    assert len(runs[0][1]) > 10 and len(runs[0][3]) >= 3


def _plain_correlation(compiled: Any) -> tuple[Any, ...]:
    """Every field but the condition predicate (a function), which is compared by what it answers."""
    fields = {name: getattr(compiled, name) for name in compiled.__slots__ if name != "expression"}
    answers = None if compiled.expression is None else [compiled.expression(mask) for mask in range(1 << len(compiled.refs))]
    return (tuple(sorted(fields.items(), key=lambda item: item[0])), answers)


def _corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["flip a byte", "truncate", "empty", "forged payload", "other key"])
def test_a_damaged_or_foreign_cache_is_rebuilt(tmp_path: Path, damage: str) -> None:
    import marshal

    cache = RuleCache(tmp_path / "cache")
    cold = _load(cache, [SIGMAHQ])
    (slot,) = (tmp_path / "cache").glob("ruleset-*.bin")
    if damage == "flip a byte":
        _corrupt(slot)
    elif damage == "truncate":
        slot.write_bytes(slot.read_bytes()[:1000])
    elif damage == "empty":
        slot.write_bytes(b"")
    elif damage == "forged payload":  # valid marshal, no valid MAC: must never be unmarshalled as ours
        slot.write_bytes(b"\0" * 32 + marshal.dumps({"format": cache_module.FORMAT, "rules": []}))
    else:  # written under another directory's key
        (tmp_path / "cache" / "key").write_bytes(b"k" * 32)
    again = _load(cache, [SIGMAHQ])
    assert cache.last == "miss"
    assert _fingerprint(again) == _fingerprint(cold)
    _load(cache, [SIGMAHQ])
    assert cache.last == "hit"


def test_a_changed_rule_file_or_engine_version_rebuilds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(SIGMAHQ, rules)
    cache = RuleCache(tmp_path / "cache")
    first = _load(cache, [rules])
    target = next(r for r in first.rules if r.meta.level != "critical")
    path = Path(target.meta.source)
    path.write_text(path.read_text().replace(f"level: {target.meta.level}", "level: critical"))
    changed = _load(cache, [rules])
    assert cache.last == "miss"
    assert next(r for r in changed.rules if r.id == target.id).meta.level == "critical"
    _load(cache, [rules])
    assert cache.last == "hit"
    monkeypatch.setattr(cache_module, "_engine_version", "another engine")
    _load(cache, [rules])
    assert cache.last == "miss"


def test_pipelines_are_part_of_the_key(tmp_path: Path) -> None:
    pipeline = tmp_path / "p.yml"
    pipeline.write_text("name: rename\npriority: 50\ntransformations:\n- type: field_name_mapping\n  mapping:\n"
                        "    CommandLine: process.command_line\n")
    cache = RuleCache(tmp_path / "cache")
    plain = Ruleset.from_paths([SIGMAHQ], builtin_rules=False, cache=cache)
    mapped = Ruleset.from_paths([SIGMAHQ], builtin_rules=False, pipelines=[pipeline], cache=cache)
    assert cache.last == "miss"
    assert any("process.command_line" in r.fields for r in mapped.rules)
    assert not any("process.command_line" in r.fields for r in plain.rules)
    pipeline.write_text(pipeline.read_text().replace("process.command_line", "proc.cmd"))
    remapped = Ruleset.from_paths([SIGMAHQ], builtin_rules=False, pipelines=[pipeline], cache=cache)
    assert cache.last == "miss"
    assert any("proc.cmd" in r.fields for r in remapped.rules)


def test_the_key_file_is_private(tmp_path: Path) -> None:
    cache = RuleCache(tmp_path / "cache")
    _load(cache, [SIGMAHQ])
    assert (tmp_path / "cache" / "key").stat().st_mode & 0o077 == 0


def test_an_unwritable_cache_directory_is_no_cache(tmp_path: Path) -> None:
    import os

    if os.geteuid() == 0:  # root writes anywhere: make the directory a file instead
        blocked = tmp_path / "file"
        blocked.write_text("not a directory")
        cache = RuleCache(blocked / "cache")
    else:
        (tmp_path / "ro").mkdir(mode=0o500)
        cache = RuleCache(tmp_path / "ro" / "cache")
    ruleset = _load(cache, [SIGMAHQ])
    assert ruleset.rules and cache.last == "miss"
    assert _load(cache, [SIGMAHQ]).rules


class _Matcher:
    """Stands for a matcher class the compiler may add (a wildcard matcher): plain attributes."""

    def __init__(self, parts: tuple[str, ...]) -> None:
        self.parts = parts

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Matcher) and other.parts == self.parts

    __hash__ = None  # type: ignore[assignment]


def test_other_matcher_objects_round_trip() -> None:
    import ipaddress
    import re

    from temporal_siem.detections.sigma.cache import _constant, _describe_constant

    for value in (_Matcher(("a", "b")), frozenset({"x"}), re.compile("a+b", re.I), ipaddress.ip_network("10.0.0.0/8"), ("t", 1)):
        assert _constant(_describe_constant(value)) == value


def test_an_unpicklable_constant_means_no_cache() -> None:
    import threading

    from temporal_siem.detections.sigma.cache import Uncacheable, _describe_constant

    with pytest.raises(Uncacheable):
        _describe_constant(threading.Lock())


def test_a_second_start_compiles_no_lane_database(tmp_path: Path) -> None:
    """The lanes' Hyperscan databases are cached on disk by their needles and ids. A rule's witness clause is a
    frozenset, whose order follows the string hash, which differs per process: the needles were numbered in
    that order, so every start had a new key, compiled every lane again (~0.1 s for SigmaHQ's process_creation
    rules, before ``--workers`` forks) and left one more database file in the cache. Two starts with other
    hash seeds must find the same files."""
    import os
    import subprocess
    import sys

    def replay(seed: str) -> set[str]:
        env = dict(os.environ, PYTHONHASHSEED=seed, TSIEM_CACHE_DIR=str(tmp_path / "cache"))
        subprocess.run([sys.executable, "-m", "temporal_siem", "replay", str(SAMPLES), "--workers", "1", "--quiet",
                        "--alerts", str(tmp_path / "alerts.jsonl"), "--dead-letter", str(tmp_path / "dead.jsonl")],
                       env=env, check=False, capture_output=True)
        return {p.name for p in (tmp_path / "cache" / "hyperscan").iterdir()}

    first = replay("1")
    assert len(first) > 2  # the redaction scan's databases and at least one lane's
    assert replay("2") == first


def test_a_warm_start_without_correlations_does_not_import_pysigma(tmp_path: Path) -> None:
    """pySigma, and pyparsing under it, took ~80 ms of every start (a third of a warm replay's). A ruleset
    restored from the cache needs none of it unless it holds correlation rules (those are loaded through
    pySigma on every start): the second process must match as the first did without importing ``sigma``.
    The rules hold every kind of compiled constant (regexes, RE2, automata, networks, a pickled wildcard
    matcher), so a runtime object left in a pySigma-importing module fails this test."""
    import os
    import subprocess
    import sys

    rules = tmp_path / "rules"
    shutil.copytree(SIGMAHQ, rules)
    (rules / "constants.yml").write_text(CONSTANTS_RULE, encoding="utf-8")
    events = tmp_path / "events.jsonl"
    events.write_text('{"EventID": 1, "Channel": "Microsoft-Windows-Sysmon/Operational", '
                      '"CommandLine": "x mimikatz y", "ParentImage": "C:\\\\Temp\\\\xa.exe"}\n', encoding="utf-8")
    script = (
        "import sys\n"
        "from temporal_siem.detections.factory import build_ruleset, new_detector\n"
        f"ruleset = build_ruleset([{str(rules)!r}], builtin_rules=False)\n"
        "import orjson\n"
        f"events = [orjson.loads(line) for line in open({str(events)!r}, 'rb')]\n"
        "alerts = new_detector(ruleset).process(events)\n"
        "print(len(ruleset.rules), sorted(a['rule.name'] for a in alerts), 'sigma' in sys.modules, 'pyparsing' in sys.modules)\n"
    )
    env = dict(os.environ, TSIEM_CACHE_DIR=str(tmp_path / "cache"))

    def start() -> str:
        done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
        return done.stdout.strip()

    cold, warm = start(), start()
    assert cold.endswith("True True")  # the first start compiles with pySigma
    count, names = cold.rsplit(" ", 2)[0].split(" ", 1)
    assert int(count) > 20 and "Every kind of compiled constant" in names
    assert warm == f"{count} {names} False False"


EXTENDED_CORRELATION = """
title: Key created then used without approval
id: 0c3b7a1e-5d2f-4e8a-9b61-3f2e1d0c9b01
correlation:
  type: temporal
  rules: [authoring_created, authoring_used, authoring_approved]
  group-by: [user.name]
  timespan: 10m
  condition: authoring_created and authoring_used and not authoring_approved
level: high
""" + "".join(f"""---
title: {action.title()}
id: 0c3b7a1e-5d2f-4e8a-9b61-3f2e1d0c9b0{n}
name: authoring_{action}
logsource: {{product: okta, service: okta}}
detection: {{sel: {{event.action: {action}}}, condition: sel}}
""" for n, action in enumerate(("created", "used", "approved"), start=2))


def test_a_warm_start_with_correlations_does_not_import_pysigma(tmp_path: Path) -> None:
    """Correlation rules are cached as compiled data too (their condition as a tree, not a function): before, their
    files and the rules they reference loaded through pySigma on every start (~80 ms, a quarter of a warm start of
    the shipped pack). The second process raises the same alerts, correlation alerts included (an extended
    condition with ``not`` among them), without importing ``sigma`` or ``pyparsing``."""
    import os
    import subprocess
    import sys

    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "extended.yml").write_text(EXTENDED_CORRELATION, encoding="utf-8")
    events = tmp_path / "events.jsonl"
    lines = [f'{{"@timestamp": "2026-01-01T00:0{i}:00Z", "event.id": "e{i}-{user}", "event.dataset": "okta.system", '
             f'"event.action": "{action}", "user.name": "{user}"}}'
             for user, actions in (("alice", ["created", "used"]), ("bob", ["created", "approved", "used"]))
             for i, action in enumerate(actions)]
    events.write_text("\n".join(lines) + "\n", encoding="utf-8")
    script = (
        "import sys\n"
        "import orjson\n"
        "from temporal_siem.detections.factory import build_ruleset, new_detector\n"
        f"ruleset = build_ruleset([{str(rules)!r}], builtin_rules=True)\n"
        "from temporal_siem.ingest.replay import ReplaySource\n"
        "from temporal_siem.parsers.router import ParserRouter\n"
        "router = ParserRouter()\n"
        f"samples = [e for b in ReplaySource([{str(SAMPLES)!r}]).batches() for r in b for e in router.parse(r).events]\n"
        f"mine = [orjson.loads(line) for line in open({str(events)!r}, 'rb')]\n"
        "detector = new_detector(ruleset, {'correlation': {'allowed_lateness_seconds': -1}})\n"
        "alerts = detector.process(samples) + detector.process(mine) + detector.finish()\n"
        "kinds = sorted((a.get('alert.type', ''), a['rule.name'], str(a.get('alert.group_by'))) for a in alerts)\n"
        "print(orjson.dumps([len(ruleset.compiled_correlations), kinds, sorted(a['alert.id'] for a in alerts)]).decode())\n"
        "print('sigma' in sys.modules, 'pyparsing' in sys.modules)\n"
    )
    env = dict(os.environ, TSIEM_CACHE_DIR=str(tmp_path / "cache"))

    def start() -> list[str]:
        done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
        return done.stdout.strip().splitlines()

    cold, warm = start(), start()
    assert cold[1] == "True True"  # the first start compiles with pySigma
    assert warm[1] == "False False"
    assert warm[0] == cold[0]
    import orjson

    count, kinds, _ = orjson.loads(cold[0])
    assert count >= 4
    assert ["correlation", "Key created then used without approval", "{'user.name': 'alice'}"] in kinds
    assert not any(k[1] == "Key created then used without approval" and "bob" in k[2] for k in kinds)
    assert sum(1 for k in kinds if k[0] == "correlation") >= 2  # the shipped pack's correlations fired too
