"""``replay --workers N``: parsing and matching in N worker processes, state and results in input order.

Why this split: parsing and matching are most of the cost and need no memory across events, so any worker
can take any batch. Memory stays whole in one place, the parent, and sees the same history in the same
order as one process would:

* an event a stateful enricher can read (its ``state_datasets``) is parsed by a worker and sent back whole;
  the parent runs the full detector on it (every enricher, matching, correlation);
* every other event is enriched (stateless enrichers) and matched in the worker; when the ruleset has
  correlations, the worker's detector hands each event to a recorder instead of the correlation engine,
  and the parent replays those calls in record order: the event and the rules it matched when it matched
  a rule, else only its ``@timestamp`` (which moves event time exactly as the event itself would).

So the alerts are the alerts one process raises — same ids, same set. Flow: the parent reads batches and
numbers them; workers take them from one bounded queue (a slow worker gets fewer; at most ``2 x N``
batches in flight); results come back numbered and the parent applies them strictly in that order,
buffering any that arrive early. Workers are forked after the ruleset is compiled, so they share it.
One process is used when the run needs every event in one place (``--events``, ``--report``) or
correlation windows close on event time (a configured lateness), see ``commands/replay.py``.
"""

from __future__ import annotations

import itertools
import logging
import multiprocessing
import os
import queue
import time
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
    """Which events an enricher's state can read (then the parent enriches and matches them in order).

    Conservative on purpose: a stateful enricher without declared ``state_datasets`` claims every event.
    """

    def __init__(self, detector: SigmaDetector) -> None:
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

    def enriched_statefully(self, event: dict[str, Any]) -> bool:
        if self.all_events:
            return True
        try:
            return event.get("event.dataset") in self.datasets
        except TypeError:  # an unhashable dataset value: be conservative
            return True


# Items of a result, in record order: an event for the parent's full detector, a correlation observation
# (the event and the rule references it matched) or an event time alone (an event that matched nothing).
FULL, OBSERVE, TIME = 0, 1, 2


@dataclass
class _Result:
    seq: int
    records: int
    parsed: int
    events: int
    alerts: list[dict[str, Any]] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    items: list[tuple[Any, ...]] = field(default_factory=list)


class _ObservationRecorder:
    """Stands in for the correlation engine in a worker's detector: records what the detector would feed it."""

    def __init__(self) -> None:
        self.items: list[tuple[Any, ...]] = []

    def observe(self, event: dict[str, Any], matched_refs: Any) -> list[dict[str, Any]]:
        if matched_refs:
            self.items.append((OBSERVE, event, tuple(sorted(matched_refs))))
        else:
            self.items.append((TIME, event.get("@timestamp")))
        return []

    def take_rejected(self) -> list[Any]:
        return []

    def finish(self) -> list[dict[str, Any]]:
        return []


def _worker(router: ParserRouter, detector: SigmaDetector, scope: StateScope, inbox: Any, outbox: Any) -> None:
    """One worker: parse, set aside what enricher state can read, enrich and match the rest."""
    recorder = _ObservationRecorder() if detector.correlation is not None else None
    stateless = SigmaDetector(detector.ruleset, EnricherRegistry([e for e in detector.enrichers if not is_stateful_enricher(e)]),
                              recorder, detector.options)  # type: ignore[arg-type]
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
        run: list[dict[str, Any]] = []  # consecutive events this worker matches
        for event in events:
            if scope.enriched_statefully(event):
                _match(stateless, run, result, recorder)
                result.items.append((FULL, event))
            else:
                run.append(event)
        _match(stateless, run, result, recorder)
        outbox.put(result)
    outbox.put(("done", time.process_time()))


def _match(detector: SigmaDetector, run: list[dict[str, Any]], result: _Result, recorder: _ObservationRecorder | None) -> None:
    """Enrich and match ``run`` in the worker; its correlation observations join the items in order."""
    if not run:
        return
    result.alerts.extend(detector.process(run))
    result.dead.extend(detector.take_dead_letters())
    if recorder is not None:
        result.items.extend(recorder.items)
        recorder.items = []
    run.clear()


class ParallelPipeline(Pipeline):
    """:class:`Pipeline` over ``workers`` processes; the same sinks, callbacks and :class:`RunStats`."""

    def __init__(self, *args: Any, workers: int, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not isinstance(self.detector, SigmaDetector):
            raise TypeError("parallel replay needs the Sigma detector")
        self.workers = workers
        self.worker_cpu: list[float] = []

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
        forked_at = time.process_time()
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
            # What is left in the queues is no longer wanted (all was applied, or the run failed): without this
            # the feeder thread of a queue whose reader died would block interpreter exit on a full pipe.
            for channel in (inbox, outbox):
                channel.cancel_join_thread()
                channel.close()
            for sink in [*self.alert_sinks, *self.event_sinks, self.dead_letter]:
                sink.close()
            self.stats.finished = time.perf_counter()
            self.stats.rule_titles = detector.rule_titles()
            _report_cpu(forked_at, time.process_time(), self.worker_cpu)
        return self.stats

    def _apply_items(self, items: list[tuple[Any, ...]], alerts: list[dict[str, Any]], dead: list[DeadLetter]) -> None:
        """Replay a batch's state work in record order: whole events through the full detector (consecutive ones
        as one call), observations and event times straight to the correlation engine."""
        detector = self.detector
        assert isinstance(detector, SigmaDetector)
        correlation = detector.correlation
        pending: list[dict[str, Any]] = []
        for item in items:
            if item[0] == FULL:
                pending.append(item[1])
                continue
            if pending:
                alerts.extend(detector.process(pending))
                pending = []
            if correlation is None:
                continue
            try:
                fired = (correlation.observe(item[1], item[2]) if item[0] == OBSERVE
                         else correlation.observe({"@timestamp": item[1]}, ()))
            except Exception:  # as SigmaDetector.process: count it, keep going
                detector.correlation_errors += 1
                log.exception("correlation engine failed on an event")
                fired = None
            if fired:
                alerts.extend(fired)
        if pending:
            alerts.extend(detector.process(pending))
        dead.extend(detector.take_dead_letters())

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
                _check_alive(processes)
                self._drain(outbox, pending, state, processes, block=False)

    def _drain(self, outbox: Any, pending: dict[int, _Result], state: dict[str, int], processes: list[Any],
               block: bool) -> None:
        while True:
            try:
                result = outbox.get(timeout=_POLL_SECONDS) if block else outbox.get_nowait()
            except queue.Empty:
                if block:
                    _check_alive(processes)
                    continue
                return
            if isinstance(result, tuple):  # ("done", CPU seconds of that worker)
                self.worker_cpu.append(result[1])
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
        alerts = list(result.alerts)
        if result.items:
            self._apply_items(result.items, alerts, dead)
        self._dead_letter(dead)
        self._deliver_alerts(alerts)
        if self.on_batch is not None:
            self.on_batch(stats, [])


def _check_alive(processes: list[Any]) -> None:
    """A worker that died (killed, out of memory, a crash outside the per-record guards) fails the replay
    instead of leaving the parent waiting for batches that will never come."""
    for process in processes:
        if process.exitcode not in (None, 0):
            raise RuntimeError(f"replay worker {process.name} exited with code {process.exitcode}")


def _report_cpu(forked_at: float, parent: float, workers: list[float]) -> None:
    """For bench/workers_bench.py: CPU seconds per process (``TSIEM_PARALLEL_STATS=FILE``), so scaling can be
    judged on a shared machine where wall time mostly measures the neighbours."""
    path = os.environ.get("TSIEM_PARALLEL_STATS")
    if path:
        import orjson

        with open(path, "wb") as handle:
            handle.write(orjson.dumps({"before_fork_cpu": forked_at, "parent_cpu": parent, "workers_cpu": workers}))
