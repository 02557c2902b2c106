"""Deferred completion (``ParserRouter.defer_completion``, ``SigmaDetector.accepts_deferred``): plain JSON events
reach matching with ``@timestamp`` and ``event.id`` pending, and only those that matched are completed and
enriched. It must change no output: the same events (values and key order) once completed, the same alerts byte
for byte, and it must stay off whenever something before the alert would read what is pending."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from temporal_siem.detections.enrichment import EnricherRegistry, build_enrichers
from temporal_siem.detections.factory import build_detector, new_detector
from temporal_siem.detections.sigma.detector import SigmaDetector
from temporal_siem.detections.sigma.ruleset import Ruleset
from temporal_siem.ingest.replay import ReplaySource
from temporal_siem.kernel.records import PENDING, Origin, RawRecord
from temporal_siem.parsers import generic_json
from temporal_siem.parsers.generic_json import TIME_KEYS
from temporal_siem.parsers.router import ParseResult, ParserRouter
from temporal_siem.pipeline import Pipeline, defer_completion
from temporal_siem.sinks.file import FileSink
from tests.sigma.generators import windows_events

STAMP = "2026-12-01T00:00:00.000000Z"
TIMES = st.one_of(st.sampled_from(["2026-11-29 12:00:03.123", "2026-11-29T12:00:03Z", "garbage", "", "2026-13-01T00:00:00Z",
                                   "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36",
                                   "1/9/2007 9:41:00 AM", "2026-11-29T12:00:03+02:00"]),
                  st.integers(-5, 2_000_000_000_000), st.none(), st.booleans(), st.text(max_size=6))
KEYS = st.one_of(st.sampled_from([*TIME_KEYS, "event.id", "event.kind", "event.dataset", "Image", "a.b", "user.email",
                                  "user_agent.original", "source.ip"]),
                 st.text(alphabet="abcxyz._@", min_size=1, max_size=6))
RECORDS = st.dictionaries(KEYS, st.one_of(TIMES, st.dictionaries(st.sampled_from(["t", "time", "x"]), TIMES, max_size=2)),
                          max_size=8)


def _parse(router: ParserRouter, records: list[bytes]) -> list[dict[str, Any]]:
    result = ParseResult()
    router.parse_batch([RawRecord(data, Origin("test", line=n)) for n, data in enumerate(records)], result)
    return result.events


@pytest.fixture
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("temporal_siem.parsers.router.now_timestamp", lambda: STAMP)


@settings(max_examples=300, deadline=None)
@given(st.lists(RECORDS, min_size=1, max_size=40))
def test_completed_events_are_the_eager_events_key_order_included(records: list[dict[str, Any]]) -> None:
    """Any plain JSON records (nested or flat, time keys that parse or not, their own ``@timestamp`` or
    ``event.id`` or not): completed later, each event is what the eager path gives, as a list of items."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("temporal_siem.parsers.router.now_timestamp", lambda: STAMP)
        raw = [orjson.dumps(record) for record in records]
        eager = _parse(ParserRouter(), raw)
        deferring = ParserRouter()
        assert deferring.enable_deferred_completion()
        later = _parse(deferring, raw)
    assert len(later) == len(eager)
    deferring.complete(later)
    assert [list(event.items()) for event in later] == [list(event.items()) for event in eager]


def test_only_what_is_completed_is_completed_and_a_new_batch_forgets_the_last(fixed_clock: None) -> None:
    router = ParserRouter()
    router.enable_deferred_completion()
    first = _parse(router, [b'{"UtcTime": "2026-11-29 12:00:03.123", "n": 1}', b'{"n": 2}', b'{"n": 3, "event.id": "own"}'])
    assert [e["event.id"] for e in first] == [PENDING, PENDING, "own"]
    assert first[0]["@timestamp"] is PENDING and "@timestamp" not in first[1]
    router.complete([first[1]])
    assert first[1]["event.id"] == generic_json.event_id_from_raw(b'{"n": 2}') and first[0]["event.id"] is PENDING
    _parse(router, [b'{"n": 4}'])
    router.complete([first[0]])  # an event of an earlier batch: left as it is, never given another record's id
    assert first[0]["event.id"] is PENDING


RULES = {
    "rundll.yml": {"title": "Rundll32", "id": "5b4e2d1c-0000-4000-8000-00000000d001", "level": "high",
                   "logsource": {"category": "process_creation", "product": "windows"},
                   "detection": {"sel": {"Image|endswith": "\\rundll32.exe"}, "condition": "sel"}},
    "enc.yml": {"title": "Encoded command", "id": "5b4e2d1c-0000-4000-8000-00000000d002", "level": "medium",
                "logsource": {"category": "process_creation", "product": "windows"},
                "detection": {"sel": {"CommandLine|contains": " -enc "}, "filter": {"User|contains": "SYSTEM"},
                              "condition": "sel and not filter"}},
    "plain.yml": {"title": "Plain JSON", "id": "5b4e2d1c-0000-4000-8000-00000000d003", "level": "low",
                  "logsource": {"product": "json"},
                  "detection": {"sel": {"action": ["login", "delete"]}, "condition": "sel"}},
    # keywords search every value: these hold characters no pending @timestamp or id text holds, and are not cased
    "keyword.yml": {"title": "Keyword", "id": "5b4e2d1c-0000-4000-8000-00000000d00a", "level": "low",
                    "logsource": {"product": "windows"}, "detection": {"keywords": ["rundll32", "*shell32*"], "condition": "keywords"}},
    "mail.yml": {"title": "Mail keyword", "id": "5b4e2d1c-0000-4000-8000-00000000d00b", "level": "low",
                 "logsource": {"product": "json"}, "detection": {"keywords": ["@example.com"], "condition": "keywords"}},
}
PLAIN = [b'{"action": "login", "time": "2026-11-29T12:00:03Z", "user.email": "A@Example.com"}',
         b'{"action": "delete", "ts": 1764417603, "event.created": "2026-11-29T12:00:09Z"}',
         b'{"action": "login", "event.id": "own-id", "timestamp": "garbage"}',
         b'{"action": "view", "time": "2026-11-29T12:00:03Z"}',
         b'{"action": "login", "tls": {"client": {"x509": {"not_after": "2026-12-29T12:00:03Z"}}}, "time": "2026-11-29T12:00:03Z"}']


def _write_rules(folder: Path, rules: dict[str, Any]) -> Path:
    folder.mkdir(exist_ok=True)
    for name, rule in rules.items():
        (folder / name).write_text(yaml.safe_dump(rule), encoding="utf-8")
    return folder


def _replay(tmp_path: Path, name: str, rules: Path, data: Path | list[Path], defer: bool) -> tuple[bytes, bool]:
    detector = build_detector([str(rules)], builtin_rules=False, use_cache=False)
    router = ParserRouter()
    deferred = defer_completion(router, detector) if defer else False
    alerts = tmp_path / f"{name}.jsonl"
    paths = [str(p) for p in data] if isinstance(data, list) else [str(data)]
    Pipeline(ReplaySource(paths, batch_size=64), router, detector, alert_sinks=[FileSink(path=str(alerts), append=False)],
             dead_letter=FileSink(path=str(tmp_path / f"{name}-dead.jsonl"), append=False)).run()
    return alerts.read_bytes(), deferred


def test_alerts_are_byte_for_byte_those_of_the_eager_path(tmp_path: Path, fixed_clock: None,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Windows events and plain JSON records (own ids, time keys that parse or not, fields the enrichers fill in)
    through rules that match some: the same alert lines, and far fewer records hashed for an id."""
    data = tmp_path / "events.ndjson"
    lines = [orjson.dumps(event) for event in windows_events(3000)]
    data.write_bytes(b"\n".join(lines[:1500] + PLAIN * 20 + lines[1500:]) + b"\n")
    rules = _write_rules(tmp_path / "rules", RULES)
    hashed: list[bytes] = []
    real = generic_json.event_id_from_raw
    monkeypatch.setattr(generic_json, "event_id_from_raw", lambda raw: hashed.append(raw) or real(raw))
    eager, deferred_flag = _replay(tmp_path, "eager", rules, data, defer=False)
    assert not deferred_flag
    eager_hashes = len(hashed)
    hashed.clear()
    later, deferred_flag = _replay(tmp_path, "later", rules, data, defer=True)
    assert deferred_flag
    alerts = [orjson.loads(line) for line in eager.splitlines()]
    assert len(alerts) > 100 and {a["rule"]["name"] for a in alerts} == {"Rundll32", "Encoded command", "Plain JSON", "Keyword",
                                                                         "Mail keyword"}
    for written in (b'"clock_skew_seconds"', b'"user_key"', b'"certificate_days_to_expiry"', b'"own-id"'):  # enriched after matching
        assert written in eager, written
    assert later == eager
    assert b"PENDING" not in later
    assert eager_hashes >= 3000 and len(hashed) < eager_hashes / 2


@pytest.mark.parametrize(("extra", "fires"), [
    ({"title": "Time", "id": "5b4e2d1c-0000-4000-8000-00000000d004", "logsource": {"product": "json"},
      "detection": {"sel": {"@timestamp|startswith": "2026-11-29T12"}, "condition": "sel"}}, True),
    ({"title": "Id", "id": "5b4e2d1c-0000-4000-8000-00000000d005", "logsource": {"product": "json"},
      "detection": {"sel": {"event.id|contains": "a"}, "condition": "sel"}}, True),
    ({"title": "Keyword", "id": "5b4e2d1c-0000-4000-8000-00000000d006", "logsource": {"product": "windows"},
      "detection": {"keywords": ["mimikatz", "*T12:0*"], "condition": "keywords"}}, True),  # only @timestamp has a T
    ({"title": "Hex", "id": "5b4e2d1c-0000-4000-8000-00000000d009", "logsource": {"product": "json"},
      "detection": {"keywords": ["*a*b*"], "condition": "keywords"}}, True),
    ({"title": "Number", "id": "5b4e2d1c-0000-4000-8000-00000000d00c", "logsource": {"product": "windows"},
      "detection": {"keywords": [4624], "condition": "keywords"}}, None),  # may fire on a process id too
    ({"title": "Cased", "id": "5b4e2d1c-0000-4000-8000-00000000d00d", "logsource": {"product": "json"},
      "detection": {"keywords": {"|cased": ["a@example.com"]}, "condition": "keywords"}}, True),  # only temporal.user_key
    ({"title": "Skew", "id": "5b4e2d1c-0000-4000-8000-00000000d007", "logsource": {"product": "json"},
      "detection": {"sel": {"temporal.clock_skew_seconds|gte": 0}, "condition": "sel"}}, True),
    ({"title": "Ref", "id": "5b4e2d1c-0000-4000-8000-00000000d008", "logsource": {"product": "json"},
      "detection": {"sel": {"action|fieldref": "@timestamp"}, "condition": "sel"}}, False),
])
def test_a_lane_whose_rules_may_read_what_is_pending_completes_its_events_first(
        tmp_path: Path, fixed_clock: None, extra: dict[str, Any], fires: bool | None) -> None:
    """A rule that names a pending field or an enricher's field, or a keyword that could match their texts: its
    lane's events are completed and enriched before matching, so it matches what it matched without deferral
    (each of these fires only through what was pending, where ``fires``), and every alert is byte for byte the
    same. Events of other lanes are still deferred."""
    rules = _write_rules(tmp_path / "rules", {**RULES, "extra.yml": extra})
    data = tmp_path / "events.ndjson"
    data.write_bytes(b"\n".join([orjson.dumps(e) for e in windows_events(1000)] + PLAIN * 10) + b"\n")
    eager, _ = _replay(tmp_path, "eager", rules, data, defer=False)
    later, deferred = _replay(tmp_path, "later", rules, data, defer=True)
    assert deferred
    assert later == eager
    titles = [orjson.loads(line)["rule"]["name"] for line in eager.splitlines()]
    if fires is not None:
        assert (extra["title"] in titles) == fires


def test_deferral_is_refused_when_routing_reads_what_is_pending() -> None:
    ruleset = Ruleset.from_paths([], builtin_rules=False)
    assert ruleset.routing_reads(frozenset({"event.dataset"}))
    detector = SigmaDetector(ruleset, EnricherRegistry(build_enrichers()), None)
    assert not detector.accepts_deferred(frozenset({"event.id", "event.dataset"}), frozenset({"json"}))
    assert not detector.defer_to(lambda events: None, frozenset({"event.id", "event.dataset"}), frozenset({"json"}))
    assert detector.complete is None
    assert detector.accepts_deferred(frozenset({"event.id", "@timestamp"}), frozenset({"json"}))


def test_deferral_stays_off_with_correlations_or_an_enricher_that_is_not_deferrable(tmp_path: Path) -> None:
    from temporal_siem.detections.enrichment.base import Enricher

    assert not defer_completion(ParserRouter(), build_detector([], builtin_rules=True))  # the shipped pack correlates

    class Counting(Enricher):
        name = "counting"

        def __init__(self) -> None:
            self.seen = 0

        def enrich(self, events: list[dict[str, Any]]) -> None:
            self.seen += len(events)

    ruleset = Ruleset.from_paths([_write_rules(tmp_path / "rules", RULES)], builtin_rules=False)
    assert not defer_completion(ParserRouter(), SigmaDetector(ruleset, EnricherRegistry([*build_enrichers(), Counting()]), None))

    class Declared(Counting):
        datasets = frozenset({"okta.system"})  # sees no plain JSON event: no reason to refuse

    assert defer_completion(ParserRouter(), SigmaDetector(ruleset, EnricherRegistry([*build_enrichers(), Declared()]), None))
    assert not defer_completion(ParserRouter(format_name="json"), new_detector(ruleset))  # a forced format: no plain path


def test_replay_writes_complete_events_and_alerts(tmp_path: Path) -> None:
    """The command: with --events nothing is deferred (every event is written whole); without, the alerts are
    those of the run with --events."""
    from temporal_siem.cli import main

    data = tmp_path / "events.ndjson"
    data.write_bytes(b"\n".join([orjson.dumps(e) for e in windows_events(400)] + PLAIN) + b"\n")
    rules = _write_rules(tmp_path / "rules", RULES)
    common = ["replay", str(data), "--no-builtin-rules", "--rules", str(rules), "--workers", "1", "--quiet",
              "--dead-letter", str(tmp_path / "dead.jsonl")]
    assert main([*common, "--alerts", str(tmp_path / "a1.jsonl"), "--events", str(tmp_path / "events.jsonl")]) in (0, 10)
    assert main([*common, "--alerts", str(tmp_path / "a2.jsonl")]) in (0, 10)
    events = [orjson.loads(line) for line in (tmp_path / "events.jsonl").read_bytes().splitlines()]
    assert len(events) == 405 and all(isinstance(e["event"]["id"], str) for e in events)

    def strip(path: Path) -> list[dict[str, Any]]:
        out = []
        for line in path.read_bytes().splitlines():
            alert = orjson.loads(line)
            alert["event"].pop("ingested")
            out.append(alert)
        return out

    first, second = strip(tmp_path / "a1.jsonl"), strip(tmp_path / "a2.jsonl")
    assert len(first) > 20 and first == second
    assert [list(a) for a in first] == [list(a) for a in second]


def test_parallel_workers_defer_and_raise_the_alerts_of_one_eager_process(tmp_path: Path) -> None:
    """``replay --workers 2`` (each worker defers; the parent gets complete events only) against one process with
    --events (nothing deferred): the same alerts, each line identical apart from the ingest time."""
    from temporal_siem.cli import main

    data = tmp_path / "events.ndjson"
    data.write_bytes(b"\n".join([orjson.dumps(e) for e in windows_events(6000)] + PLAIN * 50) + b"\n")
    rules = _write_rules(tmp_path / "rules", RULES)
    common = ["replay", str(data), "--no-builtin-rules", "--rules", str(rules), "--quiet", "--dead-letter", str(tmp_path / "dead.jsonl")]
    assert main([*common, "--workers", "1", "--alerts", str(tmp_path / "eager.jsonl"), "--events", str(tmp_path / "events.jsonl")]) in (0, 10)
    assert main([*common, "--workers", "2", "--alerts", str(tmp_path / "parallel.jsonl")]) in (0, 10)

    def lines(path: Path) -> list[bytes]:
        out = []
        for line in path.read_bytes().splitlines():
            alert = orjson.loads(line)
            alert["event"].pop("ingested")
            out.append(orjson.dumps(alert))
        return sorted(out)

    eager, parallel = lines(tmp_path / "eager.jsonl"), lines(tmp_path / "parallel.jsonl")
    assert len(eager) > 500 and parallel == eager


def test_the_shipped_single_event_rules_over_every_sample_give_the_eager_alerts(tmp_path: Path, fixed_clock: None) -> None:
    """Every vendor format of samples/ (their events are complete from the start) beside plain JSON and Windows
    ones, through the shipped pack's single-event rules (its correlations would refuse deferral): the same alert
    lines with deferral as without."""
    import shutil

    from temporal_siem.detections.sigma.loader import BUILTIN_RULES

    rules = tmp_path / "rules"
    rules.mkdir()
    for path in sorted(Path(BUILTIN_RULES).rglob("*.yml")):
        if "\ncorrelation:" not in "\n" + path.read_text(encoding="utf-8"):
            shutil.copy(path, rules / f"{path.parent.name}-{path.name}")
    samples = Path(__file__).resolve().parents[2] / "samples"
    plain = tmp_path / "plain.jsonl"
    plain.write_bytes(b"\n".join(PLAIN) + b"\n")
    data = [samples, plain]
    eager, _ = _replay(tmp_path, "eager", rules, data, defer=False)
    later, deferred = _replay(tmp_path, "later", rules, data, defer=True)
    assert deferred and len(eager.splitlines()) > 50
    assert later == eager
