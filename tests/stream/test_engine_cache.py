"""The scoped stage keeps the correlation engine that wrote a scope's snapshot in memory (``ScopedStage.ENGINE_CACHE``)
instead of restoring it from the snapshot on the scope's next message. It must change nothing but the cost:

* the same alerts, dead letters and stored state as restoring every time, on the samples and on the generated
  mixed corpus, with a bounded and an unbounded lateness, with the cache smaller than the scopes in use;
* a snapshot written by someone else meanwhile (another member owned the partition for a while: a rebalance),
  or put back by a failed checkpoint, is restored, not shadowed by the engine in memory.

The store round-trips every value through JSON, as the stream engine's store does: with replay's dict store a
snapshot would come back as the very string written, which would hide a comparison by identity.
"""

from __future__ import annotations

import copy
from typing import Any

import orjson
import pytest

from bench.corpus import generate
from temporal_siem.detections.scoped import MemoryState, ScopedDetector, ScopedStage
from temporal_siem.detections.sigma.ruleset import Ruleset
from temporal_siem.kernel.records import Origin, RawRecord
from temporal_siem.parsers.router import ParserRouter


class JsonState(MemoryState):
    """Values stored as JSON text and read back as new objects, like the stream engine's RocksDB store."""

    def get(self, key: str) -> Any | None:
        value = self.data.get(key)
        return None if value is None else orjson.loads(value)

    def set(self, key: str, value: Any) -> None:
        self.data[key] = orjson.dumps(value)


@pytest.fixture(scope="module")
def events(sample_events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The samples, then a generated mixed corpus (more scopes, and windows holding more events)."""
    router = ParserRouter()
    parsed = list(sample_events)
    for i, line in enumerate(generate(6000, 11)):
        parsed.extend(router.parse(RawRecord(line, Origin("corpus", offset=i))).events)
    return parsed


def _run(ruleset: Ruleset, events: list[dict[str, Any]], lateness: float, cache: int, *, members: int = 1,
         turn: int = 0) -> tuple[list[bytes], list[str], dict[str, bytes]]:
    """Alerts (as JSON, in order), dead-letter reasons and the final store of one run. With ``members`` > 1 the
    scope messages are applied by that many stages in turns of ``turn`` events, over one store: each finds
    the scopes the others wrote meanwhile."""
    detector = ScopedDetector(ruleset, {"correlation": {"allowed_lateness_seconds": lateness}})
    detector.store = JsonState()
    stages = [detector.scoped] + [ScopedStage(detector.plan) for _ in range(members - 1)]
    for stage in stages:
        stage.ENGINE_CACHE = cache
    alerts: list[dict[str, Any]] = []
    for start in range(0, len(events), 25):
        if members > 1:
            detector.scoped = stages[(start // turn) % members]
        alerts.extend(detector.process(copy.deepcopy(events[start:start + 25])))
    alerts.extend(detector.finish())
    dead = [d.reason for d in detector.take_dead_letters()]
    return [orjson.dumps(a, option=orjson.OPT_NON_STR_KEYS, default=str) for a in alerts], dead, dict(detector.store.data)


@pytest.mark.parametrize("lateness", [300.0, -1.0], ids=["lateness-300s", "unbounded"])
def test_the_cache_changes_nothing_but_the_cost(ruleset: Ruleset, events: list[dict[str, Any]], lateness: float) -> None:
    restored = _run(ruleset, events, lateness, cache=0)
    cached = _run(ruleset, events, lateness, cache=4096)
    assert len(restored[0]) > 100, "the workload raises alerts, correlations among them"
    assert cached[0] == restored[0]
    assert cached[1] == restored[1]
    assert cached[2] == restored[2]


def test_a_cache_smaller_than_the_scopes_in_use(ruleset: Ruleset, events: list[dict[str, Any]]) -> None:
    assert _run(ruleset, events, 300.0, cache=2) == _run(ruleset, events, 300.0, cache=0)


@pytest.mark.parametrize("turn", [25, 100, 400])
def test_snapshots_written_by_another_member_are_restored(ruleset: Ruleset, events: list[dict[str, Any]], turn: int) -> None:
    """Two stages over one store, taking turns (a partition moving between members and back): each must see what
    the other wrote. Keeping its own engine instead would lose the other's events from the windows."""
    alone = _run(ruleset, events, 300.0, cache=0)
    assert _run(ruleset, events, 300.0, cache=4096, members=2, turn=turn) == alone


def test_a_snapshot_put_back_is_restored(ruleset: Ruleset, events: list[dict[str, Any]]) -> None:
    """A checkpoint that failed puts the store back as it was; the engines in memory went further. What follows is
    what a fresh member would raise from that store. (Observing an event twice changes no window, so this holds
    even for an engine that went further; the turns of the test above are what tell a stale engine apart.)"""
    detector = ScopedDetector(ruleset, {"correlation": {"allowed_lateness_seconds": 300.0}})
    detector.store = JsonState()
    half = len(events) // 2
    detector.process(copy.deepcopy(events[:half]))
    saved = dict(detector.store.data)
    detector.process(copy.deepcopy(events[half:half + 200]))  # the work the failed checkpoint loses
    detector.store.data = dict(saved)
    rest = detector.process(copy.deepcopy(events[half:])) + detector.finish()

    fresh = ScopedDetector(ruleset, {"correlation": {"allowed_lateness_seconds": 300.0}})
    fresh.store = JsonState()
    fresh.store.data = dict(saved)
    fresh.scoped.ENGINE_CACHE = 0
    fresh.max_seen = detector_max_seen_after(ruleset, events[:half])
    expected = fresh.process(copy.deepcopy(events[half:])) + fresh.finish()
    assert len(expected) > 10
    assert [_json(a) for a in rest] == [_json(a) for a in expected]
    assert detector.store.data == fresh.store.data


def _json(alert: dict[str, Any]) -> bytes:
    return orjson.dumps(alert, option=orjson.OPT_NON_STR_KEYS, default=str)


def detector_max_seen_after(ruleset: Ruleset, events: list[dict[str, Any]]) -> int:
    probe = ScopedDetector(ruleset, {"correlation": {"allowed_lateness_seconds": 300.0}})
    probe.store = JsonState()
    probe.process(copy.deepcopy(events))
    return probe.max_seen
