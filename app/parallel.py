"""``replay --workers N``: parsing and stateless detection in N worker processes, results in input order.

Why this split: parsing and matching are most of the cost and need no memory across events, so any worker
can take any batch. What does need memory stays whole in one place, the parent: an event that a stateful
component can read (an enricher with a registry, or a rule that a correlation references — found from the
event's lane) is parsed by a worker and sent back unmatched, and the parent runs the full detector (every
enricher, the correlation engine) on those events in the original record order. So the alerts are the same
alerts as one process raises — same ids, same set — and state sees the same history in the same order.

Flow: the parent reads batches and numbers them; workers take them from one bounded queue (so a slow worker
gets fewer, and memory stays bounded: at most ``2 x N`` batches in flight per direction); each result comes
back with its number and the parent applies results strictly in that order (alerts, dead letters, stats),
buffering any that arrive early. Workers are forked after the ruleset is compiled, so they share it.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import os
import queue
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from temporal_siem.detections.enrichment import EnricherRegistry
from temporal_siem.detections.enrichment.base import Enricher
from temporal_siem.detections.sigma.detector import SigmaDetector
from temporal_siem.kernel.records import DeadLetter, RawRecord
from temporal_siem.parsers.router import ParserRouter
from temporal_siem.pipeline import Pipeline, RunStats

log = logging.getLogger("temporal_siem.parallel")

_POLL_SECONDS = 0.5


def default_workers() -> int:
    """The cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def is_stateful_enricher(enricher: Enricher) -> bool:
    """An enricher that keeps memory across events: it snapshots state (the protocol's marker)."""
    return type(enricher).snapshot is not Enricher.snapshot


class StateScope:
    """Decides, per event, whether a stateful component can read it (then the parent handles it).

    Conservative on purpose: an enricher with state but no declared ``state_datasets`` claims every event;
    a lane holding any rule a correlation references claims every event of that lane.
    """

    def __init__(self, detector: SigmaDetector) -> None:
        self.ruleset = detector.ruleset
        self.all_events = False
        self.datasets: set[Any] = set()
        for enricher in detector.enrichers:
            if not is_stateful_enricher(enricher):
                continue
            declared = getattr(enricher, "state_datasets", None)
            if declared is None:
                self.all_events = True
            else:
                self.datasets.update(declared)
        self.referenced: set[int] = set()
        if detector.correlation is not None:
            keys: set[str] = set()
            for corr in self.ruleset.correlations:
                for ref in corr.rules or []:
                    keys.add(ref.reference)
                    target = getattr(ref, "rule", None)
                    if target is not None:
                        if getattr(target, "id", None) is not None:
                            keys.add(str(target.id))
                        if getattr(target, "name", None):
                            keys.add(target.name)
            self.referenced = {r.index for r in self.ruleset.rules if r.id in keys or (r.name and r.name in keys)}
        self._lanes: dict[int, bool] = {}

    @property
    def empty(self) -> bool:
        return not self.all_events and not self.datasets and not self.referenced

    def stateful(self, event: dict[str, Any]) -> bool:
        if self.all_events:
            return True
        dataset = event.get("event.dataset")
        try:
            if dataset in self.datasets:
                return True
        except TypeError:  # an unhashable dataset value: be conservative
            return True
        if not self.referenced:
            return False
        lane = self.ruleset.lane_for(self.ruleset.view(event))
        claimed = self._lanes.get(lane.key)
        if claimed is None:
            claimed = self._lanes[lane.key] = any(i in self.referenced for i in lane.rules)
        return claimed


@dataclass
class _Result:
    seq: int
    records: int
    parsed: int
    events: int
    alerts: list[dict[str, Any]] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    stateful: list[dict[str, Any]] = field(default_factory=list)
    evaluated: Counter[int] = field(default_factory=Counter)


def _worker(router: ParserRouter, detector: SigmaDetector, scope: StateScope, inbox: Any, outbox: Any) -> None:
    """One worker: parse, split off what state can read, match the rest (stateless enrichers only)."""
    stateless = SigmaDetector(detector.ruleset, EnricherRegistry([e for e in detector.enrichers if not is_stateful_enricher(e)]),
                              None, detector.options)
    while True:
        item = inbox.get()
        if item is None:
            break
        seq, batch = item
        result = _Result(seq, len(batch), 0, 0)
        events: list[dict[str, Any]] = []
        for record in batch:
            parsed = router.parse(record)
            if parsed.events:
                result.parsed += 1
                events.extend(parsed.events)
            result.dead.extend(parsed.dead)
        result.events = len(events)
        if scope.empty:
            mine = events
        else:
            mine = []
            for event in events:
                (result.stateful if scope.stateful(event) else mine).append(event)
        if mine:
            result.alerts = stateless.process(mine)
            result.dead.extend(stateless.take_dead_letters())
        outbox.put(result)
    outbox.put(None)


class ParallelPipeline(Pipeline):
    """:class:`Pipeline` over ``workers`` processes; the same sinks, callbacks and :class:`RunStats`."""

    def __init__(self, *args: Any, workers: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.detector, SigmaDetector):
            raise TypeError("parallel replay needs the Sigma detector")
        self.workers = workers

    def run(self) -> RunStats:
        detector = self.detector
        assert isinstance(detector, SigmaDetector)
        scope = StateScope(detector)
        context = multiprocessing.get_context("fork")  # workers share the compiled ruleset copy-on-write
        inbox = context.Queue(maxsize=2 * self.workers)
        outbox = context.Queue()
        processes = [context.Process(target=_worker, args=(self.router, detector, scope, inbox, outbox),
                                     name=f"tsiem-worker-{n}", daemon=True) for n in range(self.workers)]
        for sink in [*self.alert_sinks, *self.event_sinks, self.dead_letter]:
            sink.open()
        pending: dict[int, _Result] = {}
        state = {"next": 0, "done": 0}
        batches = iter(self.source.batches())
        first = next(batches, None)
        if first is not None:
            self._build_lanes(first)
        try:
            for process in processes:
                process.start()
            for seq, batch in enumerate(itertools.chain([first] if first is not None else [], batches)):
                self._put(inbox, (seq, batch), outbox, pending, state, processes)
                self._drain(outbox, pending, state, processes, block=False)
                if self._stopping:
                    break
            for _ in processes:
                self._put(inbox, None, outbox, pending, state, processes)
            while state["done"] < len(processes):
                self._drain(outbox, pending, state, processes, block=True)
            if pending:
                raise RuntimeError(f"parallel replay lost batches {sorted(pending)[:5]}")
            if not self._stopping:
                self._deliver_alerts(detector.finish())
                self._dead_letter(detector.take_dead_letters())
            self._dead_letter(self.source.take_dead_letters())
        finally:
            for process in processes:
                if process.is_alive():
                    process.terminate()
                process.join(timeout=5)
            for sink in [*self.alert_sinks, *self.event_sinks, self.dead_letter]:
                sink.close()
            self.stats.finished = time.perf_counter()
            self.stats.rule_titles = detector.rule_titles()
        return self.stats

    def _build_lanes(self, batch: list[RawRecord]) -> None:
        """Build the candidate indexes the first batch needs before forking, so the workers share them
        instead of each compiling the same Hyperscan databases."""
        ruleset = self.detector.ruleset  # type: ignore[attr-defined]
        for record in batch:
            for event in self.router.parse(record).events:
                ruleset.lane_for(ruleset.view(event))

    def _put(self, inbox: Any, item: Any, outbox: Any, pending: dict[int, _Result], state: dict[str, int],
             processes: list[Any]) -> None:
        """A bounded put that keeps applying results while it waits (workers block on nothing else)."""
        while True:
            try:
                inbox.put(item, timeout=0.05)
                return
            except queue.Full:
                self._drain(outbox, pending, state, processes, block=False)

    def _drain(self, outbox: Any, pending: dict[int, _Result], state: dict[str, int], processes: list[Any],
               block: bool) -> None:
        while True:
            try:
                result = outbox.get(timeout=_POLL_SECONDS) if block else outbox.get_nowait()
            except queue.Empty:
                if block and not all(p.is_alive() or p.exitcode == 0 for p in processes):
                    raise RuntimeError("a replay worker died") from None
                if block:
                    continue
                return
            if result is None:
                state["done"] += 1
                if block:
                    return
                continue
            pending[result.seq] = result
            while state["next"] in pending:
                self._apply(pending.pop(state["next"]))
                state["next"] += 1
            if block:
                return

    def _apply(self, result: _Result) -> None:
        stats = self.stats
        stats.records_read += result.records
        stats.records_parsed += result.parsed
        stats.events += result.events
        dead = list(result.dead)
        alerts = result.alerts
        if result.stateful:
            alerts = alerts + self.detector.process(result.stateful)
            dead.extend(self.detector.take_dead_letters())
        self._dead_letter(dead)
        self._deliver_alerts(alerts)
        if self.on_batch is not None:
            self.on_batch(stats, [])

