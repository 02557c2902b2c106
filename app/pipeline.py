"""The one loop that wires source -> parsers -> detections -> sinks.

Per batch: parse every record (dead-lettering what fails, with its origin), detect, deliver alerts and
events to every sink, then commit the batch at the source. A sink that raises SinkError holds the batch:
the loop retries with backoff (backpressure: nothing more is read meanwhile) until it is accepted or the
run is stopped, so a required sink being down never loses data.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import operator
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from temporal_siem.detections.base import Detector
from temporal_siem.ingest.base import Source
from temporal_siem.kernel import metrics
from temporal_siem.kernel.backoff import Backoff
from temporal_siem.kernel.records import DeadLetter, Origin, RawRecord
from temporal_siem.parsers.registry import detection_chain
from temporal_siem.parsers.router import ParseResult, ParserRouter
from temporal_siem.sinks.base import Sink, SinkError, to_json_line

#: What alerts are counted by (the summary and the alert metric): read in C for a whole batch.
_ALERT_GROUP = operator.itemgetter("rule.id", "rule.name", "alert.level")
log = logging.getLogger("temporal_siem.pipeline")


@dataclass
class RunStats:
    records_read: int = 0
    records_parsed: int = 0
    events: int = 0
    dead_lettered: Counter[str] = field(default_factory=Counter)
    alerts_by_rule: Counter[str] = field(default_factory=Counter)
    rule_titles: dict[str, str] = field(default_factory=dict)
    alerts_by_level: Counter[str] = field(default_factory=Counter)
    started: float = field(default_factory=time.perf_counter)
    finished: float | None = None
    sink_retries: int = 0

    @property
    def alerts(self) -> int:
        return sum(self.alerts_by_rule.values())

    @property
    def elapsed(self) -> float:
        return (self.finished or time.perf_counter()) - self.started

    @property
    def events_per_second(self) -> float:
        return self.events / self.elapsed if self.elapsed > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "records_read": self.records_read,
            "records_parsed": self.records_parsed,
            "events": self.events,
            "dead_lettered": sum(self.dead_lettered.values()),
            "dead_lettered_by_reason": dict(self.dead_lettered),
            "alerts": self.alerts,
            "alerts_by_rule": dict(self.alerts_by_rule),
            "alerts_by_level": dict(self.alerts_by_level),
            "elapsed_seconds": round(self.elapsed, 3),
            "events_per_second": round(self.events_per_second, 1),
        }


_DATASET_OF = operator.methodcaller("get", "event.dataset", "")


def dataset_labels(events: list[dict[str, Any]]) -> Counter[str]:
    """Events per metrics label of their ``event.dataset``: the values counted in C first, each distinct value
    labelled once (a label call per event was ~0.3 µs of every event). An unhashable value (a list) labels
    each event as before."""
    try:
        raw = Counter(map(_DATASET_OF, events))
    except TypeError:
        return Counter(map(metrics.DATASET_LABEL, map(_DATASET_OF, events)))
    labels: Counter[str] = Counter()
    for value, count in raw.items():
        labels[metrics.DATASET_LABEL(value)] += count
    return labels


def defer_completion(router: ParserRouter, detector: Detector) -> bool:
    """Let ``router`` leave ``@timestamp`` and ``event.id`` of plain JSON events pending, completed by ``detector``
    for the events that matched, when that changes no output: the caller writes no events and nothing else reads
    them before the detector (no event sink, no report, no time filter), and the detector can take them
    (``SigmaDetector.accepts_deferred``: it completes first an event whose rules may read them). Returns whether it did.

    Why: on Windows and plain JSON logs most events match nothing, and their id (a sha256 of the record), their
    time and the enrichers' checks were a third of a 50-rule replay's CPU (docs/engine.md, "Deferred completion")."""
    from temporal_siem.detections.sigma.detector import SigmaDetector

    if type(detector) is not SigmaDetector or detector.complete is not None:
        return False
    fields, datasets, alphabet = router.deferred_fields, router.deferred_datasets, router.deferred_alphabet
    if not detector.accepts_deferred(fields, datasets, alphabet) or not router.enable_deferred_completion():
        return False
    return detector.defer_to(router.complete, fields, datasets, alphabet)


class Pipeline:
    def __init__(self, source: Source, router: ParserRouter, detector: Detector, *,
                 alert_sinks: list[Sink], event_sinks: list[Sink] | None = None,
                 dead_letter: Sink, on_batch: Callable[[RunStats, list[RawRecord]], None] | None = None,
                 on_alerts: Callable[[list[dict[str, Any]]], None] | None = None,
                 retry_initial: float = 0.5, retry_max: float = 30.0) -> None:
        self.source = source
        self.router = router
        self.detector = detector
        self.alert_sinks = alert_sinks
        self.event_sinks = event_sinks or []
        self.dead_letter = dead_letter
        self.on_batch = on_batch
        self.on_alerts = on_alerts
        self.retry_initial = retry_initial
        self.retry_max = retry_max
        self.stats = RunStats()
        self._stopping = False
        self._alert_counters: dict[tuple[str, str, str], Any] = {}
        metrics.DATASET_LABEL.add_known({parser.dataset for parser in detection_chain()})

    def stop(self) -> None:
        """Finish the batch in hand, then return from run()."""
        self._stopping = True

    def run(self) -> RunStats:
        for sink in [*self.alert_sinks, *self.event_sinks, self.dead_letter]:
            sink.open()
        try:
            for batch in self.source.batches():
                self.process_batch(batch)
                if self._stopping:
                    break
            if not self._stopping:
                self._deliver_alerts(self.detector.finish())
                self._dead_letter(self.detector.take_dead_letters())
            self._dead_letter(self.source.take_dead_letters())
        finally:
            for sink in [*self.alert_sinks, *self.event_sinks, self.dead_letter]:
                sink.close()
            self.stats.finished = time.perf_counter()
            self.stats.rule_titles = self.detector.rule_titles()
        return self.stats

    def process_batch(self, batch: list[RawRecord]) -> list[dict[str, Any]]:
        with metrics.BATCH_LATENCY.time():
            return self._process_batch(batch)

    def _process_batch(self, batch: list[RawRecord]) -> list[dict[str, Any]]:
        stats = self.stats
        stats.records_read += len(batch)
        parsed = ParseResult(dead=self.source.take_dead_letters())
        stats.records_parsed += self.router.parse_batch(batch, parsed)
        events, dead = parsed.events, parsed.dead
        stats.events += len(events)
        metrics.RECORDS_CONSUMED.labels(self.source.name).inc(len(batch))
        for dataset, count in dataset_labels(events).items():
            metrics.EVENTS.labels(dataset).inc(count)
        alerts = self.detector.process(events) if events else []
        dead.extend(self.detector.take_dead_letters())
        self._dead_letter(dead)
        if self.event_sinks and events:
            for sink in self.event_sinks:
                self._write(sink, events)
        self._deliver_alerts(alerts)
        self.source.commit(batch)
        if self.on_batch is not None:
            self.on_batch(stats, batch)
        return alerts

    def _count_alerts(self, rule_id: str, rule_name: str, level: str, count: int) -> None:
        """The alerts counter of one rule, its labelled child kept: ``labels()`` validates and locks on every
        call, for every rule of every batch (~10 us each: a tenth of ``replay --workers``' parent CPU)."""
        key = (rule_id, rule_name, level)
        child = self._alert_counters.get(key)
        if child is None:
            child = self._alert_counters[key] = metrics.ALERTS.labels(rule_id, rule_name, level)
        child.inc(count)

    def _deliver_alerts(self, alerts: list[dict[str, Any]]) -> None:
        if not alerts:
            return
        # Counted once per (rule, level) of the batch, not per alert: a label lookup per alert cost more than
        # building it. First-seen order is kept, so the summary lists rules and levels as before.
        by_rule = self.stats.alerts_by_rule
        by_level = self.stats.alerts_by_level
        try:  # the three fields read in C (every alert we build has them); any other alert: the general path
            groups = Counter(map(_ALERT_GROUP, alerts))
        except (KeyError, TypeError):
            groups = Counter((str(alert.get("rule.id")), str(alert.get("rule.name", "")), str(alert.get("alert.level", "")))
                             for alert in alerts)
        for (rule_id, rule_name, level), count in groups.items():
            if rule_id.__class__ is not str or rule_name.__class__ is not str or level.__class__ is not str:
                rule_id, rule_name, level = str(rule_id), str(rule_name), str(level)
            by_rule[rule_id] += count
            by_level[level] += count
            self._count_alerts(rule_id, rule_name, level, count)
        for sink in self.alert_sinks:
            self._write(sink, alerts)
        if self.on_alerts is not None:
            self.on_alerts(alerts)

    def _dead_letter(self, dead: list[DeadLetter]) -> None:
        if not dead:
            return
        for item in dead:
            self.stats.dead_lettered[item.reason] += 1
            metrics.DEAD_LETTERS.labels(item.reason, item.stage).inc()
            log.debug("dead-lettered %s: %s %s", item.origin, item.reason, item.detail)
        self._write(self.dead_letter, [item.as_dict() for item in dead])

    def _write(self, sink: Sink, documents: list[dict[str, Any]]) -> None:
        try:
            self._write_batch(sink, documents)
        except (TypeError, ValueError, RecursionError, OverflowError) as exc:
            # Not the sink being down (SinkError, OSError propagate as before) but a document it cannot
            # encode (an encoder bug, an unforeseen value):
            # one record must not cost the batch its other alerts, nor stop the daemon on every restart.
            if sink is self.dead_letter or len(documents) == 1:
                if sink is self.dead_letter:
                    raise
                self._dead_letter([_unencodable(documents[0], sink, exc)])
                return
            log.warning("sink %s failed on a batch (%s: %s); writing its documents one by one", sink.name,
                        type(exc).__name__, exc)
            for document in documents:
                self._write(sink, [document])

    def _write_batch(self, sink: Sink, documents: list[dict[str, Any]]) -> None:
        delays = Backoff(None, self.retry_initial, self.retry_max, jitter=False).delays()
        while True:
            started = time.perf_counter()
            try:
                sink.write(documents)
            except SinkError as exc:
                if self._stopping:
                    raise
                metrics.SINK_FAILURES.labels(sink.name).inc()
                self.stats.sink_retries += 1
                delay = next(delays)
                log.warning("sink %s refused the batch (%s); retrying in %.1fs", sink.name, exc, delay)
                if not self._wait(delay):
                    raise  # stopped while the sink is down: the batch stays uncommitted
                continue
            break
        metrics.SINK_WRITE.labels(sink.name).observe(time.perf_counter() - started)
        rejected = sink.take_rejected()
        if rejected:
            metrics.SINK_REJECTED.labels(sink.name).inc(len(rejected))
            # "code: detail": the code is the reason (a metric label, so few values), the server's words the detail.
            self._dead_letter([DeadLetter(reason.partition(": ")[0], "sink", Origin(f"sink:{sink.name}"),
                                          raw=_json_bytes(doc), detail=reason.partition(": ")[2])
                               for doc, reason in rejected])


    def _wait(self, seconds: float) -> bool:
        """Sleep for a retry, waking early on stop(); False if stopping (a SIGTERM must not wait out a 30 s backoff)."""
        deadline = time.monotonic() + seconds
        while not self._stopping:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True
            time.sleep(min(remaining, 0.2))
        return False


def _unencodable(document: dict[str, Any], sink: Sink, exc: Exception) -> DeadLetter:
    return DeadLetter("unencodable document", "sink", Origin(f"sink:{sink.name}"), raw=to_json_line(document)[:-1],
                      detail=f"{type(exc).__name__}: {exc}"[:500])


def _json_bytes(doc: dict[str, Any]) -> bytes:
    import orjson

    try:
        return orjson.dumps(doc, default=str)
    except TypeError:  # lone surrogates: the sink's own encoding replaces them
        from temporal_siem.sinks.base import to_json_line

        return to_json_line(doc)[:-1]


#: The cyclic collector's young-generation threshold while a run goes (CPython's default: 700). CPython counts
#: it as tracked allocations minus deallocations, so it measures growth of the live heap, not churn.
RUN_GC_THRESHOLD = 50_000


@contextlib.contextmanager
def collector_for_run(freeze: bool = True) -> Iterator[None]:
    """The cyclic garbage collector set for a run: everything allocated so far (imports, the rule set, its
    compiled functions) out of its sight (``freeze``), and young collections only when the live heap grows by
    :data:`RUN_GC_THRESHOLD` objects; both undone afterwards.

    Why the freeze: the per-event dicts trigger a full collection every few hundred batches, and each one walked
    the whole rule set again (5 full collections, 0.38 s of a 10.5 s replay with 1,433 rules). Frozen objects are
    still freed by reference counting; only cycles among them wait for the unfreeze. Not kept after the run, so a
    process that replays many times (the tests, a notebook) collects its old rule sets as before. Skipped when
    something else froze objects (its unfreeze would thaw ours); ``replay --workers`` freezes around its fork.

    Why the threshold: a batch in flight is tens of thousands of live objects (about forty per event), so with
    the default every few records a young collection scanned the batch and promoted it, and the middle
    generation scanned it again: 3,500 collections, 1.5 s CPU of a 23 s one-process replay of the mixed corpus
    (200k records). At 50,000 the batch dies before the counter gets there: 7 collections, 0.07 s. Memory is
    unchanged (the parser's dicts and lists hold no cycles and are freed by reference counting); garbage in
    cycles waits for at most that many net allocations."""
    threshold = gc.get_threshold()
    gc.set_threshold(max(threshold[0], RUN_GC_THRESHOLD), *threshold[1:])
    froze = freeze and not gc.get_freeze_count()
    if froze:
        gc.freeze()
    try:
        yield
    finally:
        if froze:
            gc.unfreeze()
        gc.set_threshold(*threshold)
