"""``replay --workers N``: reading, parsing, matching and alert encoding in N worker processes; state and
output in input order in the parent.

Why this split: parsing and matching are most of the cost and need no memory across events, so any worker
can take any batch. Memory stays whole in one place, the parent, and sees the same history in the same
order as one process would:

* an event a stateful enricher can read (its ``reads_state``) is parsed by a worker and sent back whole;
  the parent runs the full detector on it (every enricher, matching, correlation);
* every other event is enriched (stateless enrichers) and matched in the worker; when the ruleset has
  correlations, the worker's detector hands each event to a recorder instead of the correlation engine,
  and the parent replays those calls in record order: the event and the rules it matched when it matched
  a rule a correlation listens to, else only its ``@timestamp`` (which moves event time exactly as the
  event itself would).

So the alerts are the alerts one process raises: same ids, same set.

Why the parent does so little (the scaling on 2 cores depends on it: the parent shares the cores with the
workers, and whatever it does in series caps the speedup): a line-framed file is split into line-aligned
byte ranges (the parent reads only a few bytes where each range ends: :func:`line_ranges`), and sends only
``(path, offset, length)``; the worker reads the range itself (``ReplaySource._lines``, so framing and size
limits are those of one process), numbering its lines from 1 and counting its newlines, and the parent, which
applies results in order, gives the dead letters the file's line numbers.
When alerts go only to JSON Lines files (``replay --alerts``), the worker encodes them and sends bytes,
the per-rule counts and the few alerts the summary table can show; the bytes follow the result's message raw
on the pipe (not pickled inside it), and the parent moves those of the next result to apply straight into
the one alerts file (``FileSink.copy_from_fd``: ``splice``, no copy in Python) and reads any other into one
buffer until its turn. Stdin, gzip and whole-document files cannot be split by offset: the parent reads those and sends
the records (one batch in flight per worker, as they are big).

Flow: one pipe each way per worker (raw ``Connection``s, no feeder threads); results are applied strictly
in batch order, buffering any that arrive early; at most ``WINDOW_PER_WORKER x N`` batches are in flight or
buffered, so memory is bounded per process. Workers are forked after the ruleset is compiled, so they share
it. One process is used when the run needs every event in one place (``--events``, ``--report``) or
correlation windows close on event time (a configured lateness), see ``commands/replay.py``.
"""

from __future__ import annotations

import gc
import io
import logging
import multiprocessing
import os
import stat
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from typing import Any

import orjson

from temporal_siem.console import MAX_TABLE_ROWS, most_important
from temporal_siem.detections.correlation.engine import FOREVER
from temporal_siem.detections.correlation.timeutil import BadTimestamp, parse_micros
from temporal_siem.detections.enrichment import EnricherRegistry
from temporal_siem.detections.enrichment.base import Enricher
from temporal_siem.detections.sigma.detector import SigmaDetector
from temporal_siem.ingest.replay import SNIFF_BYTES, UTF8_BOM, ReplaySource
from temporal_siem.kernel.records import DeadLetter, Origin, RawRecord
from temporal_siem.parsers.router import ParseResult, ParserRouter
from temporal_siem.pipeline import Pipeline, RunStats
from temporal_siem.sinks.base import to_json_line
from temporal_siem.sinks.file import FileSink, read_exactly

log = logging.getLogger("temporal_siem.parallel")

#: Bytes of a line-framed file per batch (about a thousand typical JSON records).
RANGE_BYTES = 1 << 20
#: Bytes read at a time when looking for the newline that ends a range.
PROBE_BYTES = 4096
#: Batches a worker holds at once when they are byte ranges (a few hundred bytes each: the pipe never fills).
RANGES_IN_FLIGHT = 2
#: Batches dispatched but not yet applied, per worker: bounds the parent's reorder buffer.
WINDOW_PER_WORKER = 4
#: Pipe buffer for results (Linux ``F_SETPIPE_SZ``): a worker hands over a batch's alerts without waiting
#: for the parent to read them.
RESULT_PIPE_BYTES = 1 << 20
_F_SETPIPE_SZ = 1031

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
    """Which events an enricher's state can read (then the parent enriches and matches them in order): those
    any stateful enricher's :meth:`~Enricher.reads_state` claims (a stateful enricher that does not narrow it
    claims every event of its ``datasets``, or every event when it declares none)."""

    def __init__(self, detector: SigmaDetector) -> None:
        self.tests = tuple(enricher.reads_state for enricher in detector.enrichers if is_stateful_enricher(enricher))

    def enriched_statefully(self, event: dict[str, Any]) -> bool:
        for reads_state in self.tests:  # noqa: SIM110 - per event: a loop is cheaper than any() over a generator
            if reads_state(event):
                return True
        return False


# Items of a result, in record order: an event for the parent's full detector, a correlation observation
# (the event and the rule references it matched) or event time alone: ``(TIME, micros or None, events)`` for
# events in a row that matched nothing a correlation listens to (``CorrelationEngine.observe_time``).
FULL, OBSERVE, TIME = 0, 1, 2
#: The last element of a slim observation ``(OBSERVE, slim event, rule references, SLIM)``.
SLIM = True


@dataclass(slots=True)
class _Result:
    seq: int
    records: int = 0
    parsed: int = 0
    events: int = 0
    read: int = 0  # bytes of the range the worker read (the progress bar's measure)
    lines: int | None = 0  # newlines in that range: where the next range's lines start (its lines are numbered
    # from 1); None after a read error
    dead: list[DeadLetter] = field(default_factory=list)
    items: list[tuple[Any, ...]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)  # documents for the parent's sinks
    encoded: bytes | bytearray = b""  # alerts already encoded as JSON lines (encoded mode)
    encoded_size: int = 0  # their bytes, sent on the pipe after this message rather than pickled inside it
    count: int = 0  # alerts in ``encoded``
    by_rule: list[tuple[str, str, str, int]] = field(default_factory=list)  # (rule id, name, level, alerts)
    shown: list[dict[str, Any]] = field(default_factory=list)  # the ones the summary table may show
    max_severity: int = 0


class _ObservationRecorder:
    """Stands in for the correlation engine in a worker's detector: records what the detector would feed it.

    Only an event that matched a rule a correlation listens to is observed with its rules; for any other
    event the engine does exactly what it does for its ``@timestamp`` alone (no group to join), so that is
    all that is sent, parsed here (the parent only compares numbers); :func:`_merge_times` then makes a run of
    them one item. A matched event goes slim when the engine can only read its fields (``@timestamp``,
    ``event.id``, the correlations' group-by and value fields): it has an ``event.id`` (else the engine hashes
    the whole event), its time parses and is not ahead of the clock (else it is refused, and a refused event
    is dead-lettered whole). It could still be refused as late in the parent, after the engine applied the
    oldest waiting events to bound memory (``max_pending_events``, a million by default: rare). Then the parent
    reads and parses that batch again to dead-letter the whole event (``ParallelPipeline._whole_event``), instead
    of every slim observation carrying the whole event's bytes just in case (58,000 of them on the mixed
    corpus: 170 MB through the pipes, and 0.3 s CPU to encode them)."""

    def __init__(self, engine: Any, slim: bool = False) -> None:
        self.items: list[tuple[Any, ...]] = []
        self.referenced = engine.referenced_refs()
        self.fields: tuple[str, ...] = ()
        self.max_future_us = engine.max_future_us
        self.merge_times = engine.allowed_lateness_us >= FOREVER
        if slim:
            fields = {"@timestamp", "event.id", "event.dataset"}
            for runner in engine._runners:  # what _enqueue reads of an event
                for names in (*runner.corr.group_fields, *(runner.corr.value_fields or ())):
                    fields.update(names)
            self.fields = tuple(sorted(fields))

    def observe(self, event: dict[str, Any], matched_refs: Any) -> list[dict[str, Any]]:
        if matched_refs and not self.referenced.isdisjoint(matched_refs):
            refs = tuple(sorted(matched_refs))
            slim = self._slim(event) if self.fields else None
            self.items.append((OBSERVE, event, refs) if slim is None else (OBSERVE, slim, refs, SLIM))
        else:
            self.items.append((TIME, self._usable_time(event.get("@timestamp")), 1))
        return []

    def _usable_time(self, value: Any) -> int | None:
        """An event's time as the engine takes it from an event that matched nothing: None when it does not
        parse or is ahead of the clock (the engine skips both; one ahead of the clock and not ahead of the
        latest time seen would change nothing either)."""
        try:
            t = parse_micros(value)
        except BadTimestamp:
            return None
        return None if t > time.time_ns() // 1000 + self.max_future_us else t

    def _slim(self, event: dict[str, Any]) -> dict[str, Any] | None:
        event_id = event.get("event.id")
        dataset = event.get("event.dataset")
        if not isinstance(event_id, str | int) or event_id == "" or not isinstance(dataset, str | None):
            return None
        if self._usable_time(event.get("@timestamp")) is None:  # the engine refuses it: dead-lettered whole
            return None
        slim = {}
        for name in self.fields:
            value = event.get(name)
            if value is not None:  # the engine reads None as absent
                slim[name] = value
        return slim

    def take_rejected(self) -> list[Any]:
        return []

    def finish(self) -> list[dict[str, Any]]:
        return []


# Kinds of batch: line-aligned byte range of a file, read by the worker; records the parent read.
RANGE, RECORDS = 0, 1


class _Window(io.RawIOBase):
    """``length`` bytes of an open file from ``offset``, read with ``pread`` (no shared file position)."""

    def __init__(self, fd: int, offset: int, length: int) -> None:
        self._fd = fd
        self._offset = offset
        self._left = length
        self.newlines = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        size = min(len(buffer), self._left)
        if size <= 0:
            return 0
        data = os.pread(self._fd, size, self._offset)
        self.newlines += data.count(b"\n")
        buffer[: len(data)] = data
        self._offset += len(data)
        self._left -= len(data) if data else self._left  # a file cut short: stop there
        return len(data)


def _read_range(source: ReplaySource, files: dict[str, int], name: str, offset: int,
                length: int) -> tuple[list[RawRecord], list[DeadLetter], int | None]:
    """The records of one byte range, framed as the one-process source frames the whole file, its lines
    numbered from 1 (the parent renumbers the dead letters: :func:`_renumbered`), and its newlines (None when
    a read error left them uncounted)."""
    records: list[RawRecord] = []
    try:
        fd = files.get(name)
        if fd is None:
            fd = files[name] = os.open(name, os.O_RDONLY)
        window = _Window(fd, offset, length)
        records.extend(source._lines(name, io.BufferedReader(window, buffer_size=RANGE_BYTES)))
    except OSError as exc:  # as ReplaySource._records: what was read is kept, the rest of the range is lost
        last_line = records[-1].origin.line or 0 if records else 0
        source._dead.append(DeadLetter("read error", "ingest", Origin(name, line=last_line + 1),
                                       detail=f"{type(exc).__name__}: {exc}"))
        return records, source.take_dead_letters(), None
    return records, source.take_dead_letters(), window.newlines


def _renumbered(letters: list[DeadLetter], name: str, shift: int | None) -> list[DeadLetter]:
    """The dead letters of a range of ``name`` whose lines were numbered from 1, with the file's line numbers;
    without any (``shift`` None) after a range whose lines no process could count: none rather than wrong ones."""
    for letter in letters:
        origin = letter.origin
        if origin.source == name and origin.line is not None:
            line = origin.line + shift if shift is not None else None
            letter.origin = Origin(name, line, origin.offset, origin.topic, origin.partition, origin.index)
    return letters


def _newlines(name: str, offset: int, length: int) -> int | None:
    """The newlines of a byte range a worker could not read to its end, counted here (None: not here either)."""
    try:
        with open(name, "rb", buffering=0) as handle:
            window = _Window(handle.fileno(), offset, length)
            buffer = bytearray(min(length, RANGE_BYTES))
            while window.readinto(buffer):
                pass
            return window.newlines
    except OSError:
        return None


def _worker(router: ParserRouter, detector: SigmaDetector, scope: StateScope, source: ReplaySource, encode: bool,
            lines: bool, table_rows: int, inbox: Any, outbox: Any, foreign: list[Any], defer: bool = False) -> None:
    """One worker: read, parse, set aside what enricher state can read, enrich and match the rest, encode."""
    for connection in foreign:  # the other ends and other workers' pipes: a dead parent then reads as EOF
        connection.close()
    correlation = detector.correlation
    recorder = _ObservationRecorder(correlation, slim=True) if correlation is not None else None
    stateless = _stateless_detector(detector, recorder)
    # Deferred completion (pipeline.defer_completion), judged on the full detector: its stateful enrichers and
    # correlations see the events this worker sends whole, which must then be complete.
    deferred = router.deferred_fields, router.deferred_datasets, router.deferred_alphabet
    if defer and detector.accepts_deferred(*deferred) and router.enable_deferred_completion():
        stateless.defer_to(router.complete, *deferred)
    files: dict[str, int] = {}
    while True:
        try:
            task = inbox.recv()
        except EOFError:
            return
        if task is None:
            break
        seq, kind, payload = task
        result = _Result(seq)
        if kind == RANGE:
            name, offset, length = payload
            batch, result.dead, result.lines = _read_range(source, files, name, offset, length)
            result.read = length
        else:
            batch = payload
        result.records = len(batch)
        parsed = ParseResult(dead=result.dead)
        result.parsed += router.parse_batch(batch, parsed)
        events = parsed.events
        del batch, parsed
        result.events = len(events)
        _match(stateless, scope, events, result, recorder)
        del events
        if encode and result.alerts:
            _encode(result, lines, table_rows)
        payload = result.encoded
        if payload:  # raw, after the message: the parent moves them into the file without unpickling them
            result.encoded, result.encoded_size = b"", len(payload)
        outbox.send(result)
        if payload:
            _write_all(outbox.fileno(), payload)
            del payload
    for fd in files.values():
        os.close(fd)
    outbox.send(("done", time.process_time()))


def _stateless_detector(detector: SigmaDetector, recorder: _ObservationRecorder | None) -> SigmaDetector:
    """What a worker runs: the rule set and the stateless enrichers, its correlation calls recorded."""
    return SigmaDetector(detector.ruleset, EnricherRegistry([e for e in detector.enrichers if not is_stateful_enricher(e)]),
                         recorder, detector.options)  # type: ignore[arg-type]


def _encode(result: _Result, lines: bool, table_rows: int) -> None:
    """The worker's alerts as JSON lines (``lines``: only when there is a file to write), per-rule counts and
    the rows the summary table may show: what the parent's sinks, statistics and table need, without
    sending the documents."""
    encoded: list[bytes] = []
    done: list[dict[str, Any]] = []
    kept: list[dict[str, Any]] = []  # an alert the encoder refuses goes to the parent as a document
    by_rule: Counter[tuple[str, str, str]] = Counter()
    max_severity = 0
    for alert in result.alerts:
        if lines:
            try:
                encoded.append(to_json_line(alert))
            except Exception:
                kept.append(alert)
                continue
        done.append(alert)
        by_rule[(str(alert.get("rule.id")), str(alert.get("rule.name", "")), str(alert.get("alert.level", "")))] += 1
        severity = alert.get("event.severity")
        if isinstance(severity, int) and severity > max_severity:
            max_severity = severity
    result.encoded = b"".join(encoded)
    result.count = len(done)
    result.by_rule = [(*key, count) for key, count in by_rule.items()]
    # The table shows the run's most important alerts: a stable sort's first rows of the whole run are
    # among the first rows of each batch (batches concatenated in order), so the parent's keeper shows the same.
    result.shown = most_important(done, table_rows) if table_rows else []
    result.max_severity = max_severity
    result.alerts = kept


def _match(detector: SigmaDetector, scope: StateScope, events: list[dict[str, Any]], result: _Result,
           recorder: _ObservationRecorder | None) -> None:
    """Enrich and match in one call the events no enricher state reads; the others go to the parent whole.
    The items list them all in record order: each matched event's correlation observation where it stands."""
    full = [scope.enriched_statefully(event) for event in events]
    run = [event for event, whole in zip(events, full, strict=True) if not whole]
    if detector.complete is not None and len(run) < len(events):  # sent whole: complete (none is pending as shipped)
        detector.complete([event for event, whole in zip(events, full, strict=True) if whole])
    if run:
        result.alerts.extend(detector.process(run))
        result.dead.extend(detector.take_dead_letters())
    if recorder is None:
        result.items = [(FULL, event) for event, whole in zip(events, full, strict=True) if whole]
        return
    observed = iter(recorder.items)  # one per event of ``run``, in order (the detector observes every event)
    items = [(FULL, event) if whole else next(observed) for event, whole in zip(events, full, strict=True)]
    recorder.items = []
    result.items = _merge_times(items) if recorder.merge_times else items


def _merge_times(items: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Each run of event-time items as one: its latest usable time and its number of events. Only with
    unbounded lateness (``_ObservationRecorder.merge_times``): then an event that matched nothing can only
    raise the latest time seen, so the run's latest time does what its events did one by one. Most events of
    a replay match nothing a correlation listens to: this is most of what the parent has to apply."""
    merged: list[tuple[Any, ...]] = []
    for item in items:
        if item[0] == TIME and merged and merged[-1][0] == TIME:
            _, last, count = merged[-1]
            t = item[1]
            merged[-1] = (TIME, t if last is None or (t is not None and t > last) else last, count + item[2])
        else:
            merged.append(item)
    return merged


def line_framed_start(source: ReplaySource, name: str) -> int | None:
    """Where the lines of ``name`` start (after a UTF-8 byte-order mark) when the source would read it as
    plain lines, so it can be split into byte ranges; None for stdin, gzip, a non-regular file, binary or
    UTF-16 content, or what may be one JSON document (the parent reads those as the source does)."""
    if name == "-" or name in source._skip:
        return None
    try:
        if not stat.S_ISREG(os.stat(name).st_mode):
            return None
        with open(name, "rb") as handle:
            head = handle.read(len(UTF8_BOM) + SNIFF_BYTES)
    except OSError:
        return None
    if head[:2] == b"\x1f\x8b":
        return None
    start = len(UTF8_BOM) if head.startswith(UTF8_BOM) else 0
    head = head[start:start + SNIFF_BYTES]
    if b"\x00" in head:
        return None
    first = head.lstrip()[:1]
    if first in (b"[", b"{") and not (first == b"{" and _is_json(head.split(b"\n", 1)[0])):
        return None
    return start


def _is_json(data: bytes) -> bool:
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError:
        return False
    return True


def line_ranges(name: str, start: int, size: int | None = None) -> Iterator[tuple[int, int]]:
    """``(offset, length)`` of consecutive ranges of whole lines, each ending at the first newline ``size``
    (default ``RANGE_BYTES``) bytes or more into it: a longer line makes a longer range (the reader bounds
    what it loads of it), and the last range ends where the file does.

    Why probes and not the whole file: the parent only needs where each range ends. Reading every byte here
    (and counting newlines for line numbers) was a third of the parent's CPU on a 156 MB replay, beside the
    workers that read the same bytes again; the workers count their ranges' newlines instead."""
    size = size or RANGE_BYTES
    with open(name, "rb", buffering=0) as handle:
        fd = handle.fileno()
        offset = start
        while True:
            position = offset + size - 1  # a newline here ends a range of exactly ``size`` bytes
            end = None
            probe_bytes = PROBE_BYTES
            while True:
                probe = os.pread(fd, probe_bytes, position)
                if not probe:
                    break
                newline = probe.find(b"\n")
                if newline >= 0:
                    end = position + newline + 1
                    break
                position += len(probe)
                probe_bytes = min(probe_bytes * 2, RANGE_BYTES)  # a long line: larger reads, not one per 4 KB
            if end is None:  # no newline after that point: the rest of the file, if any, is the last range
                end = max(os.fstat(fd).st_size, offset)
                if end > offset:
                    yield offset, end - offset
                return
            yield offset, end - offset
            offset = end


class ParallelPipeline(Pipeline):
    """:class:`Pipeline` over ``workers`` processes; the same sinks, callbacks and :class:`RunStats`.

    ``on_alert_summary(count, shown, max_severity)``, when given, receives the workers' alerts as a count,
    the ``table_rows`` rows a summary table may show (0: none) and their highest ``event.severity``
    (``on_alerts`` then receives only alerts raised in the parent); with it, and alerts going only to JSON
    Lines files, workers send encoded bytes instead of documents."""

    def __init__(self, *args: Any, workers: int,
                 on_alert_summary: Callable[[int, list[dict[str, Any]], int], None] | None = None,
                 table_rows: int = MAX_TABLE_ROWS, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.table_rows = table_rows  # of each batch's alerts, how many of the most important ``shown`` holds
        if not isinstance(self.detector, SigmaDetector):
            raise TypeError("parallel replay needs the Sigma detector")
        self.workers = workers
        self.worker_cpu: list[float] = []
        self.on_alert_summary = on_alert_summary
        self._full: SigmaDetector | None = None  # the full detector with its correlation calls recorded
        self._recorder: _ObservationRecorder | None = None
        self._payloads: dict[int, tuple[int, Any]] = {}  # batches sent and not yet applied: what _whole_event reads again
        self._redone: dict[int, list[tuple[Any, ...]]] = {}  # their items with whole events, once one was needed
        self._next_line: dict[str, int | None] = {}  # per file split in ranges: the number of the next range's
        # first line (None once a range's lines could not be counted)
        self.encode = ((on_alert_summary is not None or self.on_alerts is None)
                       and all(type(sink) is FileSink for sink in self.alert_sinks))

    # -- batches ----------------------------------------------------------------------------------------
    def _tasks(self) -> Iterator[tuple[int, Any]]:
        """Batches in input order: byte ranges of line-framed files, records of the rest."""
        source = self.source
        if not isinstance(source, ReplaySource):
            for records in source.batches():
                yield RECORDS, records
            return
        batch: list[RawRecord] = []
        for name in source.files():
            start = line_framed_start(source, name)
            if start is None:
                for record in source._records(name):
                    batch.append(record)
                    if len(batch) >= source.batch_size:
                        yield RECORDS, batch
                        batch = []
                continue
            if batch:
                yield RECORDS, batch
                batch = []
            try:
                for offset, length in line_ranges(name, start):
                    yield RANGE, (name, offset, length)
            except OSError as exc:
                source._dead.append(DeadLetter("read error", "ingest", Origin(name), detail=f"{type(exc).__name__}: {exc}"))
        if batch:
            yield RECORDS, batch

    def _first_records(self, kind: int, payload: Any) -> list[RawRecord]:
        if kind == RECORDS:
            return payload  # type: ignore[no-any-return]
        source = self.source
        assert isinstance(source, ReplaySource)
        reader = ReplaySource([], max_record_bytes=source.max_record_bytes, format_hint=source.format_hint)
        files: dict[str, int] = {}
        try:
            return _read_range(reader, files, *payload)[0]
        finally:
            for fd in files.values():
                os.close(fd)

    # -- the run ----------------------------------------------------------------------------------------
    def run(self) -> RunStats:
        detector = self.detector
        assert isinstance(detector, SigmaDetector)
        scope = StateScope(detector)
        context = multiprocessing.get_context("fork")  # workers share the compiled ruleset copy-on-write
        for sink in [*self.alert_sinks, *self.event_sinks, self.dead_letter]:
            sink.open()
        tasks = self._tasks()
        first = next(tasks, None)
        if first is not None:
            self._build_lanes(self._first_records(*first))
        inboxes: list[Any] = []
        outboxes: list[Any] = []
        ends: list[Any] = []  # the workers' ends, closed in the parent once forked
        for _ in range(self.workers):
            task_reader, task_writer = context.Pipe(duplex=False)
            result_reader, result_writer = context.Pipe(duplex=False)
            try:
                import fcntl

                fcntl.fcntl(result_writer.fileno(), _F_SETPIPE_SZ, RESULT_PIPE_BYTES)
            except (ImportError, OSError):  # a smaller pipe only means a worker waits for the parent sooner
                pass
            inboxes.append(task_writer)
            outboxes.append(result_reader)
            ends.append((task_reader, result_writer))
        processes = []
        for n in range(self.workers):
            foreign = [*inboxes, *outboxes, *(end for i, pair in enumerate(ends) if i != n for end in pair)]
            processes.append(context.Process(target=_worker, args=(self.router, detector, scope, self.source, self.encode,
                                                                   bool(self.alert_sinks), self.table_rows, ends[n][0], ends[n][1],
                                                                   foreign, not self.event_sinks),
                                             name=f"tsiem-worker-{n}", daemon=True))
        for stream in (sys.stdout, sys.stderr):  # nothing buffered before the fork is written twice
            stream.flush()
        _keep_freed_memory()
        # Frozen: the collector's passes over the ruleset would copy every page of it into each worker, and in
        # this process they rescanned it on every full collection (9 of them, 0.4 s CPU of the parent's 5 s on
        # the mixed corpus). Thawed after the run unless someone froze before us (then they thaw it).
        thaw = gc.get_freeze_count() == 0
        gc.freeze()
        forked_at = time.process_time()
        try:
            for process in processes:
                process.start()
            for pair in ends:
                for end in pair:
                    end.close()
            self._loop(first, tasks, inboxes, outboxes, processes)
            if not self._stopping:
                self._deliver_alerts(detector.finish())
                self._dead_letter(detector.take_dead_letters())
            self._dead_letter(self.source.take_dead_letters())
        finally:
            for process in processes:
                if process.is_alive():
                    process.terminate()
                process.join(timeout=5)
            for connection in (*inboxes, *outboxes):
                connection.close()
            for sink in [*self.alert_sinks, *self.event_sinks, self.dead_letter]:
                sink.close()
            self.stats.finished = time.perf_counter()
            self.stats.rule_titles = detector.rule_titles()
            _report_cpu(forked_at, time.process_time(), self.worker_cpu)
            if thaw:
                gc.unfreeze()
        return self.stats

    def _loop(self, first: tuple[int, Any] | None, tasks: Iterator[tuple[int, Any]], inboxes: list[Any],
              outboxes: list[Any], processes: list[Any]) -> None:
        """Keep every worker fed, apply results in batch order, then collect the workers' CPU figures."""
        workers = len(inboxes)
        window = WINDOW_PER_WORKER * workers
        in_flight = [0] * workers
        held: list[tuple[int, Any] | None] = [first]  # the next batch, taken from ``tasks`` but not yet sent
        counters = {"sent": 0, "applied": 0}
        pending: dict[int, _Result] = {}

        def feed(n: int) -> None:
            while not self._stopping and counters["sent"] < counters["applied"] + window:
                if held[0] is None:
                    held[0] = next(tasks, None)
                    if held[0] is None:
                        return
                kind, payload = held[0]
                # A range is a few hundred bytes: two fit in the pipe, so the worker never waits for the next.
                # Records are big: only to a worker that holds nothing (it is reading its pipe, not writing
                # its result, so neither side can block the other).
                limit = RANGES_IN_FLIGHT if kind == RANGE else 1
                if in_flight[n] >= limit:
                    return
                _send(inboxes[n], (counters["sent"], kind, payload), processes[n])
                self._payloads[counters["sent"]] = (kind, payload)
                held[0] = None
                in_flight[n] += 1
                counters["sent"] += 1

        index = {id(connection): n for n, connection in enumerate(outboxes)}
        sentinels = {process.sentinel: process for process in processes}
        for n in range(workers):
            feed(n)
        while any(in_flight):
            ready = wait([*outboxes, *sentinels])
            got = []
            for item in ready:
                if isinstance(item, int):
                    continue
                n = index[id(item)]
                try:
                    result: _Result = outboxes[n].recv()
                except EOFError:
                    continue  # its process ended: reported below
                in_flight[n] -= 1
                if result.encoded_size:  # its alerts follow on the pipe: take them now, so the pipe drains as before
                    try:
                        self._take_encoded(result, outboxes[n].fileno(), result.seq == counters["applied"])
                    except EOFError:
                        _check_alive(processes, True)
                        raise RuntimeError(f"replay worker {processes[n].name} ended in the middle of a result") from None
                pending[result.seq] = result
                got.append(n)
            for n in got:
                feed(n)
            if len(got) < len(ready):  # a worker ended (its sentinel, or its pipe at EOF)
                _check_alive(processes, any(in_flight))
            while counters["applied"] in pending:
                self._apply(pending.pop(counters["applied"]))
                counters["applied"] += 1
            for n in range(workers):
                feed(n)
        if pending:
            raise RuntimeError(f"parallel replay lost batches {sorted(pending)[:5]}")
        for inbox, process in zip(inboxes, processes, strict=True):
            _send(inbox, None, process)
        for n, outbox in enumerate(outboxes):
            try:
                done = outbox.recv()
            except EOFError:
                _check_alive(processes, True)
                raise RuntimeError(f"replay worker {processes[n].name} ended without a word") from None
            self.worker_cpu.append(done[1])

    def _apply_items(self, items: list[tuple[Any, ...]], alerts: list[dict[str, Any]], dead: list[DeadLetter], seq: int) -> None:
        """Replay a batch's state work in record order. The whole events go through the full detector in one
        call (its enrichers see them in order; its correlation calls are recorded), then every correlation
        call of the batch, the workers' and those, reaches the correlation engine in record order."""
        detector = self.detector
        assert isinstance(detector, SigmaDetector)
        correlation = detector.correlation
        whole = [item[1] for item in items if item[0] == FULL]
        if correlation is None:
            if whole:
                alerts.extend(detector.process(whole))
            return
        if self._full is None:
            self._recorder = _ObservationRecorder(correlation)
            self._full = SigmaDetector(detector.ruleset, detector.enrichers, self._recorder, detector.options)  # type: ignore[arg-type]
        recorder = self._recorder
        assert recorder is not None
        if whole:
            alerts.extend(self._full.process(whole))
        observed = iter(recorder.items)
        recorder.items = []
        for index, item in enumerate(items):
            if item[0] == FULL:
                item = next(observed)
            try:
                if item[0] == TIME:
                    fired = correlation.observe_time(item[1], item[2])
                else:
                    fired = correlation.observe(item[1], item[2])
                    if len(item) > 3 and correlation._rejected and correlation._rejected[-1].event is item[1]:
                        correlation._rejected[-1].event = self._whole_event(seq, index)  # refused slim: dead-letter it whole
            except Exception:  # as SigmaDetector.process: count it, keep going
                detector.correlation_errors += 1
                log.exception("correlation engine failed on an event")
                fired = None
            if fired:
                alerts.extend(fired)
        dead.extend(detector.take_dead_letters())

    def _whole_event(self, seq: int, index: int) -> dict[str, Any]:
        """The whole event behind the slim observation ``index`` of batch ``seq``: the batch read, parsed and
        matched again as a worker did (same records, same rules: the same items in the same places; only
        ``event.ingested``, the time of reading, is this reading's). Once per batch, and only for a batch with
        an observation the engine refused as late."""
        items = self._redone.get(seq)
        if items is None:
            detector = self.detector
            assert isinstance(detector, SigmaDetector)
            records = self._first_records(*self._payloads[seq])
            parsed = ParseResult(dead=[])
            self.router.parse_batch(records, parsed)
            recorder = _ObservationRecorder(detector.correlation)  # not slim: whole events
            result = _Result(seq)
            _match(_stateless_detector(detector, recorder), StateScope(detector), parsed.events, result, recorder)
            items = self._redone[seq] = result.items
        return items[index][1]  # type: ignore[no-any-return]

    def _build_lanes(self, batch: list[RawRecord]) -> None:
        """Build the candidate indexes the first batch needs before forking, so the workers share them
        instead of each compiling the same Hyperscan databases."""
        ruleset = self.detector.ruleset  # type: ignore[attr-defined]
        for record in batch:
            for event in self.router.parse(record).events:
                ruleset.lane_for(ruleset.view(event))

    def _apply(self, result: _Result) -> None:
        stats = self.stats
        stats.records_read += result.records
        stats.records_parsed += result.parsed
        stats.events += result.events
        if result.read and isinstance(self.source, ReplaySource):
            self.source.bytes_read += result.read
        sent = self._payloads.get(result.seq)
        if sent is not None and sent[0] == RANGE:  # its lines were numbered from 1: number them in the file
            name, offset, length = sent[1]
            first = self._next_line.get(name, 1)
            lines = result.lines if result.lines is not None else _newlines(name, offset, length)
            self._next_line[name] = first + lines if first is not None and lines is not None else None
            if first != 1:
                result.dead = _renumbered(result.dead, name, first - 1 if first is not None else None)
        dead = result.dead
        alerts = result.alerts  # documents: all the worker's alerts, or (encoded) only those it could not encode
        if result.items:
            self._apply_items(result.items, alerts, dead, result.seq)
        self._payloads.pop(result.seq, None)
        self._redone.pop(result.seq, None)
        self._dead_letter(dead)
        if result.count:
            self._deliver_encoded(result)
        self._deliver_alerts(alerts)
        if self.on_batch is not None:
            self.on_batch(stats, [])

    def _take_encoded(self, result: _Result, source: int, next_to_apply: bool) -> None:
        """A result's encoded alerts, which follow its message on the pipe ``source``. The next result to apply,
        when the alerts go to one file, is copied into that file right away (``FileSink.copy_from_fd``: the kernel
        moves the bytes; every result before it is applied, and its own other writes come after, as in
        :meth:`_apply`); any other is read into memory and written when its turn comes."""
        sinks = self.alert_sinks
        if next_to_apply and len(sinks) == 1 and isinstance(sinks[0], FileSink):
            sinks[0].copy_from_fd(source, result.encoded_size)  # ``encoded`` stays empty: nothing left to write
        else:
            result.encoded = read_exactly(source, result.encoded_size)

    def _deliver_encoded(self, result: _Result) -> None:
        """What :meth:`Pipeline._deliver_alerts` does, for alerts a worker encoded: count, write, tell."""
        stats = self.stats
        for rule_id, name, level, count in result.by_rule:
            stats.alerts_by_rule[rule_id] += count
            stats.alerts_by_level[level] += count
            self._count_alerts(rule_id, name, level, count)
        for sink in self.alert_sinks if result.encoded else ():  # empty: none, or copied from the pipe already
            assert isinstance(sink, FileSink)
            sink.write_encoded(result.encoded)
        if self.on_alert_summary is not None:
            self.on_alert_summary(result.count, result.shown, result.max_severity)


def _write_all(target: int, data: bytes | bytearray) -> None:
    """All of ``data`` to the file descriptor ``target`` (a pipe: a write may take only part of it)."""
    view = memoryview(data)
    while view:
        view = view[os.write(target, view):]


def _send(inbox: Any, message: Any, process: Any) -> None:
    """Send to a worker; one that is already gone fails the replay with its exit code. (The pipe's
    ``BrokenPipeError`` must not escape: the CLI reads that as a reader closing stdout, a quiet success.)"""
    try:
        inbox.send(message)
    except (BrokenPipeError, ConnectionResetError):
        process.join(timeout=5)
        raise RuntimeError(f"replay worker {process.name} exited with code {process.exitcode}") from None


def _check_alive(processes: list[Any], working: bool) -> None:
    """A worker that died (killed, out of memory, a crash outside the per-record guards) fails the replay
    instead of leaving the parent waiting for batches that will never come."""
    for process in processes:
        code = process.exitcode
        if code not in (None, 0) or (code == 0 and working):
            raise RuntimeError(f"replay worker {process.name} exited with code {code}")


def _keep_freed_memory() -> None:
    """Have glibc's malloc keep big freed blocks for reuse instead of unmapping them.

    Batches, encoded alerts and pipe messages are megabytes each; by default every one is a fresh ``mmap``
    whose pages fault in one by one and go back to the kernel when freed. Measured on the mixed corpus with
    2 workers: 304,000 minor page faults instead of 64,000, a third more system time. Linux with glibc
    only; elsewhere nothing changes."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 64 << 20)  # M_MMAP_THRESHOLD: blocks below 64 MiB come from the heap
        libc.mallopt(-1, 256 << 20)  # M_TRIM_THRESHOLD: keep up to 256 MiB of freed heap
    except (OSError, AttributeError):
        pass


def _report_cpu(forked_at: float, parent: float, workers: list[float]) -> None:
    """For bench/workers_bench.py: CPU seconds per process (``TSIEM_PARALLEL_STATS=FILE``), so scaling can be
    judged on a shared machine where wall time mostly measures the neighbours."""
    path = os.environ.get("TSIEM_PARALLEL_STATS")
    if path:
        with open(path, "wb") as handle:
            handle.write(orjson.dumps({"before_fork_cpu": forked_at, "parent_cpu": parent, "workers_cpu": workers}))
